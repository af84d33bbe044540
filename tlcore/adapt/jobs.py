"""Adaptations started from the dashboard, each in its own process (`tlcore.workers.adapt`).

The lab computes features (TensorFlow) and fits skada pipelines; neither may
run in the dashboard's process. The page calls `start_adapt`, which writes the
request into a job folder `tmp/job-adapt-*` and starts `python -m
tlcore.workers.adapt` on it; the worker writes its progress to `progress.json`
and its outcome to `result.json` (`{"report": ...}` or `{"error": "one line"}`),
both replaced atomically. The page polls `adapt_status` and removes the folder
with `forget_adapt` once it has shown the outcome; a folder whose worker died
and that nobody reads goes with the staging cleanup. No TensorFlow, no skada.
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

from tlcore.adapt.methods import check_methods, check_scorer
from tlcore.data import staging
from tlcore.data.background import read_json
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace, check_dataset_name, check_run_id, is_no_space

REQUEST_FILE = "request.json"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Workers this process started: polling them reaps them (no zombies).
_children: dict[Path, subprocess.Popen] = {}


@dataclass(frozen=True)
class AdaptStatus:
    """Where a background adaptation stands.

    Attributes:
        running: The worker has not finished yet.
        step: The lab's current step (`tlcore.adapt.lab.STEPS`), "" before the first.
        done: Units of the step done (images, methods).
        total: Units of the step.
        report: The report, once the adaptation finished.
        error: The one-line reason it failed, once it did.
    """

    running: bool
    step: str = ""
    done: int = 0
    total: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None


def start_adapt(run_id: str, target: str, *, methods: list[str] | None = None,
                scorer: str, ws: Workspace, owner: str | None = None) -> Path:
    """Start adapting `run_id` to dataset `target` in a new process; returns its job folder.

    Raises:
        ConfigError: an invalid run id, dataset name, method or scorer.
        DatasetError: the disk is full, or the process cannot start.
    """
    request = {"run_id": check_run_id(run_id), "target": check_dataset_name(target),
               "methods": check_methods(methods), "scorer": check_scorer(scorer),
               "owner": owner}
    job = staging.make_staging(ws, "job-adapt-")
    try:
        (job / REQUEST_FILE).write_text(json.dumps(request), encoding="utf-8")
        env = dict(os.environ, TLCORE_HOME=str(ws.root), PYTHONPATH=os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p))
        _children[job] = subprocess.Popen(
            [sys.executable, "-m", "tlcore.workers.adapt", str(job)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            env=env, close_fds=True)
    except OSError as exc:
        shutil.rmtree(job, ignore_errors=True)
        if is_no_space(exc):
            raise staging.disk_full_error(ws.tmp_dir, exc) from None
        raise DatasetError(f"Could not start the adaptation process: {exc.strerror or exc}. "
                           f"Received: run {run_id}, dataset {target!r}") from None
    return job


def adapt_status(job: str | os.PathLike) -> AdaptStatus:
    """Where the adaptation in job folder `job` stands (see `AdaptStatus`)."""
    job = Path(job)
    result = read_json(job / RESULT_FILE)
    if result is None and not _alive(job):
        result = read_json(job / RESULT_FILE) or {  # or it just finished
            "error": "The adaptation stopped without a result (its process ended, out of "
                     "memory?); nothing was saved. Try fewer methods, or ask the operator to "
                     "check the server."}
    if result is not None:
        return AdaptStatus(False, report=result.get("report"), error=result.get("error"))
    progress = read_json(job / PROGRESS_FILE) or {}
    return AdaptStatus(True, str(progress.get("step", "")), int(progress.get("done", 0)),
                       int(progress.get("total", 0)))


def forget_adapt(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    job = Path(job)
    child = _children.pop(job, None)
    if child is not None:
        child.poll()
    shutil.rmtree(job, ignore_errors=True)


def _alive(job: Path) -> bool:
    child = _children.get(job)
    if child is not None:
        return child.poll() is None
    return staging.owner_alive(job) is not False
