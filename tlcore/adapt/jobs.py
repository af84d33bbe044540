"""Adaptations started from the dashboard, each in its own process (`tlcore.workers.adapt`).

The lab computes features (TensorFlow) and fits skada pipelines; neither may
run in the dashboard's process. The page calls `start_adapt`, which writes the
request into a job folder `tmp/job-adapt-*` and starts `python -m
tlcore.workers.adapt` on it (`tlcore.data.jobs`); its outcome is
`{"report": ...}` or `{"error": "one line"}`. The page polls `adapt_status` and
removes the folder with `forget_adapt` once it has shown the outcome. No
TensorFlow, no skada.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.adapt.methods import check_methods, check_scorer
from tlcore.data import jobs
from tlcore.workspace import Workspace, check_dataset_name, check_run_id


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
    return jobs.start_job(ws, "job-adapt-", "tlcore.workers.adapt", request,
                          what="the adaptation process",
                          received=f"run {run_id}, dataset {target!r}")


def adapt_status(job: str | os.PathLike) -> AdaptStatus:
    """Where the adaptation in job folder `job` stands (see `AdaptStatus`)."""
    result, progress = jobs.job_state(job, lambda _: {
        "error": "The adaptation stopped without a result (its process ended, out of "
                 "memory?); nothing was saved. Try fewer methods, or ask the operator to "
                 "check the server."})
    if result is not None:
        return AdaptStatus(False, report=result.get("report"), error=result.get("error"))
    return AdaptStatus(True, str(progress.get("step", "")), int(progress.get("done", 0)),
                       int(progress.get("total", 0)))


def forget_adapt(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    jobs.forget_job(job)
