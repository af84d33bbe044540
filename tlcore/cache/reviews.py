"""Label reviews, kept once per (dataset version, frozen base, image size) in the cache.

A review (`tlcore.results.label_review`) costs a frozen-base pass over every
image plus a cross-validated classifier; its result, a JSON document, is stored
under `<workspace>/cache/reviews/<key>/review.json`, keyed by the dataset's
content fingerprint (its version), the base's weights fingerprint and the image
size, and bounded with the rest of the cache (`tlcore.cache.lru`).

The dashboard finds a review without TensorFlow, and without reading 58 MB of
weights to fingerprint them: each entry's `meta.json` also records what
identifies the weights source without reading it (`source_of`), and `find`
looks entries up by that.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.vgg16 import bases
from tlcore.workspace import Workspace, atomic_write_text

REVIEWS_SUBDIR = "reviews"  # one of cache.KINDS
REVIEW_FILE = "review.json"
RANDOM_INIT = "random-init"  # the source of `weights: none`: VGG16's init at seed `SEED`
SEED = 0
WEIGHTS_CHOICES = "'imagenet', 'none' or a VGG16 notop weights file"


def review_config(dataset: str, image_size: int, weights: str) -> RunConfig:
    """The run config whose frozen base a review's features come from.

    Float32, seed `SEED`; the rest are defaults and play no part.

    Raises:
        ConfigError: an image size out of range, or weights that are not one of
            `WEIGHTS_CHOICES`.
    """
    config = RunConfig.from_dict({"dataset": dataset, "image_size": image_size,
                                  "base": {"weights": weights},
                                  "train": {"seed": SEED, "mixed_precision": "off"}})
    if config.base.source.kind == "run":
        raise ConfigError(f"A label review's weights must be {WEIGHTS_CHOICES}. "
                          f"Received: weights={weights!r}")
    return config


def source_of(config: RunConfig, ws: Workspace) -> str | None:
    """What identifies the config's weights without reading them, or None.

    `RANDOM_INIT` for `weights: none`; a file's resolved path, size and
    modification time otherwise (`bases.source_key`); None when ImageNet weights
    would have to be downloaded.
    """
    if config.base.weights == "none":
        return RANDOM_INIT
    return bases.source_key(config, ws)


def entry_dir(ws: Workspace, fingerprint: str, size: int, base_fp: str) -> Path:
    """The cache folder of one (dataset version, image size, base) review."""
    key = hashlib.sha256(f"{fingerprint}|{size}|{base_fp}".encode()).hexdigest()[:24]
    return ws.cache_dir / REVIEWS_SUBDIR / key


def save(ws: Workspace, review: dict[str, Any], *, fingerprint: str, size: int, base_fp: str,
         source: str | None) -> Path:
    """Store `review` (atomically); returns its folder.

    Args:
        ws: The workspace.
        review: The review document (JSON-ready).
        fingerprint: The dataset version it reviews.
        size: The image size of its features.
        base_fp: The fingerprint of the frozen base.
        source: `source_of` the weights, for `find`.
    """
    folder = entry_dir(ws, fingerprint, size, base_fp)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / REVIEW_FILE, json.dumps(review, ensure_ascii=False))
    atomic_write_text(folder / cache.META_FILE, json.dumps({
        "dataset": review.get("dataset"), "fingerprint": fingerprint, "size": size,
        "base": base_fp, "source": source}))
    cache.evict(ws, keep=(folder,))
    return folder


def load(ws: Workspace, fingerprint: str, size: int, base_fp: str) -> dict[str, Any] | None:
    """The stored review of (dataset version, size, base), or None."""
    return _read(entry_dir(ws, fingerprint, size, base_fp))


def find(ws: Workspace, fingerprint: str, size: int, source: str | None
         ) -> dict[str, Any] | None:
    """The stored review of a dataset version at `size` from weights `source` (see `source_of`).

    Needs neither the weights nor their fingerprint. None when there is none, or
    `source` is None.
    """
    root = ws.cache_dir / REVIEWS_SUBDIR
    if source is None or not root.is_dir():
        return None
    for meta_path in sorted(root.glob(f"*/{cache.META_FILE}")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(meta, dict) and meta.get("fingerprint") == fingerprint
                and meta.get("size") == size and meta.get("source") == source):
            review = _read(meta_path.parent)
            if review is not None:
                return review
    return None


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        review = json.loads((folder / REVIEW_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        cache.touch(folder)
    except OSError:
        pass  # a read-only workspace: the review still reads
    return review if isinstance(review, dict) else None

