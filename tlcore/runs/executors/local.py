"""The local executor: runs and sweep workers as detached processes on this server. No TensorFlow.

At most `slots.worker_limit()` runs train at once. Starting queued runs claims
them one by one (`RunStore.claim_next`: counting, choosing a GPU slot and
claiming in one transaction), then hands each to an idle warm worker of its
backend and slot, or spawns `python -m tlcore.workers.run RUN_ID` with the
claim in `$TLCORE_CLAIMED_RUN`.

A worker's liveness is its process: alive, not a zombie, and still the worker of
that run (its command line names the run; a warm worker's inbox and a sweep
worker's trial file name the one they train), which guards against recycled pids.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tlcore import backend, processes
from tlcore.errors import ConfigError
from tlcore.runs import children, slots, warm
from tlcore.store import FAILED, QUEUED, RUNNING, RunStore
from tlcore.workspace import Workspace

NAME = "local"
SWEEP_JOBS_KEY = None
SWEEP_WORKER = "tlcore.workers.sweep"


def trial_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.trial`: the run sweep worker `pid` trains now."""
    return ws.workers_dir / f"{pid}.trial"


def check() -> None:
    """Nothing to check beyond the worker limit, which every launch reads."""


def run_backend(run: dict[str, Any]) -> str:
    """The Keras backend a run trains on: its `train.backend`, "auto" resolved here.

    Configs stored before the setting existed read as "auto".
    """
    return backend.resolve(((run["config"] or {}).get("train") or {}).get("backend"))


def _spawn(run_id: str, ws: Workspace, name: str, gpu: str | None) -> int:
    files = ws.run(run_id)
    files.dir.mkdir(parents=True, exist_ok=True)
    env = {**children.worker_env(ws, run_id), **backend.environment(name),
           **slots.pinned_env(gpu)}
    return children.start(["tlcore.workers.run", run_id], files.log, env)


def submit(ws: Workspace, store: RunStore) -> list[str]:
    """Start queued runs in order while fewer than `slots.worker_limit()` are running.

    With GPU slots, each run takes a free slot and its worker sees only that GPU
    (a mirrored run sees them all, though it holds one slot of the queue).

    Returns:
        The ids of the runs started.
    """
    gpus = slots.gpu_slots()
    limit = slots.worker_limit(gpus)
    if (not store.list_runs(statuses=(QUEUED,))
            or len(store.list_runs(statuses=(RUNNING,))) >= limit):
        return []
    started = []
    while True:
        now = time.time()
        run_id = store.claim_next(limit, slots=gpus, started=now, heartbeat=now, pid=None,
                                  ended=None, error=None)
        if run_id is None:
            return started
        try:
            run = store.get_run(run_id)
            name = run_backend(run)
            gpu = run["gpu"]
            if gpu is not None and (run["config"].get("train") or {}).get(
                    "distribute") == "mirrored":
                gpu = ",".join(gpus)
            pid = warm.hand_to_warm(run_id, ws, name, gpu) or _spawn(run_id, ws, name, gpu)
        except OSError as exc:
            store.transition(run_id, (RUNNING,), status=FAILED, ended=time.time(),
                             error=f"The worker process could not be started: {exc}")
            continue
        # The worker records the same pid itself; whichever write lands last agrees.
        store.transition(run_id, (RUNNING,), pid=pid)
        started.append(run_id)


def settle(ws: Workspace, store: RunStore) -> list[str]:
    """Nothing: a local run stays queued until a worker of this server claims it."""
    return []


def pid_alive(pid: int | None, run_id: str | None = None, ws: Workspace | None = None) -> bool:
    """Whether `pid` is a live process (not a zombie), and the worker of `run_id` if given.

    A worker has its run id on its command line; checking that guards against a
    recycled pid where /proc is available.
    """
    if not pid or children.ended(pid) or not processes.alive(pid):
        return False
    args = processes.command_line(pid)
    if run_id is None or args is None or run_id.encode() in args:
        return True
    # A warm worker's command line names no run, nor does a sweep worker's: the inbox,
    # or the trial file, names the one it trains.
    try:
        ws = ws or Workspace.from_env()
        if SWEEP_WORKER.encode() in args:
            return trial_file(ws, pid).read_text() == run_id
        return (warm.WARM_FLAG.encode() in args
                and warm.warm_inbox_file(ws, pid).read_text() == run_id)
    except OSError:
        return False


def ended(run: dict[str, Any], ws: Workspace) -> str | None:
    """Why a running run's worker process is gone, or None while it lives."""
    if pid_alive(run["pid"], run["id"], ws):
        return None
    return (f"The worker process (pid {run['pid']}) ended without reporting a result: it was "
            "killed, crashed or ran out of memory. Its log may say more; resume the run "
            "to continue from the last finished epoch.")


def stop(run: dict[str, Any], ws: Workspace, wait: float = 0.0) -> None:
    """Kill a run's worker (its process group) if it still runs; wait up to `wait` s."""
    pid, run_id = run["pid"], run["id"]
    if not pid or not pid_alive(pid, run_id, ws):
        return
    children.kill(pid)
    deadline = time.monotonic() + wait
    while pid_alive(pid, run_id, ws) and time.monotonic() < deadline:
        time.sleep(0.05)


def worker_name(run: dict[str, Any]) -> str:
    """`pid <n>`."""
    return f"pid {run['pid']}"


def logs(run: dict[str, Any], lines: int) -> str:
    """Nothing beyond the run's own `log.txt`."""
    return ""


def free_slots(store: RunStore) -> int:
    """How many more runs may start now (`slots.worker_limit()` less the running ones)."""
    return max(0, slots.worker_limit() - len(store.list_runs(statuses=(RUNNING,))))


def check_sweep_workers(count: int, store: RunStore) -> None:
    """Refuse more sweep workers than free worker slots (one may always wait for a slot).

    Raises:
        ConfigError: naming the limit, when `count` is over it.
    """
    free = free_slots(store)
    if count > max(1, free):
        raise ConfigError(
            f"workers must be at most {max(1, free)}: {free} of {slots.worker_limit()} worker "
            f"slots are free (${slots.ENV_MAX_WORKERS}, GPUs). Received: workers={count}")


def start_sweep_workers(ws: Workspace, sweep_id: str, count: int, backend_name: str,
                        log: Path) -> list[int]:
    """Start `count` detached sweep workers, worker i pinned to GPU slot i (round robin).

    Raises:
        ConfigError: if `count` is over the free worker slots.
    """
    check_sweep_workers(count, RunStore(ws))
    gpus = slots.gpu_slots()
    return [children.start([SWEEP_WORKER, sweep_id], log,
                           {**children.worker_env(ws),
                            **slots.pinned_env(gpus[i % len(gpus)] if gpus else None)})
            for i in range(count)]


def sweep_workers(sweep_id: str | Collection[str], attrs: dict[str, Any]) -> list[int]:
    """Live sweep worker processes of `sweep_id` (or of any of several) on this server."""
    wanted = [i.encode() for i in ([sweep_id] if isinstance(sweep_id, str) else sweep_id)]
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") and wanted else []:
        if entry.isdigit() and processes.alive(int(entry)):
            args = processes.command_line(int(entry)) or []
            if SWEEP_WORKER.encode() in args and any(i in args for i in wanted):
                found.append(int(entry))
    return found


def sweep_slots() -> int:
    """`slots.worker_limit()`: sweep trials share the worker slots with ordinary runs."""
    return slots.worker_limit()


def claim_extra() -> dict[str, Any]:
    """`{"executor": "local", "cuda_visible_devices": the GPUs this worker sees}`."""
    return {"executor": NAME, "cuda_visible_devices": os.environ.get(slots.CUDA_ENV)}


def check_node(run_id: str | None) -> int | None:
    """None: this server holds the workspace."""
    return None


def warm_up(ws: Workspace) -> int | None:
    """`warm.ensure_warm(ws)`."""
    return warm.ensure_warm(ws)
