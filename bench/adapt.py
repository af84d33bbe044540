"""Benchmark: the domain adaptation lab on Fashion-MNIST under four changes of domain.

    python -m bench.adapt [--zip FILE.zip] [--size 64] [--weights PATH|none] [--epochs 5]
                          [--per-target 300] [--seeds 3] [--targets inverted,blurred,...]
                          [--out docs/benchmarks.md]

In a fresh workspace: the source dataset is the upload zip (default
../shared/data/fashion_mnist_600.zip; with `--zip ''`, images of the
Fashion-MNIST training set), and a source run trains on it through `python -m
tlcore train` (ImageNet weights, frozen base, flatten + Dense 256, a few
epochs). Each target is `--per-target` other images, from the Fashion-MNIST
test set (10 per class and seed, a different draw per seed), under one change
of domain: inverted (255 - x), blurred (Gaussian, radius 1.5), colour-tinted
(orange garments on blue) or rotated (90 degrees). Targets are imported with
their labels, which the lab hides from every method and from the choice and
uses only to score: `tlcore.adapt.adapt(run, target, seed=seed)` per target and seed.

Per target: the source model's accuracy, each method's, the unsupervised
choice's, mean ± standard deviation over the seeds, and the choice's gain over
no adaptation. Goal: the choice never worse than no adaptation by more than
the spread of its gain over the seeds, and better by more than that spread on
at least two targets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench import data as benchdata
from bench import recipe

TARGETS = ("inverted", "blurred", "tinted", "rotated")
TINT_SCALE = np.array([1.0, 0.55, 0.25])
TINT_SHIFT = np.array([0.0, 40.0, 90.0])
BLUR_RADIUS = 1.5


def transform(image: np.ndarray, kind: str) -> Image.Image:
    """One 28x28 grey Fashion-MNIST image under the change of domain `kind`."""
    grey = Image.fromarray(image, "L")
    if kind == "inverted":
        return Image.fromarray(255 - image, "L")
    if kind == "blurred":
        return grey.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    if kind == "rotated":
        return grey.rotate(90)
    if kind == "tinted":
        rgb = np.asarray(grey.convert("RGB"), np.float64) * TINT_SCALE + TINT_SHIFT
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    raise ValueError(f"kind must be one of {', '.join(TARGETS)}. Received: {kind!r}")


def write_target(root: Path, fashion: Path, kind: str, per_target: int, seed: int,
                 class_names: list[str]) -> Path:
    """`per_target` test-set images, as many per class, under `kind`, in class folders."""
    images = benchdata.read_idx(fashion / "t10k-images-idx3-ubyte.gz")
    labels = benchdata.read_idx(fashion / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(1000 + seed)
    per_class = per_target // len(class_names)
    for label, name in enumerate(class_names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in rng.choice(np.flatnonzero(labels == label), per_class, replace=False):
            transform(images[i], kind).save(folder / f"{i:05d}.png")
    return root


def class_names_of(manifest: dict) -> list[str]:
    """The source's class names in Fashion-MNIST label order (spelt as its folders spell them)."""
    def key(name: str) -> str:
        return re.sub(r"[^a-z]", "", name.lower())

    have = {key(c): c for c in manifest["classes"]}
    return [have.get(key(w)) or next(c for k, c in have.items() if k.startswith(key(w)))
            for w in benchdata.FASHION_CLASSES]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.adapt", description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(recipe.SHARED_ZIP) if recipe.SHARED_ZIP.exists() else "",
                   help="source upload zip ('' for Fashion-MNIST training images)")
    p.add_argument("--source", type=int, default=600, help="source images (without --zip)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--weights", default=recipe.default_weights(), help="weights file or 'none'")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the source run")
    p.add_argument("--per-target", type=int, default=300, help="images per target and seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"changes of domain, from {', '.join(TARGETS)}")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fashion = benchdata.fashion_dir()
    if fashion is None:
        raise SystemExit("bench.adapt needs the Fashion-MNIST IDX files (../shared/data/"
                         "fashion-mnist or $TLCORE_BENCH_FASHION) for its targets.")
    targets = [t for t in args.targets.split(",") if t]
    from tlcore import data as datasets_api
    from tlcore.adapt import adapt
    from tlcore.runs import device

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-adapt-") as home:
        os.environ["TLCORE_HOME"] = home
        from tlcore.workspace import Workspace

        ws = Workspace.from_env(home)
        where = device.device_info(ws)["device"]
        if args.zip:
            datasets_api.import_dataset(args.zip, "source", ws=ws)
            label = Path(args.zip).name
        else:
            folder, _ = benchdata.write_class_folders(Path(home) / "src", args.source)
            datasets_api.import_dataset(folder, "source", ws=ws)
            label = f"Fashion-MNIST {args.source}"
        manifest = datasets_api.load_manifest("source", ws)
        config = {"dataset": "source", "image_size": args.size,
                  "base": {"weights": args.weights},
                  "head": {"pooling": "flatten", "dense": [256], "dropout": 0.5},
                  "train": {"epochs": args.epochs, "batch_size": 32, "seed": 0,
                            "early_stopping_patience": 0}}
        (ws.root / "source.json").write_text(json.dumps(config))
        train_s, stdout = recipe.timed_child(
            ["-m", "tlcore", "train", "--config", str(ws.root / "source.json")],
            recipe.child_env(ws))
        run_id = stdout.split()[0]
        print(f"source run {run_id}: {train_s:.1f} s", flush=True)
        names = class_names_of(manifest)
        reports: dict[str, list[dict]] = {t: [] for t in targets}
        for seed in range(args.seeds):
            for kind in targets:
                name = f"{kind}-{seed}"
                folder = write_target(Path(home) / name, fashion, kind, args.per_target, seed,
                                      names)
                datasets_api.import_dataset(folder, name, ws=ws)
                began = time.perf_counter()
                report = adapt(run_id, name, seed=seed, ws=ws)
                report["wall_s"] = time.perf_counter() - began
                reports[kind].append(report)
                print(f"{name}: source {report['source_model']['target_accuracy']:.3f}, "
                      f"chosen {report['chosen']}, {report['wall_s']:.1f} s", flush=True)
    total = time.perf_counter() - started
    text = section(args, reports, label, where, total, train_s)
    recipe.publish(f"Domain adaptation · {where} · {args.size} px · {label}", text, args.out)
    return 0


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pct(values: list[float]) -> str:
    mean, sd = _mean_sd(values)
    return f"{mean * 100:.1f} ± {sd * 100:.1f}"


def section(args: argparse.Namespace, reports: dict[str, list[dict]], label: str, where: str,
            total: float, train_s: float) -> str:
    """The benchmark's markdown section: one row per target, the goal, the reading."""
    methods = [m["name"] for m in next(iter(reports.values()))[0]["methods"]]
    labels = {m["name"]: m["label"] for m in next(iter(reports.values()))[0]["methods"]}
    head = (["target", "source model"] + [labels[m] for m in methods]
            + ["unsupervised choice", "chosen (per seed)", "choice − none (points)", "goal"])
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 4)
             + " --- | ---: | --- |"]
    beats, never_worse, readings = 0, 0, []
    negative: dict[str, list[str]] = {}
    over_source = []
    for kind, runs in reports.items():
        acc = {m: [next(x["target_accuracy"] for x in r["methods"] if x["name"] == m)
                   for r in runs] for m in methods}
        chosen = [next(x["target_accuracy"] for x in r["methods"] if x["name"] == r["chosen"])
                  for r in runs]
        gains = [c - n for c, n in zip(chosen, acc["none"], strict=True)]
        gain, spread = _mean_sd(gains)
        ok = gain >= -spread
        better = gain > spread
        never_worse += ok
        beats += better
        verdict = "helped" if better else ("no clear change" if ok else "hurt")
        lines.append("| " + " | ".join(
            [kind, _pct([r["source_model"]["target_accuracy"] for r in runs])]
            + [_pct(acc[m]) for m in methods]
            + [_pct(chosen), ", ".join(r["chosen"] for r in runs),
               f"{gain * 100:+.1f} ± {spread * 100:.1f}", verdict]) + " |")
        for m in methods[1:]:
            mean, sd = _mean_sd([a - n for a, n in zip(acc[m], acc["none"], strict=True)])
            if mean < -sd:
                negative.setdefault(labels[m], []).append(kind)
        source = statistics.fmean(r["source_model"]["target_accuracy"] for r in runs)
        over_source.append(f"{kind} {(statistics.fmean(chosen) - source) * 100:+.1f}")
        best = max(methods, key=lambda m: statistics.fmean(acc[m]))
        pad = statistics.fmean(r["shift"]["overall"]["proxy_a_distance"] for r in runs)
        readings.append(f"{kind}: {verdict} (best method on the hidden labels: {labels[best]}, "
                        f"{statistics.fmean(acc[best]) * 100:.1f}%; "
                        f"shift {runs[0]['shift']['level']}, proxy A-distance {pad:.2f})")
    n = len(reports)
    seconds = [r["wall_s"] for runs in reports.values() for r in runs]
    goal_met = never_worse == n and beats >= min(2, n)
    return "\n".join([
        f"Source: {label}, a run trained with `python -m tlcore train` ({args.epochs} epochs, "
        f"{'ImageNet' if args.weights != 'none' else 'random'} weights, frozen base, flatten + "
        f"Dense 256; {train_s:.0f} s). Targets: {args.per_target} Fashion-MNIST test images "
        f"per target and seed ({args.per_target // 10} per class), a new draw per seed, "
        f"{args.seeds} seeds; their labels are hidden from the methods and the choice and "
        f"score only. Features: global average of block5_pool (512). Choice: "
        f"{next(iter(reports.values()))[0]['scorer']} (the default). Accuracies on the target "
        f"in %, mean ± standard deviation over the seeds. Device: {where}; "
        f"{os.cpu_count()} CPU cores; {total:.0f} s in all, {statistics.fmean(seconds):.1f} s "
        f"per adaptation (features, 6 methods, shift, the adapted run). Measured "
        f"{time.strftime('%Y-%m-%d')} with `python -m bench.adapt`.",
        "",
        *lines,
        "",
        f"Goal: the choice never worse than no adaptation by more than the spread of its gain "
        f"({never_worse} of {n} targets), better by more than that spread on at least two "
        f"targets ({beats} of {n}): {'met' if goal_met else 'not met'}.",
        "",
        *[f"* {r}" for r in readings],
        "",
        "Negative transfer (a method below no adaptation by more than the spread of its "
        "difference): " + ("; ".join(f"{m} on {', '.join(k)}" for m, k in negative.items())
                           or "none") + ". The choice against the source model (the run's own "
        "head on the unpooled features), in points: " + ", ".join(over_source) + ".",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
