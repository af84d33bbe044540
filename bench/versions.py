"""Benchmark: a dataset version that adds 10 images computes frozen features for those 10 only.

    python -m bench.versions [--zip FILE.zip] [--size 64] [--add 10]
                             [--weights PATH|none] [--out docs/benchmarks.md]

In a temp workspace, the upload zip (default ../shared/data/fashion_mnist_600.zip)
is imported; the frozen base's block5_pool features of every split are computed
as a run's first phase computes them (`engine.train.phase_inputs`). Then --add
images (Fashion-MNIST test images when the zip's folder has them, else generated)
are added to the first class with `tlcore.data.add_images`, which makes a new
version, and the features of every split are asked for again. The base's forward
passes are counted image by image.

Target: the new version runs the base on the added images only; every other row
comes from the first version's cache entry.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import recipe

TITLE = "Dataset versions · feature reuse · CPU"
FASHION_TEST = "fashion-mnist/t10k-images-idx3-ubyte.gz"  # next to the zip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.versions",
                                description=__doc__.split("\n")[0])
    p.add_argument("--zip", default=str(recipe.SHARED_ZIP), help="upload zip of class folders")
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--add", type=int, default=10, help="images the new version adds")
    p.add_argument("--weights", default=recipe.default_weights(), help="weights file or 'none'")
    p.add_argument("--out", default=str(recipe.ROOT / "docs" / "benchmarks.md"),
                   help="markdown file whose section to write ('' for none)")
    return p.parse_args(argv)


def new_images(n: int, folder: Path) -> list[bytes]:
    """`n` PNGs the zip does not hold: Fashion-MNIST test images in `folder`, else shapes."""
    from PIL import Image

    from tlcore.data.demo import synth_image

    if (folder / FASHION_TEST).exists():
        with gzip.open(folder / FASHION_TEST) as fh:
            pixels = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        images = [Image.fromarray(a) for a in pixels[:n]]
    else:
        images = [synth_image(i % 4, 40, np.random.default_rng(1000 + i)) for i in range(n)]
    out = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def measure(args: argparse.Namespace, home: str) -> dict[str, Any]:
    from tlcore import data
    from tlcore.cache import lru as cache
    from tlcore.config import RunConfig
    from tlcore.engine import feed, train
    from tlcore.engine.model import build_model
    from tlcore.workspace import Workspace

    ws = Workspace.from_env(home)
    info = data.import_dataset(args.zip, "versions", ws=ws)
    config = RunConfig.from_dict({"dataset": "versions", "image_size": args.size,
                                  "base": {"weights": args.weights}, "head": {"dense": [8]}})
    seen = {"images": 0}
    forward = feed.forward

    def counting_forward(model: Any, jit: bool | None = None) -> Any:
        run = forward(model, jit)

        def counted(batch: np.ndarray) -> np.ndarray:
            seen["images"] += len(batch)
            return run(batch)
        return counted

    feed.forward = counting_forward
    model = build_model(config, len(info["classes"]), ws, mixed_precision=False)

    def features() -> tuple[int, float]:
        seen["images"] = 0
        began = time.perf_counter()
        train.phase_inputs(model, config, 1, train.load_data(config, ws), ws, data.SPLITS)
        return seen["images"], time.perf_counter() - began

    first, first_s = features()
    extra = new_images(args.add, Path(args.zip).parent)
    added = data.add_images("versions", info["classes"][0], extra, ws=ws)
    second, second_s = features()
    version = data.load_manifest("versions", ws)["fingerprint"]
    rows = next(e["meta"]["rows"] for e in cache.entries(ws)
                if e["kind"] == "features" and e["meta"]["fingerprint"] == version)
    return {"n_images": info["n_images"], "added": len(added.ids), "first": first,
            "first_s": first_s, "second": second, "second_s": second_s, "rows": rows}


def render(args: argparse.Namespace, r: dict[str, Any]) -> str:
    reused = sum(v["reused"] for v in r["rows"].values())
    per_split = ", ".join(f"{s} {v['computed']} computed / {v['reused']} reused"
                          for s, v in r["rows"].items())
    met = r["second"] == r["added"]
    return "\n".join([
        f"`{os.path.basename(args.zip)}` ({r['n_images']} images) at {args.size} px, weights "
        f"{'ImageNet (local file)' if args.weights != 'none' else 'none'}, block5_pool features "
        f"of every split as a run's first phase asks for them; then a version that adds "
        f"{r['added']} images to one class. Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores. Measured {time.strftime('%Y-%m-%d')} with "
        "`python -m bench.versions`.",
        "",
        "| figure | first version | + " f"{r['added']} images |",
        "| --- | ---: | ---: |",
        f"| Images through the frozen base | {r['first']} | {r['second']} |",
        f"| Rows reused from an earlier cache entry | 0 | {reused} |",
        f"| Features of every split (s, decoding included) | {r['first_s']:.1f} | "
        f"{r['second_s']:.1f} |",
        "",
        f"Per split of the new version: {per_split}.",
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| The new version runs the base on the {r['added']} added images only | "
        f"{r['second']} | {'yes' if met else 'no'} |",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as home:
        os.environ["TLCORE_HOME"] = home
        result = measure(args, home)
    recipe.publish(TITLE, render(args, result), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
