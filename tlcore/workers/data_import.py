"""`python -m tlcore.workers.data_import JOB`: run one import started from the browser.

`background.start_import` writes the request into the job folder and starts this
module on it. The worker takes the folder over (`staging.claim`), runs
`import_dataset` (or `create_demo`), writes its progress to `progress.json` and
its outcome to `result.json` ({"info": ...} or {"error": "one line"}), and
removes the uploaded zip. A path typed in the browser is checked again here with
`check_server_path`, so a request file cannot widen what the browser may read.
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from tlcore.data import staging
from tlcore.data.background import (
    PROGRESS_FILE,
    REQUEST_FILE,
    RESULT_FILE,
    UPLOAD_DIR,
    write_json,
)
from tlcore.data.importer import create_demo, import_dataset
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace, check_server_path


def run_job(job: Path) -> dict[str, Any]:
    """Run the import that job folder `job` asks for; returns what `result.json` gets."""
    staging.claim(job)
    request = json.loads((job / REQUEST_FILE).read_text(encoding="utf-8"))
    ws = Workspace.from_env()

    def progress(done: int, total: int, message: str) -> None:
        try:
            write_json(job / PROGRESS_FILE, {"done": done, "total": total, "message": message})
        except OSError:
            pass  # progress is a courtesy; a full disk fails the import itself

    try:
        if request["demo"]:
            info = create_demo(request["name"], ws=ws, progress=progress,
                               owner=request.get("owner"))
        else:
            source = (job / UPLOAD_DIR / request["upload"] if request["upload"]
                      else check_server_path(request["source"], ws))
            info = import_dataset(source, request["name"], val=request["val"],
                                  test=request["test"], seed=request["seed"],
                                  progress=progress, ws=ws, owner=request.get("owner"))
        return {"info": info}
    except TLCoreError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug, but the page still needs one line
        traceback.print_exc()
        detail = " ".join(str(exc).split())
        return {"error": f"The import failed unexpectedly ({type(exc).__name__}: {detail}); "
                         f"nothing was kept. The server's log has the details."}
    finally:
        shutil.rmtree(job / UPLOAD_DIR, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the job folder given as the only argument; exit status 0 when imported."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tlcore.workers.data_import JOB_FOLDER", file=sys.stderr)
        return 2
    job = Path(args[0])
    result = run_job(job)
    try:
        write_json(job / RESULT_FILE, result)
    except OSError as exc:
        print(f"error: cannot write {job / RESULT_FILE}: {exc}", file=sys.stderr)
        return 1
    return 0 if "info" in result else 2


if __name__ == "__main__":
    sys.exit(main())
