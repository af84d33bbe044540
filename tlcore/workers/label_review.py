"""`python -m tlcore.workers.label_review JOB`: run one label review started from the browser.

`tlcore.results.label_review.start_review` writes the request into the job
folder and starts this module on it. The worker takes the folder over
(`staging.claim`), runs `review_dataset` (which imports Keras only when some
features are not cached), writes its progress to `progress.json` and its
outcome to `result.json`: `{"fingerprint", "size", "base"}` of the stored review
(`tlcore.cache.reviews`), or `{"error": "one line"}`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tlcore.data import jobs
from tlcore.results.label_review import review_dataset


def run_job(job: Path) -> dict[str, Any]:
    """Run the review that job folder `job` asks for; returns what `result.json` gets."""
    request = jobs.take_job(job)

    def progress(done: int, total: int, message: str) -> None:
        jobs.write_progress(job, {"done": done, "total": total, "message": message})

    def work() -> dict[str, Any]:
        review = review_dataset(request["name"], image_size=request["image_size"],
                                weights=request["weights"], progress=progress)
        return {"fingerprint": review["fingerprint"], "size": review["size"],
                "base": review["base"]}

    return jobs.outcome(work, "The label review failed unexpectedly")


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when reviewed."""
    return jobs.run_worker(argv, "tlcore.workers.label_review", run_job)


if __name__ == "__main__":
    sys.exit(main())
