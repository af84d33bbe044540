"""`python -m tlcore.workers.run RUN_ID`: train one run in this process.

Started detached by the local executor (or by hand for a queued run). It marks the
run running, trains it (`tlcore.engine.train.run_training`), and records how it ended:
`completed`, `cancelled`, or `failed` with the message and the tail of the
traceback. Whatever happens, it then starts the next queued run, so the queue
moves on without anyone watching. Output goes to `runs/<id>/log.txt`.

`python -m tlcore.workers.run --warm` is a warm worker (`serve_warm`): it imports
Keras and its backend (`$KERAS_BACKEND`) once, then trains the runs of that
backend that `tlcore.runs.warm` hands it one after another, so a run launched from the
dashboard starts in a fraction of a second.

The heartbeat comes from the training loop as it makes progress, not from a
thread of its own: a worker that hangs stops beating and `liveness.refresh` kills it.

Under the Ray executor the worker first checks that this node sees the shared
workspace (the run's `config.json`, written before the job was submitted) and
leaves with one line saying what to mount when it does not.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from typing import Any

from tlcore import backend
from tlcore.errors import RunCancelled, TLCoreError
from tlcore.runs import children, executors, queue, slots, warm
from tlcore.store import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, RunStore
from tlcore.workers import runlog
from tlcore.workspace import (
    Workspace,
    atomic_write_text,
    check_run_id,
    disk_full_error,
    is_no_space,
)

TRACEBACK_LINES = 25
log = logging.getLogger("tlcore.workers.run")
OOM_MARKERS = ("ResourceExhaustedError", "OOM when allocating", "out of memory",
               "MemoryError", "Failed to allocate")


def redirect_output(path: os.PathLike) -> None:
    """Send this process's stdout and stderr (TensorFlow's C++ logs too) to `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    target = os.fstat(fd)
    for std in (1, 2):
        current = os.fstat(std)
        if (current.st_dev, current.st_ino) != (target.st_dev, target.st_ino):
            os.dup2(fd, std)
    os.close(fd)


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"The worker received signal {signum} (terminated from outside).")


def failure_message(exc: BaseException, config: dict[str, Any] | None = None,
                    ws: Workspace | None = None) -> str:
    """The error stored for a failed run: a plain message, an OOM hint, the traceback tail.

    An out-of-space `OSError` from a write that `space_for` does not guard (a
    small file) reads like the guarded ones, "disk full: N MB free in <ws root>".
    """
    if isinstance(exc, TLCoreError):
        message = str(exc)
    elif ws is not None and is_no_space(exc):
        message = str(disk_full_error(ws.root))
    elif isinstance(exc, SystemExit):
        message = str(exc.code)
    else:
        message = f"{type(exc).__name__}: {exc}".strip()
    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, MemoryError) or any(marker in text for marker in OOM_MARKERS):
        batch = (config or {}).get("train", {}).get("batch_size")
        size = (config or {}).get("image_size")
        message = (f"Out of memory. Use a smaller train.batch_size (now {batch}) or a smaller "
                   f"image_size (now {size}), or fewer dense units. {message}")
    tail = text.rstrip().splitlines()[-TRACEBACK_LINES:]
    return message + "\n\nTraceback (last lines):\n" + "\n".join(tail)


def _claim(store: RunStore, run_id: str, claimed: bool) -> bool:
    """Take the run: already claimed for this process by its launcher, or queued (by hand)."""
    now = time.time()
    if claimed:
        return store.transition(run_id, (RUNNING,), pid=os.getpid(), heartbeat=now)
    return store.transition(run_id, (QUEUED,), status=RUNNING, pid=os.getpid(), started=now,
                            heartbeat=now, ended=None, error=None)


def run_claimed(run_id: str, ws: Workspace, claimed: bool, start_next: bool = True) -> int:
    """Train run `run_id` in this process and record its outcome.

    Args:
        run_id: The run.
        ws: The workspace.
        claimed: The launching process already marked the run running for this
            process (else only a queued run is taken).
        start_next: Start the next queued run afterwards (a warm worker does it
            itself once it is idle again, so that the run comes back to it).

    Returns:
        0 when the run completed or was cancelled, 1 when it failed, 2 when it could not
        be claimed (already taken, cancelled or not found).
    """
    store = RunStore(ws)
    if not _claim(store, run_id, claimed):
        try:
            status = store.get_run(run_id)["status"]
        except TLCoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"Run {run_id} is {status}, not waiting for this worker; nothing to do.",
              file=sys.stderr)
        return 2
    store.merge_extra(run_id, **executors.current().claim_extra())
    files = ws.run(run_id)
    files.dir.mkdir(parents=True, exist_ok=True)  # absent for a run started by hand
    redirect_output(files.log)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=runlog.LOG_FORMAT)
    run = store.get_run(run_id)
    resume = bool((run["extra"] or {}).get("resume"))
    code = 0
    try:
        name = backend.resolve((run["config"].get("train") or {}).get("backend"))
        backend.activate(name)
        backend.skip_unused_imports(name)
        from tlcore.engine.train import add_overlays, run_training  # Keras: only now, in the try

        run_training(run_id, ws, resume=resume)
        store.transition(run_id, (RUNNING,), status=COMPLETED, ended=time.time(), error=None)
        log.info("run %s completed", run_id)
        add_overlays(run_id, ws)
    except RunCancelled as exc:
        store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time())
        log.info("%s", exc)
    except BaseException as exc:  # every failure is recorded, whatever it is
        code = 1
        message = failure_message(exc, run["config"], ws)
        traceback.print_exc()
        store.transition(run_id, (RUNNING,), status=FAILED, ended=time.time(), error=message)
    finally:
        sys.stdout.flush()
        if start_next:
            queue.start_queued(ws)
    return code


def serve_warm(ws: Workspace) -> int:
    """Wait, with Keras imported, for runs handed over by the local executor; train each in turn.

    The worker registers as idle (`warm.warm_idle_file`, which names its backend:
    it takes only runs of that backend) and waits for its inbox (`warm.wait_for_run`).
    On a GPU server it is pinned to one GPU slot and takes only runs that claimed
    that slot. It leaves after `warm.warm_idle_seconds()` without a run, when its
    registration is removed (`warm.stop_warm`), when the process that started it is
    gone, and after a run on a GPU, so that the GPU memory is returned. Its own
    output between runs goes to `warm.warm_log_file`.
    """
    name = backend.default()
    backend.activate(name)
    backend.skip_unused_imports(name)
    import keras

    import tlcore.engine.train  # noqa: F401  (the import is the point of a warm worker)

    pid = os.getpid()
    idle, inbox = warm.warm_idle_file(ws, pid), warm.warm_inbox_file(ws, pid)
    idle.parent.mkdir(parents=True, exist_ok=True)
    on_gpu = bool(backend.configure_devices()["gpus"])
    while True:
        redirect_output(warm.warm_log_file(ws, pid))
        atomic_write_text(idle, warm.warm_key(name, slots.own_slot()))
        warm.warm_start_file(ws, pid).unlink(missing_ok=True)
        queue.start_queued(ws)  # a run waiting in the queue comes to this worker
        run_id = warm.wait_for_run(ws, pid)
        if run_id is None:
            return 0
        keras.utils.clear_session()  # nothing of the previous run stays in memory
        run_claimed(run_id, ws, claimed=True, start_next=on_gpu)
        inbox.unlink(missing_ok=True)
        if on_gpu:
            return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tlcore.workers.run RUN_ID` trains one run; `--warm` serves runs handed over.

    Returns:
        As `run_claimed` for one run; 0 when a warm worker leaves; 3 on a node that
        cannot see the workspace (Ray).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tlcore.workers.run RUN_ID | --warm", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if args[0] != warm.WARM_FLAG:
        refused = executors.current().check_node(check_run_id(args[0]))
        if refused is not None:
            return refused
    ws = Workspace.from_env()
    if args[0] == warm.WARM_FLAG:
        return serve_warm(ws)
    run_id = check_run_id(args[0])
    return run_claimed(run_id, ws, os.environ.get(children.ENV_CLAIMED) == run_id)


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: TensorFlow's can be slow or hang, and the run's outcome
    # is already recorded, so the process (and its GPU memory) goes away at once.
    os._exit(exit_code)
