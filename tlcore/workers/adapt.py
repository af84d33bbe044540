"""`python -m tlcore.workers.adapt JOB`: run one adaptation started from the dashboard.

`tlcore.adapt.jobs.start_adapt` writes the request into the job folder and
starts this module on it. The worker takes the folder over (`staging.claim`),
runs `tlcore.adapt.lab.adapt_run`, writes its progress to `progress.json`
(at most a few times a second) and its outcome to `result.json`
(`{"report": ...}` or `{"error": "one line"}`).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tlcore.adapt.jobs import PROGRESS_FILE, REQUEST_FILE, RESULT_FILE
from tlcore.data import staging
from tlcore.data.background import write_json
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace

PROGRESS_EVERY_S = 0.25


def run_job(job: Path) -> dict[str, Any]:
    """Run the adaptation job folder `job` asks for; returns what `result.json` gets."""
    from tlcore.adapt.lab import adapt_run

    staging.claim(job)
    request = json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))
    last = {"step": None, "at": 0.0}

    def progress(step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if step == last["step"] and now - last["at"] < PROGRESS_EVERY_S and done < total:
            return
        last.update(step=step, at=now)
        try:
            write_json(job / PROGRESS_FILE, {"step": step, "done": done, "total": total})
        except OSError:
            pass  # progress is a courtesy; a full disk fails the adaptation itself

    try:
        report = adapt_run(request["run_id"], request["target"],
                           method_names=request["methods"], scorer=request["scorer"],
                           owner=request.get("owner"), ws=Workspace.from_env(),
                           progress=progress)
        return {"report": report}
    except TLCoreError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug, but the page still needs one line
        traceback.print_exc()
        detail = " ".join(str(exc).split())
        return {"error": f"The adaptation failed unexpectedly ({type(exc).__name__}: "
                         f"{detail}); nothing was saved. The server's log has the details."}


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when adapted."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tlcore.workers.adapt JOB_FOLDER", file=sys.stderr)
        return 2
    job = Path(args[0])
    result = run_job(job)
    try:
        write_json(job / RESULT_FILE, result)
    except OSError as exc:
        print(f"error: cannot write {job / RESULT_FILE}: {exc}", file=sys.stderr)
        return 1
    return 0 if "report" in result else 2


if __name__ == "__main__":
    sys.exit(main())
