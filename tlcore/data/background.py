"""Imports started from the browser, each in its own process (`tlcore.workers.data_import`).

Decoding untrusted images takes memory and CPU, and a decoder may crash; doing
it outside the dashboard's process keeps the dashboard responsive and alive, as
training does. The page calls `start_import`, which writes the request (and an
uploaded zip) into a job folder `tmp/job-*` and starts `python -m
tlcore.workers.data_import` on it (`tlcore.data.jobs`); the worker runs
`import_dataset` (or `create_demo`). The page polls `import_status` and removes
the folder with `forget_import` once it has shown the outcome.

Paths typed in the browser must pass `check_server_path`; the worker resolves
and checks the path again when it starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.data import jobs
from tlcore.data.manifest import show_dataset
from tlcore.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, check_split_args
from tlcore.errors import TLCoreError
from tlcore.store import RunStore
from tlcore.workspace import Workspace, check_dataset_name, check_server_path

UPLOAD_DIR = "upload"


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

    def write_upload(job: Path) -> None:
        if upload is not None:
            file_name = Path(upload[0]).name or "upload.zip"
            (job / UPLOAD_DIR).mkdir()
            (job / UPLOAD_DIR / file_name).write_bytes(upload[1])
            request["upload"] = file_name

    return jobs.start_job(ws, "job-", "tlcore.workers.data_import", request,
                          what="the import process", received=f"dataset {name!r}",
                          prepare=write_upload)


def import_status(job: str | os.PathLike) -> ImportStatus:
    """Where the import in job folder `job` stands (see `ImportStatus`)."""
    result, progress = jobs.job_state(job, _ended_without_result)
    if result is not None:
        return ImportStatus(False, info=result.get("info"), error=result.get("error"))
    return ImportStatus(True, int(progress.get("done", 0)), int(progress.get("total", 0)),
                        str(progress.get("message", "")))


def forget_import(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    jobs.forget_job(job)


def _ended_without_result(job: Path) -> dict[str, Any]:
    """The outcome of a worker that ended without writing one (killed, out of memory)."""
    request = jobs.read_json(job / jobs.REQUEST_FILE)
    if request is None:
        return {"error": "The import's job folder was removed before its result was read; the "
                         "dataset list shows whether it was imported."}
    ws = Workspace.from_env()
    try:
        if RunStore(ws).has_dataset(request["name"]):
            return {"info": show_dataset(request["name"], ws)}
    except TLCoreError:
        pass
    return {"error": f"The import stopped without a result: its process {jobs.killed_how(job)} "
                     f"(out of memory?); "
                     f"nothing was kept. Import a smaller dataset or ask the operator to check "
                     f"the server. Received: dataset {request['name']!r}"}

