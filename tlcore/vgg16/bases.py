"""Frozen VGG16 bases, each stored once in the workspace, and what runs trained on top.

A run trains a head (and in phase 2 the last blocks) on a frozen base. The
base's conv weights (58 MB for VGG16) are the same for every run that starts
from the same source, so each distinct base is kept once, content-addressed by
`fingerprint`:

    <home>/bases/<key>/weights.npz   conv weights by layer name
    <home>/bases/<key>/meta.json     fingerprint, where it came from, size
    <home>/bases/index.json          source -> fingerprint (see `source_key`)

A run records its base in `runs/<id>/base.json` (`record_base`) and stores
only the weights it trained in `runs/<id>/trained.npz`; `tlcore.engine.runmodel`
assembles the full model from the two. A base no run records is removed by
`collect` (`python -m tlcore cache clear`, and the cache's LRU bound).

The index maps what identifies a weights file without reading it (its path,
size and modification time) to the fingerprint of its contents, so a run on
warm cached features knows its base without loading 58 MB. No TensorFlow here:
the CLI and the dashboard list and collect bases.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.config import RunConfig
from tlcore.errors import NotFoundError
from tlcore.vgg16 import backbones
from tlcore.workspace import RunFiles, Workspace, atomic_write_text, space_for

WEIGHTS_FILE = "weights.npz"
META_FILE = "meta.json"
INDEX_FILE = "index.json"
KEY_LEN = 24
# `collect` leaves a base alone for this long after it was stored or used: a run
# stores its base before the run's folder names it.
COLLECT_GRACE_S = 120.0

LayerWeights = dict[str, list[np.ndarray]]


# ---- weights by layer name, as .npz ----------------------------------------------
def save_layer_weights(path: Path, weights: LayerWeights,
                       extra: dict[str, np.ndarray] | None = None) -> None:
    """Write `{layer: [arrays]}` (plus `extra` arrays by key) to `path` atomically.

    Keys are `<layer>/<index>`; a reader never sees half a file.

    Raises:
        DiskFullError: if the disk has no room; the previous file stays.
    """
    arrays = {f"{layer}/{i}": np.asarray(w) for layer, ws in weights.items()
              for i, w in enumerate(ws)}
    arrays.update(extra or {})
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with space_for(path.parent, sum(a.nbytes for a in arrays.values())):
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def load_layer_weights(path: Path, prefix: str = "") -> LayerWeights:
    """`{layer: [arrays]}` from a file `save_layer_weights` wrote.

    Args:
        path: The `.npz` file.
        prefix: Read only keys under this prefix (e.g. "best/"), which is stripped.
    """
    out: dict[str, dict[int, np.ndarray]] = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            rest = key[len(prefix):]
            if not key.startswith(prefix) or rest.count("/") != 1:
                continue
            layer, index = rest.split("/")
            if index.isdigit():
                out.setdefault(layer, {})[int(index)] = arrays[key]
    return {layer: [ws[i] for i in sorted(ws)] for layer, ws in out.items()}


# ---- the base store ---------------------------------------------------------------
def fingerprint(weights: LayerWeights) -> str:
    """A sha256 over the VGG16 conv layers' names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name in backbones.CONV_LAYERS:
        for value in weights[name]:
            value = np.ascontiguousarray(value, dtype=np.float32)
            digest.update(f"{name}:{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def entry_dir(ws: Workspace, fp: str) -> Path:
    """The folder of the base with fingerprint `fp` (not created)."""
    return ws.bases_dir / fp[:KEY_LEN]


def exists(ws: Workspace, fp: str) -> bool:
    """Whether the base `fp` is stored."""
    return (entry_dir(ws, fp) / WEIGHTS_FILE).is_file()


def store(ws: Workspace, weights: LayerWeights, source: str) -> str:
    """Keep the conv weights `weights` once in the workspace; returns their fingerprint.

    Storing a base that is already there only marks it used.

    Raises:
        DiskFullError: if the disk has no room; nothing half-written stays.
    """
    fp = fingerprint(weights)
    folder = entry_dir(ws, fp)
    if exists(ws, fp):
        _touch(folder)
        return fp
    stage = ws.bases_dir / f".{folder.name}.tmp{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        save_layer_weights(stage / WEIGHTS_FILE,
                           {name: weights[name] for name in backbones.CONV_LAYERS})
        (stage / META_FILE).write_text(json.dumps({
            "fingerprint": fp, "source": source, "created": time.time(),
            "bytes": (stage / WEIGHTS_FILE).stat().st_size}))
        try:
            os.rename(stage, folder)
        except OSError:
            if not exists(ws, fp):  # another process stored the same base meanwhile
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return fp


def load(ws: Workspace, fp: str) -> LayerWeights:
    """The conv weights of base `fp`.

    Raises:
        NotFoundError: if the base is not stored (removed by hand).
    """
    folder = entry_dir(ws, fp)
    if not exists(ws, fp):
        raise NotFoundError(
            f"The frozen base {fp[:12]} is missing from {ws.bases_dir}; it may have been "
            "deleted by hand. Runs trained on it cannot be rebuilt: train them again.")
    _touch(folder)
    return load_layer_weights(folder / WEIGHTS_FILE)


def _touch(folder: Path) -> None:
    now = time.time()
    try:
        os.utime(folder, (now, now))
    except OSError:
        pass  # read-only workspace: the base still loads


# ---- which base a source gives ---------------------------------------------------------
def source_key(config: RunConfig, ws: Workspace) -> str | None:
    """What identifies the config's weights file without reading it, or None.

    A local weights file (ImageNet or `base.weights: <file>`) is identified by its
    resolved path, size and modification time. Random init and `run:<id>` bases
    have no key: they are built (and fingerprinted) each time.
    """
    weights = config.base.weights
    if weights == "none" or config.base.source.kind == "run":
        return None
    path = (backbones.resolve_imagenet_weights(ws) if weights == "imagenet"
            else Path(weights).expanduser())
    try:
        path = Path(path).resolve()
        stat = path.stat()
    except (OSError, TypeError):
        return None
    return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _index(ws: Workspace) -> dict[str, str]:
    try:
        data = json.loads((ws.bases_dir / INDEX_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def lookup(ws: Workspace, key: str | None) -> str | None:
    """The fingerprint of the stored base that source `key` gave before, or None."""
    if key is None:
        return None
    fp = _index(ws).get(key)
    if not isinstance(fp, str) or not exists(ws, fp):
        return None
    _touch(entry_dir(ws, fp))
    return fp


def remember(ws: Workspace, key: str | None, fp: str) -> None:
    """Note that source `key` gives base `fp` (a lost race only costs a later lookup)."""
    if key is None:
        return
    index = {k: v for k, v in _index(ws).items() if exists(ws, v)}
    if index.get(key) != fp:
        index[key] = fp
        atomic_write_text(ws.bases_dir / INDEX_FILE, json.dumps(index, indent=1))


# ---- runs and their bases -------------------------------------------------------------
def record_base(files: RunFiles, fp: str | None, source: str) -> None:
    """Write `runs/<id>/base.json`: the run's base (None when it trained every conv layer)."""
    atomic_write_text(files.base_ref, json.dumps({"fingerprint": fp, "source": source}))


def run_base(files: RunFiles) -> str | None:
    """The fingerprint of the base a run recorded, or None (none recorded, or none needed)."""
    try:
        fp = json.loads(files.base_ref.read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return fp if isinstance(fp, str) else None


def users(ws: Workspace) -> dict[str, list[str]]:
    """`{fingerprint: [run ids]}` of the runs whose folder records each base."""
    out: dict[str, list[str]] = {}
    for folder in sorted(ws.runs_dir.iterdir()):
        if folder.is_dir() and not folder.is_symlink():
            fp = run_base(RunFiles(folder))
            if fp:
                out.setdefault(fp, []).append(folder.name)
    return out


def listing(ws: Workspace) -> list[dict[str, Any]]:
    """Every stored base, most recently used first.

    Returns:
        Dicts with `fingerprint`, `path`, `bytes`, `source`, `last_used` (epoch
        seconds) and `runs` (ids of the runs that use it).
    """
    used = users(ws)
    out = []
    for folder in ws.bases_dir.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        fp = str(meta.get("fingerprint") or folder.name)
        out.append({"fingerprint": fp, "path": str(folder),
                    "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
                    "source": meta.get("source", "?"), "last_used": folder.stat().st_mtime,
                    "runs": used.get(fp, [])})
    out.sort(key=lambda e: e["last_used"], reverse=True)
    return out


def collect(ws: Workspace, grace_s: float = COLLECT_GRACE_S) -> tuple[int, int]:
    """Remove the bases no run uses (and staging left by killed writers).

    Args:
        ws: The workspace.
        grace_s: Keep a base stored or used within this many seconds: a run
            stores its base just before its folder records it.

    Returns:
        `(bases removed, bytes freed)`.
    """
    now = time.time()
    removed = freed = 0
    for entry in listing(ws):
        if entry["runs"] or now - entry["last_used"] < grace_s:
            continue
        shutil.rmtree(entry["path"], ignore_errors=True)
        removed += 1
        freed += entry["bytes"]
    for stage in ws.bases_dir.glob(".*.tmp*"):
        if now - stage.stat().st_mtime > grace_s:
            shutil.rmtree(stage, ignore_errors=True)
    return removed, freed
