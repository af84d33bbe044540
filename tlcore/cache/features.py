"""Frozen-feature cache: the frozen part of the network runs once per image.

When the frozen prefix of the model (preprocessing + the frozen VGG16 blocks)
sees no random augmentation, its output is a function of the image alone. It is
computed once per (dataset content, split, image size, weights fingerprint, cut
layer), stored as a float32 `.npy` under `<workspace>/cache/features/<key>/`,
opened memory-mapped, and shared by every later run on the same data: a sweep of
head settings pays for VGG16's forward pass once.

The weights fingerprint hashes the prefix's actual weight values, so ImageNet,
a local file, `run:<id>` and seeded random init all key correctly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np

from tlcore.cache import images as imagecache
from tlcore.cache import lru as cache
from tlcore.workspace import Workspace, allocate, space_for

FEATURES_SUBDIR = "features"  # one of cache.KINDS
CHUNK = 256  # images per forward call at CHUNK_PX px or less: keeps the device busy
CHUNK_PX = 150
MIN_CHUNK = 8
# The pass reports progress (and with it the run's heartbeat) after every chunk: chunks
# are sized from the measured time per image to take about this long, so that even a
# slow CPU reports every few seconds.
CHUNK_SECONDS = 2.0
PROBE_PIXELS = 8 * CHUNK_PX ** 2  # the first chunks, before any time is measured: 8 at 150 px


def chunk_images(size: int) -> int:
    """The most images per forward call at `size` px: `CHUNK` at 150 px, fewer as pixels grow.

    A chunk then takes about the same memory at any size.
    """
    return max(MIN_CHUNK, min(CHUNK, CHUNK * CHUNK_PX ** 2 // size ** 2))


def probe_chunk(size: int) -> int:
    """Images in the first two chunks at `size` px, before the time per image is known.

    Small, so that a slow CPU reports within seconds; the first call also traces and
    compiles, so the second one, of the same shape, is the one timed.
    """
    return max(1, min(chunk_images(size), PROBE_PIXELS // size ** 2))


def next_chunk(size: int, seconds_per_image: float) -> int:
    """Images in the next chunk: about `CHUNK_SECONDS` at the measured time per image.

    A power of two (compiled backends trace each batch shape once), at least 1
    and at most `chunk_images(size)`.
    """
    fit = int(CHUNK_SECONDS / max(seconds_per_image, 1e-9))
    return max(1, min(chunk_images(size), 1 << max(fit.bit_length() - 1, 0)))


def weights_fingerprint(layers: list[Any]) -> str:
    """A sha256 over the names, shapes and values of the layers' weights."""
    digest = hashlib.sha256()
    for layer in layers:
        for weight in layer.weights:
            value = np.asarray(weight.numpy())
            digest.update(f"{weight.path}:{value.shape}:{value.dtype}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def entry_dir(ws: Workspace, fingerprint: str, size: int, weights_fp: str, cut: str) -> Path:
    """Cache folder of one (dataset content, size, weights, cut layer) combination."""
    key = hashlib.sha256(f"{fingerprint}|{size}|{weights_fp}|{cut}".encode()).hexdigest()[:24]
    return ws.cache_dir / FEATURES_SUBDIR / key


def split_features(ws: Workspace, manifest: dict[str, Any], split: str, size: int,
                   prefix: Callable[[np.ndarray], Any], cut: str, weights_fp: str,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Frozen-prefix outputs and labels of one split, computed once, then memory-mapped.

    Args:
        ws: The workspace.
        manifest: The dataset manifest.
        split: "train", "val" or "test".
        size: Image size the prefix expects.
        prefix: Callable mapping a uint8 batch `(n, size, size, 3)` to the cut
            layer's output (a Keras model or compiled function, inference mode).
        cut: Name of the cut layer (part of the key).
        weights_fp: `weights_fingerprint` of the prefix's layers.
        progress: Optional callback `(done, total)` while computing on a miss: once
            before the first chunk, then after every chunk (chunks take about
            `CHUNK_SECONDS` each, see `next_chunk`).

    Returns:
        `(features, labels, hit)`: float32 read-only memmap, int32 labels, and
        whether the cache already held them.
    """
    folder = entry_dir(ws, manifest["fingerprint"], size, weights_fp, cut)
    f_path = folder / f"{split}.npy"
    hit = f_path.exists()
    if not hit:
        images, _ = imagecache.split_arrays(ws, manifest, split, size)
        _build(images, prefix, f_path, progress)
        (folder / cache.META_FILE).write_text(json.dumps({
            "dataset": manifest["name"], "fingerprint": manifest["fingerprint"], "size": size,
            "cut": cut, "weights": weights_fp[:16]}))
        cache.evict(ws, keep=(folder, imagecache.entry_dir(ws, manifest["fingerprint"], size)))
    cache.touch(folder)
    _, labels = imagecache.split_arrays(ws, manifest, split, size)
    return np.load(f_path, mmap_mode="r"), labels, hit


def is_cached(ws: Workspace, manifest: dict[str, Any], split: str, size: int, cut: str,
              weights_fp: str) -> bool:
    """Whether a split's features are cached already (`split_features` would not compute)."""
    return (entry_dir(ws, manifest["fingerprint"], size, weights_fp, cut) / f"{split}.npy").exists()


def cached_features(ws: Workspace, manifest: dict[str, Any], split: str, size: int, cut: str,
                    weights_fp: str) -> np.ndarray | None:
    """A split's cached features (memory-mapped, as `split_features` on a hit), or None.

    Needs no model: a run on warm features can train its head without building
    the network.
    """
    folder = entry_dir(ws, manifest["fingerprint"], size, weights_fp, cut)
    f_path = folder / f"{split}.npy"
    if not f_path.exists():
        return None
    cache.touch(folder)
    return np.load(f_path, mmap_mode="r")


def _build(images: np.ndarray, prefix: Callable[[np.ndarray], Any], f_path: Path,
           progress: Callable[[int, int], None] | None) -> None:
    f_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f_path.with_suffix(f".tmp{os.getpid()}.npy")
    n, size = len(images), images.shape[1]
    chunk = probe_chunk(size)
    if progress:
        progress(0, n)
    try:
        out, start, warm = None, 0, False
        while True:
            began = monotonic()
            batch = np.asarray(images[start:start + chunk])
            feats = np.asarray(prefix(batch), dtype=np.float32)
            seconds = monotonic() - began
            if out is None:
                shape = (n, *feats.shape[1:])
                with space_for(f_path.parent, 4 * int(np.prod(shape))):
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                    shape=shape)
                    allocate(tmp, tmp.stat().st_size)
            out[start:start + len(feats)] = feats
            start = min(start + chunk, n)
            if progress:
                progress(start, n)
            if start >= n:
                break
            if warm:  # the first chunk's time includes tracing and compiling
                chunk = next_chunk(size, seconds / max(len(batch), 1))
            warm = True
        out.flush()
        del out
        os.replace(tmp, f_path)
    finally:
        tmp.unlink(missing_ok=True)
