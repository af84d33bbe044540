"""The GPU check: the recipe at 224 px on one GPU, float32 and mixed precision, against plain Keras.

    bench/gpu_check.sh [--size 224] [--train 2000] [--val 500] [--epochs 5] [--ft-epochs 3]
                       [--batch 64] [--out docs/benchmarks.md]

Made for a GPU machine that has JAX (CUDA) but neither TensorFlow nor a network:
`bench/gpu_check.sh` installs Keras and the few small packages tlcore needs from
the wheels in `.gpu-wheels/` (`make gpu-wheels` downloads them where there is a
network) with `pip --no-index`, then runs this module on `$KERAS_BACKEND`
(default jax). Speed does not depend on the weights' values, so the base is a
seeded random init (the 58 MB ImageNet file does not travel beside the wheels);
the data are generated shapes, or Fashion-MNIST from $TLCORE_BENCH_FASHION.

For float32 and for mixed precision (Keras's "mixed_float16" policy), on the
same card and images:

* frozen pass: images/s of the VGG16 base's forward pass (`predict` over train +
  val, after a warm-up batch);
* phase 2: images/s of a block-5 epoch (the mean of the epochs after the first),
  plain Keras (the whole network on images) and tlcore (block 5 on cached
  block-4 features);
* end to end: the plain Keras recipe (E frozen-base epochs, then F block-5
  epochs, on images held in memory) against the same config through tlcore with
  a cold feature cache, and the ratio.

Targets: mixed precision >= 2x float32 on the frozen pass; tlcore >= 5x plain
Keras end to end. The figures are printed and written as a section of
docs/benchmarks.md named after the card.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from bench import recipe

MIXED_OVER_FLOAT32_MIN = 2.0
PLAIN_OVER_TLCORE_MIN = 5.0
PRECISIONS = ("float32", "mixed_float16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/gpu_check.sh", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224, help="image size in pixels")
    p.add_argument("--train", type=int, default=2000, help="training images")
    p.add_argument("--val", type=int, default=500, help="validation images")
    p.add_argument("--epochs", type=int, default=5, help="frozen-base epochs (E)")
    p.add_argument("--ft-epochs", type=int, default=3,
                   help="block-5 epochs (F, at least 2: the first one compiles)")
    p.add_argument("--batch", type=int, default=64, help="batch size")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file to update ('' to skip)")
    args = p.parse_args(argv)
    if args.ft_epochs < 2:
        p.error(f"--ft-epochs must be >= 2. Received: {args.ft_epochs}")
    args.zip, args.weights = "", "none"  # what bench.recipe's helpers read
    return args


@contextlib.contextmanager
def policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy `name` while inside (layers take it when created)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def steady_ips(n_images: int, epoch_times: list[float]) -> float:
    """Images/s of the epochs after the first (which compiles)."""
    steady = epoch_times[1:] or epoch_times
    return n_images * len(steady) / sum(steady)


def measure(args: argparse.Namespace, ws: Any, name: str, arrays: tuple, classes: int,
            precision: str) -> dict[str, Any]:
    """The frozen pass, the plain recipe and tlcore's run in one precision."""
    from tlcore.cache import lru as cache
    from tlcore.config import RunConfig

    x, y, xv, yv = arrays
    with policy(precision):
        out = recipe.floor_forward(x, xv, args)
        print(f"{precision}: frozen pass {out['floor_ips']:.0f} images/s", flush=True)
        out.update(recipe.plain_keras_recipe(x, y, xv, yv, classes, args))
    out["plain_time"] = out["A_time"] + out["D_time"]
    out["plain_phase2_ips"] = steady_ips(len(y), out["D_epoch_times"])
    print(f"{precision}: plain Keras {out['plain_time']:.1f}s (phase 2 "
          f"{out['plain_phase2_ips']:.0f} images/s)", flush=True)
    cache.clear(ws, "features")
    run = recipe.tlcore_run(ws, RunConfig.from_dict({
        "dataset": name, "image_size": args.size, "base": {"weights": "none"},
        "head": {"pooling": "flatten", "dense": [256], "dropout": 0.5},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "early_stopping_patience": 0,
                  "class_weight": "none", "seed": 0,
                  "mixed_precision": "on" if precision != "float32" else "off"},
        "fine_tune": {"blocks": 1, "epochs": args.ft_epochs, "learning_rate": 1e-5}}))
    out["tlcore_time"] = run["time"]
    out["tlcore_phase2_ips"] = steady_ips(len(y), run["phase2_epoch_times"])
    print(f"{precision}: tlcore {run['time']:.1f}s (phase 2 {out['tlcore_phase2_ips']:.0f} "
          f"images/s)", flush=True)
    return out


def render(args: argparse.Namespace, info: dict[str, Any], description: str,
           results: dict[str, dict[str, Any]], seconds: float) -> str:
    """The markdown section: one column per precision, then the targets."""
    f32, mixed = results["float32"], results["mixed_float16"]
    lines = [
        f"Backend: {info['backend']} (Keras {info['keras']}); device {info['device']}. Data: "
        f"{description} at {args.size} px, {args.train} train / {args.val} val. Random-init "
        f"VGG16 base (speed does not depend on the weights). Flatten + Dense 256, E = "
        f"{args.epochs} frozen epochs, F = {args.ft_epochs} block-5 epochs, batch "
        f"{args.batch}. {os.cpu_count()} CPU cores; Python {platform.python_version()}. "
        f"Whole check {seconds:.0f} s. Measured {time.strftime('%Y-%m-%d')} with "
        "`bench/gpu_check.sh`.",
        "",
        "| figure | float32 | mixed precision |",
        "| --- | ---: | ---: |",
    ]
    for label, key, fmt in (
            ("Frozen pass, VGG16 forward (images/s)", "floor_ips", "{:.0f}"),
            ("Phase 2 (block 5), plain Keras (images/s)", "plain_phase2_ips", "{:.0f}"),
            ("Phase 2 (block 5), tlcore (images/s)", "tlcore_phase2_ips", "{:.0f}"),
            ("Plain Keras recipe, end to end (s)", "plain_time", "{:.1f}"),
            ("tlcore, cold feature cache, end to end (s)", "tlcore_time", "{:.1f}")):
        lines.append(f"| {label} | {fmt.format(f32[key])} | {fmt.format(mixed[key])} |")
    speed = {p: r["plain_time"] / r["tlcore_time"] for p, r in results.items()}
    lines.append(f"| Plain Keras / tlcore | {speed['float32']:.1f}x | "
                 f"{speed['mixed_float16']:.1f}x |")
    mixed_gain = mixed["floor_ips"] / f32["floor_ips"]
    best = max(speed.values())
    lines += [
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| Frozen pass, mixed precision ≥ {MIXED_OVER_FLOAT32_MIN:g}x float32 | "
        f"{mixed_gain:.2f}x | {'yes' if mixed_gain >= MIXED_OVER_FLOAT32_MIN else 'no'} |",
        f"| tlcore ≥ {PLAIN_OVER_TLCORE_MIN:g}x faster than plain Keras end to end (best "
        f"precision) | {best:.1f}x | {'yes' if best >= PLAIN_OVER_TLCORE_MIN else 'no'} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tlcore-gpu-check-") as home:
        os.environ["TLCORE_HOME"] = home
        import keras

        from tlcore import data as datasets_api
        from tlcore.backend import configure_devices
        from tlcore.cache import images as imagecache
        from tlcore.workspace import Workspace

        ws = Workspace.from_env(home)
        info = {**configure_devices(), "keras": keras.__version__}
        if not info["gpus"]:
            print(f"warning: no GPU is visible to {info['backend']}; the figures are the "
                  f"CPU's", flush=True)
        name, description, _ = recipe.prepare(args, ws)
        manifest = datasets_api.load_manifest(name, ws)
        x, y = imagecache.split_arrays(ws, manifest, "train", args.size)
        xv, yv = imagecache.split_arrays(ws, manifest, "val", args.size)
        arrays = (x[:], y, xv[:], yv)
        print(f"data: {description}; train {len(y)}, val {len(yv)}, {args.size}px; "
              f"{info['backend']} on {info['device']}", flush=True)
        results = {p: measure(args, ws, name, arrays, len(manifest["classes"]), p)
                   for p in PRECISIONS}
    card = info["gpus"][0] if info["gpus"] else "no GPU"
    text = render(args, info, description, results, time.perf_counter() - started)
    title = f"GPU check · {card} · {info['backend']} · {args.size} px"
    recipe.publish(title, text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
