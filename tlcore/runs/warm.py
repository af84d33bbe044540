"""The warm worker pool: processes with Keras imported, waiting for runs. No TensorFlow.

A warm worker (`python -m tlcore.workers.run --warm`) imports Keras once, then
registers as idle in `workers/<pid>.idle` (naming the backend and GPU slot it
serves) and polls its inbox `workers/<pid>.run`. A process that claimed a run
hands it over by creating that inbox with the run id in it; the inbox appears
whole (written to a temp file, then hard-linked into place), so a polling
worker never reads it empty, and two claimants never give one worker two runs.

A warm worker leaves after `warm_idle_seconds()` without a run, when its idle
registration is removed (`stop_warm`), and as soon as the process that started
it (the dashboard, `TLCORE_WARM_OWNER`) is gone: nobody would hand it a run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tlcore import backend, processes
from tlcore.runs import children, slots
from tlcore.settings import env_number
from tlcore.store import RUNNING, RunStore
from tlcore.workspace import Workspace, check_run_id

ENV_WARM_WORKERS = "TLCORE_WARM_WORKERS"
ENV_WARM_IDLE = "TLCORE_WARM_IDLE_S"
# "<pid>:<start time>" of the process that started a warm worker (its lease).
ENV_WARM_OWNER = "TLCORE_WARM_OWNER"
DEFAULT_WARM_IDLE_S = 600.0
WARM_FLAG = "--warm"
WARM_POLL_S = 0.05
# How often an idle worker checks that its owner is still there.
OWNER_CHECK_S = 1.0


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
    """`workers/<pid>.run`: the run handed to warm worker `pid` (appears with its id in it)."""
    return ws.workers_dir / f"{pid}.run"


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


def is_warm_worker(pid: int) -> bool:
    """Whether `pid` is a live warm worker (its command line, where /proc tells)."""
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
        if is_warm_worker(pid):
            out[pid] = out.get(pid, False) or kind == "idle"
        else:
            path.unlink(missing_ok=True)
    return out


def hand_to_warm(run_id: str, ws: Workspace, name: str, gpu: str | None) -> int | None:
    """Give a claimed run to an idle warm worker of backend `name` on slot `gpu`; its pid.

    The run id is written to a temp file first and hard-linked to the inbox: the
    link fails when an inbox is there already, so two claimants never give one
    worker two runs, and the inbox never exists empty. The worker removes its idle
    registration when it takes the run.

    Returns:
        The worker's pid, or None when no such worker is idle.
    """
    for idle in sorted(ws.workers_dir.glob("*.idle")):
        pid = int(idle.stem) if idle.stem.isdigit() else 0
        if not pid or not is_warm_worker(pid):
            continue
        try:
            if idle.read_text().strip() != warm_key(name, gpu):
                continue
        except OSError:
            continue  # it left a moment ago
        inbox = warm_inbox_file(ws, pid)
        staged = inbox.with_name(f"{inbox.name}.{os.getpid()}.tmp")
        staged.write_text(run_id)
        try:
            os.link(staged, inbox)
        except FileExistsError:
            continue  # another run was handed to it a moment ago
        finally:
            staged.unlink(missing_ok=True)
        return pid
    return None


def owner_lease() -> str:
    """This process as a warm worker's owner: `<pid>:<start time>` (a reused pid differs)."""
    pid = os.getpid()
    return f"{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""  # no /proc: the pid alone
    return stat[stat.rindex(")") + 2:].split()[19]


def owner_alive(lease: str | None) -> bool:
    """Whether the owner named by `lease` (`owner_lease()`) still runs; True without one."""
    if not lease:
        return True
    pid_text, _, started = lease.partition(":")
    if not pid_text.isdigit() or not processes.alive(int(pid_text)):
        return False
    return not started or _start_time(int(pid_text)) in ("", started)


def ensure_warm(ws: Workspace | None = None) -> int | None:
    """Start a warm worker when none is idle and a worker slot is free; its pid, or None.

    The dashboard calls this, so that the next run it launches starts at once;
    it costs a directory listing when the pool is already there. Nothing starts
    when `$TLCORE_WARM_WORKERS` is "0". The worker leaves when this process ends.
    """
    ws = ws or Workspace.from_env()
    if not warm_enabled():
        return None
    workers = warm_workers(ws)
    if any(workers.values()) or any(ws.workers_dir.glob("*.start")):
        return None  # one is waiting, or one is importing Keras
    gpus = slots.gpu_slots()
    running = RunStore(ws).list_runs(statuses=(RUNNING,))
    if len(running) >= slots.worker_limit(gpus):
        return None
    # Pinned to the first free slot: the one the next claimed run takes.
    free = [slot for slot, run in slots.occupancy(gpus, running) if run is None]
    env = {**children.worker_env(ws), **backend.environment(backend.default()),
           **slots.pinned_env(free[0] if free else None), ENV_WARM_OWNER: owner_lease()}
    pid = children.start(["tlcore.workers.run", WARM_FLAG], ws.workers_dir / "spawn.log", env)
    warm_start_file(ws, pid).touch()
    return pid


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
            children.reap()
            time.sleep(WARM_POLL_S)
        if processes.alive(pid):
            children.kill(pid)
    # A killed process is gone only once the kernel has ended it (a busy disk delays that).
    gone_by = time.monotonic() + 5.0
    while any(processes.alive(pid) for pid in workers) and time.monotonic() < gone_by:
        time.sleep(WARM_POLL_S)
    children.reap()
    warm_workers(ws)  # drops the registrations of the stopped workers
    return len(workers)


def wait_for_run(ws: Workspace, pid: int) -> str | None:
    """The warm worker's side, once registered as idle: wait for a run; its id.

    Returns None when the worker should leave instead: no run within
    `warm_idle_seconds()`, its registration removed (`stop_warm`), or its owner
    gone. A run handed over at that very moment is still taken.
    """
    idle, inbox = warm_idle_file(ws, pid), warm_inbox_file(ws, pid)
    lease = os.environ.get(ENV_WARM_OWNER)
    deadline = time.monotonic() + warm_idle_seconds()
    next_check = 0.0
    while not inbox.exists():
        now = time.monotonic()
        leave = now > deadline or not idle.exists()
        if not leave and now >= next_check:
            leave, next_check = not owner_alive(lease), now + OWNER_CHECK_S
        if leave:
            idle.unlink(missing_ok=True)
            if not inbox.exists():
                return None
            break
        time.sleep(WARM_POLL_S)
    idle.unlink(missing_ok=True)
    return check_run_id(inbox.read_text().strip())
