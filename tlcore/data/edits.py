"""Build and grow a dataset: create it empty, edit its classes, add, remove and relabel images.

Every edit makes one new version (`tlcore.data.versions`) and moves the head
(`manifest.json`) to it; edits of one dataset wait for each other (a file
lock), and an edit that is refused changes nothing. Added images go through the
same checks as an import: read under `ImportLimits`, headers checked before any
pixel is decoded, re-encoded by Pillow (`decode`), and counted in the health
report (`health`). An image added to a class is stored once under
`images/<label index>/<id><ext>`; images removed or relabelled by an edit stay
where they are, for the versions that hold them.

An image's id is its stored file's stem, the first 16 hex digits of the stored
file's sha256. It names the image's content: identical content in one class
shares one file, and an edit by id acts on every copy of that content.

Splits are stable: an image keeps its split in every version, and a new image
takes the split that a hash of its content gives against the dataset's
validation and test fractions (`hash_split`), so a test image never moves into
training, however the dataset grows.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.data import staging as staging_dirs
from tlcore.data import versions
from tlcore.data.decode import finish_image, open_image
from tlcore.data.health import health_report
from tlcore.data.importer import check_name_free
from tlcore.data.limits import ImportLimits
from tlcore.data.manifest import (
    IMAGES_DIR,
    fingerprint,
    load_manifest,
    show_dataset,
    store_summary,
    write_manifest,
)
from tlcore.data.sources import Entry, printable, read_entry
from tlcore.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL, check_split_args
from tlcore.errors import DatasetError, NotFoundError
from tlcore.store import RunStore
from tlcore.workspace import (
    Workspace,
    check_dataset_name,
    check_free_space,
    disk_full_error,
    has_control_characters,
    is_no_space,
)

CLASS_NAME_MAX = 100
# One image to add: a path, its bytes, or (file name, bytes) as an upload gives them.
ImageInput = str | os.PathLike | bytes | tuple[str, bytes]


@dataclass(frozen=True)
class Added:
    """What `add_images` did.

    Attributes:
        version: The new version's id.
        ids: The ids of the images added, in the order given.
        skipped: `{file, reason}` of each input that was not added.
    """

    version: str
    ids: list[str]
    skipped: list[dict[str, str]]


def image_id(image: dict[str, Any]) -> str:
    """The id of a manifest image: its stored file's stem, `sha256[:16]`."""
    return Path(image["file"]).stem


def hash_split(sha256: str, val: float, test: float) -> str:
    """The split of a new image: a hash of its content against the test and validation fractions.

    The same content always gets the same split, in any dataset version.
    """
    share = int(sha256[-8:], 16) / 0x1_0000_0000
    return "test" if share < test else "val" if share < test + val else "train"


def check_class_name(name: str, existing: Sequence[str] = ()) -> str:
    """A class name as given, refused when empty, too long, unprintable or taken.

    Raises:
        DatasetError: The name cannot name a new class.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"A class name must be a non-empty text. Received: {name!r}")
    if len(name) > CLASS_NAME_MAX or has_control_characters(name):
        raise DatasetError(f"A class name must be one printable line of at most "
                           f"{CLASS_NAME_MAX} characters. Received: {printable(name)[:120]!r}")
    if name in existing:
        raise DatasetError(f"The dataset has a class named {name!r} already; choose another "
                           f"name. Received: {name!r}")
    return name


def create_dataset(name: str, classes: Sequence[str] = (), *, val: float = DEFAULT_VAL,
                   test: float = DEFAULT_TEST, seed: int = DEFAULT_SEED,
                   ws: Workspace | None = None, owner: str | None = None) -> dict[str, Any]:
    """Create an empty dataset with these classes, to fill with `add_images`.

    Args:
        name: The new dataset's name (see `workspace.check_dataset_name`).
        classes: Its class names, in label order.
        val: Validation fraction, for the split of images added later (`hash_split`).
        test: Test fraction, likewise.
        seed: Recorded with the split, as an import records it.
        ws: The workspace; default `Workspace.from_env()`.
        owner: The signed-in user who creates it; None: the local operator.

    Returns:
        `show_dataset(name)` of the new dataset.

    Raises:
        ConfigError: Invalid name or split fractions.
        DatasetError: The name is taken, or a class name is invalid or repeated.
    """
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    check_split_args(val, test, seed)
    names: list[str] = []
    for c in classes:
        names.append(check_class_name(c, names))
    store = RunStore(ws)
    check_name_free(store, ws, name)
    manifest = {
        "name": name, "classes": names, "created": time.time(), "source": "created empty",
        "split": {"val": val, "test": test, "seed": seed}, "fingerprint": fingerprint([], names),
        "images": [], "skipped": [], "health": health_report([], names, []), "notes": [],
    }
    manifest["version"] = versions.first_record(manifest, "created empty")
    staging = staging_dirs.make_staging(ws, f"create-{name}-")
    try:
        write_manifest(staging, manifest)
        versions.store_version(staging, manifest)
        (staging / IMAGES_DIR).mkdir()
        staging_dirs.release(staging)
        try:
            os.rename(staging, ws.dataset_dir(name))
        except OSError:
            raise DatasetError(f"A dataset named {name!r} appeared meanwhile; choose another "
                               f"name. Received: name={name!r}") from None
        try:
            store.add_dataset(name, 0, names, store_summary(manifest), owner=owner)
        except BaseException:
            shutil.rmtree(ws.dataset_dir(name), ignore_errors=True)
            raise
    except OSError as exc:
        if is_no_space(exc):
            raise disk_full_error(ws.tmp_dir) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return show_dataset(name, ws)


def add_class(name: str, class_name: str, *, ws: Workspace | None = None) -> str:
    """Add an empty class (the last label). Returns the new version's id.

    Raises:
        NotFoundError: The dataset does not exist.
        DatasetError: The class name is invalid or taken.
    """
    ws = ws or Workspace.from_env()
    with _editing(ws, name) as head:
        check_class_name(class_name, head["classes"])
        return _commit(ws, head, [*head["classes"], class_name], head["images"])


def rename_class(name: str, old: str, new: str, *, ws: Workspace | None = None) -> str:
    """Rename class `old` to `new`; its images and label stay. Returns the new version's id.

    Raises:
        NotFoundError: The dataset or the class does not exist.
        DatasetError: The new name is invalid or taken.
    """
    ws = ws or Workspace.from_env()
    with _editing(ws, name) as head:
        label = _label(head, old)
        check_class_name(new, head["classes"])
        classes = list(head["classes"])
        classes[label] = new
        images = [{**im, "class": new} if im["label"] == label else im for im in head["images"]]
        return _commit(ws, head, classes, images, renamed={old: new})


def remove_class(name: str, class_name: str, *, ws: Workspace | None = None) -> str:
    """Remove a class and its images from the dataset. Returns the new version's id.

    The classes after it move up one label; their files stay where they are.

    Raises:
        NotFoundError: The dataset or the class does not exist.
    """
    ws = ws or Workspace.from_env()
    with _editing(ws, name) as head:
        label = _label(head, class_name)
        classes = [c for c in head["classes"] if c != class_name]
        images = [{**im, "label": im["label"] - (im["label"] > label)}
                  for im in head["images"] if im["label"] != label]
        return _commit(ws, head, classes, images)


def add_images(name: str, class_name: str, files: Sequence[ImageInput], *,
               ws: Workspace | None = None, limits: ImportLimits | None = None) -> Added:
    """Add images to a class, checked, re-encoded and stored as an import stores them.

    Files that are not usable images are skipped with the reason, as an import
    skips them; so is an image whose content the dataset holds already.

    Args:
        name: The dataset.
        class_name: The class the images go to.
        files: Paths, bytes, or `(file name, bytes)` pairs (uploads, captures).
        ws: The workspace; default `Workspace.from_env()`.
        limits: Safety limits; default `ImportLimits.from_env()`.

    Returns:
        The new version's id, the added images' ids and the skipped files.

    Raises:
        NotFoundError: The dataset or the class does not exist.
        DatasetError: No file was added (each reason is in the message), or more
            files or bytes than the limits allow were given.
        DiskFullError: The disk is full; nothing was kept.
    """
    ws = ws or Workspace.from_env()
    limits = limits or ImportLimits.from_env()
    entries = [_entry(f, class_name, i) for i, f in enumerate(files)]
    if not entries:
        raise DatasetError("No images given to add; choose one or more image files.")
    if len(entries) > limits.max_files:
        raise DatasetError(f"Refused: {len(entries)} files at once > max_files="
                           f"{limits.max_files}; add them in smaller batches.")
    with _editing(ws, name) as head:
        label = _label(head, class_name)
        folder = ws.dataset_dir(name)
        held = {im["sha256"]: im["class"] for im in head["images"]}
        images, ids, skipped, written = list(head["images"]), [], [], []
        budget = limits.max_total_bytes
        split = head["split"]
        try:
            for entry in entries:
                data, budget = read_entry(entry, limits, budget)
                opened = open_image(data, limits) if isinstance(data, bytes) else data
                stored = finish_image(opened)
                if isinstance(stored, str):
                    skipped.append({"file": entry.source, "reason": stored})
                    continue
                if stored.sha256 in held:
                    skipped.append({"file": entry.source, "reason": (
                        f"already in the dataset, class {held[stored.sha256]!r} "
                        f"(id {stored.sha256[:16]})")})
                    continue
                rel = f"{IMAGES_DIR}/{label}/{stored.sha256[:16]}{stored.ext}"
                if _store_file(folder / rel, stored.payload):
                    written.append(folder / rel)
                held[stored.sha256] = class_name
                ids.append(stored.sha256[:16])
                images.append({"file": rel, "label": label, "class": class_name,
                               "split": hash_split(stored.sha256, split["val"], split["test"]),
                               "sha256": stored.sha256, "width": stored.width,
                               "height": stored.height, "source": entry.source})
            if not ids:
                raise DatasetError(f"No image was added to class {class_name!r}: " + "; ".join(
                    f"{s['file']}: {s['reason']}" for s in skipped[:5])
                    + ("; ..." if len(skipped) > 5 else ""))
            version = _commit(ws, head, head["classes"], images)
        except BaseException:
            for path in written:  # nothing of a failed edit stays behind
                path.unlink(missing_ok=True)
            raise
    return Added(version, ids, skipped)


def remove_images(name: str, ids: Sequence[str], *, ws: Workspace | None = None) -> str:
    """Remove images by id (every copy of their content). Returns the new version's id.

    Raises:
        NotFoundError: The dataset, or one of the ids, does not exist.
    """
    return apply_fixes(name, remove=list(ids), ws=ws)


def relabel_image(name: str, image: str, to: str, *, ws: Workspace | None = None) -> str:
    """Move an image to another class (it keeps its split). Returns the new version's id.

    Raises:
        NotFoundError: The dataset, the image or the class does not exist.
        DatasetError: The image is in that class already.
    """
    return apply_fixes(name, relabel={image: to}, ws=ws)


def apply_fixes(name: str, *, relabel: dict[str, str] | None = None,
                remove: list[str] | None = None, ws: Workspace | None = None) -> str:
    """Relabel and remove images by id, all in one new version.

    Args:
        name: The dataset.
        relabel: Image id -> the class it moves to.
        remove: Ids of images to remove.
        ws: The workspace; default `Workspace.from_env()`.

    Returns:
        The new version's id.

    Raises:
        NotFoundError: The dataset, an image id or a class does not exist.
        DatasetError: No fix was given, an id is both relabelled and removed, or
            the fixes change nothing (each image is in its class already).
    """
    ws = ws or Workspace.from_env()
    relabel, remove = dict(relabel or {}), list(remove or [])
    if not relabel and not remove:
        raise DatasetError("No fix given: name images to relabel or remove.")
    both = sorted(set(relabel) & set(remove))
    if both:
        raise DatasetError(f"An image cannot be both relabelled and removed. Received: "
                           f"{', '.join(both[:5])}")
    with _editing(ws, name) as head:
        known = {image_id(im) for im in head["images"]}
        unknown = [i for i in [*relabel, *remove] if i not in known]
        if unknown:
            raise NotFoundError(
                f"No image with id {unknown[0]!r} in dataset {name!r}"
                + (f" (and {len(unknown) - 1} more unknown ids)" if len(unknown) > 1 else "")
                + f"; `python -m tlcore datasets show {name} --images` lists the ids.")
        labels = {i: _label(head, c) for i, c in relabel.items()}
        gone = set(remove)
        images = []
        for im in head["images"]:
            key = image_id(im)
            if key in gone:
                continue
            if key in labels:
                im = {**im, "label": labels[key], "class": relabel[key]}
            images.append(im)
        if len(relabel) == 1 and not remove and images == head["images"]:
            key = next(iter(relabel))
            raise DatasetError(f"Image {key} is in class {relabel[key]!r} already; nothing "
                               "was changed.")
        return _commit(ws, head, head["classes"], images)


def list_images(name: str, *, ws: Workspace | None = None, version: str | None = None,
                class_name: str | None = None) -> list[dict[str, Any]]:
    """The images of a dataset (one of its versions, default the head), by id.

    Returns:
        Dicts with id, file (relative to the dataset's folder), path (absolute),
        class, split, width, height and source, in manifest order.

    Raises:
        NotFoundError: The dataset, the version or the class does not exist.
    """
    ws = ws or Workspace.from_env()
    manifest = load_manifest(name, ws, version=version)
    if class_name is not None:
        _label(manifest, class_name)
    root = ws.dataset_dir(name)
    return [{"id": image_id(im), "file": im["file"], "path": str(root / im["file"]),
             "class": im["class"], "split": im["split"], "width": im["width"],
             "height": im["height"], "source": im["source"]}
            for im in manifest["images"] if class_name is None or im["class"] == class_name]


def check_trainable(manifest: dict[str, Any], limits: ImportLimits | None = None) -> None:
    """Refuse a dataset that cannot train a classifier yet, as an import refuses one.

    Raises:
        DatasetError: Images without labels (an unlabeled import), fewer than
            `min_classes` classes, a class with fewer than `min_per_class` images,
            or no training images.
    """
    limits = limits or ImportLimits.from_env()
    name, classes = manifest["name"], manifest["classes"]
    if manifest.get("labeled") is False:
        raise DatasetError(
            f"Dataset {name!r} has no labels (imported as unlabeled images), so no run can "
            f"train on it; train on a labeled dataset, then adapt that run to it: "
            f"python -m tlcore adapt RUN_ID {name}")
    counts = Counter(im["class"] for im in manifest["images"])
    where = (f"add images on the Data page or with `python -m tlcore datasets add {name} "
             "--class CLASS FILE...`")
    if len(classes) < limits.min_classes:
        raise DatasetError(f"Dataset {name!r} cannot train a classifier: it needs at least "
                           f"{limits.min_classes} classes; add a class and its images. "
                           f"Received: {len(classes)} class(es)")
    small = {c: counts[c] for c in classes if counts[c] < limits.min_per_class}
    if small:
        listed = ", ".join(f"{c!r}={n}" for c, n in list(small.items())[:5])
        raise DatasetError(f"Dataset {name!r} cannot train a classifier: {len(small)} "
                           f"class{'es have' if len(small) > 1 else ' has'} fewer than "
                           f"min_per_class={limits.min_per_class} images; {where}. "
                           f"Received: {listed}")
    if not any(im["split"] == "train" for im in manifest["images"]):
        raise DatasetError(f"Dataset {name!r} cannot train a classifier: it has no training "
                           f"images; {where}.")


@contextlib.contextmanager
def _editing(ws: Workspace, name: str) -> Iterator[dict[str, Any]]:
    """The head manifest, read under the dataset's edit lock (kept as a version first)."""
    check_dataset_name(name)
    with versions.edit_lock(ws, name):
        yield versions.ensure_history(ws.dataset_dir(name), load_manifest(name, ws))


def _label(manifest: dict[str, Any], class_name: str) -> int:
    try:
        return manifest["classes"].index(class_name)
    except ValueError:
        classes = ", ".join(map(repr, manifest["classes"])) or "none yet"
        raise NotFoundError(f"Dataset {manifest['name']!r} has no class {class_name!r}; its "
                            f"classes: {classes}.") from None


def _entry(item: ImageInput, class_name: str, i: int) -> Entry:
    """An input as the importer reads it, named for skip reasons."""
    if isinstance(item, tuple):
        file_name, payload = item
        return Entry(printable(str(file_name)), class_name, len(payload),
                     lambda: io.BytesIO(payload))
    if isinstance(item, bytes | bytearray):
        payload = bytes(item)
        return Entry(f"image {i + 1}", class_name, len(payload), lambda: io.BytesIO(payload))
    path = Path(item).expanduser()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DatasetError(f"Cannot read {printable(str(path))}: {exc.strerror or exc}. "
                           f"Received: {printable(str(item))!r}") from None
    if not path.is_file():
        raise DatasetError(f"{printable(str(path))} is not a file; give image files. "
                           f"Received: {printable(str(item))!r}")
    return Entry(printable(path.name), class_name, size, lambda: open(path, "rb"))  # noqa: SIM115


def _store_file(path: Path, payload: bytes) -> bool:
    """Write a new image file (temp file, then rename); False when it is there already."""
    if path.exists():  # same content in the same class folder: shared
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        check_free_space(path.parent, len(payload))
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_no_space(exc):
            raise disk_full_error(path.parent) from None
        raise
    return True


def _commit(ws: Workspace, head: dict[str, Any], classes: list[str],
            images: list[dict[str, Any]], renamed: dict[str, str] | None = None) -> str:
    """Make the new version of `head` and move the head to it. Returns its id.

    The version file is written first, then the head is replaced in one rename,
    then the store's row; when the store refuses, the old head is put back.
    """
    name = head["name"]
    version = fingerprint(images, classes)
    if version == head["fingerprint"]:
        raise DatasetError(f"The edit changes nothing in dataset {name!r}; nothing was saved.")
    notes = head.get("notes", [])
    manifest = {**{k: v for k, v in head.items() if k != "version"},
                "classes": classes, "fingerprint": version, "images": images,
                "health": health_report(images, classes, head["skipped"], notes), "notes": notes}
    changes = versions.count_changes(head, manifest, renamed)
    manifest["version"] = {"id": version, "parent": head["fingerprint"], "created": time.time(),
                           "changes": changes, "summary": versions.describe(changes)}
    folder = ws.dataset_dir(name)
    try:
        check_free_space(folder)
        versions.keep_version(folder, manifest)
        write_manifest(folder, manifest)
        try:
            RunStore(ws).update_dataset(name, len(images), classes, store_summary(manifest))
        except BaseException:
            write_manifest(folder, head)
            raise
        versions.add_to_history(folder, manifest)
    except OSError as exc:
        if is_no_space(exc):
            raise disk_full_error(folder) from None
        raise
    return version


def describe_skipped(skipped: list[dict[str, str]]) -> str:
    """"2 files skipped: a.txt (not an image ...); ..." for a message, or ""."""
    if not skipped:
        return ""
    shown = "; ".join(f"{s['file']} ({s['reason']})" for s in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"{len(skipped)} file{'s' if len(skipped) > 1 else ''} skipped: {shown}{more}"

