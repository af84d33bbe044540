"""Benchmark: tlcore against the plain Keras transfer-learning recipe, same data, same run.

    python -m bench.recipe [--size 64] [--train 3000] [--val 1000] [--epochs 10]
                           [--ft-epochs 3] [--weights PATH|none] [--out docs/benchmarks.md]

In one process, on the same decoded images, config and seed:

* floor  `model.predict` of the frozen VGG16 base over train+val held in memory:
         one forward pass, the least any frozen-base training must pay;
* A      the plain Keras recipe as people write it: `VGG16(include_top=False)` frozen,
         Flatten -> Dense(256, relu) -> Dropout(0.5) -> Dense(classes, softmax),
         `model.fit` for E epochs on the in-memory arrays;
* B      the same config through `tlcore.train.run_training`, cold feature cache;
* C      a second tlcore run on the same data with another head, warm cache;
* D      phase 2: fine-tune block 5 for F epochs, plain Keras (continuing A) vs tlcore.

Data: Fashion-MNIST from ../shared/data/fashion-mnist when present (or
$TLCORE_BENCH_FASHION), generated shapes otherwise. Weights: --weights, else
$TLCORE_VGG16_WEIGHTS, else ../shared/weights/vgg16_imagenet_notop.weights.h5 when
present, else random init. Results are printed and written as a section of
docs/benchmarks.md, replacing an earlier section for the same device and size.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED_WEIGHTS = (Path(__file__).resolve().parents[2] / "shared" / "weights"
                  / "vgg16_imagenet_notop.weights.h5")
ROOT = Path(__file__).resolve().parents[1]


def default_weights() -> str:
    env = os.environ.get("TLCORE_VGG16_WEIGHTS")
    if env:
        return env
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.exists() else "none"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.recipe", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--train", type=int, default=3000, help="training images")
    p.add_argument("--val", type=int, default=1000, help="validation images")
    p.add_argument("--epochs", type=int, default=10, help="frozen-base epochs (E)")
    p.add_argument("--ft-epochs", type=int, default=3, help="block-5 fine-tuning epochs (F)")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--weights", default=default_weights(), help="weights file or 'none'")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    return p.parse_args(argv)


def prepare(args: argparse.Namespace, ws: Any) -> tuple[str, str]:
    """Import the benchmark dataset into `ws`; returns (dataset name, description)."""
    from bench import data
    from tlcore import data as datasets_api

    with tempfile.TemporaryDirectory() as tmp:
        folder, description = data.write_class_folders(Path(tmp) / "src", args.train + args.val)
        datasets_api.import_dataset(folder, "bench", val=args.val / (args.train + args.val),
                                    test=0.0, ws=ws)
    return "bench", description


def plain_keras_recipe(x, y, xv, yv, classes: int, args: argparse.Namespace) -> dict[str, Any]:
    """A and D's plain-Keras half: the recipe as written in tutorials."""
    import keras
    from keras.applications.vgg16 import VGG16, preprocess_input

    keras.utils.set_random_seed(0)
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
    a_time = time.perf_counter() - start

    # D, plain: unfreeze block 5, recompile at a low rate, continue.
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer.name.startswith("block5")
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    ft = model.fit(x_in, y, batch_size=args.batch, epochs=args.ft_epochs,
                   validation_data=(xv_in, yv), verbose=2)
    d_time = time.perf_counter() - start
    keras.backend.clear_session()
    return {"A_time": a_time, "A_val": max(hist.history["val_accuracy"]),
            "D_time": d_time, "D_val": max(ft.history["val_accuracy"])}


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
    from tlcore import train
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-") as home:
        os.environ["TLCORE_HOME"] = home
        report = run(args, home)
    print(report)
    if args.out:
        write_section(Path(args.out), f"{report.device} · {args.size} px", report.text)
    return 0


class Report:
    """The rendered markdown and the device it was measured on."""

    def __init__(self, device: str, text: str) -> None:
        self.device, self.text = device, text

    def __str__(self) -> str:
        return self.text


def run(args: argparse.Namespace, home: str) -> Report:
    """Run floor, A, B, C and D in a fresh workspace at `home`."""
    from tlcore import cache, imagecache
    from tlcore import data as datasets_api
    from tlcore.config import RunConfig
    from tlcore.model import configure_devices
    from tlcore.workspace import Workspace

    ws = Workspace.from_env(home)
    device = configure_devices()["device"]
    name, description = prepare(args, ws)
    manifest = datasets_api.load_manifest(name, ws)
    x, y = imagecache.split_arrays(ws, manifest, "train", args.size)
    xv, yv = imagecache.split_arrays(ws, manifest, "val", args.size)
    x, xv = x[:], xv[:]  # the plain recipe holds its arrays in memory
    classes = len(manifest["classes"])
    print(f"data: {description}; train {len(y)}, val {len(yv)}, {args.size}px; "
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
    return Report(device, render(args, description, device, results, b, c, d, len(y), len(yv)))


def render(args, description, device, r, b, c, d, n_train, n_val) -> str:
    """The markdown section for docs/benchmarks.md."""
    d_tl_epoch = sum(d["phase2_epoch_times"]) / max(1, len(d["phase2_epoch_times"]))
    d_plain_epoch = r["D_time"] / args.ft_epochs
    lines = [
        f"Data: {description}; {n_train} train / {n_val} val at {args.size} px. "
        f"Weights: {'ImageNet' if args.weights != 'none' else 'random init'}. "
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
    ]
    return "\n".join(lines)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the `## title` section of a markdown file."""
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nFigures from `python -m bench.recipe` (see its docstring). Each "
        "section is one device and image size; rerunning replaces it.\n")
    section = f"## {title}\n\n{body}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else (
        text.rstrip("\n") + "\n\n" + section)
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
