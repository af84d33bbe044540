"""A completed run's base features of a dataset, through the frozen-feature cache.

Adaptation works on the output of the run's convolutional base (block5_pool),
pooled by global averaging into one vector of 512 numbers per image: the same
at every image size, and what a Dense layer after `GlobalAveragePooling2D`
reads. The unpooled output comes from `tlcore.cache.features` under the key
training uses (the cut layer in float32, the run's frozen base), so a dataset a
run trained on is not computed again; a run that fine-tuned base blocks keys
its features by its own weights instead. The run's own head, applied to the
same unpooled features, gives the source model's predictions.

Keras is imported inside the functions that build a model: worker and CLI only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.cache import features as featcache
from tlcore.cache import images as imagecache
from tlcore.engine.openrun import OpenedRun
from tlcore.entities import SPLITS
from tlcore.vgg16 import backbones, bases

POOLING = "global average of the base's block5_pool output (512 numbers per image)"


@dataclass
class DomainFeatures:
    """One dataset's features for one run.

    Attributes:
        grid: Unpooled base outputs `(N, h, w, 512)`, every split in `SPLITS` order.
        pooled: Their global averages `(N, 512)`, float64.
        labels: The dataset's label of each row.
        splits: The split of each row.
    """

    grid: np.ndarray
    pooled: np.ndarray
    labels: np.ndarray
    splits: np.ndarray


class _Prefix:
    """The run's base as a compiled function, built the first time a split misses the cache."""

    def __init__(self, run: OpenedRun) -> None:
        self.run, self._fn, self.fingerprint = run, None, None
        if not _trained_blocks(run):
            self.fingerprint = bases.run_base(run.files)

    def function(self) -> Callable[[np.ndarray], Any]:
        if self._fn is None:
            from tlcore.engine import feed
            from tlcore.engine.runmodel import run_model
            from tlcore.engine.train.plan import frozen_prefix

            prefix = frozen_prefix(run_model(self.run), cut())
            self.fingerprint = self.fingerprint or featcache.weights_fingerprint(prefix.layers)
            self._fn = feed.forward(prefix)
        return self._fn


def cut() -> str:
    """The base layer whose output adaptation works on (the last one)."""
    return backbones.BLOCKS[-1].pool


def _trained_blocks(run: OpenedRun) -> set[int]:
    config = run.config
    return set(backbones.trainable_blocks(config, 1)) | set(backbones.trainable_blocks(config, 2))


def domain_features(run: OpenedRun, manifests: list[dict[str, Any]],
                    progress: Callable[[int, int], None] | None = None
                    ) -> list[DomainFeatures]:
    """Base features of every image of each dataset in `manifests`, computed once.

    Args:
        run: A completed run (`tlcore.engine.openrun.open_run`).
        manifests: Dataset manifests.
        progress: Optional callback `(done, total)` over the images still to compute.

    Returns:
        One `DomainFeatures` per manifest, in order.
    """
    ws, size = run.ws, run.config.image_size
    key = f"{cut()}@float32"
    prefix = _Prefix(run)
    sizes = {(m["fingerprint"], s): sum(im["split"] == s for im in m["images"])
             for m in manifests for s in SPLITS}
    todo = [(m["fingerprint"], s) for m in manifests for s in SPLITS
            if prefix.fingerprint is None or not featcache.is_cached(
                ws, m, s, size, key, prefix.fingerprint)]
    total, done = sum(sizes[t] for t in todo), 0
    out = []
    for manifest in manifests:
        grids, labels, names = [], [], []
        for split in SPLITS:
            n = sizes[(manifest["fingerprint"], split)]
            if not n:
                continue
            report = None
            if progress and (manifest["fingerprint"], split) in todo:
                report = (lambda before: lambda d, _t: progress(before + d, total))(done)
            fn = prefix.function() if (manifest["fingerprint"], split) in todo else None
            if fn is None:
                feats = featcache.cached_features(ws, manifest, split, size, key,
                                                  prefix.fingerprint)
                y = imagecache.split_arrays(ws, manifest, split, size)[1]
            else:
                feats, y, _ = featcache.split_features(ws, manifest, split, size, fn, key,
                                                       prefix.fingerprint, report)
                done += n
            grids.append(np.asarray(feats))
            labels.append(np.asarray(y))
            names.extend([split] * n)
        grid = np.concatenate(grids)
        out.append(DomainFeatures(grid, grid.mean(axis=(1, 2)).astype(np.float64),
                                  np.concatenate(labels).astype(np.int32), np.asarray(names)))
    return out


def source_probs(run: OpenedRun, grid: np.ndarray) -> np.ndarray:
    """The run's own head on unpooled base features: the source model's probabilities."""
    from tlcore.engine import feed
    from tlcore.engine.model import build_head
    from tlcore.engine.runmodel import layers, set_weights

    head = build_head(run.config, grid.shape[1:], len(run.classes))
    names = {layer.name for layer in layers(head) if layer.weights}
    trained = bases.load_layer_weights(run.files.trained)
    set_weights(head, {name: w for name, w in trained.items() if name in names})
    return np.asarray(feed.predict_in_memory(head, np.asarray(grid, np.float32)), np.float64)
