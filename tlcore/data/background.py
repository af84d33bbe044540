"""Imports started from the browser, each in its own process (`tlcore.workers.data_import`).

Decoding untrusted images takes memory and CPU, and a decoder may crash; doing
it outside the dashboard's process keeps the dashboard responsive and alive, as
training does. The page calls `start_import`, which writes the request (and an
uploaded zip) into a job folder `tmp/job-*` and starts `python -m
tlcore.workers.data_import` on it; the worker runs `import_dataset` (or `create_demo`),
writes its progress to `progress.json` and its outcome to `result.json`, both
replaced atomically. The
page polls `import_status` and removes the folder with `forget_import` once it
has shown the outcome. A job folder whose worker died and that nobody reads is
removed by the staging cleanup (`staging.remove_stale`).

Paths typed in the browser must pass `check_server_path`; the worker resolves
and checks the path again when it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.data import staging
from tlcore.data.manifest import show_dataset
from tlcore.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, check_split_args
from tlcore.errors import DatasetError, TLCoreError
from tlcore.store import RunStore
from tlcore.workspace import Workspace, check_dataset_name, check_server_path, is_no_space

REQUEST_FILE = "request.json"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
UPLOAD_DIR = "upload"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Workers this process started: polling them reaps them, so an ended worker does
# not linger as a zombie that still looks alive.
_children: dict[Path, subprocess.Popen] = {}


@dataclass(frozen=True)
class ImportStatus:
    """Where a background import stands.

    Attributes:
        running: The worker has not finished yet.
        done: Files decoded so far.
        total: Files to decode (0 until the source has been read).
        message: The file being decoded, or what the worker is doing.
        info: `show_dataset` of the new dataset, once it was imported.
        error: The one-line reason the import failed, once it did.
    """

    running: bool
    done: int = 0
    total: int = 0
    message: str = ""
    info: dict[str, Any] | None = None
    error: str | None = None


def start_import(name: str, *, source: str | os.PathLike | None = None,
                 upload: tuple[str, bytes] | None = None, demo: bool = False,
                 val: float = DEFAULT_VAL, test: float = DEFAULT_TEST, seed: int = DEFAULT_SEED,
                 ws: Workspace | None = None, owner: str | None = None) -> Path:
    """Start importing dataset `name` in a new process; returns its job folder.

    Exactly one of `source`, `upload` or `demo` says what to import.

    Args:
        name: The new dataset's name.
        source: A folder or CSV on the server, typed in the browser: it must pass
            `check_server_path`.
        upload: `(file name, bytes)` of an uploaded zip.
        demo: Generate and import the demo dataset.
        val: Fraction of each class for validation.
        test: Fraction of each class for test.
        seed: Seed of the split.
        ws: The workspace; default `Workspace.from_env()`.
        owner: The signed-in user who imports it; None: the local operator.

    Returns:
        The job folder, for `import_status` and `forget_import`.

    Raises:
        ConfigError: Invalid name, split fractions or seed, or a path outside the
            allowed roots.
        DatasetError: The disk is full, or the process cannot start.
    """
    ws = ws or Workspace.from_env()
    if (source is not None) + (upload is not None) + demo != 1:
        raise ValueError("start_import needs exactly one of source, upload or demo")
    check_dataset_name(name)
    check_split_args(val, test, seed)
    request: dict[str, Any] = {"name": name, "val": val, "test": test, "seed": seed,
                               "demo": demo, "source": None, "upload": None, "owner": owner}
    if source is not None:
        request["source"] = str(check_server_path(source, ws))
    job = staging.make_staging(ws, "job-")
    try:
        if upload is not None:
            file_name = Path(upload[0]).name or "upload.zip"
            (job / UPLOAD_DIR).mkdir()
            (job / UPLOAD_DIR / file_name).write_bytes(upload[1])
            request["upload"] = file_name
        (job / REQUEST_FILE).write_text(json.dumps(request), encoding="utf-8")
        _children[job] = subprocess.Popen(
            [sys.executable, "-m", "tlcore.workers.data_import", str(job)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            env=_worker_env(ws), close_fds=True)
    except OSError as exc:
        shutil.rmtree(job, ignore_errors=True)
        if is_no_space(exc):
            raise staging.disk_full_error(ws.tmp_dir, exc) from None
        raise DatasetError(f"Could not start the import process: {exc.strerror or exc}. "
                           f"Received: dataset {name!r}") from None
    return job


def _worker_env(ws: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env["TLCORE_HOME"] = str(ws.root)
    # tlcore must import in the child even when the caller runs from another folder.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def import_status(job: str | os.PathLike) -> ImportStatus:
    """Where the import in job folder `job` stands (see `ImportStatus`)."""
    job = Path(job)
    result = read_json(job / RESULT_FILE)
    if result is None and not _worker_alive(job):
        result = read_json(job / RESULT_FILE) or _ended_without_result(job)  # or just finished
    if result is not None:
        return ImportStatus(False, info=result.get("info"), error=result.get("error"))
    progress = read_json(job / PROGRESS_FILE) or {}
    return ImportStatus(True, int(progress.get("done", 0)), int(progress.get("total", 0)),
                        str(progress.get("message", "")))


def forget_import(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    job = Path(job)
    child = _children.pop(job, None)
    if child is not None:
        child.poll()
    shutil.rmtree(job, ignore_errors=True)


def _worker_alive(job: Path) -> bool:
    child = _children.get(job)
    if child is not None:
        return child.poll() is None
    return staging.owner_alive(job) is not False


def _ended_without_result(job: Path) -> dict[str, Any]:
    """The outcome of a worker that ended without writing one (killed, out of memory)."""
    request = read_json(job / REQUEST_FILE)
    if request is None:
        return {"error": "The import's job folder was removed before its result was read; the "
                         "dataset list shows whether it was imported."}
    ws = Workspace.from_env()
    try:
        if RunStore(ws).has_dataset(request["name"]):
            return {"info": show_dataset(request["name"], ws)}
    except TLCoreError:
        pass
    child = _children.get(job)
    how = (f"was killed by signal {-child.returncode}" if child is not None
           and child.returncode is not None and child.returncode < 0 else "ended")
    return {"error": f"The import stopped without a result: its process {how} (out of memory?); "
                     f"nothing was kept. Import a smaller dataset or ask the operator to check "
                     f"the server. Received: dataset {request['name']!r}"}


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
