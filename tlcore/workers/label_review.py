"""`python -m tlcore.workers.label_review JOB`: run one label review started from the browser.

`tlcore.results.label_review.start_review` writes the request into the job
folder and starts this module on it. The worker takes the folder over
(`staging.claim`), runs `review_dataset` (which imports Keras only when some
features are not cached), writes its progress to `progress.json` and its
outcome to `result.json`: `{"fingerprint", "size", "base"}` of the stored review
(`tlcore.cache.reviews`), or `{"error": "one line"}`.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from tlcore.data import staging
from tlcore.data.background import write_json
from tlcore.errors import TLCoreError
from tlcore.results.label_review import (
    PROGRESS_FILE,
    REQUEST_FILE,
    RESULT_FILE,
    review_dataset,
)


def run_job(job: Path) -> dict[str, Any]:
    """Run the review that job folder `job` asks for; returns what `result.json` gets."""
    staging.claim(job)
    request = json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))

    def progress(done: int, total: int, message: str) -> None:
        try:
            write_json(job / PROGRESS_FILE, {"done": done, "total": total, "message": message})
        except OSError:
            pass  # progress is a courtesy; a full disk fails the review itself

    try:
        review = review_dataset(request["name"], image_size=request["image_size"],
                                weights=request["weights"], progress=progress)
    except TLCoreError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug, but the page still needs one line
        traceback.print_exc()
        detail = " ".join(str(exc).split())
        return {"error": f"The label review failed unexpectedly ({type(exc).__name__}: "
                         f"{detail}). The server's log has the details."}
    return {"fingerprint": review["fingerprint"], "size": review["size"],
            "base": review["base"]}


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when reviewed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tlcore.workers.label_review JOB_FOLDER", file=sys.stderr)
        return 2
    job = Path(args[0])
    result = run_job(job)
    try:
        write_json(job / RESULT_FILE, result)
    except OSError as exc:
        print(f"error: cannot write {job / RESULT_FILE}: {exc}", file=sys.stderr)
        return 1
    return 0 if "error" not in result else 2


if __name__ == "__main__":
    sys.exit(main())
