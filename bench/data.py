"""Benchmark data: real Fashion-MNIST when available, generated shapes otherwise."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.data import demo

FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def fashion_dir() -> Path | None:
    """The Fashion-MNIST IDX folder from $TLCORE_BENCH_FASHION or ../shared, if present."""
    path = Path(os.environ.get("TLCORE_BENCH_FASHION", SHARED_FASHION))
    return path if (path / "train-images-idx3-ubyte.gz").exists() else None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX (MNIST-format) gzip file into a numpy array."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_class_folders(root: Path, n_images: int, seed: int = 0) -> tuple[Path, str]:
    """Write `n_images` class-folder images under `root`; returns (root, description)."""
    source = fashion_dir()
    if source is None:
        per_class = max(5, n_images // 4)
        demo.write_class_folders(root, demo.DEMO_CLASSES, per_class=per_class, size=64, seed=seed)
        return root, f"generated shapes ({per_class * 4} images, 4 classes)"
    images = read_idx(source / "train-images-idx3-ubyte.gz")
    labels = read_idx(source / "train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=n_images, replace=False)
    for i in pick:
        folder = root / FASHION_CLASSES[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], "L").save(folder / f"{i:05d}.png")
    return root, f"Fashion-MNIST ({n_images} images, 10 classes, 28x28 grey upscaled)"
