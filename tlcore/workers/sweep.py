"""`python -m tlcore.workers.sweep SWEEP_ID`: train a sweep's trials one after another.

Started detached by `tlcore.runs.sweeps` (several per sweep run in parallel). The
loop: stop when the sweep is cancelled, past its deadline or has all its trials;
wait for a free worker slot (`slots.worker_limit()`, shared with ordinary runs;
on a GPU server, the worker's own GPU slot), before Keras is imported, so that
waiting workers cost little; ask Optuna for a trial; create its run already
running in this process (`RunStore.create_running`: the worker limit, the GPU
slot and the owner's `TLCORE_MAX_RUNS_PER_USER` counted in the transaction that
inserts it). A trial whose slot went to another process a moment ago waits for
the next one: it is never told as failed for want of a slot. Then it trains the
run in-process (`train.run_training`; Keras is imported once, cached features
stay in the page cache), reporting each epoch's val accuracy to the median
pruner, and tells Optuna the result.

The run this worker trains is named in `workers/<pid>.trial`, which is what
`local.pid_alive` checks: killed, the run turns lost and the sweep's next resume
fails its trial. The file is written before the run is created, so the run is
never seen running without it.

As a Ray job (`TLCORE_EXECUTOR=ray`), Ray already gave the worker its
resources: it takes no slot of `TLCORE_MAX_WORKERS`, and its trials name its
job (`extra.ray_job`), whose status is their liveness.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from tlcore import auth, backend
from tlcore.config import RunConfig
from tlcore.errors import RunCancelled
from tlcore.runs import executors, liveness, queue, slots, sweeps
from tlcore.runs.executors import local
from tlcore.store import CANCELLED, COMPLETED, FAILED, RUNNING, RunStore, new_run_id
from tlcore.workers import runlog
from tlcore.workspace import Workspace, atomic_write_text

log = logging.getLogger("tlcore.workers.sweep")
SLOT_POLL_S = 0.2


def slot_limit() -> int:
    """How many runs may be running for this worker to start a trial.

    The worker slots, shared with ordinary runs; unbounded in a Ray job: Ray
    already placed it.
    """
    return executors.current().sweep_slots()


def _pruning(trial: Any) -> Any:
    """A Keras callback: report val accuracy per epoch; stop the run when Optuna prunes it."""
    import keras
    import optuna

    class Pruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get("val_accuracy")
            if value is None:
                return
            trial.report(float(value), epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"Pruned by the sweep after epoch {epoch + 1}: val accuracy "
                    f"{float(value):.3f} is below the median of earlier trials.")

    return Pruning()


def _has_room(ws: Workspace) -> bool:
    """Whether a run may start in this worker now: a free worker slot (and its GPU)."""
    liveness.refresh(ws)
    running = RunStore(ws).list_runs(statuses=(RUNNING,))
    own = slots.own_slot()
    return len(running) < slot_limit() and (own is None or own not in {
        r["gpu"] for r in running})


def _wait_for_room(ws: Workspace, sweep_id: str, study: Any, holding: bool) -> bool:
    """Wait until a run may start; False when the sweep should stop instead.

    Args:
        holding: This worker holds an asked trial already (it no longer counts the
            trials left).
    """
    waiting = False
    while True:
        attrs = sweeps.attributes(ws, sweep_id)
        if attrs["status"] != sweeps.RUNNING:
            return False
        if attrs["deadline"] and time.time() > attrs["deadline"]:
            return False
        started = [t for t in study.get_trials(deepcopy=False)
                   if t.state.name != "WAITING"]
        if not holding and len(started) >= attrs["trials"]:
            return False
        if _has_room(ws):
            return True
        if not waiting:
            log.info("waiting for a free worker slot (%d in use)", slot_limit())
            waiting = True
        time.sleep(SLOT_POLL_S)


def _start_run(ws: Workspace, sweep_id: str, study: Any, trial: Any, config: RunConfig,
               attrs: dict[str, Any]) -> str | None:
    """Create the trial's run, running in this worker, once a slot is free; its id.

    Returns None when the sweep stops while the trial waits for a slot.
    """
    store, pid = RunStore(ws), os.getpid()
    owner = attrs.get("owner")
    limit = auth.max_runs_per_user() if owner is not None else None
    own = slots.own_slot()
    trial_file = local.trial_file(ws, pid)
    while True:
        run_id = new_run_id()
        atomic_write_text(trial_file, run_id)  # the liveness record first, then the run
        now = time.time()
        created = store.create_running(
            config, slot_limit(), name=f"{attrs['name']}-{trial.number}",
            slots=(own,) if own else (), owner=owner, max_active=limit, run_id=run_id,
            pid=pid, started=now, heartbeat=now,
            extra={"sweep": sweep_id, "trial": trial.number,
                   **executors.current().claim_extra()})
        if created is not None:
            return created
        trial_file.unlink(missing_ok=True)
        time.sleep(SLOT_POLL_S)  # the slot (or the owner's last place) went elsewhere
        if not _wait_for_room(ws, sweep_id, study, holding=True):
            return None


def train_trial(ws: Workspace, sweep_id: str, study: Any, own_logs: bool = False) -> bool:
    """Ask, train and tell one trial; False when there is none to run (or the sweep stopped).

    Keras is imported once this worker has a slot for its first trial.

    Args:
        own_logs: Send this process's output to the trial run's log while it trains
            (a sweep worker; its output goes back to the sweep's log afterwards).
    """
    import optuna

    if not _wait_for_room(ws, sweep_id, study, holding=False):
        return False
    attrs = sweeps.attributes(ws, sweep_id)
    base = RunConfig.from_dict(attrs["base"])
    dims = sweeps.parse_space(attrs["space"], base)
    with sweeps.budget_lock(ws, sweep_id):  # counting and asking, one worker at a time
        if len(study.get_trials(deepcopy=False)) >= attrs["trials"]:
            return False
        trial = study.ask({key: dim.distribution() for key, dim in dims.items()})
        trial.set_user_attr(sweeps.WORKER_ATTR, sweeps.worker_tag())
    config = sweeps.trial_config(base, dims, trial.params)
    run_id = _start_run(ws, sweep_id, study, trial, config, attrs)
    if run_id is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return False
    trial.set_user_attr("run_id", run_id)
    try:
        _train(ws, sweep_id, study, trial, run_id, config, own_logs)
    finally:
        local.trial_file(ws, os.getpid()).unlink(missing_ok=True)
    return True


def _train(ws: Workspace, sweep_id: str, study: Any, trial: Any, run_id: str,
           config: RunConfig, own_logs: bool) -> None:
    """Train the trial's run in this process and tell Optuna how it went."""
    import keras
    import optuna

    from tlcore.engine import train
    from tlcore.workers import run as worker

    store = RunStore(ws)
    files = ws.run(run_id)
    files.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(files.config, config.to_json())
    log.info("trial %d: run %s, %s", trial.number, run_id, trial.params)
    started = time.monotonic()
    if own_logs:
        worker.redirect_output(files.log)  # the run's Log tab shows its own lines
    try:
        result = train.run_training(run_id, ws, callbacks=[_pruning(trial)])
        store.transition(run_id, (RUNNING,), status=COMPLETED, ended=time.time(), error=None)
        study.tell(trial, result["best_val_accuracy"] or 0.0)
    except optuna.TrialPruned as exc:
        store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time(),
                         error=str(exc))
        store.merge_extra(run_id, pruned=True)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except RunCancelled:
        store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time())
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except Exception as exc:  # a failed trial is recorded; the sweep goes on
        store.transition(run_id, (RUNNING,), status=FAILED, ended=time.time(),
                         error=worker.failure_message(exc, config.to_dict(), ws))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, exc)
    finally:
        if own_logs:
            worker.redirect_output(sweeps.log_file(ws, sweep_id))
        keras.utils.clear_session()
    log.info("trial %d done in %.2f s", trial.number, time.monotonic() - started)


def serve(sweep_id: str, ws: Workspace) -> int:
    """Train trials of `sweep_id` until there are none left; marks the sweep done at the end."""
    attrs = sweeps.attributes(ws, sweep_id)
    # Before Keras is imported, which happens once the first trial has a slot.
    backend.activate(backend.resolve(attrs["base"].get("train", {}).get("backend")))
    # Workers sample independently: each seeds its sampler with its own pid.
    study, _ = sweeps.load_for_trials(ws, sweep_id, seed=os.getpid())
    while train_trial(ws, sweep_id, study, own_logs=True):
        pass
    attrs = sweeps.attributes(ws, sweep_id)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if attrs["status"] == sweeps.RUNNING and len(finished) >= attrs["trials"]:
        sweeps.set_status(ws, sweep_id, sweeps.DONE)
    queue.start_queued(ws)  # runs that waited for this worker's slot
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tlcore.workers.sweep SWEEP_ID", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(
        f"The sweep worker received signal {signum}."))
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format=runlog.LOG_FORMAT)
    refused = executors.current().check_node(None)
    if refused is not None:  # a node without the shared workspace (Ray)
        return refused
    return serve(args[0], Workspace.from_env())


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
