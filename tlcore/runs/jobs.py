"""Launch, queue, cancel, resume and delete training runs; worker liveness. No TensorFlow.

Each run trains in its own detached OS process, `python -m tlcore.workers.run RUN_ID`,
with its output in `runs/<id>/log.txt`. At most `$TLCORE_MAX_WORKERS` (default 1)
runs are running; the others wait as `queued` and start in order: a worker
starts the next one when it ends, and so does any reader calling `refresh`.

Claiming a queued run is one store transaction (`RunStore.claim_next`), so two
processes starting runs at once never exceed the limit or start a run twice. The
claiming process marks the run running before it spawns the worker and tells the
worker so through `$TLCORE_CLAIMED_RUN`; a worker started by hand claims a queued
run itself.

Liveness: a running run whose process is gone (crash, out of memory, kill -9)
becomes `lost` with the reason on the next `refresh`. So does a worker that is
alive but silent: the training loop itself writes the heartbeat as it makes
progress (never a side thread, which would beat on through a deadlock), so a
stopped or hung worker is killed once its heartbeat is older than
`heartbeat_timeout()`. A cancelled run that does not stop within
`CANCEL_GRACE_S` is killed and marked `cancelled`.

Executors: with `TLCORE_EXECUTOR=ray` the runs are Ray jobs instead
(`tlcore.runs.executors.ray`): `start_queued` submits them and Ray places them, liveness
reads the job's status, and "kill" stops the job. The hooks are marked "Ray:".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tlcore import auth, backend, processes
from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.entities import HEARTBEAT_INTERVAL_S
from tlcore.errors import ConfigError, NotFoundError, RunStateError
from tlcore.runs import slots
from tlcore.runs.executors import ray as rayjobs
from tlcore.settings import env_number
from tlcore.store import (
    CANCELLED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STAGE_FEATURES,
    RunStore,
)
from tlcore.vgg16 import backbones, sources
from tlcore.workspace import (
    RUN_ID_RE,
    Workspace,
    atomic_write_text,
    check_free_space,
    check_run_name,
    free_bytes,
    min_free_bytes,
)

DEVICE_CACHE_FILE = "device.json"  # in the workspace cache folder

ENV_MAX_WORKERS = "TLCORE_MAX_WORKERS"
ENV_WARM_WORKERS = "TLCORE_WARM_WORKERS"
ENV_WARM_IDLE = "TLCORE_WARM_IDLE_S"
DEFAULT_WARM_IDLE_S = 600.0
SWEEP_WORKER = "tlcore.workers.sweep"
WARM_FLAG = "--warm"
WARM_POLL_S = 0.05
ENV_CLAIMED = "TLCORE_CLAIMED_RUN"
ENV_HEARTBEAT_TIMEOUT = "TLCORE_HEARTBEAT_TIMEOUT_S"
DEFAULT_HEARTBEAT_TIMEOUT_S = 120.0
# One batch of the frozen-feature pass may legitimately take longer (huge images, CPU).
FEATURE_STAGE_TIMEOUT_FACTOR = 2.0
# The UI warns about a silent worker after this long, well before it is declared lost.
STALE_HEARTBEAT_S = 3 * HEARTBEAT_INTERVAL_S
# A claimed run whose worker never reported within this time is lost.
LOST_AFTER_S = 30.0
CANCEL_GRACE_S = 20.0
RESUMABLE = (FAILED, CANCELLED, LOST)
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Workers this process started: polling them reaps them, so a finished worker
# does not linger as a zombie that still looks alive to `os.kill(pid, 0)`.
_children: dict[int, subprocess.Popen] = {}


def max_workers() -> int:
    """How many runs may train at once: `$TLCORE_MAX_WORKERS`, default 1.

    Raises:
        ConfigError: if the variable is set but not a positive integer.
    """
    return env_number(ENV_MAX_WORKERS, 1, "a positive integer (1 for one GPU)", parse=int)


def worker_limit(gpus: tuple[str, ...] | None = None) -> int:
    """How many runs the local executor trains at once.

    One per GPU slot (`slots.gpu_slots()`), capped by `$TLCORE_MAX_WORKERS` when it
    is set; without GPUs, `max_workers()`.

    Args:
        gpus: The slots, when the caller has them already.

    Raises:
        ConfigError: if `$TLCORE_MAX_WORKERS` or `$TLCORE_GPUS` is unusable.
    """
    gpus = slots.gpu_slots() if gpus is None else gpus
    if not gpus:
        return max_workers()
    if os.environ.get(ENV_MAX_WORKERS, "").strip():
        return min(max_workers(), len(gpus))
    return len(gpus)


def heartbeat_timeout(stage: str | None = None) -> float:
    """Seconds of silence after which a running worker is declared hung and killed.

    `$TLCORE_HEARTBEAT_TIMEOUT_S` (default 120), times `FEATURE_STAGE_TIMEOUT_FACTOR`
    while the run computes frozen-base features (`stage` "features").

    Raises:
        ConfigError: if the variable is set but not a positive number.
    """
    value = env_number(ENV_HEARTBEAT_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT_S,
                       "a positive number of seconds")
    return value * (FEATURE_STAGE_TIMEOUT_FACTOR if stage == STAGE_FEATURES else 1.0)


def heartbeat_age(run: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds since a running run's worker last showed life; None unless it is running."""
    if run["status"] != RUNNING:
        return None
    last = run["heartbeat"] or run["started"] or run["created"]
    return max(0.0, (time.time() if now is None else now) - last)


def silence_warning(run: dict[str, Any], stage: str | None = None) -> str | None:
    """A warning about a running worker silent for over `STALE_HEARTBEAT_S`, else None.

    Args:
        run: The run's row.
        stage: Its progress stage (the frozen-feature stage may stay silent longer).

    Raises:
        ConfigError: if `$TLCORE_HEARTBEAT_TIMEOUT_S` is set but unusable.
    """
    silent = heartbeat_age(run)
    if silent is None or silent <= STALE_HEARTBEAT_S:
        return None
    return (f"No sign of life from the worker for {silent:.0f} s; it is marked lost after "
            f"{heartbeat_timeout(stage):.0f} s.")


# ---- launching --------------------------------------------------------------
def _check_base_weights(config: RunConfig, store: RunStore, ws: Workspace) -> None:
    """Refuse unusable weights at launch; the worker checks again before training."""
    sources.check_source(config, ws, store)


def launch(config: RunConfig, name: str | None = None, ws: Workspace | None = None,
           owner: str | None = None) -> str:
    """Queue a run and start workers for free slots.

    Args:
        config: The run config (written once to `runs/<id>/config.json`).
        name: A display name; default `run-<n>`.
        ws: The workspace.
        owner: The signed-in user who launches it; None: the local operator.

    Returns:
        The new run's id.

    Raises:
        NotFoundError: if the dataset does not exist.
        ConfigError: if the model would exceed `backbones.max_params()`.
        WeightsError, RunStateError: if `base.weights` names an unusable file or run.
        ConfigError: if `name` is not a valid run name (`workspace.check_run_name`), or
            `train.backend` names a framework that is not installed, or resolves to
            one that `train.distribute` cannot use.
        DiskFullError: if the workspace's disk has less than `min_free_bytes()` free.
        QuotaError: if `owner` has `TLCORE_MAX_RUNS_PER_USER` runs queued or running.
    """
    return launch_many([(config, name)], ws=ws, owner=owner)[0]


def launch_many(runs: list[tuple[RunConfig, str | None]], ws: Workspace | None = None,
                owner: str | None = None) -> list[str]:
    """Queue several runs at once, all or none, and start workers for free slots.

    Every run is checked as `launch` checks one before any is queued, and the
    owner's limit is counted for all of them in the transaction that inserts them.

    Args:
        runs: `(config, name)` pairs, queued in this order; a None name is `run-<n>`.
        ws: The workspace.
        owner: The signed-in user who launches them; None: the local operator.

    Returns:
        The new runs' ids, in the order given.

    Raises:
        As `launch`; nothing is queued when any run is refused.
    """
    from tlcore.data import load_manifest

    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    checked = []
    for config, name in runs:
        if not isinstance(config, RunConfig):
            raise ConfigError(f"launch needs a RunConfig. Received: {type(config).__name__}")
        manifest = load_manifest(config.dataset, ws)
        backend.require(backend.resolve(config.train.backend))
        backend.check_distribute(config.train.distribute, config.train.backend)
        backbones.check_model_size(config, max(2, len(manifest["classes"])))
        _check_base_weights(config, store, ws)
        checked.append((config, None if name is None else check_run_name(name)))
    worker_limit()  # a bad setting fails here, not in a background start later
    heartbeat_timeout()
    rayjobs.check_settings()
    if rayjobs.enabled():
        rayjobs.check_cluster()  # Ray: before the run exists, so nothing is left half-made
    check_free_space(ws.root)  # queued runs would wait for space; say so now
    auth.check_run_quota(store, owner, adding=len(checked))
    limit = auth.max_runs_per_user() if owner is not None else None
    ids = store.create_runs(checked, owner=owner, max_active=limit)
    if ids is None:  # another launch of the same person took the last places just now
        auth.check_run_quota(store, owner, adding=len(checked))
        raise RunStateError("Your last free place in the queue was taken by another launch a "
                            "moment ago; wait for a run to finish or cancel one.")
    for run_id, (config, _) in zip(ids, checked, strict=True):
        files = ws.run(run_id)
        files.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(files.config, config.to_json())
    start_queued(ws)
    return ids


def worker_env(ws: Workspace, run_id: str | None = None) -> dict[str, str]:
    """The environment of a `python -m tlcore ...` child process (worker, CLI call, probe).

    Args:
        ws: The workspace the child works in (exported as `TLCORE_HOME`).
        run_id: The run this process has claimed for a worker; None for other children.

    Returns:
        A copy of this process's environment with the workspace, quiet TensorFlow
        logs, unbuffered output, and the project on `PYTHONPATH`.
    """
    env = dict(os.environ)
    env["TLCORE_HOME"] = str(ws.root)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    # tlcore must import in the child even when the caller runs from another folder.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    if run_id is not None:
        env[ENV_CLAIMED] = run_id
    return env


# ---- warm workers ---------------------------------------------------------------
def warm_idle_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.idle`: present while warm worker `pid` waits; holds its `warm_key`."""
    return ws.workers_dir / f"{pid}.idle"


def warm_key(name: str, gpu: str | None) -> str:
    """What a warm worker serves: runs of backend `name` pinned to GPU slot `gpu`."""
    return name if gpu is None else f"{name} gpu {gpu}"


def warm_start_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.start`: warm worker `pid` is starting (importing Keras)."""
    return ws.workers_dir / f"{pid}.start"


def warm_inbox_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.run`: the run handed to warm worker `pid` (created exclusively)."""
    return ws.workers_dir / f"{pid}.run"


def trial_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.trial`: the run sweep worker `pid` trains now."""
    return ws.workers_dir / f"{pid}.trial"


def adopt(proc: subprocess.Popen) -> None:
    """Reap `proc` (a detached child this process started) once it ends, like the workers."""
    _children[proc.pid] = proc


def warm_log_file(ws: Workspace, pid: int) -> Path:
    """`workers/<pid>.log`: a warm worker's own output between runs."""
    return ws.workers_dir / f"{pid}.log"


def warm_enabled() -> bool:
    """False when `$TLCORE_WARM_WORKERS` is "0": every run starts a fresh worker."""
    return os.environ.get(ENV_WARM_WORKERS, "1").strip() != "0"


def warm_idle_seconds() -> float:
    """How long a warm worker waits for a run before it leaves: `$TLCORE_WARM_IDLE_S`, 600.

    Raises:
        ConfigError: if the variable is set but not a positive number.
    """
    return env_number(ENV_WARM_IDLE, DEFAULT_WARM_IDLE_S, "a positive number of seconds")


def _is_warm_worker(pid: int) -> bool:
    args = processes.command_line(pid)
    return processes.alive(pid) and (
        args is None or (b"tlcore.workers.run" in args and WARM_FLAG.encode() in args))


def warm_workers(ws: Workspace) -> dict[int, bool]:
    """Live warm workers of the workspace: `{pid: idle}`; stale registrations are removed."""
    out: dict[int, bool] = {}
    for path in ws.workers_dir.iterdir():
        pid_text, _, kind = path.name.partition(".")
        if not pid_text.isdigit() or kind not in ("start", "idle", "run", "log"):
            continue
        pid = int(pid_text)
        if pid in out and kind != "idle":
            continue
        if _is_warm_worker(pid):
            out[pid] = out.get(pid, False) or kind == "idle"
        else:
            path.unlink(missing_ok=True)
    return out


def _hand_to_warm(run_id: str, ws: Workspace, name: str, gpu: str | None) -> int | None:
    """Give a claimed run to an idle warm worker of backend `name` on slot `gpu`; its pid.

    Returns None when no such worker is idle.

    The inbox is created exclusively, so two claimants never give one worker two
    runs; the worker removes its idle registration when it takes the run.
    """
    for idle in sorted(ws.workers_dir.glob("*.idle")):
        pid = int(idle.stem) if idle.stem.isdigit() else 0
        if not pid or not _is_warm_worker(pid):
            continue
        try:
            if idle.read_text().strip() != warm_key(name, gpu):
                continue
        except OSError:
            continue  # it left a moment ago
        try:
            fd = os.open(warm_inbox_file(ws, pid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue  # another run was handed to it a moment ago
        with os.fdopen(fd, "w") as fh:
            fh.write(run_id)
        return pid
    return None


def ensure_warm(ws: Workspace | None = None) -> int | None:
    """Start a warm worker when none is idle and a worker slot is free; its pid, or None.

    The dashboard calls this, so that the next run it launches starts at once;
    it costs a directory listing when the pool is already there. Nothing starts
    when `$TLCORE_WARM_WORKERS` is "0", nor under the Ray executor.
    """
    ws = ws or Workspace.from_env()
    if not warm_enabled() or rayjobs.enabled():  # Ray: its jobs start their own workers
        return None
    workers = warm_workers(ws)
    if any(workers.values()) or any(ws.workers_dir.glob("*.start")):
        return None  # one is waiting, or one is importing Keras
    gpus = slots.gpu_slots()
    running = RunStore(ws).list_runs(statuses=(RUNNING,))
    if len(running) >= worker_limit(gpus):
        return None
    # Pinned to the first free slot: the one the next claimed run takes.
    free = [slot for slot, run in slots.occupancy(gpus, running) if run is None]
    env = {**worker_env(ws), **backend.environment(backend.default()),
           **slots.pinned_env(free[0] if free else None)}
    with open(ws.workers_dir / "spawn.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tlcore.workers.run", WARM_FLAG],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True)
    _children[proc.pid] = proc
    warm_start_file(ws, proc.pid).touch()
    return proc.pid


def stop_warm(ws: Workspace | None = None, timeout: float = 10.0) -> int:
    """Stop the workspace's warm workers (cancel their runs first: a busy one is killed).

    Idle workers leave at their next poll; a worker still starting, or one that
    does not leave within `timeout` seconds, is killed.

    Returns:
        How many were stopped.
    """
    ws = ws or Workspace.from_env()
    workers = warm_workers(ws)
    for pid in workers:
        warm_idle_file(ws, pid).unlink(missing_ok=True)  # an idle worker leaves at its next poll
    deadline = time.monotonic() + timeout
    for pid, idle in workers.items():
        while idle and processes.alive(pid) and time.monotonic() < deadline:
            _reap()
            time.sleep(WARM_POLL_S)
        if processes.alive(pid):
            _kill(pid)
    # A killed process is gone only once the kernel has ended it (a busy disk delays that).
    gone_by = time.monotonic() + 5.0
    while any(processes.alive(pid) for pid in workers) and time.monotonic() < gone_by:
        time.sleep(WARM_POLL_S)
    _reap()
    warm_workers(ws)  # drops the registrations of the stopped workers
    return len(workers)


def _spawn(run_id: str, ws: Workspace, name: str, gpu: str | None) -> int:
    files = ws.run(run_id)
    files.dir.mkdir(parents=True, exist_ok=True)
    with open(files.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tlcore.workers.run", run_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**worker_env(ws, run_id), **backend.environment(name), **slots.pinned_env(gpu)},
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def run_backend(run: dict[str, Any]) -> str:
    """The Keras backend a run trains on: its `train.backend`, "auto" resolved here.

    Configs stored before the setting existed read as "auto".
    """
    return backend.resolve(((run["config"] or {}).get("train") or {}).get("backend"))


def _reap() -> None:
    """Collect workers this process started that have ended (no zombies left behind)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def start_queued(ws: Workspace | None = None) -> list[str]:
    """Start queued runs in order while fewer than `worker_limit()` are running.

    With GPU slots, each run takes a free slot and its worker sees only that GPU.

    Only writes when a run can start: readers call this through `refresh`, and
    reads must keep working on a full disk. While the workspace's disk has less
    than `min_free_bytes()` free, queued runs wait: each would fail at its first
    checkpoint.

    Returns:
        The ids of the runs started.
    """
    _reap()
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    if rayjobs.enabled():  # Ray: it places and queues the runs; no worker limit here
        if free_bytes(ws.root) < min_free_bytes():
            return []
        return rayjobs.submit_queued(ws, store)
    gpus = slots.gpu_slots()
    limit = worker_limit(gpus)
    if (not store.list_runs(statuses=(QUEUED,))
            or len(store.list_runs(statuses=(RUNNING,))) >= limit
            or free_bytes(ws.root) < min_free_bytes()):
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
                gpu = ",".join(gpus)  # every GPU, though it holds one slot of the queue
            pid = _hand_to_warm(run_id, ws, name, gpu) or _spawn(run_id, ws, name, gpu)
        except OSError as exc:
            store.transition(run_id, (RUNNING,), status=FAILED, ended=time.time(),
                             error=f"The worker process could not be started: {exc}")
            continue
        # The worker records the same pid itself; whichever write lands last agrees.
        store.transition(run_id, (RUNNING,), pid=pid)
        started.append(run_id)


# ---- liveness ---------------------------------------------------------------
def pid_alive(pid: int | None, run_id: str | None = None, ws: Workspace | None = None) -> bool:
    """Whether `pid` is a live process (not a zombie), and the worker of `run_id` if given.

    A worker has its run id on its command line; checking that guards against a
    recycled pid where /proc is available.
    """
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    if not processes.alive(pid):
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
        return WARM_FLAG.encode() in args and warm_inbox_file(ws, pid).read_text() == run_id
    except OSError:
        return False


def _kill(pid: int) -> None:
    """SIGKILL the worker's process group (it leads its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)


def _stop_worker(run: dict[str, Any]) -> None:
    """Kill a running run's worker: its process group here, or (Ray) its job."""
    if rayjobs.is_ray_run(run):
        rayjobs.stop(run["extra"].get("ray_job"))
    else:
        _kill(run["pid"])


def _worker_name(run: dict[str, Any]) -> str:
    if rayjobs.is_ray_run(run):
        return f"Ray job {run['extra'].get('ray_job')}"
    return f"pid {run['pid']}"


def _wait_dead(pid: int, run_id: str, timeout: float, ws: Workspace) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, run_id, ws):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def refresh(ws: Workspace | None = None) -> list[str]:
    """Settle runs whose worker is gone or ignores a cancel, then start queued runs.

    * running, process gone: `lost` (or `cancelled` if a cancel was pending);
    * running, claimed but no worker reported for `LOST_AFTER_S`: `lost`;
    * running, cancel requested `CANCEL_GRACE_S` ago and still alive: killed, `cancelled`;
    * running, alive but no heartbeat for `heartbeat_timeout()` (stopped, deadlocked):
      killed, `lost`;
    * Ray runs: a running run whose job ended is `lost` (or `cancelled`), with the job's
      reason and last log lines; a queued one whose job ended before it started is
      `failed` (`rayjobs.settle_queued`); "killed" is "its job stopped".

    The slots of the killed and lost runs go to queued runs at once.

    Returns:
        The ids of runs whose status changed.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    changed = []
    now = time.time()
    heartbeat_timeout()  # a bad setting fails here, before any worker is judged by it
    for run in store.list_runs(statuses=(RUNNING,)):
        run_id, pid = run["id"], run["pid"]
        heartbeat = run["heartbeat"] or run["started"] or run["created"]
        extra = run["extra"] or {}
        if rayjobs.is_ray_run(run):  # Ray: the pid is on some node; the job tells
            ended = rayjobs.job_end(run)
            if ended is not None:
                fields = ({"status": CANCELLED} if run["cancel_requested"]
                          else {"status": LOST, "error": ended})
                if store.transition(run_id, (RUNNING,), ended=now, **fields):
                    changed.append(run_id)
                continue
        elif pid is None:
            if now - heartbeat > LOST_AFTER_S and store.transition(
                    run_id, (RUNNING,), status=LOST, ended=now,
                    error=f"The worker did not start within {LOST_AFTER_S:.0f} s; "
                          "resume the run to try again."):
                changed.append(run_id)
            continue
        elif not pid_alive(pid, run_id, ws):
            if run["cancel_requested"]:
                fields = {"status": CANCELLED}
            else:
                fields = {"status": LOST, "error": (
                    f"The worker process (pid {pid}) ended without reporting a result: it was "
                    "killed, crashed or ran out of memory. Its log may say more; resume the run "
                    "to continue from the last finished epoch.")}
            if store.transition(run_id, (RUNNING,), ended=now, **fields):
                changed.append(run_id)
            continue
        asked = extra.get("cancel_requested_at")
        if run["cancel_requested"] and asked and now - asked > CANCEL_GRACE_S:
            _stop_worker(run)
            if store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time(),
                                error=f"The worker did not stop within {CANCEL_GRACE_S:.0f} s "
                                      "of the cancel and was killed."):
                changed.append(run_id)
            continue
        progress = store.progress(run_id)
        limit = heartbeat_timeout(progress["stage"] if progress else None)
        silent = now - heartbeat
        if silent > limit:
            _stop_worker(run)
            if store.transition(
                    run_id, (RUNNING,), status=LOST, ended=time.time(),
                    error=f"No heartbeat for {silent:.0f} s from the worker "
                          f"({_worker_name(run)}; limit {limit:.0f} s, "
                          f"${ENV_HEARTBEAT_TIMEOUT}): it was stopped or hung, and was killed. "
                          "Its log may say more; resume the run to continue from the last "
                          "finished epoch."):
                changed.append(run_id)
    changed += rayjobs.settle_queued(ws, store)
    start_queued(ws)
    return changed


# ---- actions on runs ----------------------------------------------------------
def cancel(run_id: str, ws: Workspace | None = None, wait: float = 0.0) -> str:
    """Cancel a run: a queued one never starts; a running one stops at its next batch.

    A running worker that ignores the request is killed by `refresh` after
    `CANCEL_GRACE_S`. A queued Ray run's job is stopped, so that it never starts.

    Args:
        run_id: The run.
        ws: The workspace.
        wait: Seconds to wait (refreshing) for a running run to end.

    Returns:
        The run's status afterwards.

    Raises:
        NotFoundError: if the run does not exist.
        RunStateError: if the run already ended.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    if store.transition(run_id, (QUEUED,), status=CANCELLED, ended=time.time()):
        _stop_queued_job(store.get_run(run_id))
        return CANCELLED
    run = store.get_run(run_id)
    if run["status"] != RUNNING:
        raise RunStateError(
            f"Only queued or running runs can be cancelled. Received: run {run_id} is "
            f"{run['status']}.")
    if not run["cancel_requested"]:  # asking again must not postpone the hard kill
        store.merge_extra(run_id, cancel_requested_at=time.time())
        store.request_cancel(run_id)
    deadline = time.monotonic() + wait
    while True:
        refresh(ws)
        status = store.get_run(run_id)["status"]
        if status != RUNNING or time.monotonic() >= deadline:
            return status
        time.sleep(0.25)


def _stop_queued_job(run: dict[str, Any]) -> None:
    """Ray: stop the job of a run that was queued, so that its worker never starts."""
    if rayjobs.is_ray_run(run):
        rayjobs.stop(run["extra"].get("ray_job"))


def resume(run_id: str, ws: Workspace | None = None) -> None:
    """Queue a failed, cancelled or lost run again; it continues from its last epoch checkpoint.

    The run keeps its owner, and counts again towards the owner's
    `TLCORE_MAX_RUNS_PER_USER`.

    Raises:
        NotFoundError: if the run does not exist.
        RunStateError: if the run is queued, running or completed.
        QuotaError: if its owner has the most runs queued or running already.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    run = store.get_run(run_id)
    status = run["status"]
    if status not in RESUMABLE:
        raise RunStateError(
            f"Only {', '.join(RESUMABLE)} runs can be resumed. Received: run {run_id} is "
            f"{status}.")
    auth.check_run_quota(store, run["owner"])
    store.merge_extra(run_id, resume=True, cancel_requested_at=None)
    if not store.requeue(run_id, RESUMABLE, cancel_requested=0, error=None, ended=None,
                         pid=None):
        raise RunStateError(f"Run {run_id} changed status while resuming; try again.")
    start_queued(ws)


def delete(run_id: str, ws: Workspace | None = None) -> bool:
    """Delete a run: stop it if active (at once: its results are not wanted), drop rows and folder.

    A folder under `runs/` whose row is gone (a database restored from an older
    copy) is removed too.

    Returns:
        True when the run had a row; False when only its orphaned folder was removed.

    Raises:
        NotFoundError: if there is neither a run nor a folder with that id.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    try:
        run = store.get_run(run_id)
    except NotFoundError:
        folder = ws.run(run_id).dir
        if not folder.is_dir() or folder.is_symlink():
            raise
        shutil.rmtree(folder)
        return False
    if store.transition(run_id, (QUEUED,), status=CANCELLED, ended=time.time()):
        run = store.get_run(run_id)
        _stop_queued_job(run)
    if run["status"] == RUNNING:
        store.request_cancel(run_id)
        pid = run["pid"]
        if rayjobs.is_ray_run(run):
            _stop_worker(run)
            rayjobs.wait_ended(run["extra"].get("ray_job"), timeout=10)
        elif pid and pid_alive(pid, run_id, ws):
            _kill(pid)
            _wait_dead(pid, run_id, timeout=10, ws=ws)
        store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time())
    store.delete_run(run_id)
    shutil.rmtree(ws.run(run_id).dir, ignore_errors=True)
    cache.forget_run(ws, run_id)
    start_queued(ws)
    return True


def orphaned_runs(ws: Workspace | None = None) -> list[str]:
    """Ids of folders under `runs/` that no run row names (sorted).

    Only folders named like a run id count; anything else there is left alone.
    A launch writes the row before the folder and a delete removes the row first,
    so a folder without a row is never a run in the making.
    """
    ws = ws or Workspace.from_env()
    folders = {p.name for p in ws.runs_dir.iterdir()
               if p.is_dir() and not p.is_symlink() and RUN_ID_RE.fullmatch(p.name)}
    if not folders:
        return []
    known = {r["id"] for r in RunStore(ws).list_runs()}
    return sorted(folders - known)


def remove_orphaned_runs(ws: Workspace | None = None) -> dict[str, int]:
    """Remove the folders `orphaned_runs` finds.

    Returns:
        `{"folders": how many were removed, "bytes": their size}`.
    """
    ws = ws or Workspace.from_env()
    removed = {"folders": 0, "bytes": 0}
    for run_id in orphaned_runs(ws):
        folder = ws.run(run_id).dir
        size = sum(p.stat().st_size for p in folder.rglob("*")
                   if p.is_file() and not p.is_symlink())
        shutil.rmtree(folder)
        removed["folders"] += 1
        removed["bytes"] += size
    return removed


# ---- information --------------------------------------------------------------
def device_info(ws: Workspace | None = None, refresh: bool = False) -> dict[str, Any]:
    """What training runs on, found in a subprocess so the caller never imports TensorFlow.

    The answer is cached in the workspace cache folder; `refresh=True` asks again.

    Returns:
        `{"device": "CPU" or GPU names, "gpus": [names], "mixed_precision": bool,
        "backend": the default Keras backend, "backends": [installed ones]}`, plus
        `"error"` (and device "unknown") when the probe failed.
    """
    ws = ws or Workspace.from_env()
    path = ws.cache_dir / DEVICE_CACHE_FILE
    if not refresh and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # rebuilt below
    env = worker_env(ws)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        proc = subprocess.run([sys.executable, "-m", "tlcore", "device", "--json"],
                              capture_output=True, text=True, timeout=300, env=env)
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        info, reason = None, str(exc)
    if not isinstance(info, dict):
        return {"device": "unknown", "gpus": [], "mixed_precision": False,
                "error": f"Could not query the training device: {reason}"}
    atomic_write_text(path, json.dumps(info))
    return info


def gpu_free_bytes() -> list[int] | None:
    """Free memory of each NVIDIA GPU from `nvidia-smi` (no TensorFlow), or None."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return [int(line.strip()) * 2**20 for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def log_tail(run_id: str, lines: int = 40, ws: Workspace | None = None) -> str:
    """The last `lines` lines of a run's `log.txt` ("" when there is none yet).

    A Ray run without `log.txt` (its worker never reached the workspace) shows
    its job's output as Ray kept it instead.

    Raises:
        ConfigError: if `run_id` is not a valid run id.
    """
    ws = ws or Workspace.from_env()
    path = ws.run(run_id).log
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024 * max(1, lines // 40)))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return _ray_log_tail(run_id, lines, ws)
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def _ray_log_tail(run_id: str, lines: int, ws: Workspace) -> str:
    """Ray: the tail of the job's own log for a run whose `log.txt` is missing; else ""."""
    try:
        run = RunStore(ws).get_run(run_id)
    except NotFoundError:
        return ""
    job = (run["extra"] or {}).get("ray_job")
    return rayjobs.job_logs(job, lines) if rayjobs.is_ray_run(run) and job else ""


def get_run_details(run_id: str, ws: Workspace | None = None) -> dict[str, Any]:
    """A run's row plus its per-epoch metrics and progress (after `refresh`).

    Also `heartbeat_age_s` (seconds since a running worker last showed life, else
    None) and `heartbeat_timeout_s` (the silence after which it is declared lost).

    Raises:
        NotFoundError: if the run does not exist.
    """
    ws = ws or Workspace.from_env()
    refresh(ws)
    store = RunStore(ws)
    run = store.get_run(run_id)
    run["metrics"] = store.metrics(run_id)
    run["progress"] = store.progress(run_id)
    age = heartbeat_age(run)
    run["heartbeat_age_s"] = None if age is None else round(age, 1)
    run["heartbeat_timeout_s"] = heartbeat_timeout((run["progress"] or {}).get("stage"))
    return run
