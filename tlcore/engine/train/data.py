"""A run's dataset as training reads it: decoded images per split, class weights.

Images come from the decoded-image cache (`tlcore.cache.images.split_arrays`:
memory-mapped uint8, decoded once per size); `train.subset` keeps a stratified,
seeded share of the training split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.cache import images as imagecache
from tlcore.config import RunConfig
from tlcore.data import SPLITS, load_manifest
from tlcore.data.splits import subset_rows
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace

# Auto class weights kick in when the largest training class is this many times the smallest.
IMBALANCE_RATIO = 1.5


@dataclass
class RunData:
    """A run's dataset: class names and `(x uint8 (N,S,S,3), y int32)` per split."""

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    manifest: dict[str, Any]
    train_rows: np.ndarray | None = None  # `train.subset`'s rows of the training split

    def size(self, split: str) -> int:
        """Number of images in `split` (the whole split: `train.subset` is applied by `rows`)."""
        return len(self.splits[split][1])

    def rows(self, split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(x, y)` of `split` (images or cached features) as the run trains on them.

        The training split keeps only `train.subset`'s rows; the others stay whole.
        """
        if split != "train" or self.train_rows is None:
            return x, y
        return np.asarray(x[self.train_rows]), np.asarray(y[self.train_rows])

    def train_labels(self) -> np.ndarray:
        """Labels of the training images the run trains on (`train.subset`'s rows)."""
        y = self.splits["train"][1]
        return y if self.train_rows is None else np.asarray(y[self.train_rows])

    def train_images(self) -> int:
        """Number of training images the run trains on."""
        return self.size("train") if self.train_rows is None else len(self.train_rows)


def load_data(config: RunConfig, ws: Workspace,
              progress: Callable[[int, int], None] | None = None,
              version: str | None = None) -> RunData:
    """Decoded images of every split of the run's dataset (cached, memory-mapped).

    Args:
        config: The run config.
        ws: The workspace.
        progress: Optional callback `(done, total)` while images are decoded.
        version: The dataset version to read (`tlcore.data.pin_run`); None: its head.

    Raises:
        NotFoundError: if the dataset, or that version of it, no longer exists.
        DatasetError: if it has fewer than 2 classes or no training images.
    """
    manifest = load_manifest(config.dataset, ws, version=version)
    classes = list(manifest["classes"])
    splits = {split: imagecache.split_arrays(ws, manifest, split, config.image_size, progress)
              for split in SPLITS}
    data = RunData(classes, splits, manifest,
                   subset_rows(splits["train"][1], config.train.subset, config.train.seed))
    if len(classes) < 2 or data.size("train") == 0:
        raise DatasetError(
            f"Dataset {config.dataset!r} cannot train a classifier: it needs at least 2 classes "
            f"and some training images. Received: {len(classes)} class(es), "
            f"{data.size('train')} training image(s). Import a larger dataset."
        )
    return data


def class_weights(y: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Balanced class weights (`n / (k * count)`) when `mode` is "auto" and classes are imbalanced.

    Returns:
        None when weighting is off or the classes are balanced enough
        (largest / smallest training class below `IMBALANCE_RATIO`).
    """
    if mode != "auto" or len(y) == 0:
        return None
    counts = np.bincount(y, minlength=num_classes)
    present = counts[counts > 0]
    if present.max() / present.min() < IMBALANCE_RATIO:
        return None
    return {c: float(len(y) / (len(present) * counts[c])) if counts[c] else 1.0
            for c in range(num_classes)}
