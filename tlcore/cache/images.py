"""Decoded-image cache: each dataset split is decoded and resized once per size.

The result is a uint8 array `(N, size, size, 3)` in a `.npy` file under
`<workspace>/cache/images/`, opened memory-mapped, so memory stays bounded as
datasets grow and no epoch ever decodes an image again. The key is the
dataset's content fingerprint plus the size: re-importing different images
under the same name misses, re-running on the same data hits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tlcore.cache import lru as cache
from tlcore.entities import SPLITS
from tlcore.workspace import Workspace, allocate, space_for

IMAGES_SUBDIR = "images"  # one of cache.KINDS


def decode(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode one stored image to RGB uint8 `(size, size, 3)`, bilinear resize (as Keras)."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale when possible
        rgb = img.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def entry_dir(ws: Workspace, fingerprint: str, size: int) -> Path:
    """Cache folder of one (dataset content, size) pair."""
    return ws.cache_dir / IMAGES_SUBDIR / f"{fingerprint[:20]}-{size}"


def split_arrays(ws: Workspace, manifest: dict[str, Any], split: str, size: int,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, decoded once and then memory-mapped.

    Args:
        ws: The workspace.
        manifest: The dataset manifest (`tlcore.data.load_manifest`).
        split: "train", "val" or "test".
        size: Square image size in pixels.
        progress: Optional callback `(done, total)` while decoding on a miss.

    Returns:
        `(x, y)`: x uint8 `(N, size, size, 3)` (read-only memmap), y int32 `(N,)`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    folder = entry_dir(ws, manifest["fingerprint"], size)
    x_path, y_path = folder / f"{split}.npy", folder / f"{split}-labels.npy"
    if not (x_path.exists() and y_path.exists()):
        _build(ws, manifest, split, size, x_path, y_path, progress)
        cache.evict(ws, keep=(folder,))
    cache.touch(folder)
    x = np.load(x_path, mmap_mode="r")
    y = np.load(y_path)
    return x, y


def _build(ws: Workspace, manifest: dict[str, Any], split: str, size: int, x_path: Path,
           y_path: Path, progress: Callable[[int, int], None] | None) -> None:
    root = ws.dataset_dir(manifest["name"])
    items = [im for im in manifest["images"] if im["split"] == split]
    x_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_x = x_path.with_suffix(f".tmp{os.getpid()}.npy")
    tmp_y = y_path.with_suffix(f".tmp{os.getpid()}.npy")
    try:
        with space_for(x_path.parent, len(items) * (size * size * 3 + 4)):
            x = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.uint8,
                                          shape=(len(items), size, size, 3))
            allocate(tmp_x, tmp_x.stat().st_size)
            for i, im in enumerate(items):
                x[i] = decode(root / im["file"], size)
                if progress and (i % 64 == 0 or i == len(items) - 1):
                    progress(i + 1, len(items))
            x.flush()
            del x
            np.save(tmp_y, np.asarray([im["label"] for im in items], dtype=np.int32))
            os.replace(tmp_y, y_path)
            os.replace(tmp_x, x_path)  # last: its presence marks the entry complete
            (x_path.parent / cache.META_FILE).write_text(json.dumps(
                {"dataset": manifest["name"], "fingerprint": manifest["fingerprint"],
                 "size": size}))
    finally:
        for tmp in (tmp_x, tmp_y):
            tmp.unlink(missing_ok=True)
