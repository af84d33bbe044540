"""Launch -> first epoch through `launch.launch` (the dashboard's path), warm and cold worker.

    python -m bench.warm_start CONFIG.json   (in a workspace whose features are cached)

Warm: a worker started by `warm.ensure_warm` has imported TensorFlow and waits;
the launch hands it the run. Cold: `TLCORE_WARM_WORKERS=0`, the launch spawns a
fresh `python -m tlcore.workers.run`. Each figure is the time from calling
`launch.launch` to the run's first epoch row in the store, and to its completion.
Every worker started here is stopped before returning.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

POLL_S = 0.01
TIMEOUT_S = 300.0


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def _timed_launch(ws: Any, config: Any) -> tuple[float, float]:
    """Seconds from `launch.launch` to the first epoch row, and to the run's end."""
    from tlcore.runs import launch
    from tlcore.store import FINAL_STATUSES, RunStore

    store = RunStore(ws)
    start = time.perf_counter()
    run_id = launch.launch(config, ws=ws)
    _wait(lambda: store.metrics(run_id) or store.get_run(run_id)["status"] in FINAL_STATUSES,
          "the first epoch")
    first = time.perf_counter() - start
    _wait(lambda: store.get_run(run_id)["status"] in FINAL_STATUSES, "the run to end")
    done = time.perf_counter() - start
    run = store.get_run(run_id)
    if run["status"] != "completed":
        raise RuntimeError(f"benchmark run {run_id} {run['status']}: {run['error']}")
    return first, done


def measure_warm_start(ws: Any, config: Any) -> dict[str, float]:
    """Launch `config` once on a warm worker and once on a cold one.

    Returns:
        `warm_first_epoch_s`, `warm_done_s`, `cold_first_epoch_s`, `cold_done_s`.
    """
    from tlcore.runs import warm

    saved = os.environ.get(warm.ENV_WARM_WORKERS)
    try:
        os.environ[warm.ENV_WARM_WORKERS] = "1"
        pid = warm.ensure_warm(ws)
        _wait(lambda: warm.warm_workers(ws).get(pid), "the warm worker")
        hot = _timed_launch(ws, config)
        warm.stop_warm(ws)
        os.environ[warm.ENV_WARM_WORKERS] = "0"
        cold = _timed_launch(ws, config)
    finally:
        warm.stop_warm(ws)
        if saved is None:
            os.environ.pop(warm.ENV_WARM_WORKERS, None)
        else:
            os.environ[warm.ENV_WARM_WORKERS] = saved
    return {"warm_first_epoch_s": hot[0], "warm_done_s": hot[1],
            "cold_first_epoch_s": cold[0], "cold_done_s": cold[1]}


def main(argv: list[str] | None = None) -> int:
    from tlcore.cli.runs import load_config
    from tlcore.workspace import Workspace

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.warm_start CONFIG.json", file=sys.stderr)
        return 2
    result = measure_warm_start(Workspace.from_env(), load_config(args[0], []))
    for key, value in result.items():
        print(f"{key}: {value:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
