"""Datasets: import (zip, folder, CSV), validation, safety limits, splits, health report.

An import reads one of

* a zip of class folders (`cats/1.jpg`, `dogs/2.png`; any single top folder level
  such as `data/cats/1.jpg` is fine),
* a server-side folder of class folders (same rules), or
* a CSV of `filepath,label` with a header row; paths are relative to the CSV's
  folder, or to the root of the zip given as `csv_zip`, or the CSV sits at the
  top of the zip being imported.

Every file is decoded with Pillow (its extension is never trusted) and stored as
`datasets/<name>/images/<label index>/<sha256[:16]>.<ext>` in a form that
`Image.open(p).convert("RGB")` reads correctly: plain RGB/grayscale JPEG and PNG
files are copied byte for byte; anything else (CMYK, palette, alpha, 16-bit,
EXIF-rotated, BMP/GIF/WebP/TIFF...) is converted and re-encoded as PNG. Alpha is
composited on white; 16-bit images are scaled (not clipped) to 8 bits. Junk
(`__MACOSX/`, hidden files, `Thumbs.db`, non-images, truncated files, pixel
bombs, unsafe paths, symlinks) is skipped with a per-file reason that is kept in
the manifest. Stored paths come from content hashes, never from entry names, so
no entry can write outside the dataset folder; entries with absolute paths, `..`
or drive letters are skipped as unsafe all the same.

The split (train/val/test) is made once per import, stratified per class and
seeded, and stored in the manifest so every run on the dataset shares it.

An import stages everything under `<workspace>/tmp/`, renames the staging folder
to `datasets/<name>` only when all of it validated, and then records the row in
the run store: a refused or failed import leaves no folder and no row.

Limits (`ImportLimits`) have the defaults below; each can be set from the
environment:

    TLCORE_MAX_FILES              100000      entries in a zip, files in a folder, CSV rows
    TLCORE_MAX_TOTAL_BYTES        4 GiB       uncompressed bytes read by one import
    TLCORE_MAX_FILE_BYTES         256 MiB     one file; larger files are skipped
    TLCORE_MAX_COMPRESSION_RATIO  200         zip: uncompressed / compressed size, checked
                                              per entry and overall for entries over 1 MiB
    TLCORE_MAX_IMAGE_PIXELS       89478485    width x height; larger images are skipped
                                              before decoding (Pillow's own hard limit of
                                              twice its MAX_IMAGE_PIXELS still applies)
    TLCORE_MIN_PER_CLASS          5           valid images each class needs
    TLCORE_MIN_CLASSES            2           classes a dataset needs

This module never imports TensorFlow: the dashboard imports it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import statistics
import tempfile
import time
import uuid
import warnings
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tlcore.demo import DEMO_CLASSES, write_class_folders
from tlcore.errors import ConfigError, DatasetError, NotFoundError
from tlcore.store import RunStore
from tlcore.workspace import Workspace, check_dataset_name

MANIFEST_NAME = "manifest.json"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")
DEFAULT_VAL = 0.2
DEFAULT_TEST = 0.1
DEFAULT_SEED = 0

ProgressFn = Callable[[int, int, str], None]

# Formats Pillow may decode. An allow-list keeps risky or exotic decoders (EPS runs
# Ghostscript) away from uploaded files.
_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM", "TGA", "AVIF", "JPEG2000")
# Formats whose bytes can be stored as they are when the image is plain RGB or L.
_COPY_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_SYSTEM_FILES = ("thumbs.db", "desktop.ini")
_SPLIT_FOLDERS = ("train", "training", "val", "valid", "validation", "test", "testing")
_EXIF_ORIENTATION = 0x0112
_RATIO_MIN_BYTES = 1 << 20  # tiny entries may compress well (flat BMPs) and harm nobody
_READ_CHUNK = 1 << 20
_STAGING_PREFIX = "import-"
_STALE_STAGING_S = 24 * 3600
_PROGRESS_EVERY_S = 0.1
_PNG_COMPRESS_LEVEL = 1  # import speed matters more than a few percent of disk
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_MiB = 1 << 20
_GiB = 1 << 30


@dataclass(frozen=True)
class ImportLimits:
    """Safety limits and requirements of one import.

    Attributes:
        max_files: Most entries a zip, files a folder or rows a CSV may have.
        max_total_bytes: Most uncompressed bytes one import may read.
        max_file_bytes: Largest single file; larger files are skipped.
        max_compression_ratio: Largest uncompressed/compressed ratio of a zip, per
            entry and overall (checked for sizes over 1 MiB).
        max_image_pixels: Largest width x height; larger images are skipped unread.
        min_per_class: Valid images each class needs.
        min_classes: Classes a dataset needs (at least 2).
    """

    max_files: int = 100_000
    max_total_bytes: int = 4 * _GiB
    max_file_bytes: int = 256 * _MiB
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 89_478_485
    min_per_class: int = 5
    min_classes: int = 2

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            low = 2 if f.name == "min_classes" else 1
            kind = int | float if f.name == "max_compression_ratio" else int
            if isinstance(value, bool) or not isinstance(value, kind) or value < low:
                what = "a number" if f.name == "max_compression_ratio" else "an integer"
                raise ConfigError(f"ImportLimits.{f.name} must be {what} >= {low}. "
                                  f"Received: {f.name}={value!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImportLimits:
        """Defaults, overridden by `TLCORE_<FIELD>` environment variables.

        Raises:
            ConfigError: A variable is not a number or is out of range.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = f"TLCORE_{f.name.upper()}"
            if environ.get(var):
                kind = float if f.name == "max_compression_ratio" else int
                try:
                    values[f.name] = kind(environ[var])
                except ValueError:
                    raise ConfigError(f"${var} must be a {kind.__name__}. "
                                      f"Received: {var}={environ[var]!r}") from None
        return cls(**values)


# ---- public API ------------------------------------------------------------

def import_dataset(source: str | os.PathLike, name: str, *, val: float = DEFAULT_VAL,
                   test: float = DEFAULT_TEST, seed: int = DEFAULT_SEED,
                   limits: ImportLimits | None = None, progress: ProgressFn | None = None,
                   ws: Workspace | None = None,
                   csv_zip: str | os.PathLike | None = None) -> dict[str, Any]:
    """Import a zip, folder or CSV of labelled images as dataset `name`.

    Args:
        source: A `.zip` of class folders, a folder of class folders, or a `.csv` of
            `filepath,label` (header required).
        name: The new dataset's name (see `workspace.check_dataset_name`).
        val: Fraction of each class for validation.
        test: Fraction of each class for test.
        seed: Seed of the split.
        limits: Safety limits; default `ImportLimits.from_env()`.
        progress: Optional callback `(done, total, message)`, called while files are
            decoded (throttled) and once at the end.
        ws: The workspace; default `Workspace.from_env()`.
        csv_zip: For a CSV source, a zip holding the files the CSV names.

    Returns:
        `show_dataset(name)` of the new dataset.

    Raises:
        ConfigError: Invalid name, split fractions or seed.
        DatasetError: The import was refused (name taken, unsafe or too large
            archive, too few classes or images, ...). Nothing is left behind.
    """
    src = Path(source).expanduser()
    return _import(src, name, val=val, test=test, seed=seed, limits=limits, progress=progress,
                   ws=ws, csv_zip=csv_zip, source_label=src.name)


def load_manifest(name: str, ws: Workspace | None = None) -> dict[str, Any]:
    """The manifest of dataset `name` (format in docs/architecture.md).

    Raises:
        NotFoundError: The dataset (or its folder) does not exist.
    """
    ws = ws or Workspace.from_env()
    path = ws.dataset_dir(name) / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if RunStore(ws).has_dataset(name):
            raise NotFoundError(
                f"Dataset {name!r} has a record but its folder {path.parent} is missing; "
                f"delete it with `python -m tlcore datasets delete {name}` and import it again."
            ) from None
        raise NotFoundError(f"No dataset named {name!r}; import one first "
                            "(`python -m tlcore datasets list` shows what exists).") from None


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

    Also removes a folder left without a record by an interrupted import.

    Raises:
        NotFoundError: Neither a record nor a folder of that name exists.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    folder = ws.dataset_dir(name)
    has_row = store.has_dataset(name)
    if not has_row and not folder.exists():
        raise NotFoundError(f"No dataset named {name!r} to delete "
                            "(`python -m tlcore datasets list` shows what exists).")
    if folder.exists():
        # Rename first so readers never see a half-deleted dataset.
        trash = ws.tmp_dir / f"delete-{name}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    if has_row:
        store.delete_dataset(name)


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


def create_demo(name: str = "demo", ws: Workspace | None = None, per_class: int = 80,
                size: int = 64, seed: int = DEFAULT_SEED,
                progress: ProgressFn | None = None) -> dict[str, Any]:
    """Generate and import the offline demo dataset (4 learnable shape classes).

    Args:
        name: Dataset name.
        ws: The workspace; default `Workspace.from_env()`.
        per_class: Images per class.
        size: Image side in pixels.
        seed: Seed of the images and of the split.
        progress: Optional callback `(done, total, message)`.

    Returns:
        `show_dataset(name)` of the new dataset.

    Raises:
        DatasetError: A dataset called `name` exists already.
    """
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    _check_name_free(RunStore(ws), ws, name)
    with tempfile.TemporaryDirectory(prefix="demo-", dir=ws.tmp_dir) as tmp:
        root = write_class_folders(Path(tmp) / name, DEMO_CLASSES, per_class, size, seed)
        return _import(root, name, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed, limits=None,
                       progress=progress, ws=ws, csv_zip=None,
                       source_label="generated demo (tlcore.demo)")


# ---- import pipeline -------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    """One file to import: where it came from, its class and how to read it."""

    source: str  # path shown to the user, relative to the import root
    label: str
    size: int  # bytes, as declared by the zip or the file system
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True)
class _Stored:
    """A validated image, ready to be written."""

    sha256: str
    ext: str
    payload: bytes
    width: int
    height: int


@dataclass
class _Plan:
    """What an import will read: entries, files skipped so far, and notes for the report."""

    entries: list[_Entry]
    skipped: list[dict[str, str]]
    kind: str  # "folder" (class folders) or "csv" (labels from a CSV)
    notes: list[str] = dataclasses.field(default_factory=list)


class _TooLarge(Exception):
    """A read went over its byte limit."""


def _import(src: Path, name: str, *, val: float, test: float, seed: int,
            limits: ImportLimits | None, progress: ProgressFn | None, ws: Workspace | None,
            csv_zip: str | os.PathLike | None, source_label: str) -> dict[str, Any]:
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    _check_split_args(val, test, seed)
    limits = limits or ImportLimits.from_env()
    store = RunStore(ws)
    _check_name_free(store, ws, name)
    if not src.exists():
        raise DatasetError(f"Refused: {src} does not exist; give a .zip of class folders, a "
                           f"folder of class folders or a .csv of filepath,label. "
                           f"Received: source={str(src)!r}")
    _remove_stale_staging(ws)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{name}-", dir=ws.tmp_dir))
    try:
        with contextlib.ExitStack() as stack:
            manifest = _build(_plan(src, csv_zip, limits, stack), staging, name=name, val=val,
                              test=test, seed=seed, limits=limits, progress=progress,
                              source_label=source_label)
        target = ws.dataset_dir(name)
        try:
            os.rename(staging, target)
        except OSError:
            raise DatasetError(f"A dataset named {name!r} appeared while importing; choose "
                               f"another name. Received: name={name!r}") from None
        try:
            store.add_dataset(name, len(manifest["images"]), manifest["classes"],
                              _summary(manifest))
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename
    return show_dataset(name, ws)


def _check_split_args(val: float, test: float, seed: int) -> None:
    for key, value in (("val", val), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"{key} must be a fraction in [0, 1). Received: {key}={value!r}")
    if val + test >= 1:
        raise ConfigError("val + test must be below 1 so that training keeps some images. "
                          f"Received: val={val}, test={test}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0. Received: seed={seed!r}")


def _check_name_free(store: RunStore, ws: Workspace, name: str) -> None:
    if store.has_dataset(name):
        raise DatasetError(
            f"A dataset named {name!r} already exists; choose another name or delete it first "
            f"(`python -m tlcore datasets delete {name}`). Received: name={name!r}")
    if ws.dataset_dir(name).exists():
        raise DatasetError(
            f"The folder {ws.dataset_dir(name)} exists without a dataset record (left by an "
            f"interrupted import); remove it with `python -m tlcore datasets delete {name}` "
            f"or choose another name. Received: name={name!r}")


def _remove_stale_staging(ws: Workspace) -> None:
    # A killed import cannot clean up after itself; its staging folder is harmless
    # but takes disk, so the next import removes it once it is clearly abandoned.
    cutoff = time.time() - _STALE_STAGING_S
    for path in ws.tmp_dir.glob(f"{_STAGING_PREFIX}*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


# ---- sources ---------------------------------------------------------------

def _plan(src: Path, csv_zip: str | os.PathLike | None, limits: ImportLimits,
          stack: contextlib.ExitStack) -> _Plan:
    """What to read from `src`; zips stay open until `stack` closes."""
    if csv_zip is not None and src.suffix.lower() != ".csv":
        raise DatasetError(f"Refused: csv_zip only goes with a .csv source. "
                           f"Received: source={src.name!r}")
    if src.is_dir():
        return _plan_folder(src, limits)
    suffix = src.suffix.lower()
    if suffix == ".csv":
        zf = _open_zip(Path(csv_zip).expanduser(), limits, stack) if csv_zip else None
        text = _read_text_limited(src.open("rb"), limits, src.name)
        return _plan_csv(text, src.name, src.parent, zf, "", limits)
    if suffix == ".zip" or zipfile.is_zipfile(src):
        return _plan_zip(_open_zip(src, limits, stack), limits)
    raise DatasetError(f"Refused: {src.name} is neither a folder, a .zip nor a .csv; give a zip "
                       f"or folder of class folders, or a CSV of filepath,label. "
                       f"Received: source={src.name!r}")


def _open_zip(path: Path, limits: ImportLimits, stack: contextlib.ExitStack) -> zipfile.ZipFile:
    """Open a zip and refuse it unless its declared sizes are within the limits."""
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"Refused: {path.name} is not a readable zip file ({exc}); "
                           f"re-create the archive. Received: {path.name}") from None
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_files:
        raise DatasetError(f"Refused: {path.name} has {len(infos)} files, more than "
                           f"max_files={limits.max_files}; split it or raise "
                           f"TLCORE_MAX_FILES. Received: {len(infos)} files")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > limits.max_total_bytes:
        raise DatasetError(f"Refused: {path.name} expands to {_human_bytes(total)}, more than "
                           f"max_total_bytes={_human_bytes(limits.max_total_bytes)}; split it "
                           f"or raise TLCORE_MAX_TOTAL_BYTES. Received: {total} bytes")
    for size, csize, what in [(i.file_size, i.compress_size, i.filename) for i in infos] + [
            (total, packed, "the archive")]:
        if size > _RATIO_MIN_BYTES and size > limits.max_compression_ratio * max(csize, 1):
            raise DatasetError(
                f"Refused: {path.name} looks like a zip bomb: {what} expands "
                f"{size / max(csize, 1):.0f}x ({_human_bytes(size)} from {_human_bytes(csize)}), "
                f"more than max_compression_ratio={limits.max_compression_ratio:g}; nothing was "
                f"extracted. Received: ratio={size / max(csize, 1):.0f}")
    return zf


def _plan_zip(zf: zipfile.ZipFile, limits: ImportLimits) -> _Plan:
    skipped: list[dict[str, str]] = []
    files: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        reason = _unsafe_reason(info.filename) or _zip_entry_reason(info)
        parts = _parts(info.filename)
        reason = reason or _junk_reason(parts)
        if reason:
            skipped.append({"file": info.filename, "reason": reason})
        else:
            files.append((parts, info))
    csv_entry = _find_top_csv(zf, files, limits)
    if csv_entry is not None:
        parts, info, text = csv_entry
        plan = _plan_csv(text, "/".join(parts), None, zf, "/".join(parts[:-1]), limits)
        plan.skipped[:0] = skipped
        return plan
    return _assign_classes(
        [(parts, info.file_size, functools.partial(zf.open, info)) for parts, info in files],
        skipped)


def _zip_entry_reason(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link (not followed)"
    if info.flag_bits & 0x1:
        return "encrypted zip entry"
    return None


def _find_top_csv(zf: zipfile.ZipFile, files: list[tuple[tuple[str, ...], zipfile.ZipInfo]],
                  limits: ImportLimits) -> tuple[tuple[str, ...], zipfile.ZipInfo, str] | None:
    """A labels CSV at the top of the zip (or of its single top folder), if there is one."""
    tops = {parts[0] for parts, _ in files if len(parts) > 1}
    top_depth = 2 if len(tops) == 1 and all(len(p) > 1 for p, _ in files) else 1
    found = []
    for parts, info in files:
        if len(parts) == top_depth and parts[-1].lower().endswith(".csv"):
            text = _read_text_limited(zf.open(info), limits, info.filename)
            if _csv_columns(text) is not None:
                found.append((parts, info, text))
    if len(found) > 1:
        names = ", ".join(info.filename for _, info, _ in found)
        raise DatasetError(f"Refused: the zip has {len(found)} label CSVs at its top ({names}); "
                           f"keep one. Received: {len(found)} CSV files")
    return found[0] if found else None


def _plan_folder(root: Path, limits: ImportLimits) -> _Plan:
    skipped: list[dict[str, str]] = []
    files: list[tuple[tuple[str, ...], int, Callable[[], IO[bytes]]]] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root).parts
        for d in list(dirnames):
            reason = ("symbolic link (not followed)" if (here / d).is_symlink()
                      else _junk_reason((*rel, d)))
            if reason:
                # Pruned folders (.git, __MACOSX, links) are reported once, not per file.
                skipped.append({"file": "/".join((*rel, d)) + "/", "reason": reason})
                dirnames.remove(d)
        dirnames.sort()
        for fname in sorted(filenames):
            seen += 1
            if seen > limits.max_files:
                raise DatasetError(f"Refused: {root.name} has more than max_files="
                                   f"{limits.max_files} files; import a smaller folder or raise "
                                   f"TLCORE_MAX_FILES. Received: over {limits.max_files} files")
            parts = (*rel, fname)
            path = here / fname
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                reason = "symbolic link (not followed)"
            elif not stat.S_ISREG(st.st_mode):
                reason = "not a regular file"
            else:
                reason = _junk_reason(parts)
            if reason:
                skipped.append({"file": "/".join(parts), "reason": reason})
            else:
                files.append((parts, st.st_size, functools.partial(path.open, "rb")))
    _check_total_size(sum(size for _, size, _ in files), limits, root.name)
    return _assign_classes(files, skipped)


def _plan_csv(text: str, csv_name: str, folder: Path | None, zf: zipfile.ZipFile | None,
              zip_prefix: str, limits: ImportLimits) -> _Plan:
    """Entries named by a `filepath,label` CSV.

    Files are looked up in `zf` under `zip_prefix` when a zip is given, else under
    `folder`. Labels lose surrounding whitespace (CSV formatting, not content).
    """
    columns = _csv_columns(text)
    if columns is None:
        header = text.splitlines()[0] if text.strip() else ""
        raise DatasetError(f"Refused: {csv_name} needs a header row naming the columns "
                           f"filepath,label. Received: header={header!r}")
    path_col, label_col = columns
    rows = list(csv.reader(io.StringIO(text)))[1:]
    if len(rows) > limits.max_files:
        raise DatasetError(f"Refused: {csv_name} has {len(rows)} rows, more than max_files="
                           f"{limits.max_files}; split it or raise TLCORE_MAX_FILES. "
                           f"Received: {len(rows)} rows")
    zip_index = ({"/".join(_parts(i.filename)): i for i in zf.infolist()
                  if not _unsafe_reason(i.filename)} if zf else {})
    entries: list[_Entry] = []
    skipped: list[dict[str, str]] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        rel = row[path_col].strip() if len(row) > path_col else ""
        label = row[label_col].strip() if len(row) > label_col else ""
        where = f"{csv_name}:{line}"
        if not rel or not label:
            skipped.append({"file": where, "reason": "empty filepath or label"})
            continue
        reason = _unsafe_reason(rel) or _junk_reason(_parts(rel))
        if reason:
            skipped.append({"file": rel, "reason": reason})
            continue
        posix = "/".join(_parts(rel))
        if zf is not None:
            info = zip_index.get(f"{zip_prefix}/{posix}" if zip_prefix else posix)
            if info is None or info.is_dir():
                skipped.append({"file": rel, "reason": f"missing file ({where})"})
            elif reason := _zip_entry_reason(info):
                skipped.append({"file": rel, "reason": reason})
            else:
                entries.append(_Entry(posix, label, info.file_size,
                                      functools.partial(zf.open, info)))
            continue
        path = folder / posix
        try:
            st = os.lstat(path)
        except OSError:
            skipped.append({"file": rel, "reason": f"missing file ({where})"})
            continue
        if stat.S_ISLNK(st.st_mode):
            skipped.append({"file": rel, "reason": "symbolic link (not followed)"})
        elif not stat.S_ISREG(st.st_mode):
            skipped.append({"file": rel, "reason": "not a regular file"})
        else:
            entries.append(_Entry(posix, label, st.st_size, functools.partial(path.open, "rb")))
    if zf is None:
        _check_total_size(sum(e.size for e in entries), limits, csv_name)
    return _Plan(entries, skipped, "csv")


def _csv_columns(text: str) -> tuple[int, int] | None:
    """Indexes of the filepath and label columns, or None without such a header."""
    header = next(csv.reader(io.StringIO(text)), None)
    if not header:
        return None
    names = [h.strip().lower() for h in header]
    if "filepath" not in names or "label" not in names:
        return None
    return names.index("filepath"), names.index("label")


def _read_text_limited(fh: IO[bytes], limits: ImportLimits, what: str) -> str:
    with fh:
        try:
            data = _read_limited(fh, limits.max_file_bytes)
        except _TooLarge:
            raise DatasetError(f"Refused: {what} is larger than max_file_bytes="
                               f"{_human_bytes(limits.max_file_bytes)}. Received: {what}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"Refused: {what} is not UTF-8 text; save the CSV as UTF-8. "
                           f"Received: {what}") from None


def _check_total_size(total: int, limits: ImportLimits, what: str) -> None:
    if total > limits.max_total_bytes:
        raise DatasetError(f"Refused: {what} holds {_human_bytes(total)} of files, more than "
                           f"max_total_bytes={_human_bytes(limits.max_total_bytes)}; import less "
                           f"or raise TLCORE_MAX_TOTAL_BYTES. Received: {total} bytes")


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def _unsafe_reason(name: str) -> str | None:
    """Why an entry name could point outside the import root, or None."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE_RE.match(posix):
        return "unsafe path: absolute"
    if ".." in posix.split("/"):
        return "unsafe path: '..' leaves the import root"
    if "\x00" in posix:
        return "unsafe path: NUL character"
    return None


def _junk_reason(parts: tuple[str, ...]) -> str | None:
    """Why a relative path is junk (OS metadata, hidden, system file), or None."""
    if not parts:
        return "empty name"
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return "macOS metadata"
    if any(p.startswith(".") for p in parts):
        return "hidden file"
    if parts[-1].lower() in _SYSTEM_FILES:
        return "system file"
    return None


def _assign_classes(files: list[tuple[tuple[str, ...], int, Callable[[], IO[bytes]]]],
                    skipped: list[dict[str, str]]) -> _Plan:
    """Class = first folder below the import root, after any single top folder levels.

    A root holding only split folders (train/, val/, test/ ...) with class folders
    inside is read as one pool of class folders, to be split again.
    """
    level = 0
    while True:
        deep = [p for p, _, _ in files if len(p) > level + 1]
        if (not deep or len({p[level] for p in deep}) != 1
                or not any(len(p) > level + 2 for p in deep)):
            break
        level += 1
    notes = []
    tops = sorted({p[level] for p, _, _ in files if len(p) > level + 1})
    if len(tops) > 1 and all(t.lower() in _SPLIT_FOLDERS for t in tops):
        level += 1
        notes.append(f"The split folders {', '.join(tops)} were merged and split again "
                     "with this import's val/test fractions.")
    entries = []
    for parts, size, opener in files:
        source = "/".join(parts)
        if len(parts) <= level + 1:
            skipped.append({"file": source, "reason": "not inside a class folder"})
        else:
            entries.append(_Entry(source, parts[level], size, opener))
    return _Plan(entries, skipped, "folder", notes)


# ---- decoding ----------------------------------------------------------------

def _build(plan: _Plan, staging: Path, *, name: str, val: float, test: float, seed: int,
           limits: ImportLimits, progress: ProgressFn | None,
           source_label: str) -> dict[str, Any]:
    """Decode and store every entry in `staging`, split, and write the manifest."""
    entries = sorted(plan.entries, key=lambda e: (e.label, e.source))
    skipped, kind = plan.skipped, plan.kind
    _check_classes(Counter(e.label for e in entries), limits, kind, skipped, before=True)
    classes = sorted({e.label for e in entries})
    index = {c: i for i, c in enumerate(classes)}
    images: list[dict[str, Any]] = []
    written: set[str] = set()
    workers = max(1, min(4, os.cpu_count() or 1))
    reporter = _Reporter(progress, len(entries))
    budget = limits.max_total_bytes
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(entries), 4 * workers):
            batch = entries[start:start + 4 * workers]
            opened = []
            for entry in batch:
                data_or_reason, budget = _read_entry(entry, limits, budget)
                opened.append(_open_image(data_or_reason, limits)
                              if isinstance(data_or_reason, bytes) else data_or_reason)
            for entry, result in zip(batch, pool.map(_finish, opened), strict=True):
                reporter.step(entry.source)
                if isinstance(result, str):
                    skipped.append({"file": entry.source, "reason": result})
                    continue
                label = index[entry.label]
                rel = f"{IMAGES_DIR}/{label}/{result.sha256[:16]}{result.ext}"
                if rel not in written:  # exact duplicates in one class share a file
                    _store_image(staging / rel, result.payload)
                    written.add(rel)
                images.append({"file": rel, "label": label, "class": entry.label,
                               "split": "train", "sha256": result.sha256,
                               "width": result.width, "height": result.height,
                               "source": entry.source})
    _check_classes(Counter(im["class"] for im in images), limits, kind, skipped, before=False)
    _assign_splits(images, val, test, seed)
    manifest = {
        "name": name,
        "classes": classes,
        "created": time.time(),
        "source": source_label,
        "split": {"val": val, "test": test, "seed": seed},
        "fingerprint": fingerprint(images),
        "images": images,
        "skipped": skipped,
        "health": health_report(images, classes, skipped, plan.notes),
    }
    tmp = staging / f"{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, staging / MANIFEST_NAME)
    reporter.done()
    return manifest


def _check_classes(counts: Counter, limits: ImportLimits, kind: str,
                   skipped: list[dict[str, str]], *, before: bool) -> None:
    """Refuse too few classes or images; `before` = counted before decoding."""
    what = "label" if kind == "csv" else "class folder"
    hint = ("one label per class in the CSV" if kind == "csv"
            else "one folder per class (e.g. cats/1.jpg, dogs/2.jpg)")
    note = f" ({_skipped_note(skipped)})" if skipped else ""
    if len(counts) < limits.min_classes:
        n = len(counts)
        found = (f"no {what} with images found" if n == 0 else
                 f"only {n} {what}{'s' if n > 1 else ''} found ({', '.join(sorted(counts))})")
        raise DatasetError(
            f"Refused: {found}{note}; a dataset needs at least {limits.min_classes} classes, "
            f"{hint}. Received: {n} class{'es' if n != 1 else ''}")
    small = {c: n for c, n in sorted(counts.items()) if n < limits.min_per_class}
    if small:
        listed = ", ".join(f"{c!r}={n}" for c, n in small.items())
        kind_of = "files" if before else "valid images"
        raise DatasetError(
            f"Refused: {len(small)} class{'es have' if len(small) > 1 else ' has'} fewer than "
            f"min_per_class={limits.min_per_class} {kind_of}{note}; add images or remove the "
            f"class. Received: {listed}")


def _skipped_note(skipped: list[dict[str, str]]) -> str:
    reasons = Counter(_reason_kind(s["reason"]) for s in skipped)
    return f"{len(skipped)} files skipped: " + ", ".join(
        f"{n} {r}" for r, n in reasons.most_common(3))


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _read_entry(entry: _Entry, limits: ImportLimits, budget: int) -> tuple[bytes | str, int]:
    """The entry's bytes (or why it is skipped) and the byte budget left after it.

    Raises:
        DatasetError: The import as a whole would read more than max_total_bytes.
    """
    if entry.size > limits.max_file_bytes:
        return (f"file too large: {_human_bytes(entry.size)} > max_file_bytes="
                f"{_human_bytes(limits.max_file_bytes)}"), budget
    limit = min(limits.max_file_bytes, entry.size, budget)
    try:
        with entry.open() as fh:
            data = _read_limited(fh, limit)
    except _TooLarge:
        if limit == budget:
            raise DatasetError(
                f"Refused: the import reads more than max_total_bytes="
                f"{_human_bytes(limits.max_total_bytes)}; nothing was kept. Import less or "
                f"raise TLCORE_MAX_TOTAL_BYTES. Received: more than {limits.max_total_bytes} "
                f"bytes") from None
        return "file changed size while reading", budget
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return f"unreadable: {exc}", budget
    return data, budget - len(data)


def _read_limited(fh: IO[bytes], limit: int) -> bytes:
    """Read all of `fh`, raising _TooLarge as soon as more than `limit` bytes arrive."""
    chunks, n = [], 0
    while chunk := fh.read(min(_READ_CHUNK, limit - n + 1)):
        n += len(chunk)
        if n > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@functools.cache
def _open_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _open_image(data: bytes, limits: ImportLimits) -> tuple[Image.Image, bytes] | str:
    """Parse the header only (no pixels decoded) and apply the pixel limit.

    Runs in the importing thread: Pillow's decompression-bomb warning goes through
    the process-wide `warnings` filters, which are not thread-safe to change.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_open_formats())
    except Image.DecompressionBombError as exc:
        return f"too many pixels (decompression-bomb limit), not decoded: {exc}"
    except UnidentifiedImageError:
        return "not an image (or an unsupported format)"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken headers
        return f"undecodable: {exc}"
    width, height = img.size
    if width * height > limits.max_image_pixels:
        return (f"too many pixels (decompression-bomb limit), not decoded: {width}x{height} > "
                f"max_image_pixels={limits.max_image_pixels}")
    if width < 1 or height < 1:
        return f"undecodable: empty image {width}x{height}"
    return img, data


def _finish(opened: tuple[Image.Image, bytes] | str) -> _Stored | str:
    """Decode, normalise and encode one opened image (runs in a worker thread)."""
    if isinstance(opened, str):
        return opened
    img, data = opened
    with img:
        try:
            img.load()
            rgb = _normalise(img)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken data
            return f"undecodable: {exc}"
        if rgb is img and img.format in _COPY_EXT:
            payload, ext = data, _COPY_EXT[img.format]
        else:
            buf = io.BytesIO()
            rgb.save(buf, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
            payload, ext = buf.getvalue(), ".png"
        return _Stored(hashlib.sha256(payload).hexdigest(), ext, payload, *rgb.size)


def _normalise(img: Image.Image) -> Image.Image:
    """`img` itself when it is plain RGB or L, else an RGB/L copy that looks the same.

    EXIF orientation is applied, alpha is composited on white, 16-bit and float
    images are scaled (not clipped) to 8 bits.

    Raises:
        ValueError: The colour mode cannot be converted.
    """
    if img.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9):
        img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        return _scale_to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if img.mode in ("RGB", "L"):
        return img
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Grayscale "L" from a 16-bit or float image, keeping the whole range visible."""
    a = np.nan_to_num(np.asarray(img, dtype=np.float64))
    lo, hi = float(a.min()), float(a.max())
    if img.mode == "F":
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
    else:
        lo, hi = (0.0, 65535.0) if lo >= 0 and hi <= 65535 else (lo, hi)
    scaled = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _store_image(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


class _Reporter:
    """Throttled progress callbacks: at most one every 0.1 s, plus the final one."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress, self.total, self.done_n, self.last = progress, total, 0, 0.0
        if progress:
            progress(0, total, "reading files")

    def step(self, source: str) -> None:
        self.done_n += 1
        now = time.monotonic()
        if self.progress and now - self.last >= _PROGRESS_EVERY_S:
            self.last = now
            self.progress(self.done_n, self.total, source)

    def done(self) -> None:
        if self.progress:
            self.progress(self.total, self.total, "done")


# ---- split, fingerprint, health ----------------------------------------------

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


def _assign_splits(images: list[dict[str, Any]], val: float, test: float, seed: int) -> None:
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


def fingerprint(images: list[dict[str, Any]]) -> str:
    """sha256 hex over (sha256, label, split) of every image, in manifest order."""
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im['sha256']}\t{im['label']}\t{im['split']}\n".encode())
    return h.hexdigest()


def health_report(images: list[dict[str, Any]], classes: list[str],
                  skipped: list[dict[str, str]], notes: list[str] = ()) -> dict[str, Any]:
    """Counts, balance, sizes, duplicates, leakage and skipped files of a dataset.

    Args:
        images: Manifest image records (with "split" set).
        classes: Class names; index = label.
        skipped: Skipped files `{file, reason}`.
        notes: Sentences about the import to lead the warnings with.

    Returns:
        A dict: counts `{class: {train, val, test, total}}`, splits `{split: n}`,
        n_images, n_classes, imbalance_ratio (largest / smallest class), sizes
        (min/max/median width and height, distinct sizes with counts, most common
        first), duplicates (groups of identical files: sha256, files, classes,
        splits), leakage (the duplicate groups found in more than one split),
        label_conflicts (groups labelled with more than one class), skipped
        (`{total, by_reason}`) and warnings (plain sentences).
    """
    counts = {c: dict.fromkeys((*SPLITS, "total"), 0) for c in classes}
    for im in images:
        counts[im["class"]][im["split"]] += 1
        counts[im["class"]]["total"] += 1
    totals = [counts[c]["total"] for c in classes]
    imbalance = round(max(totals) / min(totals), 3) if totals and min(totals) else None
    widths = [im["width"] for im in images]
    heights = [im["height"] for im in images]
    distinct = Counter((im["width"], im["height"]) for im in images)
    sizes = {
        "width": _stats(widths),
        "height": _stats(heights),
        "n_distinct": len(distinct),
        "distinct": [{"width": w, "height": h, "count": n}
                     for (w, h), n in distinct.most_common(20)],
    }
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for im in images:
        groups[im["sha256"]].append(im)
    duplicates = [
        {"sha256": sha, "files": [im["source"] for im in group],
         "classes": sorted({im["class"] for im in group}),
         "splits": [s for s in SPLITS if any(im["split"] == s for im in group)]}
        for sha, group in groups.items() if len(group) > 1
    ]
    leakage = [d for d in duplicates if len(d["splits"]) > 1]
    conflicts = [d for d in duplicates if len(d["classes"]) > 1]
    by_reason = Counter(_reason_kind(s["reason"]) for s in skipped)
    notes = list(notes)
    if imbalance and imbalance >= 3:
        notes.append(f"Classes are imbalanced: the largest has {imbalance:g}x the images of "
                        "the smallest; class_weight=auto compensates.")
    if duplicates:
        n_extra = sum(len(d["files"]) - 1 for d in duplicates)
        notes.append(f"{len(duplicates)} groups of identical files ({n_extra} extra copies).")
    if leakage:
        notes.append(f"{len(leakage)} groups of identical files sit in more than one split "
                        "(leakage): validation and test scores may be optimistic.")
    if conflicts:
        notes.append(f"{len(conflicts)} groups of identical files carry different labels.")
    no_val = [c for c in classes if counts[c]["val"] == 0]
    if no_val and any(counts[c]["val"] for c in classes):
        notes.append(f"{len(no_val)} classes have no validation images: "
                        + ", ".join(no_val[:5]) + ("..." if len(no_val) > 5 else "") + ".")
    if widths and min(min(widths), min(heights)) < 32:
        notes.append("Some images are smaller than 32 px; they will be upscaled.")
    if skipped:
        notes.append(f"{len(skipped)} files were skipped (see skipped).")
    return {
        "counts": counts,
        "splits": {s: sum(counts[c][s] for c in classes) for s in SPLITS},
        "n_images": len(images),
        "n_classes": len(classes),
        "imbalance_ratio": imbalance,
        "sizes": sizes,
        "duplicates": duplicates,
        "leakage": leakage,
        "label_conflicts": conflicts,
        "skipped": {"total": len(skipped), "by_reason": dict(by_reason.most_common())},
        "warnings": notes,
    }


def _stats(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "max": None, "median": None}
    return {"min": min(values), "max": max(values), "median": statistics.median(values)}


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
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


def _human_bytes(n: float) -> str:
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):  # noqa: B007 - the last unit is used below
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"

