"""The inference service: a process with Keras imported that answers the dashboard. No TensorFlow.

Predicting an uploaded image, "Try it", Grad-CAM, camera frames and exports
would each cost a new process importing Keras and loading the model. Instead the
dashboard keeps one service process (`python -m tlcore.workers.infer`) that has
imported Keras and keeps recently used models loaded
(`tlcore.engine.runmodel.run_model`). It listens on a localhost TCP port with
`multiprocessing.connection` (an HMAC challenge with a random key, so only a
process that can read the workspace's `workers/infer.json`, mode 0600, gets
answers) and serves one request at a time.

The service computes on the CPU (`CUDA_VISIBLE_DEVICES` empty): it must never hold
GPU memory a training run needs. It leaves after `warm.warm_idle_seconds()`
without a request and as soon as the process that started it is gone, like a
warm worker. `$TLCORE_INFER_SERVICE=0` turns it off; the pages then run the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

from tlcore import backend, processes
from tlcore.errors import TLCoreError
from tlcore.runs import children, warm
from tlcore.workspace import Workspace, atomic_write_text

ENV_INFER = "TLCORE_INFER_SERVICE"
MODULE = "tlcore.workers.infer"
# The service imports Keras first (seconds); a request waits this long for it.
START_TIMEOUT_S = 120.0
# A service that died while starting is tried again only after this long.
RETRY_S = 60.0
POLL_S = 0.05


class ServiceUnavailable(Exception):  # noqa: N818 (a state, not a failure of the request)
    """No service answers: it is turned off, or it failed to start or died mid-request."""


def enabled() -> bool:
    """False when `$TLCORE_INFER_SERVICE` is "0"."""
    return os.environ.get(ENV_INFER, "1").strip() != "0"


def info_file(ws: Workspace) -> Path:
    """`workers/infer.json`: pid, port and key of the listening service (mode 0600)."""
    return ws.workers_dir / "infer.json"


def start_file(ws: Workspace) -> Path:
    """`workers/infer.start`: the pid of a service still importing Keras."""
    return ws.workers_dir / "infer.start"


def log_file(ws: Workspace) -> Path:
    """`workers/infer.log`: the service's output."""
    return ws.workers_dir / "infer.log"


def is_service(pid: int) -> bool:
    """Whether `pid` is a live inference service (its command line, where /proc tells)."""
    args = processes.command_line(pid)
    return processes.alive(pid) and (args is None or MODULE.encode() in args)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        pid = int(json.loads(text)["pid"]) if text.startswith("{") else int(text)
    except (ValueError, KeyError, TypeError):
        return None
    return pid if is_service(pid) else None


def service_pid(ws: Workspace) -> int | None:
    """The pid of the workspace's service, listening or still starting; None without one."""
    return _read_pid(info_file(ws)) or _read_pid(start_file(ws))


def ensure_service(ws: Workspace | None = None) -> int | None:
    """Start the service unless it runs or is starting; its pid, or None when turned off.

    The dashboard calls this on every refresh of its sidebar: it costs a file read
    when the service is there. The service leaves when this process ends. A
    service that died while starting is started again after `RETRY_S` only.
    """
    ws = ws or Workspace.from_env()
    if not enabled():
        return None
    pid = service_pid(ws)
    if pid is not None:
        return pid
    failed = start_file(ws)
    with contextlib.suppress(OSError):
        if time.time() - failed.stat().st_mtime < RETRY_S:
            return None  # it died while starting a moment ago: its log says why
    env = {**children.worker_env(ws), **backend.environment(backend.default()),
           "CUDA_VISIBLE_DEVICES": "", warm.ENV_WARM_OWNER: warm.owner_lease()}
    ws.workers_dir.mkdir(parents=True, exist_ok=True)
    pid = children.start([MODULE], log_file(ws), env)
    atomic_write_text(start_file(ws), str(pid))
    return pid


def stop_service(ws: Workspace | None = None, timeout: float = 10.0) -> bool:
    """Stop the workspace's service; whether one was running."""
    ws = ws or Workspace.from_env()
    pid = service_pid(ws)
    if pid is not None:
        children.kill(pid)
        deadline = time.monotonic() + timeout
        while processes.alive(pid) and time.monotonic() < deadline:
            children.reap()
            time.sleep(POLL_S)
    info_file(ws).unlink(missing_ok=True)
    start_file(ws).unlink(missing_ok=True)
    return pid is not None


def new_key() -> str:
    """A random key for the service's HMAC challenge (hex)."""
    return secrets.token_hex(32)


def _address(ws: Workspace, wait_s: float) -> tuple[tuple[str, int], bytes]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(info_file(ws).read_text())
            if is_service(int(info["pid"])):
                return ("127.0.0.1", int(info["port"])), bytes.fromhex(info["key"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if service_pid(ws) is None or time.monotonic() > deadline:
            raise ServiceUnavailable("the inference service did not start; see "
                                     f"{log_file(ws)}")
        time.sleep(POLL_S)


def request(ws: Workspace, op: str, timeout_s: float = 3600.0, **args: Any) -> Any:
    """Ask the service to do `op` with `args`; its answer.

    Starts the service when needed and waits for it to listen.

    Args:
        ws: The workspace.
        op: "predict" (`run_id`, `images` as encoded bytes, `k`, `gradcam`) or
            "export" (`run_id`, `fmt`, `out`).
        timeout_s: How long to wait for the answer.

    Raises:
        ServiceUnavailable: The service is turned off, did not start, or died.
        TLCoreError: The request was refused (its one-line message).
    """
    if ensure_service(ws) is None:
        raise ServiceUnavailable("the inference service is turned off")
    address, key = _address(ws, START_TIMEOUT_S)
    try:
        with Client(address, authkey=key) as conn:
            conn.send({"op": op, **args})
            if not conn.poll(timeout_s):
                raise TLCoreError(f"{op} took longer than {timeout_s / 60:g} minutes; "
                                  "try fewer or smaller images.")
            answer = conn.recv()
    except (OSError, EOFError) as exc:
        raise ServiceUnavailable(f"the inference service stopped answering: {exc}") from None
    if "error" in answer:
        raise TLCoreError(answer["error"])
    return answer["result"]
