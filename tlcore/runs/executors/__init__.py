"""The executors: where runs and sweep workers train, behind one interface (`base.Executor`).

`current()` is the one configured by `$TLCORE_EXECUTOR` (the local executor by
default); `of_run(run)` is the one that started a run, whose word decides how the
run's liveness is judged, stopped and logged, whoever asks.
"""

from __future__ import annotations

from typing import Any

from tlcore.runs.executors import local, ray
from tlcore.runs.executors.base import ENV_EXECUTOR, NAMES, Executor, name

__all__ = ["ENV_EXECUTOR", "NAMES", "Executor", "current", "name", "of_run", "EXECUTORS"]

EXECUTORS: dict[str, Any] = {local.NAME: local, ray.NAME: ray}


def current() -> Executor:
    """The executor `$TLCORE_EXECUTOR` names.

    Raises:
        ConfigError: if the variable names no executor.
    """
    return EXECUTORS[name()]


def of_run(run: dict[str, Any]) -> Executor:
    """The executor that started `run` (a store row): its `extra.executor`, else local."""
    return EXECUTORS.get((run.get("extra") or {}).get("executor"), local)
