"""Frozen-feature cache: the frozen part of the network runs once per image.

When the frozen prefix of the model (preprocessing + the frozen VGG16 blocks)
sees no random augmentation, its output is a function of the image alone. It is
computed once per (dataset content, split, image size, weights fingerprint, cut
layer), stored as a float32 `.npy` under `<workspace>/cache/features/<key>/`,
opened memory-mapped, and shared by every later run on the same data: a sweep of
head settings pays for VGG16's forward pass once.

The weights fingerprint hashes the prefix's actual weight values, so ImageNet,
a local file, `run:<id>` and seeded random init all key correctly.

A new dataset version keys a new entry, but most of its images are in an
earlier one: each split's entry lists the sha256 of its rows
(`<split>-sha256.json`), and a split that misses copies the rows of the images
that an entry with the same size, weights and cut holds already, and runs the
prefix on the others only. The entry's `meta.json` counts both (`rows`), and the
pass logs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any

import numpy as np

from tlcore.cache import images as imagecache
from tlcore.cache import lru as cache
from tlcore.workspace import Workspace, allocate, atomic_write_text, space_for

FEATURES_SUBDIR = "features"  # one of cache.KINDS
CHUNK = 256  # images per forward call at CHUNK_PX px or less: keeps the device busy
CHUNK_PX = 150
MIN_CHUNK = 8
# The pass reports progress (and with it the run's heartbeat) after every chunk: chunks
# are sized from the measured time per image to take about this long, so that even a
# slow CPU reports every few seconds.
CHUNK_SECONDS = 2.0
PROBE_PIXELS = 8 * CHUNK_PX ** 2  # the first chunks, before any time is measured: 8 at 150 px
SHA_SUFFIX = "-sha256.json"  # `<split>-sha256.json`: the sha256 of each row of `<split>.npy`

log = logging.getLogger(__name__)


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
        whether the cache already held them. On a miss, the rows of images that
        another entry with the same size, weights and cut holds are copied from
        it, and only the others go through `prefix`.
    """
    folder = entry_dir(ws, manifest["fingerprint"], size, weights_fp, cut)
    f_path = folder / f"{split}.npy"
    hit = f_path.exists()
    if not hit:
        images, _ = imagecache.split_arrays(ws, manifest, split, size)
        shas = [im["sha256"] for im in manifest["images"] if im["split"] == split]
        known = _known_rows(ws, folder, size, weights_fp, cut, shas)
        _build(images, prefix, f_path, progress, known, shas)
        counts = {"reused": len(known), "computed": len(shas) - len(known)}
        meta = _read_meta(folder)
        (folder / cache.META_FILE).write_text(json.dumps({
            "dataset": manifest["name"], "fingerprint": manifest["fingerprint"], "size": size,
            "cut": cut, "weights": weights_fp[:16], "weights_fp": weights_fp,
            "rows": {**meta.get("rows", {}), split: counts}}))
        log.info("%s features at %s: %d computed, %d reused from earlier cache entries",
                 split, cut, counts["computed"], counts["reused"])
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


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / cache.META_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _known_rows(ws: Workspace, folder: Path, size: int, weights_fp: str, cut: str,
                shas: list[str]) -> dict[int, np.ndarray]:
    """Features of the split's images that other entries of the same size, weights and cut hold.

    Returns:
        Row of the split -> that image's features (a read-only view of the other entry).
    """
    wanted: dict[str, list[int]] = {}
    for row, sha in enumerate(shas):
        wanted.setdefault(sha, []).append(row)
    known: dict[int, np.ndarray] = {}
    root = folder.parent
    others = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True) \
        if root.is_dir() else []
    for other in others:
        if not wanted:
            break
        meta = _read_meta(other)
        if (other == folder or meta.get("weights_fp") != weights_fp or meta.get("size") != size
                or meta.get("cut") != cut):
            continue
        for sha_file in other.glob(f"*{SHA_SUFFIX}"):
            try:
                rows = json.loads(sha_file.read_text())
                feats = np.load(other / sha_file.name.replace(SHA_SUFFIX, ".npy"), mmap_mode="r")
            except (OSError, ValueError):  # removed by the cache's LRU pass meanwhile
                continue
            if len(rows) != len(feats):
                continue
            for source_row, sha in enumerate(rows):
                for row in wanted.pop(sha, ()):
                    known[row] = feats[source_row]
    return known


def _build(images: np.ndarray, prefix: Callable[[np.ndarray], Any], f_path: Path,
           progress: Callable[[int, int], None] | None, known: dict[int, np.ndarray],
           shas: list[str]) -> None:
    """Write a split's features: `known` rows copied, the others computed by `prefix`.

    The row list (`<split>-sha256.json`) is written before the features, whose
    presence marks the split complete.
    """
    f_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f_path.with_suffix(f".tmp{os.getpid()}.npy")
    n, size = len(images), images.shape[1]
    missing = np.asarray([row for row in range(n) if row not in known], dtype=np.int64)
    chunk = probe_chunk(size)
    if progress:
        progress(n - len(missing), n)
    try:
        out = None
        if known:
            out = _open_out(tmp, f_path, (n, *next(iter(known.values())).shape))
            for row, feats in known.items():
                out[row] = feats
        start, warm = 0, False
        while start < len(missing):
            began = monotonic()
            rows = missing[start:start + chunk]
            batch = np.asarray(images[rows])
            feats = np.asarray(prefix(batch), dtype=np.float32)
            seconds = monotonic() - began
            if out is None:
                out = _open_out(tmp, f_path, (n, *feats.shape[1:]))
            out[rows] = feats
            start += len(rows)
            if progress:
                progress(n - len(missing) + start, n)
            if warm:  # the first chunk's time includes tracing and compiling
                chunk = next_chunk(size, seconds / max(len(batch), 1))
            warm = True
        if out is None:  # an empty split: its features still have the prefix's shape
            out = _open_out(tmp, f_path, (0, *np.shape(prefix(np.asarray(images[:0])))[1:]))
        out.flush()
        del out
        atomic_write_text(f_path.with_name(f_path.stem + SHA_SUFFIX), json.dumps(shas))
        os.replace(tmp, f_path)
    finally:
        tmp.unlink(missing_ok=True)


def _open_out(tmp: Path, f_path: Path, shape: tuple[int, ...]) -> np.ndarray:
    with space_for(f_path.parent, 4 * int(np.prod(shape))):
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        allocate(tmp, tmp.stat().st_size)
    return out
