"""The import pipeline: plan a source, decode and store each file, split, write the manifest.

An import stages everything under `<workspace>/tmp/`, renames the staging folder
to `datasets/<name>` only when all of it validated, and then records the row in
the run store: a refused or failed import leaves no folder and no row. A full
disk stops it with a one-line error, and staging folders left by killed imports
are removed when the next one starts (`staging`).

Files are read and their headers parsed in the calling thread; decoding and
encoding run in a few threads, and an image starts only when the estimated
memory of all images in flight stays under `max_import_memory_mb`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tlcore.data import staging as staging_dirs
from tlcore.data import versions
from tlcore.data.decode import Opened, Stored, finish_image, open_image
from tlcore.data.demo import DEMO_CLASSES, write_class_folders
from tlcore.data.health import health_report, skipped_note
from tlcore.data.limits import ImportLimits
from tlcore.data.manifest import (
    IMAGES_DIR,
    fingerprint,
    show_dataset,
    store_summary,
    write_manifest,
)
from tlcore.data.sources import Entry, Plan, plan_source, read_entry
from tlcore.data.splits import (
    DEFAULT_SEED,
    DEFAULT_TEST,
    DEFAULT_VAL,
    assign_splits,
    check_split_args,
)
from tlcore.errors import DatasetError
from tlcore.store import RunStore
from tlcore.workspace import Workspace, check_dataset_name, is_no_space

ProgressFn = Callable[[int, int, str], None]

_PROGRESS_EVERY_S = 0.1


def import_dataset(source: str | os.PathLike, name: str, *, val: float = DEFAULT_VAL,
                   test: float = DEFAULT_TEST, seed: int = DEFAULT_SEED,
                   limits: ImportLimits | None = None, progress: ProgressFn | None = None,
                   ws: Workspace | None = None,
                   csv_zip: str | os.PathLike | None = None,
                   owner: str | None = None, unlabeled: bool = False) -> dict[str, Any]:
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
        owner: The signed-in user who imports it; None: the local operator.
        unlabeled: Import a zip or folder of images without labels (a target domain
            for `tlcore.adapt`): one placeholder class and `"labeled": false` in the
            manifest; no run can train on it.

    Returns:
        `show_dataset(name)` of the new dataset.

    Raises:
        ConfigError: Invalid name, split fractions or seed.
        DatasetError: The import was refused (name taken, unsafe or too large
            archive, too few classes or images, ...). Nothing is left behind.
    """
    src = Path(source).expanduser()
    return _import(src, name, val=val, test=test, seed=seed, limits=limits, progress=progress,
                   ws=ws, csv_zip=csv_zip, source_label=src.name, owner=owner,
                   unlabeled=unlabeled)


def create_demo(name: str = "demo", ws: Workspace | None = None, per_class: int = 80,
                size: int = 64, seed: int = DEFAULT_SEED,
                progress: ProgressFn | None = None, owner: str | None = None) -> dict[str, Any]:
    """Generate and import the offline demo dataset (4 learnable shape classes).

    Args:
        name: Dataset name.
        ws: The workspace; default `Workspace.from_env()`.
        per_class: Images per class.
        size: Image side in pixels.
        seed: Seed of the images and of the split.
        progress: Optional callback `(done, total, message)`.
        owner: The signed-in user who creates it; None: the local operator.

    Returns:
        `show_dataset(name)` of the new dataset.

    Raises:
        DatasetError: A dataset called `name` exists already.
    """
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    check_name_free(RunStore(ws), ws, name)
    tmp = staging_dirs.make_staging(ws, "demo-")
    try:
        root = write_class_folders(tmp / name, DEMO_CLASSES, per_class, size, seed)
        return _import(root, name, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed, limits=None,
                       progress=progress, ws=ws, csv_zip=None,
                       source_label="generated demo (tlcore.data.demo)", owner=owner)
    except OSError as exc:
        if is_no_space(exc):
            raise staging_dirs.disk_full_error(ws.tmp_dir, exc) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import(src: Path, name: str, *, val: float, test: float, seed: int,
            limits: ImportLimits | None, progress: ProgressFn | None, ws: Workspace | None,
            csv_zip: str | os.PathLike | None, source_label: str,
            owner: str | None, unlabeled: bool = False) -> dict[str, Any]:
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    check_split_args(val, test, seed)
    limits = limits or ImportLimits.from_env()
    store = RunStore(ws)
    check_name_free(store, ws, name)
    if not src.exists():
        raise DatasetError(f"Refused: {src} does not exist; give a .zip of class folders, a "
                           f"folder of class folders or a .csv of filepath,label. "
                           f"Received: source={str(src)!r}")
    staging_dirs.remove_stale(ws)
    staging: Path | None = None
    try:
        staging = staging_dirs.make_staging(ws, f"import-{name}-")
        with contextlib.ExitStack() as stack:
            manifest = _build(plan_source(src, csv_zip, limits, stack, unlabeled), staging,
                              name=name, val=val,
                              test=test, seed=seed, limits=limits, progress=progress,
                              source_label=source_label)
        staging_dirs.release(staging)
        target = ws.dataset_dir(name)
        try:
            os.rename(staging, target)
        except OSError:
            raise DatasetError(f"A dataset named {name!r} appeared while importing; choose "
                               f"another name. Received: name={name!r}") from None
        try:
            store.add_dataset(name, len(manifest["images"]), manifest["classes"],
                              store_summary(manifest), owner=owner)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    except OSError as exc:
        if not is_no_space(exc):
            raise
        if staging is not None:  # removed first, so the message counts the space it held
            shutil.rmtree(staging, ignore_errors=True)
        raise staging_dirs.disk_full_error(ws.tmp_dir, exc) from None
    finally:
        if staging is not None:  # gone already after a successful rename
            shutil.rmtree(staging, ignore_errors=True)
    return show_dataset(name, ws)


def check_name_free(store: RunStore, ws: Workspace, name: str) -> None:
    """Refuse a name that a dataset, or the folder of an interrupted import, holds.

    Raises:
        DatasetError: The name is taken.
    """
    if store.has_dataset(name):
        raise DatasetError(
            f"A dataset named {name!r} already exists; choose another name or delete it first "
            f"(`python -m tlcore datasets delete {name}`). Received: name={name!r}")
    if ws.dataset_dir(name).exists():
        raise DatasetError(
            f"The folder {ws.dataset_dir(name)} exists without a dataset record (left by an "
            f"interrupted import); remove it with `python -m tlcore datasets delete {name}` "
            f"or choose another name. Received: name={name!r}")


def _build(plan: Plan, staging: Path, *, name: str, val: float, test: float, seed: int,
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
    reduced: Counter = Counter()
    reporter = _Reporter(progress, len(entries))

    def keep(entry: Entry, result: Stored | str) -> None:
        reporter.step(entry.source)
        if isinstance(result, str):
            skipped.append({"file": entry.source, "reason": result})
            return
        label = index[entry.label]
        rel = f"{IMAGES_DIR}/{label}/{result.sha256[:16]}{result.ext}"
        if rel not in written:  # identical images in one class share a file
            _store_image(staging / rel, result.payload)
            written.add(rel)
        if result.scale > 1:
            reduced[result.scale] += 1
        images.append({"file": rel, "label": label, "class": entry.label,
                       "split": "train", "sha256": result.sha256,
                       "width": result.width, "height": result.height,
                       "source": entry.source})

    _decode_all(entries, limits, max(1, min(4, os.cpu_count() or 1)), keep)
    _check_classes(Counter(im["class"] for im in images), limits, kind, skipped, before=False)
    assign_splits(images, val, test, seed)
    notes = plan.notes + _reduced_notes(reduced)
    manifest = {
        "name": name,
        "classes": classes,
        "created": time.time(),
        "source": source_label,
        "split": {"val": val, "test": test, "seed": seed},
        "fingerprint": fingerprint(images, classes),
        "images": images,
        "skipped": skipped,
        "health": health_report(images, classes, skipped, notes),
        "notes": notes,
    }
    if kind == "unlabeled":
        manifest["labeled"] = False
    manifest["version"] = versions.first_record(manifest, f"imported from {source_label}")
    write_manifest(staging, manifest)
    versions.store_version(staging, manifest)
    reporter.done()
    return manifest


def _decode_all(entries: list[Entry], limits: ImportLimits, workers: int,
                keep: Callable[[Entry, Stored | str], None]) -> None:
    """Read, decode and encode every entry, calling `keep` with each result in order.

    The calling thread reads files and parses headers; `workers` threads decode.
    An image is handed to them only when the estimated memory of every image in
    flight (`Opened.cost`, which includes the file's bytes) stays under
    `max_import_memory_mb`, so threads never decode more at once than that allows.
    """
    memory = limits.max_import_memory_mb << 20
    budget = limits.max_total_bytes
    in_flight: deque[tuple[Entry, int, Future]] = deque()
    used = 0

    def collect_oldest() -> None:
        nonlocal used
        entry, cost, future = in_flight.popleft()
        result = future.result()
        used -= cost
        keep(entry, result)

    with ThreadPoolExecutor(workers) as pool:
        try:
            for entry in entries:
                # Room for the file's bytes before reading them, then for the whole decode.
                while in_flight and (len(in_flight) >= 4 * workers
                                     or used + min(entry.size, limits.max_file_bytes) > memory):
                    collect_oldest()
                opened, budget = _open_entry(entry, limits, budget)
                cost = opened.cost if isinstance(opened, Opened) else 0
                while in_flight and used + cost > memory:
                    collect_oldest()
                used += cost
                in_flight.append((entry, cost, pool.submit(finish_image, opened)))
            while in_flight:
                collect_oldest()
        except BaseException:
            for _, _, future in in_flight:
                future.cancel()
            raise


def _open_entry(entry: Entry, limits: ImportLimits, budget: int) -> tuple[Opened | str, int]:
    """The entry read and its header parsed (or why it is skipped), and the byte budget left."""
    data, budget = read_entry(entry, limits, budget)
    return (open_image(data, limits) if isinstance(data, bytes) else data), budget


def _reduced_notes(reduced: Counter) -> list[str]:
    if not reduced:
        return []
    n = sum(reduced.values())
    scales = ", ".join(f"1/{s}" for s in sorted(reduced))
    return [f"{n} JPEG image{'s' if n > 1 else ''} larger than max_image_bytes "
            f"{'were' if n > 1 else 'was'} decoded and stored at reduced size ({scales} of "
            f"each side)."]


def _check_classes(counts: Counter, limits: ImportLimits, kind: str,
                   skipped: list[dict[str, str]], *, before: bool) -> None:
    """Refuse too few classes or images; `before` = counted before decoding."""
    note = f" ({skipped_note(skipped)})" if skipped else ""
    if kind == "unlabeled":
        n = sum(counts.values())
        if n < limits.min_per_class:
            raise DatasetError(f"Refused: an unlabeled import needs at least "
                               f"{limits.min_per_class} images{note}. Received: {n} image(s)")
        return
    what = "label" if kind == "csv" else "class folder"
    hint = ("one label per class in the CSV" if kind == "csv"
            else "one folder per class (e.g. cats/1.jpg, dogs/2.jpg)")
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
