"""The seeded, stratified train/val/test split of an import (names: `entities.SPLITS`).

The split is made once per import and stored in the manifest, so every run on
the dataset shares it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from tlcore.errors import ConfigError

DEFAULT_VAL = 0.2
DEFAULT_TEST = 0.1
DEFAULT_SEED = 0


def check_split_args(val: float, test: float, seed: int) -> None:
    """Refuse split fractions or a seed that cannot make a split.

    Raises:
        ConfigError: A fraction is outside [0, 1), they sum to 1 or more, or the
            seed is not an integer >= 0.
    """
    for key, value in (("val", val), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"{key} must be a fraction in [0, 1). Received: {key}={value!r}")
    if val + test >= 1:
        raise ConfigError("val + test must be below 1 so that training keeps some images. "
                          f"Received: val={val}, test={test}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0. Received: seed={seed!r}")


def split_counts(n: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) sizes of a class of `n` images; train keeps at least one.

    Fractions are rounded half up per class, so small classes still get val/test
    images (5 images at 0.2/0.1 give 3/1/1).
    """
    n_val, n_test = math.floor(n * val + 0.5), math.floor(n * test + 0.5)
    while n_val + n_test > n - 1:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def assign_splits(images: list[dict[str, Any]], val: float, test: float, seed: int) -> None:
    """Set each image's "split": stratified per class; each class has its own seeded stream."""
    by_label: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for im in images:
        by_label[im["label"]].append(im)
    for label, members in by_label.items():
        _, n_val, n_test = split_counts(len(members), val, test)
        order = np.random.default_rng([seed, label]).permutation(len(members))
        for rank, i in enumerate(order):
            members[i]["split"] = ("test" if rank < n_test
                                   else "val" if rank < n_test + n_val else "train")


def subset_rows(labels: np.ndarray, subset: float, seed: int) -> np.ndarray | None:
    """Rows of a stratified, seeded share of a split, in order; None for the whole split.

    Args:
        labels: The split's class index per row.
        subset: A fraction (0 < subset <= 1) of each class, at least one image of
            each; or, above 1, that many images per class (all of a smaller class).
        seed: Picks the same rows for the same seed.
    """
    if subset == 1.0:
        return None
    rng = np.random.default_rng(seed)
    rows = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = (max(1, round(subset * len(members))) if subset < 1
                else min(int(subset), len(members)))
        rows.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
