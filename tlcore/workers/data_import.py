"""`python -m tlcore.workers.data_import JOB`: run one import started from the browser.

`background.start_import` writes the request into the job folder and starts this
module on it. The worker takes the folder over (`staging.claim`), runs
`import_dataset` (or `create_demo`), writes its progress to `progress.json` and
its outcome to `result.json` ({"info": ...} or {"error": "one line"}), and
removes the uploaded zip. A path typed in the browser is checked again here with
`check_server_path`, so a request file cannot widen what the browser may read.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from tlcore.data import jobs
from tlcore.data.background import UPLOAD_DIR
from tlcore.data.importer import create_demo, import_dataset
from tlcore.workspace import Workspace, check_server_path


def run_job(job: Path) -> dict[str, Any]:
    """Run the import that job folder `job` asks for; returns what `result.json` gets."""
    request = jobs.take_job(job)
    ws = Workspace.from_env()

    def progress(done: int, total: int, message: str) -> None:
        jobs.write_progress(job, {"done": done, "total": total, "message": message})

    def work() -> dict[str, Any]:
        if request["demo"]:
            return {"info": create_demo(request["name"], ws=ws, progress=progress,
                                        owner=request.get("owner"))}
        source = (job / UPLOAD_DIR / request["upload"] if request["upload"]
                  else check_server_path(request["source"], ws))
        return {"info": import_dataset(source, request["name"], val=request["val"],
                                       test=request["test"], seed=request["seed"],
                                       progress=progress, ws=ws, owner=request.get("owner"))}

    try:
        return jobs.outcome(work, "The import failed unexpectedly; nothing was kept")
    finally:
        shutil.rmtree(job / UPLOAD_DIR, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when imported."""
    return jobs.run_worker(argv, "tlcore.workers.data_import", run_job)


if __name__ == "__main__":
    sys.exit(main())
