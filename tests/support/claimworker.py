"""One process of the claim race in tests/store/test_store.py.

Usage: python tests/support/claimworker.py START_AT OUT_JSON

Waits until START_AT (a time.time() value) so that every process races from the
same instant, opens the store that TLCORE_HOME / TLCORE_DB_URL name, queues two
runs, then claims runs (two at once at most, GPU slots "0" and "1") until none is
queued. Each claimed run "trains" for 0.2 s; OUT_JSON gets one record per run:
its id, slot, and when it started and ended as this process saw it.
"""

import json
import sys
import time
from pathlib import Path

from tlcore.config import RunConfig
from tlcore.store import COMPLETED, QUEUED, RUNNING, RunStore


def main(start_at: float, out: Path) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    store = RunStore()
    for _ in range(2):
        store.create_run(RunConfig(dataset="d"))
    held = []
    while True:
        run_id = store.claim_next(2, slots=("0", "1"), started=time.time())
        if run_id is None:
            if not store.list_runs(statuses=[QUEUED]):
                break
            time.sleep(0.02)
            continue
        # Inside the interval the store counts the run as running (claimed before,
        # completed after), so overlaps seen here are overlaps in the store.
        start = time.time()
        gpu = store.get_run(run_id)["gpu"]
        time.sleep(0.2)
        end = time.time()
        store.transition(run_id, (RUNNING,), status=COMPLETED, ended=end)
        held.append({"id": run_id, "gpu": gpu, "start": start, "end": end})
    out.write_text(json.dumps(held))


if __name__ == "__main__":
    main(float(sys.argv[1]), Path(sys.argv[2]))
