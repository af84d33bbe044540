"""Benchmark: the same runs on each installed Keras backend (TensorFlow, JAX, PyTorch).

    python -m bench.backends [--zip FILE.zip] [--size 64] [--epochs 10] [--ft-epochs 2]
                             [--batch 32] [--seeds 5] [--weights PATH|none]
                             [--out docs/benchmarks.md]

In one workspace, the upload zip (default ../shared/data/fashion_mnist_600.zip)
imported once; for each backend, every run through `python -m tlcore train
--set train.backend=NAME`, timed from spawn to exit (the CLI and the worker it
starts, imports included), next to the run's own time in the worker:

* cold: head-only (flatten + Dense 256, E epochs), the feature cache cleared first;
* warm: the same with an avg-pooling head, the features cached;
* fine-tune: E head epochs then F block-5 epochs, warm cache;
* accuracy: best val accuracy of the cold run's config over --seeds seeds;
* the same images: the test split classified by each backend's seed-0 model on
  every backend (`python -m tlcore predict --json`): the share of images whose
  class matches the backend that trained it.

Targets: JAX within 1.5x of TensorFlow's time for the same run, and the same
accuracy within noise: the seed means within two standard errors of their
difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from bench import recipe

JAX_OVER_TF_MAX = 1.5
# The next run starts once the last one's worker has left (after its Grad-CAM overlays).
OVERLAYS_TIMEOUT_S = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.backends",
                                description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(recipe.SHARED_ZIP) if recipe.SHARED_ZIP.exists() else "",
                   help="upload zip of class folders ('' for Fashion-MNIST or generated data)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--train", type=int, default=450, help="training images (without --zip)")
    p.add_argument("--val", type=int, default=150, help="validation images (without --zip)")
    p.add_argument("--epochs", type=int, default=10, help="head epochs (E)")
    p.add_argument("--ft-epochs", type=int, default=2, help="block-5 epochs (F)")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the accuracy figure")
    p.add_argument("--weights", default=recipe.default_weights(), help="weights file or 'none'")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    return p.parse_args(argv)


def cli_run(ws: Any, name: str, config: dict[str, Any], label: str) -> dict[str, Any]:
    """One run through `python -m tlcore train` on backend `name`, timed spawn to exit."""
    from tlcore import backend, processes
    from tlcore.store import RunStore

    path = ws.tmp_dir / f"{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    env = {**recipe.child_env(ws), **backend.environment(name)}
    seconds, stdout = recipe.timed_child(
        ["-m", "tlcore", "train", "--config", str(path), "--set", f"train.backend={name}",
         "--name", label], env)
    run = RunStore(ws).get_run(stdout.split()[0])
    deadline = time.monotonic() + OVERLAYS_TIMEOUT_S
    while processes.alive(run["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker adds Grad-CAM overlays after the CLI exits; not timed
    print(f"{name} {label}: {seconds:.1f}s, best val {run['best_val_accuracy']:.3f}", flush=True)
    return {"id": run["id"], "process": seconds, "run": run["ended"] - run["started"],
            "val": run["best_val_accuracy"]}


def predicted(ws: Any, name: str, run_id: str, images: list[str]) -> list[int]:
    """Class indices `run_id` gives `images` on backend `name` (the predict CLI)."""
    from tlcore import backend

    env = {**recipe.child_env(ws), **backend.environment(name)}
    _, stdout = recipe.timed_child(["-m", "tlcore", "predict", run_id, *images, "--json"], env)
    return [item["top"][0]["index"] for item in json.loads(stdout)]


def measure(args: argparse.Namespace, ws: Any, dataset: str, name: str) -> dict[str, Any]:
    """The cold, warm and fine-tune runs and the seeds on backend `name`."""
    from tlcore.cache import lru as cache

    base = {"dataset": dataset, "image_size": args.size, "base": {"weights": args.weights},
            "head": {"pooling": "flatten", "dense": [256], "dropout": 0.5},
            "train": {"epochs": args.epochs, "batch_size": args.batch,
                      "early_stopping_patience": 0, "class_weight": "none", "seed": 0}}
    cache.clear(ws, "features")
    out = {"cold": cli_run(ws, name, base, f"{name}-cold")}
    out["warm"] = cli_run(ws, name, {**base, "head": {"pooling": "avg", "dense": [512],
                                                       "dropout": 0.3}}, f"{name}-warm")
    out["fine_tune"] = cli_run(ws, name, {**base, "fine_tune": {
        "blocks": 1, "epochs": args.ft_epochs, "learning_rate": 1e-5}}, f"{name}-fine-tune")
    out["vals"] = [out["cold"]["val"]] + [
        cli_run(ws, name, {**base, "train": {**base["train"], "seed": seed}},
                f"{name}-seed-{seed}")["val"] for seed in range(1, args.seeds)]
    return out


def versions(names: list[str]) -> str:
    """"Keras 3.x, TensorFlow 2.x, ..." for the backends measured."""
    from importlib.metadata import version

    from tlcore.backend import LABELS

    return ", ".join([f"Keras {version('keras')}"]
                     + [f"{LABELS[n]} {version(n)}" for n in names])


def noise_of(a: list[float], b: list[float]) -> float:
    """Two standard errors of the difference of the means of `a` and `b` (seeds)."""
    var = sum(statistics.variance(v) / len(v) for v in (a, b) if len(v) > 1)
    return 2 * var ** 0.5


def render(args, description: str, names: list[str], results: dict[str, Any],
           agreement: dict[str, dict[str, float]], n_test: int) -> str:
    """The markdown section: one column per backend, then the targets."""
    from tlcore.backend import LABELS

    labels = [LABELS[n] for n in names]
    lines = [
        f"Data: {description} at {args.size} px. Weights: "
        f"{'ImageNet' if args.weights != 'none' else 'random init'}. Flatten + Dense 256, "
        f"E = {args.epochs} head epochs, F = {args.ft_epochs} block-5 epochs, batch "
        f"{args.batch}. Each run through `python -m tlcore train`, spawn to exit (the run's "
        f"own time in the worker in brackets); {versions(names)}; {os.cpu_count()} CPU "
        f"cores. Measured "
        f"{time.strftime('%Y-%m-%d')} with `python -m bench.backends`.",
        "",
        "| run (s) | " + " | ".join(labels) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for key, label in (("cold", "Cold head-only run (features computed)"),
                       ("warm", "Warm head-only run (features cached)"),
                       ("fine_tune", "Head, then block 5 fine-tuned (warm)")):
        lines.append(f"| {label} | " + " | ".join(
            f"{results[n][key]['process']:.1f} ({results[n][key]['run']:.1f})" for n in names)
            + " |")
    lines.append(f"| Best val accuracy, seeds 0-{args.seeds - 1} | " + " | ".join(
        recipe.spread(results[n]["vals"]) for n in names) + " |")
    lines.append(f"| Test images ({n_test}) classified alike when the model runs on "
                 f"the other backends | " + " | ".join(
                     f"{100 * statistics.mean(agreement[n].values()):.0f} %"
                     if agreement[n] else "—" for n in names) + " |")
    if "jax" in results:
        tf, jax = results["tensorflow"], results["jax"]
        gap = 100 * (statistics.mean(jax["vals"]) - statistics.mean(tf["vals"]))
        lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
        for key, label in (("cold", "cold head-only run"), ("warm", "warm head-only run"),
                           ("fine_tune", "fine-tuning run")):
            ratio = jax[key]["process"] / tf[key]["process"]
            lines.append(f"| JAX ≤ {JAX_OVER_TF_MAX:g}x TensorFlow's time, {label} | "
                         f"{ratio:.2f}x | {'yes' if ratio <= JAX_OVER_TF_MAX else 'no'} |")
        noise = 100 * noise_of(tf["vals"], jax["vals"])
        lines.append(f"| Same accuracy within noise: JAX − TensorFlow, mean best val accuracy, "
                     f"within two standard errors of the difference (±{noise:.1f} points) | "
                     f"{gap:+.1f} points | {'yes' if abs(gap) <= noise else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tlcore import backend
    from tlcore import data as datasets_api
    from tlcore.runs import device
    from tlcore.workspace import Workspace

    names = backend.available()
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-backends-") as home:
        os.environ["TLCORE_HOME"] = home
        ws = Workspace.from_env(home)
        device = device.device_info(ws)["device"]
        dataset, description, label = recipe.prepare(args, ws)
        manifest = datasets_api.load_manifest(dataset, ws)
        folder = ws.dataset_dir(dataset)
        test = [str(folder / image["file"]) for image in manifest["images"]
                if image["split"] == "test"]
        results = {name: measure(args, ws, dataset, name) for name in names}
        agreement: dict[str, dict[str, float]] = {}
        for trained in names:
            run_id = results[trained]["cold"]["id"]
            own = predicted(ws, trained, run_id, test) if test else []
            agreement[trained] = {
                other: statistics.mean(a == b for a, b in zip(
                    own, predicted(ws, other, run_id, test), strict=True))
                for other in names if other != trained and test}
    text = render(args, description, names, results, agreement, len(test))
    title = f"Keras backends · {device} · {args.size} px · {label}"
    recipe.publish(title, text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
