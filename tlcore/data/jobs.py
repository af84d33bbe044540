"""Background jobs of the dashboard: a job folder, a worker process, its progress and outcome.

Imports (`tlcore.data.background`), label reviews (`tlcore.results.label_review`) and
adaptations (`tlcore.adapt.jobs`) run outside the dashboard's process, the same way:
`start_job` writes the request into a job folder `tmp/<prefix>*` and starts
`python -m <worker module> JOB`; the worker (`run_worker`) writes its progress to
`progress.json` and its outcome to `result.json`, both replaced atomically. The page
polls `job_state` and removes the folder with `forget_job` once it has shown the
outcome. A job folder whose worker died and that nobody reads is removed by the
staging cleanup (`staging.remove_stale`). No TensorFlow here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tlcore.data import staging
from tlcore.errors import DatasetError, TLCoreError
from tlcore.workspace import Workspace, is_no_space

REQUEST_FILE = "request.json"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Workers this process started: polling them reaps them, so an ended worker does
# not linger as a zombie that still looks alive.
_children: dict[Path, subprocess.Popen] = {}


def start_job(ws: Workspace, prefix: str, module: str, request: dict[str, Any], *,
              what: str, received: str,
              prepare: Callable[[Path], None] | None = None) -> Path:
    """Write `request` into a new job folder and start `python -m module` on it.

    Args:
        ws: The workspace.
        prefix: The job folder's name prefix under `tmp/`.
        module: The worker module (`run_worker` in its `main`).
        request: What the worker reads from `request.json`.
        what: The job in words, for the refusal ("the import process").
        received: What the refusal names as received.
        prepare: Writes more files into the job folder before the worker starts.

    Returns:
        The job folder, for `job_state` and `forget_job`.

    Raises:
        DatasetError: The disk is full, or the process cannot start (nothing is left).
    """
    job = staging.make_staging(ws, prefix)
    try:
        if prepare is not None:
            prepare(job)
        (job / REQUEST_FILE).write_text(json.dumps(request), encoding="utf-8")
        _children[job] = subprocess.Popen(
            [sys.executable, "-m", module, str(job)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            env=worker_env(ws), close_fds=True)
    except OSError as exc:
        shutil.rmtree(job, ignore_errors=True)
        if is_no_space(exc):
            raise staging.disk_full_error(ws.tmp_dir, exc) from None
        raise DatasetError(f"Could not start {what}: {exc.strerror or exc}. "
                           f"Received: {received}") from None
    return job


def worker_env(ws: Workspace) -> dict[str, str]:
    """A job worker's environment: this one, with the workspace and tlcore importable."""
    env = dict(os.environ)
    env["TLCORE_HOME"] = str(ws.root)
    # tlcore must import in the child even when the caller runs from another folder.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def job_state(job: str | os.PathLike, ended: Callable[[Path], dict[str, Any]]
              ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """`(result, progress)` of job folder `job`; result is None while the worker runs.

    Args:
        job: The job folder.
        ended: The outcome of a worker that ended without writing one (killed, out
            of memory), given the job folder.
    """
    job = Path(job)
    result = read_json(job / RESULT_FILE)
    if result is None and not worker_alive(job):
        result = read_json(job / RESULT_FILE) or ended(job)  # or it just finished
    if result is not None:
        return result, {}
    return None, read_json(job / PROGRESS_FILE) or {}


def forget_job(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    job = Path(job)
    child = _children.pop(job, None)
    if child is not None:
        child.poll()
    shutil.rmtree(job, ignore_errors=True)


def worker_alive(job: Path) -> bool:
    """Whether the worker of `job` may still run (its process, or the folder's owner)."""
    child = _children.get(job)
    if child is not None:
        return child.poll() is None
    return staging.owner_alive(job) is not False


def killed_how(job: Path) -> str:
    """How the worker of `job` ended, for a message: "was killed by signal N" or "ended"."""
    child = _children.get(job)
    return (f"was killed by signal {-child.returncode}" if child is not None
            and child.returncode is not None and child.returncode < 0 else "ended")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write `value` to `path` atomically (temp file, then rename)."""
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# ---- the worker's side ---------------------------------------------------------------------
def take_job(job: Path) -> dict[str, Any]:
    """Take job folder `job` over (`staging.claim`) and read its request."""
    staging.claim(job)
    return json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))


def write_progress(job: Path, state: dict[str, Any]) -> None:
    """Replace the job's `progress.json`; a full disk fails the job itself, not this."""
    try:
        write_json(job / PROGRESS_FILE, state)
    except OSError:
        pass  # progress is a courtesy


def outcome(work: Callable[[], dict[str, Any]], failed: str) -> dict[str, Any]:
    """`work()`'s result, or `{"error": one line}` when it raised.

    Args:
        work: The job; a refusal raises a `TLCoreError` with its one-line message.
        failed: The job in words for an unexpected failure ("The import failed
            unexpectedly"), followed by the exception and "The server's log has
            the details." (the traceback goes there).
    """
    try:
        return work()
    except TLCoreError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug, but the page still needs one line
        traceback.print_exc()
        detail = " ".join(str(exc).split())
        return {"error": f"{failed} ({type(exc).__name__}: {detail}). The server's log has "
                         "the details."}


def run_worker(argv: list[str] | None, module: str,
               run_job: Callable[[Path], dict[str, Any]]) -> int:
    """A job worker's `main`: run the job folder given as the only argument, write its result.

    Returns:
        0 when the job succeeded, 2 when it failed (or on bad usage), 1 when its
        result could not be written.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} JOB_FOLDER", file=sys.stderr)
        return 2
    job = Path(args[0])
    result = run_job(job)
    try:
        write_json(job / RESULT_FILE, result)
    except OSError as exc:
        print(f"error: cannot write {job / RESULT_FILE}: {exc}", file=sys.stderr)
        return 1
    return 2 if "error" in result else 0
