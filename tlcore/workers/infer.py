"""`python -m tlcore.workers.infer`: the dashboard's inference service (`tlcore.runs.inference`).

It imports Keras once, listens on a localhost port and answers one request at a
time: "predict" (top-k classes and Grad-CAM for encoded images, with the run's
model kept loaded by `tlcore.engine.runmodel.run_model`) and "export". A refused
request is answered with its one-line message; anything else with a short
message, its traceback going to `workers/infer.log`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
from pathlib import Path
from typing import Any

from tlcore import backend
from tlcore.errors import ConfigError, TLCoreError
from tlcore.runs import inference, warm
from tlcore.workspace import Workspace

OWNER_CHECK_S = 1.0


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by this user only, through a temp file."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def _predict(ws: Workspace, req: dict[str, Any]) -> list[dict[str, Any]]:
    from tlcore.results.predict import predict_images

    return predict_images(str(req["run_id"]), list(req["images"]), ws=ws, k=int(req["k"]),
                          with_gradcam=bool(req["gradcam"]))


def _export(ws: Workspace, req: dict[str, Any]) -> dict[str, Any]:
    from tlcore.results.export import export_run, read_report, report_summary

    path = export_run(str(req["run_id"]), str(req["fmt"]), str(req["out"]), ws=ws)
    report = read_report(path)
    return {"path": str(path), "summary": None if report is None else report_summary(report)}


OPS = {"predict": _predict, "export": _export}


def answer(ws: Workspace, req: Any) -> dict[str, Any]:
    """The answer to one request: `{"result": ...}` or `{"error": one line}`."""
    if not isinstance(req, dict) or req.get("op") not in OPS:
        return {"error": f"Unknown request; expected one of {', '.join(OPS)}."}
    try:
        return {"result": OPS[req["op"]](ws, req)}
    except TLCoreError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 (the service must answer and stay up)
        traceback.print_exc()
        sys.stdout.flush()
        return {"error": f"{req['op']} failed: {type(exc).__name__}: {exc}. "
                         f"Details are in {inference.log_file(ws)}."}


class _Watch:
    """Ends the process when its owner is gone or no request came for the idle time."""

    def __init__(self, ws: Workspace, idle_s: float) -> None:
        self.ws, self.idle_s = ws, idle_s
        self.last = time.monotonic()
        self.busy = False

    def run(self) -> None:
        lease = os.environ.get(warm.ENV_WARM_OWNER)
        while True:
            time.sleep(OWNER_CHECK_S)
            idle = not self.busy and time.monotonic() - self.last > self.idle_s
            if idle or not warm.owner_alive(lease):
                inference.info_file(self.ws).unlink(missing_ok=True)
                sys.stdout.flush()
                os._exit(0)


def serve(ws: Workspace) -> int:
    """Import Keras, listen, and answer requests until the owner is gone or idle time passes."""
    name = backend.default()
    backend.activate(name)
    backend.skip_unused_imports(name)
    # Imported once, before the service listens: no request pays for them.
    import keras  # noqa: F401

    import tlcore.engine.feed  # noqa: F401
    import tlcore.engine.runmodel  # noqa: F401
    import tlcore.results.export  # noqa: F401
    import tlcore.results.predict  # noqa: F401

    key = inference.new_key()
    watch = _Watch(ws, warm.warm_idle_seconds())
    with Listener(("127.0.0.1", 0), authkey=bytes.fromhex(key)) as listener:
        _write_private(inference.info_file(ws), json.dumps(
            {"pid": os.getpid(), "port": listener.address[1], "key": key}))
        inference.start_file(ws).unlink(missing_ok=True)
        threading.Thread(target=watch.run, daemon=True).start()
        while True:
            try:
                conn = listener.accept()
            except (AuthenticationError, OSError, EOFError):
                continue  # a caller without the key, or one that hung up
            with conn:
                watch.busy = True
                try:
                    conn.send(answer(ws, conn.recv()))
                except (OSError, EOFError):
                    pass  # the page went away mid-request
                finally:
                    watch.busy, watch.last = False, time.monotonic()


def main() -> int:
    """Serve the workspace of `$TLCORE_HOME`; 2 on a bad environment."""
    try:
        return serve(Workspace.from_env())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
