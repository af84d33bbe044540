"""`python -m tlcore.workers.adapt JOB`: run one adaptation started from the dashboard.

`tlcore.adapt.jobs.start_adapt` writes the request into the job folder and
starts this module on it. The worker takes the folder over (`staging.claim`),
runs `tlcore.adapt.lab.adapt_run`, writes its progress to `progress.json`
(at most a few times a second) and its outcome to `result.json`
(`{"report": ...}` or `{"error": "one line"}`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tlcore.data import jobs
from tlcore.workspace import Workspace

PROGRESS_EVERY_S = 0.25


def run_job(job: Path) -> dict[str, Any]:
    """Run the adaptation job folder `job` asks for; returns what `result.json` gets."""
    from tlcore.adapt.lab import adapt_run

    request = jobs.take_job(job)
    last = {"step": None, "at": 0.0}

    def progress(step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if step == last["step"] and now - last["at"] < PROGRESS_EVERY_S and done < total:
            return
        last.update(step=step, at=now)
        jobs.write_progress(job, {"step": step, "done": done, "total": total})

    def work() -> dict[str, Any]:
        return {"report": adapt_run(request["run_id"], request["target"],
                                    method_names=request["methods"], scorer=request["scorer"],
                                    owner=request.get("owner"), ws=Workspace.from_env(),
                                    progress=progress)}

    return jobs.outcome(work, "The adaptation failed unexpectedly; nothing was saved")


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when adapted."""
    return jobs.run_worker(argv, "tlcore.workers.adapt", run_job)


if __name__ == "__main__":
    sys.exit(main())
