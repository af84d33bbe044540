"""Worker liveness: heartbeats, silence warnings, and settling runs whose worker is gone.

A running run whose worker is gone (crash, out of memory, kill -9) becomes
`lost` with the reason on the next `refresh`; its executor (`executors.of_run`)
tells whether the worker is still there. So does a worker that is alive but
silent: the training loop itself writes the heartbeat as it makes progress
(never a side thread, which would beat on through a deadlock), so a stopped or
hung worker is killed once its heartbeat is older than `heartbeat_timeout()`. A
cancelled run that does not stop within `CANCEL_GRACE_S` is killed and marked
`cancelled`. No TensorFlow.
"""

from __future__ import annotations

import time
from typing import Any

from tlcore.entities import HEARTBEAT_INTERVAL_S
from tlcore.runs import executors, queue
from tlcore.settings import env_number
from tlcore.store import CANCELLED, LOST, RUNNING, STAGE_FEATURES, RunStore
from tlcore.workspace import Workspace

ENV_HEARTBEAT_TIMEOUT = "TLCORE_HEARTBEAT_TIMEOUT_S"
DEFAULT_HEARTBEAT_TIMEOUT_S = 120.0
# One batch of the frozen-feature pass may legitimately take longer (huge images, CPU).
FEATURE_STAGE_TIMEOUT_FACTOR = 2.0
# The UI warns about a silent worker once it has been silent for this share of its stage's
# limit (and at least STALE_HEARTBEAT_S): a slow step is no cause for alarm, a stall is.
WARN_SHARE = 0.5
STALE_HEARTBEAT_S = 3 * HEARTBEAT_INTERVAL_S
# A claimed run whose worker never reported within this time is lost.
LOST_AFTER_S = 30.0
CANCEL_GRACE_S = 20.0


def heartbeat_timeout(stage: str | None = None) -> float:
    """Seconds of silence after which a running worker is declared hung and killed.

    `$TLCORE_HEARTBEAT_TIMEOUT_S` (default 120), times `FEATURE_STAGE_TIMEOUT_FACTOR`
    while the run computes frozen-base features (`stage` "features").

    Raises:
        ConfigError: if the variable is set but not a positive number.
    """
    value = env_number(ENV_HEARTBEAT_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT_S,
                       "a positive number of seconds")
    return value * (FEATURE_STAGE_TIMEOUT_FACTOR if stage == STAGE_FEATURES else 1.0)


def heartbeat_age(run: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds since a running run's worker last showed life; None unless it is running."""
    if run["status"] != RUNNING:
        return None
    last = run["heartbeat"] or run["started"] or run["created"]
    return max(0.0, (time.time() if now is None else now) - last)


def silence_warning(run: dict[str, Any], stage: str | None = None) -> str | None:
    """A warning about a running worker silent for over `WARN_SHARE` of its limit, else None.

    The limit is the stage's `heartbeat_timeout`; the warning never comes before
    `STALE_HEARTBEAT_S`.

    Args:
        run: The run's row.
        stage: Its progress stage (the frozen-feature stage may stay silent longer).

    Raises:
        ConfigError: if `$TLCORE_HEARTBEAT_TIMEOUT_S` is set but unusable.
    """
    silent = heartbeat_age(run)
    if silent is None:
        return None
    limit = heartbeat_timeout(stage)
    if silent <= max(STALE_HEARTBEAT_S, WARN_SHARE * limit):
        return None
    return (f"No sign of life from the worker for {silent:.0f} s; it is marked lost after "
            f"{limit:.0f} s.")


def _settle(run: dict[str, Any], ws: Workspace, store: RunStore, now: float) -> bool:
    """Settle one running run if its worker is gone, ignores a cancel, or is silent."""
    run_id = run["id"]
    heartbeat = run["heartbeat"] or run["started"] or run["created"]
    if run["pid"] is None:  # claimed, but its worker has not reported yet
        return now - heartbeat > LOST_AFTER_S and store.transition(
            run_id, (RUNNING,), status=LOST, ended=now,
            error=f"The worker did not start within {LOST_AFTER_S:.0f} s; resume the run to "
                  "try again.")
    executor = executors.of_run(run)
    gone = executor.ended(run, ws)
    if gone is not None:
        fields = {"status": CANCELLED} if run["cancel_requested"] else {
            "status": LOST, "error": gone}
        return store.transition(run_id, (RUNNING,), ended=now, **fields)
    asked = (run["extra"] or {}).get("cancel_requested_at")
    if run["cancel_requested"] and asked and now - asked > CANCEL_GRACE_S:
        executor.stop(run, ws)
        return store.transition(
            run_id, (RUNNING,), status=CANCELLED, ended=time.time(),
            error=f"The worker did not stop within {CANCEL_GRACE_S:.0f} s of the cancel and "
                  "was killed.")
    progress = store.progress(run_id)
    limit = heartbeat_timeout(progress["stage"] if progress else None)
    silent = now - heartbeat
    if silent <= limit:
        return False
    executor.stop(run, ws)
    return store.transition(
        run_id, (RUNNING,), status=LOST, ended=time.time(),
        error=f"No heartbeat for {silent:.0f} s from the worker ({executor.worker_name(run)}; "
              f"limit {limit:.0f} s, ${ENV_HEARTBEAT_TIMEOUT}): it was stopped or hung, and was "
              "killed. Its log may say more; resume the run to continue from the last finished "
              "epoch.")


def refresh(ws: Workspace | None = None) -> list[str]:
    """Settle runs whose worker is gone or ignores a cancel, then start queued runs.

    * running, worker gone: `lost` (or `cancelled` if a cancel was pending); on Ray,
      with the job's reason and last log lines;
    * running, claimed but no worker reported for `LOST_AFTER_S`: `lost`;
    * running, cancel requested `CANCEL_GRACE_S` ago and still alive: killed, `cancelled`;
    * running, alive but no heartbeat for `heartbeat_timeout()` (stopped, deadlocked):
      killed (on Ray: its job stopped), `lost`;
    * queued runs whose worker ended before it started (Ray): `failed`.

    The slots of the killed and lost runs go to queued runs at once.

    Returns:
        The ids of runs whose status changed.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    now = time.time()
    heartbeat_timeout()  # a bad setting fails here, before any worker is judged by it
    changed = [run["id"] for run in store.list_runs(statuses=(RUNNING,))
               if _settle(run, ws, store, now)]
    changed += executors.current().settle(ws, store)
    queue.start_queued(ws)
    return changed
