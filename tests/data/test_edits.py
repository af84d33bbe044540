"""Building and editing a dataset: create, classes, add / remove / relabel images, refusals."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore import data
from tlcore.data.demo import synth_image, write_class_folders
from tlcore.errors import ConfigError, DatasetError, NotFoundError
from tlcore.store import RunStore


def png(seed: int, size: int = 24) -> bytes:
    """A distinct small PNG (a generated shape on a seeded background)."""
    buf = io.BytesIO()
    synth_image(seed % 4, size, np.random.default_rng(seed)).save(buf, "PNG")
    return buf.getvalue()


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def state(ws, name: str) -> tuple:
    """Everything an edit may change: head, versions, files, store row."""
    folder = ws.dataset_dir(name)
    row = next(r for r in RunStore(ws).list_datasets() if r["name"] == name)
    return ((folder / "manifest.json").read_text(), files_under(folder),
            (folder / "versions" / "history.jsonl").read_text(), row["n_images"], row["summary"])


@pytest.fixture
def pets(ws):
    data.create_dataset("pets", ["cat", "dog"], ws=ws)
    return "pets"


def test_create_an_empty_dataset(ws, pets):
    info = data.show_dataset(pets, ws)
    assert info["classes"] == ["cat", "dog"] and info["n_images"] == 0
    assert info["counts"]["dog"] == {"train": 0, "val": 0, "test": 0, "total": 0}
    assert info["split"] == {"val": 0.2, "test": 0.1, "seed": 0}
    row = RunStore(ws).list_datasets()[0]
    assert row["name"] == pets and row["classes"] == ["cat", "dog"] and row["n_images"] == 0
    [version] = data.list_versions(pets, ws)
    assert version["id"] == info["fingerprint"] and version["parent"] is None
    assert version["summary"] == "created empty" and version["head"]
    assert version["changes"]["classes_added"] == ["cat", "dog"]
    assert list(ws.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("classes, match", [
    (["a", "a"], "class named 'a' already"),
    (["a", " "], "non-empty"),
    (["a", "b\nc"], "one printable line"),
])
def test_create_refuses_bad_class_names(ws, classes, match):
    with pytest.raises(DatasetError, match=match):
        data.create_dataset("bad", classes, ws=ws)
    assert not ws.dataset_dir("bad").exists() and not RunStore(ws).has_dataset("bad")


def test_create_refuses_a_taken_name_or_bad_split(ws, pets):
    with pytest.raises(DatasetError, match="already exists"):
        data.create_dataset(pets, ["x"], ws=ws)
    with pytest.raises(ConfigError, match="val"):
        data.create_dataset("other", ["x"], val=1.5, ws=ws)
    assert not ws.dataset_dir("other").exists()


def test_add_images_from_paths_bytes_and_uploads(ws, pets, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png(1))
    (tmp_path / "notes.txt").write_text("not an image")
    added = data.add_images(pets, "cat", [path, png(2), ("upload.png", png(3)),
                                          tmp_path / "notes.txt", png(2)], ws=ws)
    assert len(added.ids) == 3
    assert [s["file"] for s in added.skipped] == ["notes.txt", "image 5"]
    assert added.skipped[0]["reason"].startswith("not an image")
    assert added.skipped[1]["reason"].startswith("already in the dataset, class 'cat'")
    manifest = data.load_manifest(pets, ws)
    assert manifest["fingerprint"] == added.version
    folder = ws.dataset_dir(pets)
    for im, image in zip(manifest["images"], added.ids, strict=True):
        # The id is the stored file's stem, the first 16 hex digits of its sha256.
        assert data.image_id(im) == image == im["sha256"][:16]
        assert im["file"] == f"images/0/{image}.png" and (folder / im["file"]).is_file()
        assert im["split"] == data.hash_split(im["sha256"], 0.2, 0.1)
        assert Image.open(folder / im["file"]).size == (24, 24)
    assert [im["source"] for im in manifest["images"]] == ["photo.png", "image 2", "upload.png"]
    assert data.show_dataset(pets, ws)["counts"]["cat"]["total"] == 3
    assert RunStore(ws).list_datasets()[0]["n_images"] == 3
    listed = data.list_images(pets, ws=ws, class_name="cat")
    assert [im["id"] for im in listed] == added.ids
    assert Path(listed[0]["path"]).is_file()


def test_refused_edits_change_nothing(ws, pets, tmp_path):
    data.add_images(pets, "cat", [png(1)], ws=ws)
    before = state(ws, pets)
    with pytest.raises(DatasetError, match=r"No image was added to class 'cat': image 1: not an"):
        data.add_images(pets, "cat", [b"junk"], ws=ws)
    with pytest.raises(NotFoundError, match="has no class 'cow'; its classes: 'cat', 'dog'"):
        data.add_images(pets, "cow", [png(2)], ws=ws)
    with pytest.raises(NotFoundError, match="No image with id 'feedfeedfeedfeed'"):
        data.remove_images(pets, ["feedfeedfeedfeed"], ws=ws)
    with pytest.raises(NotFoundError, match="has no class 'cow'"):
        data.relabel_image(pets, data.list_images(pets, ws=ws)[0]["id"], "cow", ws=ws)
    with pytest.raises(DatasetError, match="in class 'cat' already"):
        data.relabel_image(pets, data.list_images(pets, ws=ws)[0]["id"], "cat", ws=ws)
    with pytest.raises(DatasetError, match="class named 'dog' already"):
        data.rename_class(pets, "cat", "dog", ws=ws)
    with pytest.raises(DatasetError, match="too many pixels"):
        data.add_images(pets, "cat", [png(4, size=64)], ws=ws,
                        limits=data.ImportLimits(max_image_pixels=100))
    with pytest.raises(DatasetError, match="max_files=1"):
        data.add_images(pets, "cat", [png(5), png(6)], ws=ws, limits=data.ImportLimits(max_files=1))
    assert state(ws, pets) == before
    with pytest.raises(NotFoundError, match="No dataset named 'nope'"):
        data.add_images("nope", "cat", [png(1)], ws=ws)
    assert not ws.dataset_dir("nope").exists()


def test_relabel_and_remove_keep_files_and_splits(ws, pets):
    added = data.add_images(pets, "cat", [png(i) for i in range(4)], ws=ws)
    first = added.version
    before = {im["id"]: im for im in data.list_images(pets, ws=ws)}
    moved = data.relabel_image(pets, added.ids[0], "dog", ws=ws)
    after = {im["id"]: im for im in data.list_images(pets, ws=ws)}
    assert after[added.ids[0]]["class"] == "dog"
    # The image keeps its split and its stored file.
    assert after[added.ids[0]]["split"] == before[added.ids[0]]["split"]
    assert after[added.ids[0]]["file"] == before[added.ids[0]]["file"]
    gone = data.remove_images(pets, added.ids[1:3], ws=ws)
    assert [im["id"] for im in data.list_images(pets, ws=ws)] == [added.ids[0], added.ids[3]]
    folder = ws.dataset_dir(pets)
    assert all((folder / before[i]["file"]).is_file() for i in added.ids)  # earlier versions
    old = data.load_manifest(pets, ws, version=first)
    assert [im["class"] for im in old["images"]] == ["cat"] * 4
    history = data.list_versions(pets, ws)
    assert [v["id"] for v in history][-3:] == [first, moved, gone]
    assert history[-2]["changes"]["relabelled"] == [{"from": "cat", "to": "dog", "n": 1}]
    assert history[-1]["changes"]["removed"] == {"cat": 2}
    assert history[-1]["summary"] == "removed 2 from 'cat'"


def test_apply_fixes_makes_one_version(ws, pets):
    cats = data.add_images(pets, "cat", [png(i) for i in range(5)], ws=ws).ids
    n_versions = len(data.list_versions(pets, ws))
    version = data.apply_fixes(pets, relabel={cats[0]: "dog", cats[1]: "dog"},
                               remove=[cats[2]], ws=ws)
    history = data.list_versions(pets, ws)
    assert len(history) == n_versions + 1 and history[-1]["id"] == version
    assert history[-1]["changes"]["relabelled"] == [{"from": "cat", "to": "dog", "n": 2}]
    assert history[-1]["changes"]["removed"] == {"cat": 1}
    counts = data.show_dataset(pets, ws)["counts"]
    assert counts["cat"]["total"] == 2 and counts["dog"]["total"] == 2
    with pytest.raises(DatasetError, match="both relabelled and removed"):
        data.apply_fixes(pets, relabel={cats[3]: "dog"}, remove=[cats[3]], ws=ws)
    with pytest.raises(DatasetError, match="No fix given"):
        data.apply_fixes(pets, ws=ws)
    assert data.load_manifest(pets, ws)["fingerprint"] == version


def test_class_edits(ws, pets):
    data.add_images(pets, "cat", [png(1), png(2)], ws=ws)
    data.add_images(pets, "dog", [png(3)], ws=ws)
    renamed = data.rename_class(pets, "cat", "kitten", ws=ws)
    manifest = data.load_manifest(pets, ws)
    assert manifest["classes"] == ["kitten", "dog"]
    assert [(im["class"], im["label"]) for im in manifest["images"]] == [
        ("kitten", 0), ("kitten", 0), ("dog", 1)]
    history = data.list_versions(pets, ws)
    assert history[-1]["id"] == renamed and history[-1]["summary"] == "renamed 'cat' to 'kitten'"
    assert history[-1]["changes"]["relabelled"] == []  # a rename moves no image
    data.add_class(pets, "bird", ws=ws)
    assert data.load_manifest(pets, ws)["classes"] == ["kitten", "dog", "bird"]
    data.remove_class(pets, "kitten", ws=ws)
    manifest = data.load_manifest(pets, ws)
    assert manifest["classes"] == ["dog", "bird"]
    assert [(im["class"], im["label"]) for im in manifest["images"]] == [("dog", 0)]
    assert data.list_versions(pets, ws)[-1]["changes"]["removed"] == {"kitten": 2}
    assert data.list_versions(pets, ws)[-1]["changes"]["classes_removed"] == ["kitten"]
    added = data.add_images(pets, "bird", [png(4)], ws=ws)
    bird = data.list_images(pets, ws=ws, class_name="bird")[0]
    assert bird["id"] == added.ids[0] and bird["file"].startswith("images/1/")


def test_an_edit_back_to_earlier_content_lists_that_version_again(ws, pets):
    [cat] = data.add_images(pets, "cat", [png(1)], ws=ws).ids
    first = data.load_manifest(pets, ws)["fingerprint"]
    stored = (ws.dataset_dir(pets) / "versions" / f"{first}.json").read_text()
    middle = data.relabel_image(pets, cat, "dog", ws=ws)
    back = data.relabel_image(pets, cat, "cat", ws=ws)
    assert back == first != middle
    assert [v["id"] for v in data.list_versions(pets, ws)][-3:] == [first, middle, first]
    assert (ws.dataset_dir(pets) / "versions" / f"{first}.json").read_text() == stored


def test_concurrent_edits_both_land(ws, pets):
    errors = []

    def add(cls: str, seeds: range) -> None:
        try:
            data.add_images(pets, cls, [png(s) for s in seeds], ws=ws)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=("cat", range(0, 4))),
               threading.Thread(target=add, args=("dog", range(10, 14)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = data.show_dataset(pets, ws)["counts"]
    assert counts["cat"]["total"] == 4 and counts["dog"]["total"] == 4
    assert len(data.list_versions(pets, ws)) == 3


def test_splits_are_stable_as_a_dataset_grows(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=10, size=24)
    data.import_dataset(folder, "grow", ws=ws)
    before = {im["id"]: im["split"] for im in data.list_images("grow", ws=ws)}
    for round_ in range(3):
        data.add_images("grow", "a", [png(100 + 20 * round_ + i) for i in range(20)], ws=ws)
    after = {im["id"]: im["split"] for im in data.list_images("grow", ws=ws)}
    assert {i: after[i] for i in before} == before
    new = [im for im in data.load_manifest("grow", ws)["images"] if data.image_id(im) not in before]
    assert len(new) == 60
    assert all(im["split"] == data.hash_split(im["sha256"], 0.2, 0.1) for im in new)
    assert {im["split"] for im in new} == {"train", "val", "test"}


def test_hash_split_follows_the_fractions():
    shas = [f"{i:064x}" for i in range(0, 2 ** 32, 2 ** 32 // 1000)][:1000]
    splits = [data.hash_split(s, 0.2, 0.1) for s in shas]
    assert abs(splits.count("test") - 100) <= 2 and abs(splits.count("val") - 200) <= 2
    assert data.hash_split("f" * 64, 0.2, 0.1) == "train"


def test_a_dataset_from_before_versions_becomes_its_first_version(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=24)
    data.import_dataset(folder, "old", ws=ws)
    root = ws.dataset_dir("old")
    manifest = json.loads((root / "manifest.json").read_text())
    legacy = {k: v for k, v in manifest.items() if k not in ("version", "notes")}
    legacy["fingerprint"] = data.fingerprint(legacy["images"])  # the hash before versions
    (root / "manifest.json").write_text(json.dumps(legacy))
    for p in (root / "versions").iterdir():
        p.unlink()
    (root / "versions").rmdir()
    [only] = data.list_versions("old", ws)
    assert only["id"] == legacy["fingerprint"] and only["summary"] == "imported from src"
    assert data.load_manifest("old", ws, version=legacy["fingerprint"])["images"]
    data.add_images("old", "a", [png(50)], ws=ws)
    history = data.list_versions("old", ws)
    assert [v["id"] for v in history][0] == legacy["fingerprint"]
    assert history[1]["parent"] == legacy["fingerprint"]
    assert len(data.load_manifest("old", ws, version=legacy["fingerprint"])["images"]) == 12


def test_unknown_version_is_one_line(ws, pets):
    with pytest.raises(NotFoundError, match="has no version 000000000000"):
        data.load_manifest(pets, ws, version="0" * 64)
    with pytest.raises(NotFoundError, match="not a dataset version id"):
        data.load_manifest(pets, ws, version="../manifest")


def test_check_trainable(ws, pets):
    with pytest.raises(DatasetError, match=r"2 classes have fewer than min_per_class=5 images"):
        data.check_trainable(data.load_manifest(pets, ws))
    data.add_images(pets, "cat", [png(i) for i in range(5)], ws=ws)
    data.add_images(pets, "dog", [png(i) for i in range(10, 15)], ws=ws)
    data.check_trainable(data.load_manifest(pets, ws))
    data.remove_class(pets, "dog", ws=ws)
    with pytest.raises(DatasetError, match="needs at least 2 classes"):
        data.check_trainable(data.load_manifest(pets, ws))
