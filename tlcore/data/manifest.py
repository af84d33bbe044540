"""The dataset manifest (`datasets/<name>/manifest.json`): write, read, list, delete.

The manifest format is described in docs/architecture.md. Stored images live
under `images/<label index>/` next to it; the run store keeps one row per
dataset with a compact summary for fast listing. `manifest.json` is the
dataset's current version (its head); every version, the head included, is
also kept as `versions/<fingerprint>.json` (`tlcore.data.versions`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from tlcore.data import staging
from tlcore.errors import DatasetError, NotFoundError, TLCoreError
from tlcore.store import RunStore
from tlcore.workspace import Workspace

MANIFEST_NAME = "manifest.json"
IMAGES_DIR = "images"
VERSIONS_DIR = "versions"
_VERSION_RE = re.compile(r"[0-9a-f]{64}")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` into `folder` atomically (temp file, then rename)."""
    tmp = folder / f"{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)


def load_manifest(name: str, ws: Workspace | None = None,
                  version: str | None = None) -> dict[str, Any]:
    """The manifest of dataset `name` (format in docs/architecture.md).

    Args:
        name: The dataset.
        ws: The workspace; default `Workspace.from_env()`.
        version: A version id (the manifest's `fingerprint`); None: the head, the
            dataset as it is now.

    Raises:
        NotFoundError: The dataset (or its folder), or that version of it, does not exist.
    """
    ws = ws or Workspace.from_env()
    path = ws.dataset_dir(name) / MANIFEST_NAME
    try:
        if version is not None:
            return _load_version(path.parent, name, version)
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if RunStore(ws).has_dataset(name):
            raise NotFoundError(
                f"Dataset {name!r} has a record but its folder {path.parent} is missing; "
                f"delete it with `python -m tlcore datasets delete {name}` and import it again."
            ) from None
        raise NotFoundError(f"No dataset named {name!r}; import one first "
                            "(`python -m tlcore datasets list` shows what exists).") from None


def version_path(folder: Path, version: str) -> Path:
    """`versions/<version>.json` of the dataset in `folder`.

    Raises:
        NotFoundError: `version` is not a version id (64 hex digits).
    """
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise NotFoundError(f"{version!r} is not a dataset version id (64 hex digits; "
                            "`python -m tlcore datasets versions NAME` lists them).")
    return folder / VERSIONS_DIR / f"{version}.json"


def _load_version(folder: Path, name: str, version: str) -> dict[str, Any]:
    path = version_path(folder, version)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    head = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    if head["fingerprint"] == version:  # a dataset imported before versions were kept
        return head
    raise NotFoundError(f"Dataset {name!r} has no version {version[:12]}; "
                        f"`python -m tlcore datasets versions {name}` lists its versions.")


def list_datasets(ws: Workspace | None = None) -> list[dict[str, Any]]:
    """All datasets, newest first: name, created, n_images, classes, summary."""
    return RunStore(ws or Workspace.from_env()).list_datasets()


def show_dataset(name: str, ws: Workspace | None = None) -> dict[str, Any]:
    """What a person wants to know about dataset `name`.

    Returns:
        A dict with keys name, classes, n_images, counts (`{class: {train, val,
        test, total}}`), splits (`{train: n, val: n, test: n}`), skipped (list of
        `{file, reason}`), health (the full health report), source, created,
        split (`{val, test, seed}`) and fingerprint.

    Raises:
        NotFoundError: The dataset does not exist.
    """
    manifest = load_manifest(name, ws)
    health = manifest["health"]
    return {
        "name": manifest["name"],
        "classes": manifest["classes"],
        "n_images": len(manifest["images"]),
        "counts": health["counts"],
        "splits": health["splits"],
        "skipped": manifest["skipped"],
        "health": health,
        "source": manifest["source"],
        "created": manifest["created"],
        "split": manifest["split"],
        "fingerprint": manifest["fingerprint"],
    }


def delete_dataset(name: str, ws: Workspace | None = None) -> None:
    """Remove dataset `name`: its folder and its record.

    Also removes a folder left without a record by an interrupted import, and a
    record whose folder or images are gone.

    Raises:
        NotFoundError: Neither a record nor a folder of that name exists.
        DatasetError: The folder cannot be removed (permissions).
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    folder = ws.dataset_dir(name)
    has_row = store.has_dataset(name)
    if not has_row and not folder.exists() and not folder.is_symlink():
        raise NotFoundError(f"No dataset named {name!r} to delete "
                            "(`python -m tlcore datasets list` shows what exists).")
    trash = ws.tmp_dir / f"delete-{name}-{uuid.uuid4().hex[:8]}"
    try:
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            # Rename first so readers never see a half-deleted dataset.
            os.rename(folder, trash)
    except OSError as exc:
        raise DatasetError(f"Cannot delete the folder of dataset {name!r}: {exc.strerror or exc}; "
                           f"check its permissions and delete again. Received: name={name!r}"
                           ) from None
    if has_row:
        try:
            store.delete_dataset(name)
        except TLCoreError:  # e.g. a full disk: put the folder back, so nothing changed
            if trash.exists():
                os.rename(trash, folder)
            raise
    if trash.exists():
        # A delete killed halfway leaves a staging folder that a later cleanup removes;
        # owning it shortens that wait, and a full disk only makes the wait longer.
        with contextlib.suppress(OSError):
            staging.claim(trash)
        shutil.rmtree(trash, ignore_errors=True)


def sample_files(name: str, per_class: int = 6,
                 ws: Workspace | None = None) -> dict[str, list[Path]]:
    """Absolute paths of up to `per_class` distinct stored images of each class.

    Raises:
        NotFoundError: The dataset does not exist.
    """
    ws = ws or Workspace.from_env()
    manifest = load_manifest(name, ws)
    root = ws.dataset_dir(name)
    out: dict[str, list[Path]] = {c: [] for c in manifest["classes"]}
    seen: set[str] = set()
    for im in manifest["images"]:
        files = out[im["class"]]
        if len(files) < per_class and im["file"] not in seen:
            seen.add(im["file"])
            files.append(root / im["file"])
    return out


def fingerprint(images: list[dict[str, Any]], classes: list[str] | None = None) -> str:
    """sha256 hex over (sha256, label, split) of every image, in manifest order, and the classes.

    It identifies a dataset version: the class names count, so that renaming or
    adding a class makes a new version. Manifests written before versions were
    kept hashed the images alone (`classes` None).
    """
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im['sha256']}\t{im['label']}\t{im['split']}\n".encode())
    if classes is not None:
        h.update(("classes\t" + json.dumps(classes, ensure_ascii=False)).encode())
    return h.hexdigest()


def store_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The compact summary kept in the store row, enough for a listing."""
    health = manifest["health"]
    return {
        "source": manifest["source"],
        "splits": health["splits"],
        "counts": {c: v["total"] for c, v in health["counts"].items()},
        "n_skipped": len(manifest["skipped"]),
        "imbalance_ratio": health["imbalance_ratio"],
        "n_duplicates": len(health["duplicates"]),
        "n_leakage": len(health["leakage"]),
        "fingerprint": manifest["fingerprint"],
        "split": manifest["split"],
    }
