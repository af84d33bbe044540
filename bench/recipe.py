"""Benchmark: tlcore against the plain Keras transfer-learning recipe, same data, same run.

    python -m bench.recipe [--zip FILE.zip|''] [--size 64] [--train 3000] [--val 1000]
                           [--epochs 10] [--ft-epochs 3] [--batch 32] [--weights PATH|none]
                           [--repeats 3] [--seeds 3] [--out docs/benchmarks.md]

In one process, on the same decoded images, config and seed:

* floor  `model.predict` of the frozen VGG16 base over train+val held in memory:
         one forward pass, the least any frozen-base training must pay;
* A      the plain Keras recipe as people write it: `VGG16(include_top=False)` frozen,
         Flatten -> Dense(256, relu) -> Dropout(0.5) -> Dense(classes, softmax),
         `model.fit` for E epochs on the in-memory arrays;
* B      the same config through `tlcore.engine.train.run_training`, cold feature cache;
* C      a second tlcore run on the same data with another head, warm cache;
* D      phase 2: fine-tune block 5 for F epochs, plain Keras (continuing A) vs tlcore.

Then the light-runs figures, each against its target:

* warm head-only runs through the CLI as a whole process, `python -m tlcore train`
  spawned and timed to its exit (median of --repeats runs, other heads than B), next
  to the time of `python -c "import tensorflow, keras"` and of `python -c "import
  tlcore.engine.train"` (the imports of the worker the CLI starts; medians of --repeats);
* the bytes under `runs/<id>/` of those runs;
* B / floor and the phase-2 epoch ratio from above;
* best val accuracy of A and B over --seeds seeds (seed 0 is the timed pair; B's
  other seeds train on the warm cache, A's train in full);
* launch to first epoch row through `launch.launch` with a warm and a cold worker
  (`bench.warm_start`).

Data: the upload zip --zip (default ../shared/data/fashion_mnist_600.zip when
present) imported with the default splits; with `--zip ''` or no such file,
Fashion-MNIST from ../shared/data/fashion-mnist (or $TLCORE_BENCH_FASHION), with
--train and --val images, else generated shapes. Weights: --weights, else
$TLCORE_VGG16_WEIGHTS, else ../shared/weights/vgg16_imagenet_notop.weights.h5 when
present, else random init. Results are printed and written as a section of
docs/benchmarks.md, replacing an earlier section for the same device, size and data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tlcore.errors import TLCoreError

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_WEIGHTS = SHARED / "weights" / "vgg16_imagenet_notop.weights.h5"
SHARED_ZIP = SHARED / "data" / "fashion_mnist_600.zip"
ROOT = Path(__file__).resolve().parents[1]

# The light-runs targets.
CLI_WARM_MAX_S = 5.0
A_OVER_CLI_MIN = 20.0
CLI_BEYOND_IMPORTS_MAX_S = 1.5
RUN_FILES_MAX_BYTES = 5_000_000
B_OVER_FLOOR_MAX = 1.2
PHASE2_SPEEDUP_MIN = 4.0
VAL_GAP_MAX_POINTS = 2.0
WARM_FIRST_EPOCH_MAX_S = 2.0
# Heads of the warm CLI runs: flatten + Dense(units), each other than B's 256.
CLI_HEAD_UNITS = (128, 96, 64, 48, 32)

Row = tuple[str, str, str, str]  # figure, measured, target, met


def default_weights() -> str:
    env = os.environ.get("TLCORE_VGG16_WEIGHTS")
    if env:
        return env
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.exists() else "none"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.recipe", description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(SHARED_ZIP) if SHARED_ZIP.exists() else "",
                   help="upload zip of class folders, imported with the default splits "
                        "('' for Fashion-MNIST or generated data)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--train", type=int, default=3000, help="training images (without --zip)")
    p.add_argument("--val", type=int, default=1000, help="validation images (without --zip)")
    p.add_argument("--epochs", type=int, default=10, help="frozen-base epochs (E)")
    p.add_argument("--ft-epochs", type=int, default=3, help="block-5 fine-tuning epochs (F)")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--weights", default=default_weights(), help="weights file or 'none'")
    p.add_argument("--repeats", type=int, default=3,
                   help="warm CLI runs and timings of each import (medians are reported)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the A vs B accuracy figure")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.seeds < 1:
        p.error(f"--repeats and --seeds must be >= 1. Received: --repeats {args.repeats}, "
                f"--seeds {args.seeds}")
    return args


def prepare(args: argparse.Namespace, ws: Any) -> tuple[str, str, str]:
    """Import the benchmark dataset into `ws`.

    Returns:
        `(dataset name, description, short label for the section title)`.
    """
    from bench import data
    from tlcore import data as datasets_api

    if args.zip:
        datasets_api.import_dataset(args.zip, "bench", ws=ws)
        manifest = datasets_api.load_manifest("bench", ws)
        zip_name = Path(args.zip).name
        return "bench", (f"upload zip {zip_name} ({len(manifest['images'])} images, "
                         f"{len(manifest['classes'])} classes), imported with the default "
                         "splits"), zip_name
    with tempfile.TemporaryDirectory() as tmp:
        folder, description = data.write_class_folders(Path(tmp) / "src", args.train + args.val)
        datasets_api.import_dataset(folder, "bench", val=args.val / (args.train + args.val),
                                    test=0.0, ws=ws)
    return "bench", description, description.split(" (")[0]


def EpochTimes() -> Any:  # noqa: N802  (a Keras callback, built once Keras is imported)
    """A Keras callback whose `seconds` lists each epoch's wall time."""
    import keras

    class Times(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    return Times()


def plain_keras_recipe(x, y, xv, yv, classes: int, args: argparse.Namespace, seed: int = 0,
                       fine_tune: bool = True) -> dict[str, Any]:
    """A and D's plain-Keras half: the recipe as written in tutorials.

    Args:
        seed: `keras.utils.set_random_seed` before the model is built.
        fine_tune: Also run D's plain half (block 5 for F epochs, continuing A); its
            epochs' wall times are `D_epoch_times`.
    """
    import keras
    from keras.applications.vgg16 import VGG16, preprocess_input

    keras.utils.set_random_seed(seed)
    weights = None if args.weights == "none" else args.weights
    start = time.perf_counter()
    x_in = preprocess_input(x.astype("float32"))
    xv_in = preprocess_input(xv.astype("float32"))
    base = VGG16(weights=weights, include_top=False, input_shape=x.shape[1:])
    base.trainable = False
    model = keras.Sequential([
        keras.Input(x.shape[1:]), base, keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x_in, y, batch_size=args.batch, epochs=args.epochs,
                     validation_data=(xv_in, yv), verbose=2)
    out = {"A_time": time.perf_counter() - start, "A_val": max(hist.history["val_accuracy"])}
    if fine_tune:
        # D, plain: unfreeze block 5, recompile at a low rate, continue.
        base.trainable = True
        for layer in base.layers:
            layer.trainable = layer.name.startswith("block5")
        model.compile(optimizer=keras.optimizers.Adam(1e-5),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        start, times = time.perf_counter(), EpochTimes()
        ft = model.fit(x_in, y, batch_size=args.batch, epochs=args.ft_epochs,
                       validation_data=(xv_in, yv), verbose=2, callbacks=[times])
        out.update(D_time=time.perf_counter() - start, D_val=max(ft.history["val_accuracy"]),
                   D_epoch_times=times.seconds)
    keras.backend.clear_session()
    return out


def floor_forward(x, xv, args: argparse.Namespace) -> dict[str, float]:
    """One `predict` pass of the frozen base over train+val held in memory."""
    import keras
    import numpy as np
    from keras.applications.vgg16 import VGG16, preprocess_input

    weights = None if args.weights == "none" else args.weights
    base = VGG16(weights=weights, include_top=False, input_shape=x.shape[1:])
    both = preprocess_input(np.concatenate([x, xv]).astype("float32"))
    base.predict(both[:args.batch], verbose=0)  # build and trace outside the timing
    start = time.perf_counter()
    base.predict(both, batch_size=64, verbose=0)
    seconds = time.perf_counter() - start
    keras.backend.clear_session()
    return {"floor_time": seconds, "floor_ips": len(both) / seconds}


def tlcore_run(ws: Any, config: Any) -> dict[str, Any]:
    """Train one run in this process; wall time, best val accuracy, per-phase epoch times."""
    from tlcore.engine import train
    from tlcore.store import COMPLETED, RunStore

    store = RunStore(ws)
    run_id = store.create_run(config)
    start = time.perf_counter()
    result = train.run_training(run_id, ws)
    seconds = time.perf_counter() - start
    store.update_run(run_id, status=COMPLETED)
    rows = store.metrics(run_id)
    return {"time": seconds, "val": result["best_val_accuracy"],
            "phase2_epoch_times": [r["epoch_time"] for r in rows if r["phase"] == 2]}


def child_env(ws: Any) -> dict[str, str]:
    """The environment of the benchmark's child processes: its workspace, no warm workers."""
    env = dict(os.environ)
    env.update(TLCORE_HOME=str(ws.root), TLCORE_WARM_WORKERS="0", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    return env


def timed_child(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `python argv...` to its exit; returns (wall seconds from spawn to exit, stdout).

    Raises:
        TLCoreError: if the child exits with another status than 0.
    """
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode:
        tail = " / ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
        raise TLCoreError(f"`python {' '.join(argv)}` must exit with status 0. Received: "
                          f"status {proc.returncode} ({tail})")
    return seconds, proc.stdout


def import_seconds(code: str, env: dict[str, str], repeats: int) -> float:
    """Median wall time of `python -c code` over `repeats` fresh processes."""
    return statistics.median(timed_child(["-c", code], env)[0] for _ in range(repeats))


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cli_runs(ws: Any, base_cfg: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Warm head-only runs through `python -m tlcore train`, each timed as a whole process.

    Run i uses a flatten + Dense(CLI_HEAD_UNITS[i]) head, so no run repeats B's model.

    Returns:
        `{"times": [seconds], "bytes": [run folder bytes], "heads": [dense units]}`.
    """
    env = child_env(ws)
    out: dict[str, list] = {"times": [], "bytes": [], "heads": []}
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-cli-") as tmp:
        for i in range(repeats):
            units = CLI_HEAD_UNITS[i % len(CLI_HEAD_UNITS)]
            path = Path(tmp) / f"head-{i}.json"
            path.write_text(json.dumps(
                {**base_cfg, "head": {"pooling": "flatten", "dense": [units], "dropout": 0.5}}))
            seconds, stdout = timed_child(
                ["-m", "tlcore", "train", "--config", str(path), "--name", f"cli-warm-{i}"], env)
            run_id = stdout.split()[0]
            out["times"].append(seconds)
            out["bytes"].append(folder_bytes(ws.run(run_id).dir))
            out["heads"].append(units)
            print(f"warm CLI run {i + 1}/{repeats} (Dense {units}): {seconds:.1f}s, "
                  f"{out['bytes'][-1] / 1e6:.2f} MB", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-") as home:
        os.environ["TLCORE_HOME"] = home
        report = run(args, home)
    print(report)
    if args.out:
        write_section(Path(args.out), report.title, report.text)
    return 0


class Report:
    """The rendered markdown and the title of its section (device, size, data)."""

    def __init__(self, title: str, text: str) -> None:
        self.title, self.text = title, text

    def __str__(self) -> str:
        return f"## {self.title}\n\n{self.text}"


def run(args: argparse.Namespace, home: str) -> Report:
    """Run floor, A, B, C, D and the light-runs figures in a fresh workspace at `home`."""
    from tlcore import data as datasets_api
    from tlcore.backend import configure_devices
    from tlcore.cache import images as imagecache
    from tlcore.cache import lru as cache
    from tlcore.config import RunConfig
    from tlcore.workspace import Workspace

    ws = Workspace.from_env(home)
    device = configure_devices()["device"]
    name, description, label = prepare(args, ws)
    manifest = datasets_api.load_manifest(name, ws)
    x, y = imagecache.split_arrays(ws, manifest, "train", args.size)
    xv, yv = imagecache.split_arrays(ws, manifest, "val", args.size)
    x, xv = x[:], xv[:]  # the plain recipe holds its arrays in memory
    classes = len(manifest["classes"])
    n_test = sum(1 for image in manifest["images"] if image["split"] == "test")
    print(f"data: {description}; train {len(y)}, val {len(yv)}, test {n_test}, {args.size}px; "
          f"weights {args.weights}; device {device}", flush=True)

    results: dict[str, Any] = {}
    results.update(floor_forward(x, xv, args))
    print(f"floor: {results['floor_time']:.1f}s ({results['floor_ips']:.1f} images/s)", flush=True)
    results.update(plain_keras_recipe(x, y, xv, yv, classes, args))
    print(f"A plain Keras: {results['A_time']:.1f}s", flush=True)

    base_cfg = {
        "dataset": name, "image_size": args.size, "base": {"weights": args.weights},
        "head": {"pooling": "flatten", "dense": [256], "dropout": 0.5},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "early_stopping_patience": 0,
                  "class_weight": "none", "seed": 0},
    }
    cache.clear(ws, "features")
    b = tlcore_run(ws, RunConfig.from_dict(base_cfg))
    print(f"B tlcore cold: {b['time']:.1f}s", flush=True)
    c = tlcore_run(ws, RunConfig.from_dict(
        {**base_cfg, "head": {"pooling": "avg", "dense": [512], "dropout": 0.3}}))
    print(f"C tlcore warm: {c['time']:.1f}s", flush=True)
    d = tlcore_run(ws, RunConfig.from_dict(
        {**base_cfg, "fine_tune": {"blocks": 1, "epochs": args.ft_epochs, "learning_rate": 1e-5}}))
    print(f"D tlcore phase 1 + 2: {d['time']:.1f}s", flush=True)

    cli = cli_runs(ws, base_cfg, args.repeats)
    env = child_env(ws)
    imports = {"tf": import_seconds("import tensorflow, keras", env, args.repeats),
               "train": import_seconds("import tlcore.engine.train", env, args.repeats)}
    print(f"imports: tensorflow+keras {imports['tf']:.1f}s, tlcore.engine.train "
          f"{imports['train']:.1f}s", flush=True)

    acc = {"A": [results["A_val"]], "B": [b["val"]]}
    for seed in range(1, args.seeds):
        cfg = {**base_cfg, "train": {**base_cfg["train"], "seed": seed}}
        acc["B"].append(tlcore_run(ws, RunConfig.from_dict(cfg))["val"])
        acc["A"].append(plain_keras_recipe(x, y, xv, yv, classes, args, seed=seed,
                                           fine_tune=False)["A_val"])
        print(f"seed {seed}: A {acc['A'][-1]:.3f}, B {acc['B'][-1]:.3f}", flush=True)

    light = light_rows(args, results, b, d, cli, imports, acc)
    light += warm_start_rows(ws, RunConfig.from_dict(
        {**base_cfg, "head": {"pooling": "flatten", "dense": [CLI_HEAD_UNITS[0]],
                              "dropout": 0.5}}))
    text = render(args, description, device, results, b, c, d, (len(y), len(yv), n_test), light)
    return Report(f"{device} · {args.size} px · {label}", text)


def row(figure: str, measured: str, target: str = "—", met: bool | None = None) -> Row:
    """One line of the light-runs table; `met` None for a figure without a target."""
    return figure, measured, target, "—" if met is None else ("yes" if met else "no")


def spread(values: list[float]) -> str:
    """`mean ± standard deviation` (0 for one value), three decimals."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def light_rows(args, r, b, d, cli, imports, acc) -> list[Row]:
    """The light-runs figures measured by `run`, each with its target."""
    cli_s = statistics.median(cli["times"])
    beyond = cli_s - imports["train"]
    b_floor = b["time"] / r["floor_time"]
    phase2 = (r["D_time"] / args.ft_epochs) / phase2_epoch(d)
    gap = 100 * (statistics.mean(acc["B"]) - statistics.mean(acc["A"]))
    n = len(cli["times"])
    heads = "/".join(str(u) for u in cli["heads"])
    seeds = f"seeds 0-{args.seeds - 1}" if args.seeds > 1 else "seed 0"
    return [
        row(f"Warm head-only run, `python -m tlcore train` spawn to exit (median of {n}; "
            f"flatten + Dense {heads})", f"{cli_s:.2f} s", f"≤ {CLI_WARM_MAX_S:g} s",
            cli_s <= CLI_WARM_MAX_S),
        row("A / warm CLI run", f"{r['A_time'] / cli_s:.1f}x", f"≥ {A_OVER_CLI_MIN:g}x",
            r["A_time"] / cli_s >= A_OVER_CLI_MIN),
        row(f"`python -c \"import tensorflow, keras\"` (median of {args.repeats})",
            f"{imports['tf']:.2f} s"),
        row(f"`python -c \"import tlcore.engine.train\"`, the worker's imports (median of "
            f"{args.repeats})", f"{imports['train']:.2f} s"),
        row("Warm CLI run beyond the worker's imports", f"{beyond:.2f} s",
            f"≤ {CLI_BEYOND_IMPORTS_MAX_S:g} s", beyond <= CLI_BEYOND_IMPORTS_MAX_S),
        row(f"Run files of a head-only run, `runs/<id>/` (largest of {n})",
            f"{max(cli['bytes']) / 1e6:.2f} MB", f"≤ {RUN_FILES_MAX_BYTES / 1e6:g} MB",
            max(cli["bytes"]) <= RUN_FILES_MAX_BYTES),
        row("Cold run B / floor", f"{b_floor:.2f}", f"≤ {B_OVER_FLOOR_MAX:g}",
            b_floor <= B_OVER_FLOOR_MAX),
        row("Phase-2 (block 5) epoch, plain Keras / tlcore", f"{phase2:.1f}x",
            f"≥ {PHASE2_SPEEDUP_MIN:g}x", phase2 >= PHASE2_SPEEDUP_MIN),
        row(f"Best val accuracy A, {seeds} ({_values(acc['A'])})", spread(acc["A"])),
        row(f"Best val accuracy B, {seeds} ({_values(acc['B'])})", spread(acc["B"])),
        row("B − A, mean best val accuracy", f"{gap:+.1f} points",
            f"within ±{VAL_GAP_MAX_POINTS:g} points", abs(gap) <= VAL_GAP_MAX_POINTS),
    ]


def warm_start_rows(ws: Any, config: Any) -> list[Row]:
    """Launch to first epoch row through `launch.launch` (the dashboard's path).

    Args:
        ws: The benchmark's workspace, its feature cache warm.
        config: The `RunConfig` of a head-only run on it.

    Returns:
        Rows for a warm worker (with its target) and a cold one.
    """
    from bench.warm_start import measure_warm_start

    result = measure_warm_start(ws, config)
    warm, cold = result["warm_first_epoch_s"], result["cold_first_epoch_s"]
    print(f"launch to first epoch: warm worker {warm:.1f}s, cold {cold:.1f}s", flush=True)
    return [
        row("Launch → first epoch, warm worker (`launch.launch`, the dashboard's path)",
            f"{warm:.2f} s", f"≤ {WARM_FIRST_EPOCH_MAX_S:g} s", warm <= WARM_FIRST_EPOCH_MAX_S),
        row("Launch → first epoch, cold worker", f"{cold:.2f} s"),
    ]


def phase2_epoch(d: dict[str, Any]) -> float:
    """tlcore's mean phase-2 epoch time in run D."""
    return sum(d["phase2_epoch_times"]) / max(1, len(d["phase2_epoch_times"]))


def render(args, description, device, r, b, c, d, counts, light) -> str:
    """The markdown section for docs/benchmarks.md."""
    n_train, n_val, n_test = counts
    d_tl_epoch = phase2_epoch(d)
    d_plain_epoch = r["D_time"] / args.ft_epochs
    lines = [
        f"Data: {description}; {n_train} train / {n_val} val / {n_test} test at {args.size} "
        f"px. Weights: {'ImageNet' if args.weights != 'none' else 'random init'}. "
        f"E = {args.epochs} frozen epochs, F = {args.ft_epochs} block-5 epochs, batch "
        f"{args.batch}. Device: {device}; {os.cpu_count()} CPU cores; Python "
        f"{platform.python_version()}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| run | wall time (s) | best val accuracy | speed-up vs A |",
        "|---|---:|---:|---:|",
        f"| A plain Keras recipe, {args.epochs} frozen epochs | {r['A_time']:.1f} | "
        f"{r['A_val']:.3f} | 1.0x |",
        f"| B tlcore, same config, cold cache | {b['time']:.1f} | {b['val']:.3f} | "
        f"{r['A_time'] / b['time']:.1f}x |",
        f"| C tlcore, other head (GAP, 512), warm cache | {c['time']:.1f} | {c['val']:.3f} | "
        f"{r['A_time'] / c['time']:.1f}x |",
        "",
        f"Frozen forward pass over train+val: `model.predict` on in-memory tensors "
        f"{r['floor_time']:.1f} s ({r['floor_ips']:.1f} images/s), the floor for B. "
        f"B / floor = {b['time'] / r['floor_time']:.2f}.",
        "",
        "| phase 2 (fine-tune block 5) | plain Keras | tlcore | ratio |",
        "|---|---:|---:|---:|",
        f"| seconds per epoch | {d_plain_epoch:.1f} | {d_tl_epoch:.1f} | "
        f"{d_plain_epoch / d_tl_epoch:.1f}x |",
        f"| best val accuracy after phase 2 | {r['D_val']:.3f} | {d['val']:.3f} | |",
        "",
        f"tlcore's D run in total (phase 1 on the warm cache, the block-4 feature pass, "
        f"{args.ft_epochs} phase-2 epochs): {d['time']:.1f} s; plain Keras phase 2 alone: "
        f"{r['D_time']:.1f} s.",
        "",
        "### Light runs",
        "",
        "| figure | measured | target | met |",
        "|---|---:|---:|:---:|",
        *(f"| {' | '.join(cells)} |" for cells in light),
        "",
        "How these were measured. A, B, C and D train in the benchmark's own process (B, C "
        "and D through `tlcore.engine.train.run_training`, without a worker). The warm CLI runs "
        "come "
        "after them, so the frozen features of this data, size and base are cached: each is "
        "`python -m tlcore train --config FILE.json --name ...` started with "
        "`subprocess.run` and timed from spawn to exit, which covers the CLI process, the "
        "worker it launches (`python -m tlcore.workers.run`, importing TensorFlow), training, test "
        "scoring and the stored evaluation; the environment sets `TLCORE_HOME` to the "
        "benchmark's workspace, `TLCORE_WARM_WORKERS=0`, `TF_CPP_MIN_LOG_LEVEL=2` and "
        "`PYTHONPATH` to the repository. The CLI process does not import TensorFlow, its "
        "worker does, so \"beyond the worker's imports\" is the median CLI time minus the "
        "median time of a fresh `python -c \"import tlcore.engine.train\"` process; the "
        "`import tensorflow, keras` time is shown for scale. Run files are every byte under "
        "`runs/<id>/` of a CLI run (trained weights, `base.json`, config, history, log, "
        "evaluation); the frozen base is stored once under `bases/` and not counted; MB "
        "is 10^6 bytes. Accuracy: the best val accuracy of each run; seed 0 is the timed "
        "pair A and B above, B's other seeds train on the warm cache and A's train in full; "
        "± is the standard deviation over seeds. Launch → first epoch: "
        "`bench.warm_start.measure_warm_start`, from `launch.launch` to the run's first "
        "metrics row in the store, with a worker already started and with none.",
    ]
    return "\n".join(lines)


def publish(title: str, text: str, out: str) -> None:
    """Print a benchmark's section, and write it into the markdown file `out` unless ''."""
    print(f"## {title}\n\n{text}")
    if out:
        write_section(Path(out), title, text)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the `## title` section of a markdown file."""
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nFigures from `python -m bench.recipe` (see its docstring). Each "
        "section is one device, image size and data set; rerunning replaces it.\n")
    section = f"## {title}\n\n{body}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else (
        text.rstrip("\n") + "\n\n" + section)
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
