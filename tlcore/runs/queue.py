"""Starting queued runs: the one entry point every process calls. No TensorFlow.

At most `slots.worker_limit()` runs are running under the local executor; the
others wait as `queued` and start in order: a worker starts the next one when it
ends, and so does any reader calling `liveness.refresh`. The configured executor
(`executors.current()`) starts them.
"""

from __future__ import annotations

from tlcore.runs import children, executors
from tlcore.store import QUEUED, RunStore
from tlcore.workspace import Workspace, free_bytes, min_free_bytes


def start_queued(ws: Workspace | None = None) -> list[str]:
    """Start queued runs while the executor has room for them.

    Only writes when a run can start: readers call this through `refresh`, and
    reads must keep working on a full disk. While the workspace's disk has less
    than `min_free_bytes()` free, queued runs wait: each would fail at its first
    checkpoint.

    Returns:
        The ids of the runs started (or, on Ray, submitted).
    """
    children.reap()
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    executor = executors.current()
    if not store.list_runs(statuses=(QUEUED,)) or free_bytes(ws.root) < min_free_bytes():
        return []
    return executor.submit(ws, store)
