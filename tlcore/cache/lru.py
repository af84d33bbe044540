"""The workspace cache as a whole: list entries, bound its size, clear it.

Four kinds of entries live under `<workspace>/cache/`, one folder each:
`images/<key>/` (decoded uint8 arrays, `tlcore.cache.images`), `features/<key>/`
(frozen-base outputs, `tlcore.cache.features`), `models/<run>-<version>/` (a
run's full model assembled for download, `tlcore.engine.runmodel`) and
`reviews/<key>/` (label reviews, `tlcore.cache.reviews`). An entry's folder
mtime is its last use; when the cache grows past its bound the least recently
used entries go first. Entries in use by a run are protected by passing them in
`keep`. Frozen bases (`tlcore.vgg16.bases`) are not cache entries, since runs need
them, but the ones no run uses go with the cache's LRU pass and with `clear`.
No TensorFlow here: the CLI and the dashboard use it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tlcore.errors import ConfigError
from tlcore.settings import env_number
from tlcore.vgg16 import bases
from tlcore.workspace import Workspace

MODELS_KIND = "models"  # full models assembled for download (tlcore.engine.runmodel)
KINDS = ("images", "features", MODELS_KIND, "reviews")
ENV_MAX_GB = "TLCORE_CACHE_MAX_GB"
DEFAULT_MAX_GB = 20.0
META_FILE = "meta.json"


def max_bytes() -> int:
    """The cache bound in bytes, from $TLCORE_CACHE_MAX_GB (default 20 GB)."""
    return int(env_number(ENV_MAX_GB, DEFAULT_MAX_GB, "a positive number of gigabytes") * 1e9)


def touch(folder: Path) -> None:
    """Mark a cache entry as just used."""
    now = time.time()
    os.utime(folder, (now, now))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def entries(ws: Workspace) -> list[dict[str, Any]]:
    """All cache entries, most recently used first.

    Returns:
        Dicts with kind, key, path, bytes, last_used (epoch seconds) and meta.
    """
    out = []
    for kind in KINDS:
        root = ws.cache_dir / kind
        if not root.is_dir():
            continue
        for folder in root.iterdir():
            if not folder.is_dir():
                continue
            meta_path = folder / META_FILE
            try:
                meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            except (OSError, json.JSONDecodeError):
                meta = {}
            out.append({"kind": kind, "key": folder.name, "path": str(folder),
                        "bytes": _size(folder), "last_used": folder.stat().st_mtime,
                        "meta": meta})
    out.sort(key=lambda e: e["last_used"], reverse=True)
    return out


def evict(ws: Workspace, limit: int | None = None, keep: tuple[Path, ...] = ()) -> list[str]:
    """Remove least recently used entries until the cache fits in `limit` bytes.

    Args:
        ws: The workspace.
        limit: Bound in bytes; default `max_bytes()`.
        keep: Entry folders that must stay (the ones a running job uses).

    Bases no run uses are removed too (`bases.collect`).

    Returns:
        Keys of the removed entries.
    """
    bases.collect(ws)
    limit = max_bytes() if limit is None else limit
    keep_set = {Path(k).resolve() for k in keep}
    items = entries(ws)
    total = sum(e["bytes"] for e in items)
    removed = []
    for entry in reversed(items):  # oldest first
        if total <= limit:
            break
        if Path(entry["path"]).resolve() in keep_set:
            continue
        shutil.rmtree(entry["path"], ignore_errors=True)
        total -= entry["bytes"]
        removed.append(entry["key"])
    return removed


def forget_run(ws: Workspace, run_id: str) -> None:
    """Remove the models assembled for a run (`models/<run>-<version>/`): it was deleted."""
    for folder in (ws.cache_dir / MODELS_KIND).glob(f"{run_id}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def clear(ws: Workspace, kind: str | None = None) -> int:
    """Remove every entry (of one kind, if given). Returns the bytes freed.

    Without a kind, the bases no run uses go as well (`bases.collect`).
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    freed = bases.collect(ws, grace_s=0)[1] if kind is None else 0
    for entry in entries(ws):
        if kind is None or entry["kind"] == kind:
            shutil.rmtree(entry["path"], ignore_errors=True)
            freed += entry["bytes"]
    return freed
