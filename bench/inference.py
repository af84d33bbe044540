"""A click on a finished run, and a launch: against a bare `import keras` in the same run.

    python -m bench.inference [--repeats 5] [--zip ZIP] [--images N] [--weights FILE|none]
                              [--out docs/benchmarks.md]

In a fresh workspace, the benchmark imports fashion_mnist_600.zip (or generated
shapes without it), trains one run at 64 px in this process (which also caches
the frozen features), then times, all in one run so the ratios compare like with
like:

* a bare `import keras` in a fresh process (median of `--repeats`);
* classifying one image with Grad-CAM as the pages used to, `python -m tlcore
  predict RUN IMAGE --json --gradcam` from spawn to exit (median of `--repeats`);
* the same request to the inference service (`tlcore.runs.inference.request`, the
  pages' path): its start, the first request (which loads the model), then the
  median of `--repeats` requests, with and without Grad-CAM;
* an export as a Keras zip, through the CLI and through the service;
* launch → first epoch of a run with another head, features cached, on a warm
  worker and on a cold one (`bench.warm_start.measure_warm_start`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.recipe import (
    ROOT,
    SHARED_ZIP,
    child_env,
    default_weights,
    import_seconds,
    publish,
    timed_child,
)

PREDICT_MAX = 0.25  # of a bare import keras, Grad-CAM included
FIRST_EPOCH_MAX = 0.5


def _config(dataset: str, weights: str, units: int) -> Any:
    from tlcore.config import RunConfig

    return RunConfig.from_dict({
        "dataset": dataset, "image_size": 64, "base": {"weights": weights},
        "head": {"dense": [units]}, "train": {"epochs": 3, "batch_size": 32}})


def _image(ws: Any, dataset: str) -> bytes:
    from tlcore import data as datasets_api

    files = datasets_api.sample_files(dataset, per_class=1, ws=ws)
    return next(iter(files.values()))[0].read_bytes()


def _service(ws: Any, run_id: str, image: bytes, repeats: int) -> dict[str, float]:
    from tlcore.runs import inference

    os.environ[inference.ENV_INFER] = "1"
    start = time.perf_counter()
    inference.ensure_service(ws)
    while not inference.info_file(ws).exists():
        time.sleep(0.01)
    out = {"service_start_s": time.perf_counter() - start}

    def ask(gradcam: bool) -> float:
        begin = time.perf_counter()
        inference.request(ws, "predict", run_id=run_id, images=[image], k=3, gradcam=gradcam)
        return time.perf_counter() - begin

    out["first_request_s"] = ask(True)
    out["predict_gradcam_s"] = statistics.median(ask(True) for _ in range(repeats))
    out["predict_s"] = statistics.median(ask(False) for _ in range(repeats))
    begin = time.perf_counter()
    inference.request(ws, "export", run_id=run_id, fmt="keras", out=str(ws.root / "svc.zip"))
    out["export_s"] = time.perf_counter() - begin
    return out


def measure(ws: Any, args: argparse.Namespace) -> tuple[dict[str, float], str]:
    """Every figure of the section, and a description of the data."""
    from bench import data
    from bench.warm_start import measure_warm_start
    from tlcore import data as datasets_api
    from tlcore.engine import train
    from tlcore.runs import inference
    from tlcore.store import COMPLETED, RunStore

    repeats, weights = args.repeats, args.weights
    if args.zip:
        datasets_api.import_dataset(args.zip, "bench", ws=ws)
        described = f"upload zip {Path(args.zip).name}"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder, described = data.write_class_folders(Path(tmp) / "src", args.images)
            datasets_api.import_dataset(folder, "bench", ws=ws)
    store = RunStore(ws)
    run_id = store.create_run(_config("bench", weights, 256))
    train.run_training(run_id, ws)
    store.update_run(run_id, status=COMPLETED)
    env = child_env(ws)
    figures = {"import_keras_s": import_seconds("import keras", env, repeats)}
    image = _image(ws, "bench")
    path = ws.root / "one.png"
    path.write_bytes(image)
    figures["cli_predict_s"] = statistics.median(
        timed_child(["-m", "tlcore", "predict", run_id, str(path), "--json", "--gradcam"],
                    env)[0] for _ in range(repeats))
    figures["cli_export_s"] = timed_child(
        ["-m", "tlcore", "export", run_id, "--format", "keras", "--out",
         str(ws.root / "cli.zip")], env)[0]
    try:
        figures.update(_service(ws, run_id, image, repeats))
    finally:
        inference.stop_service(ws)
    starts = measure_warm_start(ws, _config("bench", weights, 128))
    figures.update(starts)
    return figures, f"{described}, 64 px, weights {Path(weights).name}, Flatten + Dense 256"


def render(f: dict[str, float], described: str, repeats: int) -> str:
    """The section's markdown."""
    bare = f["import_keras_s"]

    def line(name: str, key: str) -> str:
        return f"| {name} | {f[key]:.2f} | {f[key] / bare:.2f}x |"

    rows = "\n".join([
        line("bare `import keras`, fresh process (median)", "import_keras_s"),
        line("predict 1 image + Grad-CAM, `tlcore predict` process (before)", "cli_predict_s"),
        line("inference service start (imports Keras, once per dashboard)", "service_start_s"),
        line("first request to the service (loads the model)", "first_request_s"),
        line("predict 1 image + Grad-CAM, service (median)", "predict_gradcam_s"),
        line("predict 1 image, no Grad-CAM (a camera frame), service", "predict_s"),
        line("export as Keras zip, `tlcore export` process (before)", "cli_export_s"),
        line("export as Keras zip, service", "export_s"),
        line("launch → first epoch, features cached, cold worker", "cold_first_epoch_s"),
        line("launch → first epoch, features cached, warm worker", "warm_first_epoch_s"),
    ])
    predict = f["predict_gradcam_s"] / bare
    first = f["warm_first_epoch_s"] / bare
    return (
        f"Data: {described}; one run trained in the benchmark's process, then the figures "
        f"below in the same run, {repeats} repeats each; {os.cpu_count()} CPU cores, "
        f"Python {sys.version.split()[0]}. Measured {date.today().isoformat()} with "
        f"`python -m bench.inference`.\n\n"
        f"| figure | seconds | against a bare `import keras` |\n| --- | ---: | ---: |\n"
        f"{rows}\n\n| target | measured | met |\n| --- | ---: | --- |\n"
        f"| Predict one image, Grad-CAM included, ≤ {PREDICT_MAX}x a bare `import keras` | "
        f"{predict:.2f}x | {'yes' if predict <= PREDICT_MAX else 'no'} |\n"
        f"| Launch → first epoch, features cached, ≤ {FIRST_EPOCH_MAX}x | {first:.2f}x | "
        f"{'yes' if first <= FIRST_EPOCH_MAX else 'no'} |\n\n"
        "Floors. A prediction through the service is the image's decoding, one forward "
        "pass and, with Grad-CAM, one gradient pass of the model: it grows with the number "
        "and size of the images (about 1/55 s per image at 64 px on this CPU, 1/3 s at "
        "224 px) and not with the runs; a model not used lately is loaded once (the first "
        "request), and the service keeps the last four. Launch → first epoch with a warm "
        "worker is the hand-over, reading the cached features (memory-mapped) and building "
        "the head, then one epoch over the training features: it grows with the training "
        "images, not with Keras's import, which the warm worker paid before.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--zip", default=str(SHARED_ZIP) if SHARED_ZIP.exists() else "",
                   help="upload zip to import ('' for generated images)")
    p.add_argument("--images", type=int, default=600, help="generated images (without --zip)")
    p.add_argument("--weights", default=default_weights(), help="weights file or 'none'")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to only print)")
    args = p.parse_args(argv)
    # A worker may still be writing its run's last files as the benchmark ends.
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-", ignore_cleanup_errors=True) as home:
        os.environ["TLCORE_HOME"] = home
        from tlcore.workspace import Workspace

        figures, described = measure(Workspace.from_env(home), args)
    publish("Inference and launch · CPU · 64 px", render(figures, described, args.repeats),
            args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
