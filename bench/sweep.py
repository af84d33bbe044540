"""Benchmark: a TPE sweep over head settings on a warm feature cache, end to end.

    python -m bench.sweep [--zip FILE.zip] [--size 64] [--trials 30] [--workers 2]
                          [--epochs 10] [--weights PATH|none] [--out docs/benchmarks.md]

In a fresh workspace with the upload zip (default ../shared/data/fashion_mnist_600.zip)
imported: first the recipe (flatten + Dense 256, dropout 0.5, Adam 1e-3, E epochs)
through `python -m tlcore train`, which also fills the feature cache; then
`python -m tlcore sweep start` over pooling, dense widths, dropout and learning
rate with --trials trials on --workers workers (`TLCORE_MAX_WORKERS` set to
match), timed from spawn to exit. Per trial, the overhead is its wall time in
the sweep worker (Optuna's start to complete) minus its epochs' own time (the
`epoch_time` of its metric rows: training and validation).

Targets: the sweep end to end within 60 s; the best trial's val accuracy at
least the recipe's; overhead per trial at most 1 s beyond its compute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from bench import recipe

SWEEP_MAX_S = 60.0
OVERHEAD_MAX_S = 1.0
SPACE = {"head.pooling": {"choices": ["flatten", "avg"]},
         "head.dense": {"choices": [[64], [256], [512]]},
         "head.dropout": {"low": 0.0, "high": 0.6},
         "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(recipe.SHARED_ZIP) if recipe.SHARED_ZIP.exists() else "",
                   help="upload zip of class folders ('' for Fashion-MNIST or generated data)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--train", type=int, default=450, help="training images (without --zip)")
    p.add_argument("--val", type=int, default=150, help="validation images (without --zip)")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10, help="epochs of the recipe and each trial")
    p.add_argument("--weights", default=recipe.default_weights(), help="weights file or 'none'")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tlcore.runs import device
    from tlcore.store import RunStore
    from tlcore.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="tlcore-bench-sweep-") as home:
        os.environ["TLCORE_HOME"] = home
        ws = Workspace.from_env(home)
        device = device.device_info(ws)["device"]
        dataset, description, label = recipe.prepare(args, ws)
        base = {"dataset": dataset, "image_size": args.size, "base": {"weights": args.weights},
                "head": {"pooling": "flatten", "dense": [256], "dropout": 0.5},
                "train": {"epochs": args.epochs, "batch_size": 32,
                          "early_stopping_patience": 0, "class_weight": "none", "seed": 0}}
        (ws.root / "base.json").write_text(json.dumps(base))
        (ws.root / "space.json").write_text(json.dumps(SPACE))
        env = {**recipe.child_env(ws), "TLCORE_MAX_WORKERS": str(args.workers)}
        _, stdout = recipe.timed_child(
            ["-m", "tlcore", "train", "--config", str(ws.root / "base.json")], env)
        store = RunStore(ws)
        recipe_val = store.get_run(stdout.split()[0])["best_val_accuracy"]
        print(f"recipe: best val accuracy {recipe_val:.3f}", flush=True)
        seconds, stdout = recipe.timed_child(
            ["-m", "tlcore", "sweep", "start", "--config", str(ws.root / "base.json"),
             "--space", str(ws.root / "space.json"), "--trials", str(args.trials),
             "--workers", str(args.workers), "--name", "bench"], env)
        sweep_id = stdout.split()[-1]
        _, shown = recipe.timed_child(["-m", "tlcore", "sweep", "show", sweep_id, "--json"], env)
        info = json.loads(shown)
        overheads = []
        for trial in info["trials"]:
            compute = sum(m["epoch_time"] or 0.0 for m in store.metrics(trial["run_id"]))
            overheads.append(trial["seconds"] - compute)
    states = [t["state"] for t in info["trials"]]
    best = info["best"]["best_val_accuracy"]
    overhead = statistics.median(overheads)
    print(f"sweep: {seconds:.1f}s, best {best:.3f}, overhead per trial {overhead:.2f}s", flush=True)
    text = "\n".join([
        f"Data: {description} at {args.size} px. Weights: "
        f"{'ImageNet' if args.weights != 'none' else 'random init'}. {args.trials} trials, TPE, "
        f"{args.workers} sweep workers (`TLCORE_MAX_WORKERS={args.workers}`), {args.epochs} "
        f"epochs each, median pruner; space: `{json.dumps(SPACE)}`. Device: {device}; "
        f"{os.cpu_count()} CPU cores. Measured {time.strftime('%Y-%m-%d')} with "
        "`python -m bench.sweep`.",
        "",
        "| figure | measured | target | met |",
        "| --- | ---: | --- | --- |",
        f"| `python -m tlcore sweep start`, spawn to exit (warm feature cache) | "
        f"{seconds:.1f} s | ≤ {SWEEP_MAX_S:g} s | {'yes' if seconds <= SWEEP_MAX_S else 'no'} |",
        f"| Best trial's val accuracy against the recipe's ({recipe_val:.3f}) | {best:.3f} | "
        f"≥ {recipe_val:.3f} | {'yes' if best >= recipe_val else 'no'} |",
        f"| Overhead per trial beyond its epochs (median of {len(overheads)}; max "
        f"{max(overheads):.2f} s) | {overhead:.2f} s | ≤ {OVERHEAD_MAX_S:g} s | "
        f"{'yes' if overhead <= OVERHEAD_MAX_S else 'no'} |",
        f"| Trials complete / pruned / failed | {states.count('complete')} / "
        f"{states.count('pruned')} / {states.count('fail')} | — | — |",
    ])
    title = f"Sweep · {device} · {args.size} px · {label}"
    recipe.publish(title, text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
