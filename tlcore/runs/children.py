"""Worker processes this process starts: their environment, start, reaping and kill. No TensorFlow.

Every worker runs detached in its own session (`python -m tlcore...`), so that a
dashboard restart never takes a training run with it, and a kill reaches the
worker's whole process group. The processes this process started are polled
before anyone judges them: a finished worker must not linger as a zombie that
still looks alive to `os.kill(pid, 0)`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tlcore.workspace import Workspace

ENV_CLAIMED = "TLCORE_CLAIMED_RUN"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

_children: dict[int, subprocess.Popen] = {}


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


def start(args: list[str], log: Path, env: dict[str, str]) -> int:
    """Start `python -m <args>` detached, its output appended to `log`; its pid.

    Raises:
        OSError: if the process cannot be started (or the log opened).
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    adopt(proc)
    return proc.pid


def adopt(proc: subprocess.Popen) -> None:
    """Reap `proc` (a detached child this process started) once it ends, like the workers."""
    _children[proc.pid] = proc


def reap() -> None:
    """Collect workers this process started that have ended (no zombies left behind)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def ended(pid: int) -> bool:
    """Whether `pid` is a child of this process that has ended (and is now reaped)."""
    child = _children.get(pid)
    if child is None or child.poll() is None:
        return False
    del _children[pid]
    return True


def kill(pid: int) -> None:
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
