"""Dataset versions: each edit makes a new immutable version; runs record the one they train on.

A version is identified by its content, the manifest's `fingerprint` (the
images' sha256, labels and splits, and the class names). Every version is kept
as `datasets/<name>/versions/<fingerprint>.json`: the full manifest plus a
`version` record (`id`, `parent`, `created`, `changes`, `summary`). Images are
never copied: a version names the stored files it holds, files stay where they
were first written, and an image that an edit removes stays on disk for the
versions that still hold it. `manifest.json` is the head, the dataset as it is
now, so every reader of the head keeps working. `versions/history.jsonl` lists
the versions in the order they were made, one line each (an edit that brings
the dataset back to the content of an earlier version lists that id again).

A run records the version it trains on in `runs/<id>/dataset.json` (at launch,
or when a sweep's trial starts training); evaluation, export and the trainer
read that version (`run_manifest`), so editing a dataset never changes what an
earlier run trained or evaluates on. Runs from before versions were kept record
none and read the head.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlcore.data.manifest import (
    VERSIONS_DIR,
    load_manifest,
    version_path,
)
from tlcore.workspace import Workspace, atomic_write_text

HISTORY_NAME = "history.jsonl"
LOCK_NAME = ".lock"


def count_changes(parent: dict[str, Any] | None, child: dict[str, Any],
                  renamed: dict[str, str] | None = None) -> dict[str, Any]:
    """What changed from `parent` to `child`, per class.

    Images are matched by content (sha256): one in both with another class was
    relabelled, one only in `child` was added, one only in `parent` removed.

    Args:
        parent: The manifest before the edit; None for a dataset's first version.
        child: The manifest after it.
        renamed: Classes renamed by the edit, old name -> new name.

    Returns:
        `{"added": {class: n}, "removed": {class: n}, "relabelled": [{"from", "to",
        "n"}], "classes_added": [...], "classes_removed": [...], "classes_renamed":
        {old: new}}`; classes in `removed` and `from` are named as in `parent`.
    """
    renamed = renamed or {}
    before: dict[str, Counter] = defaultdict(Counter)
    after: dict[str, Counter] = defaultdict(Counter)
    for im in (parent or {}).get("images", []):
        before[im["sha256"]][renamed.get(im["class"], im["class"])] += 1
    for im in child["images"]:
        after[im["sha256"]][im["class"]] += 1
    original = {new: old for old, new in renamed.items()}
    added: Counter = Counter()
    removed: Counter = Counter()
    moved: Counter = Counter()
    for sha in before.keys() | after.keys():
        common = before[sha] & after[sha]
        gone = list((before[sha] - common).elements())
        new = list((after[sha] - common).elements())
        for old_class, new_class in zip(gone, new, strict=False):
            moved[(original.get(old_class, old_class), new_class)] += 1
        removed.update(original.get(c, c) for c in gone[len(new):])
        added.update(new[len(gone):])
    old_classes = [renamed.get(c, c) for c in (parent or {}).get("classes", [])]
    return {
        "added": dict(sorted(added.items())),
        "removed": dict(sorted(removed.items())),
        "relabelled": [{"from": a, "to": b, "n": n} for (a, b), n in sorted(moved.items())],
        "classes_added": [c for c in child["classes"] if c not in old_classes],
        "classes_removed": [original.get(c, c) for c in old_classes
                            if c not in child["classes"]],
        "classes_renamed": dict(renamed),
    }


def describe(changes: dict[str, Any]) -> str:
    """One line saying what a version changed ("added 3 to 'cat'; relabelled 1 'dog'->'cat'")."""
    parts = []
    for key, verb in (("classes_added", "new class"), ("classes_removed", "removed class")):
        parts += [f"{verb} {c!r}" for c in changes[key]]
    parts += [f"renamed {a!r} to {b!r}" for a, b in changes["classes_renamed"].items()]
    parts += [f"added {n} to {c!r}" for c, n in changes["added"].items()]
    parts += [f"removed {n} from {c!r}" for c, n in changes["removed"].items()]
    parts += [f"relabelled {r['n']} {r['from']!r}->{r['to']!r}" for r in changes["relabelled"]]
    return "; ".join(parts) or "no change"


def first_record(manifest: dict[str, Any], summary: str) -> dict[str, Any]:
    """The `version` record of a dataset's first version (an import or a new empty dataset)."""
    changes = count_changes(None, manifest)
    return {"id": manifest["fingerprint"], "parent": None, "created": manifest["created"],
            "changes": changes, "summary": summary}


def store_version(folder: Path, manifest: dict[str, Any]) -> None:
    """Keep `manifest` (with its `version` record) as a version and add it to the history."""
    keep_version(folder, manifest)
    add_to_history(folder, manifest)


def keep_version(folder: Path, manifest: dict[str, Any]) -> None:
    """Write `versions/<id>.json` of `manifest`, unless that version is kept already.

    A version file is never rewritten: when an edit brings the dataset back to an
    earlier version's content, that file stays and only the history gains a line.
    """
    path = version_path(folder, manifest["fingerprint"])
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        atomic_write_text(path, json.dumps(manifest, ensure_ascii=False))


def add_to_history(folder: Path, manifest: dict[str, Any]) -> None:
    """Append `manifest`'s version to `versions/history.jsonl`."""
    line = json.dumps({**manifest["version"], "n_images": len(manifest["images"]),
                       "n_classes": len(manifest["classes"])}, ensure_ascii=False)
    # One short append: a reader sees the whole line or none of it.
    with open(folder / VERSIONS_DIR / HISTORY_NAME, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def ensure_history(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The head `manifest`, kept as a version first if it is not one yet.

    Datasets imported before versions were kept have a head and no versions: the
    head becomes their first version, so that a run can record it.
    """
    if "version" in manifest and version_path(folder, manifest["fingerprint"]).is_file():
        return manifest
    if "version" not in manifest:
        manifest = {**manifest, "version": first_record(
            manifest, f"imported from {manifest.get('source', 'an earlier import')}")}
    store_version(folder, manifest)
    return manifest


@contextlib.contextmanager
def edit_lock(ws: Workspace, name: str) -> Iterator[None]:
    """Hold dataset `name`'s edit lock: edits of one dataset happen one at a time.

    Raises:
        NotFoundError: The dataset does not exist.
    """
    folder = ws.dataset_dir(name)
    if not folder.is_dir():
        load_manifest(name, ws)  # says which: no record, or a record without a folder
    (folder / VERSIONS_DIR).mkdir(exist_ok=True)
    with open(folder / VERSIONS_DIR / LOCK_NAME, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def list_versions(name: str, ws: Workspace | None = None) -> list[dict[str, Any]]:
    """The versions of dataset `name` in the order they were made, oldest first.

    Returns:
        Dicts with id, parent, created, n_images, n_classes, changes (see
        `count_changes`), summary (one line) and head (whether it is the dataset
        as it is now: the last entry).

    Raises:
        NotFoundError: The dataset does not exist.
    """
    ws = ws or Workspace.from_env()
    head = load_manifest(name, ws)
    path = ws.dataset_dir(name) / VERSIONS_DIR / HISTORY_NAME
    rows = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a full disk
                rows.append(json.loads(line))
    if not rows or rows[-1]["id"] != head["fingerprint"]:
        # The head came before versions were kept, or its history line was not written.
        record = head.get("version") or first_record(
            head, f"imported from {head.get('source', 'an earlier import')}")
        rows.append({**record, "n_images": len(head["images"]),
                     "n_classes": len(head["classes"])})
    for i, row in enumerate(rows):
        row["head"] = i == len(rows) - 1
    return rows


def record_run_version(ws: Workspace, run_id: str, dataset: str) -> str:
    """Record the version of `dataset` that run `run_id` trains on: its head now.

    Returns:
        The version id.

    Raises:
        NotFoundError: The dataset does not exist.
    """
    with edit_lock(ws, dataset):
        head = ensure_history(ws.dataset_dir(dataset), load_manifest(dataset, ws))
    version = head["fingerprint"]
    atomic_write_text(ws.run(run_id).dataset_version,
                      json.dumps({"dataset": dataset, "version": version}))
    return version


def run_version(ws: Workspace, run_id: str) -> str | None:
    """The dataset version run `run_id` trained on; None for runs from before versions."""
    path = ws.run(run_id).dataset_version
    try:
        return json.loads(path.read_text(encoding="utf-8"))["version"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def run_manifest(ws: Workspace, run_id: str, dataset: str,
                 run_dataset: str | None = None) -> dict[str, Any]:
    """The manifest a run reads `dataset` at: its recorded version when it is the run's own.

    Args:
        ws: The workspace.
        run_id: The run.
        dataset: The dataset to read.
        run_dataset: The run's own dataset (its config's); None: `dataset` is it.

    Raises:
        NotFoundError: The dataset, or the version the run recorded, does not exist.
    """
    if run_dataset is not None and dataset != run_dataset:
        return load_manifest(dataset, ws)
    return load_manifest(dataset, ws, version=run_version(ws, run_id))


def pin_run(ws: Workspace, run_id: str, dataset: str) -> str:
    """The version run `run_id` trains on: the recorded one, else the head, recorded now.

    Launch records it; a sweep's trial and a run resumed from before versions
    were kept record it when they start training.
    """
    return run_version(ws, run_id) or record_run_version(ws, run_id, dataset)
