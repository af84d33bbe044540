"""What an executor provides, and the setting that picks one. No TensorFlow.

An executor is a module with the functions of `Executor`: `local` (detached
processes on this server, the default) and `ray` (Ray Jobs on a cluster).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from tlcore.errors import ConfigError
from tlcore.store import RunStore
from tlcore.workspace import Workspace

ENV_EXECUTOR = "TLCORE_EXECUTOR"
NAMES = ("local", "ray")


def name() -> str:
    """Where runs train: `$TLCORE_EXECUTOR`, "local" (default) or "ray".

    Raises:
        ConfigError: if the variable names another executor.
    """
    raw = os.environ.get(ENV_EXECUTOR, "").strip()
    value = raw.lower() or NAMES[0]
    if value not in NAMES:
        raise ConfigError(f"{ENV_EXECUTOR} must be one of {', '.join(NAMES)}. "
                          f"Received: {ENV_EXECUTOR}={raw!r}")
    return value


class Executor(Protocol):
    """The functions every executor module defines."""

    NAME: str
    # The sweep attribute that records the sweep workers it started (None: not recorded).
    SWEEP_JOBS_KEY: str | None

    def check(self) -> None:
        """Check the settings (and that the cluster answers) before a launch queues anything."""

    def submit(self, ws: Workspace, store: RunStore) -> list[str]:
        """Start the queued runs it can start now; their ids."""

    def settle(self, ws: Workspace, store: RunStore) -> list[str]:
        """Fail queued runs whose worker ended before it started; their ids."""

    def ended(self, run: dict[str, Any], ws: Workspace) -> str | None:
        """Why a running run's worker is over (the run's error), or None while it lives."""

    def stop(self, run: dict[str, Any], ws: Workspace, wait: float = 0.0) -> None:
        """Stop a run's worker at once; wait up to `wait` seconds for it to be gone."""

    def worker_name(self, run: dict[str, Any]) -> str:
        """The run's worker in words, for error messages."""

    def logs(self, run: dict[str, Any], lines: int) -> str:
        """The executor's own copy of a run's output ("" when it keeps none)."""

    def start_sweep_workers(self, ws: Workspace, sweep_id: str, count: int, backend_name: str,
                            log: Path) -> list[Any]:
        """Start `count` sweep workers; their pids or job ids."""

    def sweep_workers(self, sweep_id: str, attrs: dict[str, Any]) -> list[Any]:
        """The sweep's live workers that this executor started."""

    def sweep_slots(self) -> int:
        """How many runs may be running for a sweep worker of this executor to start a trial."""

    def claim_extra(self) -> dict[str, Any]:
        """What a worker records in its run's `extra` when it takes the run."""

    def check_node(self, run_id: str | None) -> int | None:
        """The worker's exit status when this node cannot work (said on stderr), else None."""

    def warm_up(self, ws: Workspace) -> int | None:
        """Start a warm worker if the executor keeps a pool; its pid, or None."""
