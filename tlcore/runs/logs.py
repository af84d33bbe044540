"""A run's log tail and details, as the dashboard and the CLI show them. No TensorFlow."""

from __future__ import annotations

import os
from typing import Any

from tlcore.data import run_version
from tlcore.errors import NotFoundError
from tlcore.runs import executors, liveness
from tlcore.store import RunStore
from tlcore.workspace import Workspace


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
        return _executor_log_tail(run_id, lines, ws)
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def _executor_log_tail(run_id: str, lines: int, ws: Workspace) -> str:
    """The executor's copy of the output of a run whose `log.txt` is missing; else ""."""
    try:
        run = RunStore(ws).get_run(run_id)
    except NotFoundError:
        return ""
    return executors.of_run(run).logs(run, lines)


def get_run_details(run_id: str, ws: Workspace | None = None) -> dict[str, Any]:
    """A run's row plus its per-epoch metrics and progress (after `refresh`).

    Also `dataset_version` (the dataset version the run trains on; None for runs
    from before versions were kept, which read the dataset's head),
    `heartbeat_age_s` (seconds since a running worker last showed life, else None)
    and `heartbeat_timeout_s` (the silence after which it is declared lost).

    Raises:
        NotFoundError: if the run does not exist.
    """
    ws = ws or Workspace.from_env()
    liveness.refresh(ws)
    store = RunStore(ws)
    run = store.get_run(run_id)
    run["metrics"] = store.metrics(run_id)
    run["progress"] = store.progress(run_id)
    run["dataset_version"] = run_version(ws, run_id)
    age = liveness.heartbeat_age(run)
    run["heartbeat_age_s"] = None if age is None else round(age, 1)
    run["heartbeat_timeout_s"] = liveness.heartbeat_timeout((run["progress"] or {}).get("stage"))
    return run
