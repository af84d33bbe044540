"""Dataset import from folders, zips and CSVs: formats, junk, splits, health, atomicity."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore import data
from tlcore.cache import images as imagecache
from tlcore.data import importer
from tlcore.data.demo import synth_image, write_class_folders
from tlcore.errors import ConfigError, DatasetError, NotFoundError
from tlcore.store import RunStore

UNICODE_CLASS = "chats égarés"
CJK_CLASS = "狗 dog"


# ---- helpers -------------------------------------------------------------------

def rgb_array(seed: int, size: int = 24) -> np.ndarray:
    return np.asarray(synth_image(seed % 4, size, np.random.default_rng(seed)))


def save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def stored_pixels(ws, name: str) -> dict[str, np.ndarray]:
    """source path -> RGB pixels of the stored file, read the way the trainer reads it."""
    root = ws.dataset_dir(name)
    return {im["source"]: np.asarray(Image.open(root / im["file"]).convert("RGB"))
            for im in data.load_manifest(name, ws)["images"]}


def skipped_reasons(info: dict) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in info["skipped"]}


def assert_nothing_left(ws, name: str) -> None:
    assert not ws.dataset_dir(name).exists()
    assert not RunStore(ws).has_dataset(name)
    assert list(ws.tmp_dir.iterdir()) == []


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zip_path


@pytest.fixture
def mixed_folder(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """Two classes of images in many formats and colour modes, plus junk.

    Returns the folder and the RGB pixels each valid file must be stored as.
    """
    root = tmp_path / "mixed"
    a, b = root / UNICODE_CLASS, root / CJK_CLASS
    expect: dict[str, np.ndarray] = {}

    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    arr = rgb_array(1)
    rgb = Image.fromarray(arr)
    for fmt, ext, kw in (("PNG", "png", {}), ("BMP", "bmp", {}),
                         ("WEBP", "webp", {"lossless": True}), ("TIFF", "tif", {})):
        expect[rel(save(rgb, a / f"rgb.{ext}", fmt, **kw))] = arr
    jpg = save(Image.fromarray(rgb_array(2)), a / "photo.jpg", "JPEG", quality=90)
    expect[rel(jpg)] = np.asarray(Image.open(jpg).convert("RGB"))
    gif = save(rgb.quantize(16), a / "palette.gif", "GIF")
    expect[rel(gif)] = np.asarray(Image.open(gif).convert("RGB"))
    cmyk = save(Image.fromarray(rgb_array(3)).convert("CMYK"), a / "cmyk.jpg", "JPEG",
                quality=95)
    expect[rel(cmyk)] = np.asarray(Image.open(cmyk).convert("RGB"))
    # Extensions are not trusted: a PNG named .jpg is an image, a text named .png is not.
    expect[rel(save(rgb, a / "really-a-png.jpg", "PNG"))] = arr

    gray = rgb_array(4)[..., 0]
    expect[rel(save(Image.fromarray(gray, "L"), b / "gray.png", "PNG"))] = np.stack([gray] * 3, -1)
    rgba = np.dstack([rgb_array(5), np.full((24, 24), 255, np.uint8)])
    rgba[:, :12] = 0  # left half fully transparent black: must come out white
    expect[rel(save(Image.fromarray(rgba, "RGBA"), b / "alpha.png", "PNG"))] = np.where(
        np.arange(24)[None, :, None] < 12, 255, rgba[..., :3]).astype(np.uint8)
    pal = Image.new("P", (24, 24), 0)
    pal.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    pal.paste(1, (0, 0, 24, 12))
    want = np.full((24, 24, 3), 255, np.uint8)
    want[:12] = (200, 30, 30)
    expect[rel(save(pal, b / "palette-transparent.png", "PNG", transparency=0))] = want
    deep = np.full((24, 24), 16000, np.uint16)
    deep[:, 12:] = 65535
    want16 = np.full((24, 24, 3), 255, np.uint8)
    want16[:, :12] = round(16000 / 257)  # scaled from 16 bits, not clipped to 255
    expect[rel(save(Image.fromarray(deep), b / "sixteen.png", "PNG"))] = want16
    expect[rel(save(Image.fromarray(deep), b / "sixteen.tif", "TIFF"))] = want16
    la = Image.fromarray(gray, "L").convert("LA")
    expect[rel(save(la, b / "gray-alpha.png", "PNG"))] = np.stack([gray] * 3, -1)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone photo held upright
    tall = save(Image.fromarray(rgb_array(6, 16)).resize((24, 16)), b / "rotated.jpg", "JPEG",
                exif=exif)
    expect[rel(tall)] = np.asarray(Image.open(tall).convert("RGB").transpose(Image.ROTATE_270))

    (a / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(64))
    (a / "notes.txt").write_text("not an image")
    (a / "fake.png").write_text("not an image either")
    (b / "Thumbs.db").write_bytes(bytes(128))
    (b / "._gray.png").write_bytes(b"\0\5\x16\7" + bytes(60))
    full = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        full, "JPEG")
    (b / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    (root / "__MACOSX" / UNICODE_CLASS).mkdir(parents=True)
    (root / "__MACOSX" / UNICODE_CLASS / "._rgb.png").write_bytes(bytes(32))
    return root, expect


# ---- formats and sources ---------------------------------------------------------------

def test_folder_import_decodes_every_format_and_mode_to_the_right_pixels(ws, mixed_folder):
    root, expect = mixed_folder
    info = data.import_dataset(root, "mixed", ws=ws)

    assert info["classes"] == sorted([UNICODE_CLASS, CJK_CLASS])
    assert info["n_images"] == len(expect)
    pixels = stored_pixels(ws, "mixed")
    assert sorted(pixels) == sorted(expect)
    for source, want in expect.items():
        got = pixels[source]
        assert got.shape == want.shape, source
        if source == f"{UNICODE_CLASS}/photo.jpg":
            # Re-encoded as a JPEG with its own tables: close, not identical.
            assert np.abs(got.astype(int) - want).mean() < 5, source
        else:
            assert np.array_equal(got, want), source
    reasons = skipped_reasons(info)
    assert reasons[f"{UNICODE_CLASS}/.DS_Store"] == "hidden file"
    assert reasons[f"{UNICODE_CLASS}/notes.txt"].startswith("not an image")
    assert reasons[f"{UNICODE_CLASS}/fake.png"].startswith("not an image")
    assert reasons[f"{CJK_CLASS}/Thumbs.db"] == "system file"
    assert reasons[f"{CJK_CLASS}/._gray.png"] == "macOS metadata"
    assert reasons[f"{CJK_CLASS}/truncated.jpg"].startswith("undecodable")
    assert reasons["__MACOSX/"] == "macOS metadata"
    assert info["health"]["skipped"]["by_reason"]["not an image"] == 2


def test_stored_layout_and_manifest_format(ws, mixed_folder):
    root, _ = mixed_folder
    data.import_dataset(root, "mixed", ws=ws)
    manifest = data.load_manifest("mixed", ws)
    assert list(manifest) == ["name", "classes", "created", "source", "split", "fingerprint",
                              "images", "skipped", "health", "notes", "version"]
    assert manifest["split"] == {"val": 0.2, "test": 0.1, "seed": 0}
    assert manifest["source"] == "mixed"
    folder = ws.dataset_dir("mixed")
    for im in manifest["images"]:
        path = folder / im["file"]
        assert im["file"] == f"images/{im['label']}/{im['sha256'][:16]}{path.suffix}"
        assert manifest["classes"][im["label"]] == im["class"]
        assert path.suffix in (".png", ".jpg")
        assert Image.open(path).size == (im["width"], im["height"])
    by_source = {im["source"]: im for im in manifest["images"]}
    # Plain RGB JPEGs are re-encoded as JPEGs; everything else as PNG.
    photo = folder / by_source[f"{UNICODE_CLASS}/photo.jpg"]["file"]
    assert photo.suffix == ".jpg" and Image.open(photo).format == "JPEG"
    assert by_source[f"{UNICODE_CLASS}/rgb.png"]["file"].endswith(".png")
    assert by_source[f"{UNICODE_CLASS}/cmyk.jpg"]["file"].endswith(".png")
    assert (by_source[f"{CJK_CLASS}/rotated.jpg"]["width"],
            by_source[f"{CJK_CLASS}/rotated.jpg"]["height"]) == (16, 24)
    assert manifest["fingerprint"] == data.fingerprint(manifest["images"], manifest["classes"])
    assert manifest["version"]["id"] == manifest["fingerprint"]
    assert manifest["version"]["parent"] is None


def test_zip_with_top_folder_and_junk(ws, mixed_folder, tmp_path):
    root, expect = mixed_folder
    zpath = zip_folder(root, tmp_path / "data.zip", prefix="data/")
    with zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr("README.md", "top-level file outside any class folder")
    info = data.import_dataset(zpath, "zipped", ws=ws)
    assert info["classes"] == sorted([UNICODE_CLASS, CJK_CLASS])
    assert info["n_images"] == len(expect)
    assert info["source"] == "data.zip"
    reasons = skipped_reasons(info)
    assert reasons["README.md"] == "not inside a class folder"
    assert reasons[f"data/__MACOSX/{UNICODE_CLASS}/._rgb.png"] == "macOS metadata"
    pixels = stored_pixels(ws, "zipped")
    assert np.array_equal(pixels[f"data/{CJK_CLASS}/alpha.png"], expect[f"{CJK_CLASS}/alpha.png"])


def test_zip_of_class_folders_at_its_root(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("cat", "dog"), per_class=5, size=16)
    info = data.import_dataset(zip_folder(folder, tmp_path / "flat.zip"), "flat", ws=ws)
    assert info["classes"] == ["cat", "dog"]
    assert info["counts"]["cat"]["total"] == 5
    assert info["skipped"] == []


def test_zip_of_train_and_test_folders_is_pooled_and_split_again(ws, tmp_path):
    folder = tmp_path / "presplit"
    write_class_folders(folder / "Train", ("cat", "dog"), per_class=6, size=16)
    write_class_folders(folder / "test", ("cat", "dog"), per_class=2, size=16, seed=1)
    (folder / "Train" / "LICENSE").write_text("CC-BY")
    zpath = zip_folder(folder, tmp_path / "presplit.zip", prefix="kaggle/")
    info = data.import_dataset(zpath, "presplit", ws=ws)
    assert info["classes"] == ["cat", "dog"]
    assert info["counts"]["cat"]["total"] == 8
    license_file = {"file": "kaggle/Train/LICENSE", "reason": "not inside a class folder"}
    assert license_file in info["skipped"]
    assert "Train, test were merged" in info["health"]["warnings"][0]


def test_csv_import_from_a_folder(ws, tmp_path):
    folder = write_class_folders(tmp_path / "csvsrc" / "imgs", ("a", "b"), per_class=6, size=16)
    rows = ["filepath,label"]
    for cls, label in (("a", "red fox"), ("b", "Ünïcode")):
        rows += [f"imgs/{cls}/{i:04d}.png, {label} " for i in range(6)]
    rows += ["imgs/a/missing.png,red fox", "../outside.png,red fox", "/etc/passwd,red fox",
             ",red fox"]
    csv_path = folder.parent / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    info = data.import_dataset(csv_path, "fromcsv", ws=ws)
    assert info["classes"] == ["red fox", "Ünïcode"]  # labels stripped, otherwise as given
    assert info["n_images"] == 12
    reasons = skipped_reasons(info)
    assert reasons["imgs/a/missing.png"].startswith("missing file")
    assert reasons["../outside.png"].startswith("unsafe path")
    assert reasons["/etc/passwd"].startswith("unsafe path")
    assert reasons["labels.csv:17"] == "empty filepath or label"


def test_csv_at_the_top_of_a_zip_and_csv_with_separate_zip(ws, tmp_path):
    folder = write_class_folders(tmp_path / "pics", ("x", "y"), per_class=5, size=16)
    text = "label,filepath\n" + "".join(
        f"{'one' if c == 'x' else 'two'},{c}/{i:04d}.png\n" for c in "xy" for i in range(5))
    zpath = zip_folder(folder, tmp_path / "withcsv.zip", prefix="top/")
    with zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr("top/labels.csv", text)
    info = data.import_dataset(zpath, "zipcsv", ws=ws)
    assert info["classes"] == ["one", "two"] and info["n_images"] == 10

    images_zip = zip_folder(folder, tmp_path / "images.zip")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(text)
    info = data.import_dataset(csv_path, "csvzip", ws=ws, csv_zip=images_zip)
    assert info["classes"] == ["one", "two"] and info["n_images"] == 10


def test_csv_without_the_header_is_refused(ws, tmp_path):
    folder = write_class_folders(tmp_path / "p", ("x", "y"), per_class=5, size=16)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("".join(f"p/{c}/{i:04d}.png,{c}\n" for c in "xy" for i in range(5)))
    assert folder.exists()
    with pytest.raises(DatasetError, match=r"header row .*filepath,label"):
        data.import_dataset(csv_path, "nohead", ws=ws)
    assert_nothing_left(ws, "nohead")


# ---- refusals and atomicity ---------------------------------------------------------------

def test_one_class_is_refused_with_one_clear_line(ws, tmp_path):
    folder = write_class_folders(tmp_path / "one", ("cats",), per_class=8, size=16)
    with pytest.raises(DatasetError) as err:
        data.import_dataset(folder, "single", ws=ws)
    msg = str(err.value)
    assert "\n" not in msg
    assert "only 1 class folder found (cats)" in msg and "at least 2 classes" in msg
    assert msg.endswith("Received: 1 class")
    assert_nothing_left(ws, "single")


def test_too_few_valid_images_per_class_is_refused(ws, tmp_path):
    folder = write_class_folders(tmp_path / "few", ("a", "b"), per_class=5, size=16)
    (folder / "a" / "0000.png").write_bytes(b"garbage")  # 5 files but only 4 images
    with pytest.raises(DatasetError, match=r"min_per_class=5 valid images.*'a'=4"):
        data.import_dataset(folder, "few", ws=ws)
    assert_nothing_left(ws, "few")
    limits = data.ImportLimits(min_per_class=4)
    assert data.import_dataset(folder, "few", ws=ws, limits=limits)["n_images"] == 9


def test_exception_midway_leaves_nothing_behind(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    calls = []
    real = importer._store_image

    def flaky(path, payload):
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        real(path, payload)

    monkeypatch.setattr(importer, "_store_image", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        data.import_dataset(folder, "broken", ws=ws)
    assert len(calls) == 5
    assert_nothing_left(ws, "broken")


def test_failure_to_record_removes_the_moved_folder(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)

    def refuse(*args, **kwargs):
        raise OSError("database is locked")

    monkeypatch.setattr(RunStore, "add_dataset", refuse)
    with pytest.raises(OSError, match="locked"):
        data.import_dataset(folder, "norow", ws=ws)
    assert_nothing_left(ws, "norow")


def test_names_and_split_arguments_are_validated(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    with pytest.raises(ConfigError, match="dataset name"):
        data.import_dataset(folder, "../evil", ws=ws)
    with pytest.raises(ConfigError, match="val \\+ test must be below 1"):
        data.import_dataset(folder, "ok", ws=ws, val=0.6, test=0.4)
    with pytest.raises(ConfigError, match="seed"):
        data.import_dataset(folder, "ok", ws=ws, seed=-1)
    with pytest.raises(DatasetError, match="does not exist"):
        data.import_dataset(tmp_path / "nope", "ok", ws=ws)
    data.import_dataset(folder, "ok", ws=ws)
    with pytest.raises(DatasetError, match="already exists"):
        data.import_dataset(folder, "ok", ws=ws)
    assert list(ws.tmp_dir.iterdir()) == []


def test_orphan_folder_blocks_the_name_until_deleted(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    ws.dataset_dir("orphan").mkdir()
    with pytest.raises(DatasetError, match="without a dataset record"):
        data.import_dataset(folder, "orphan", ws=ws)
    data.delete_dataset("orphan", ws=ws)
    assert data.import_dataset(folder, "orphan", ws=ws)["n_images"] == 10


def test_import_limits_from_env_and_validation():
    limits = data.ImportLimits.from_env({"TLCORE_MIN_PER_CLASS": "3",
                                             "TLCORE_MAX_COMPRESSION_RATIO": "50.5"})
    assert limits.min_per_class == 3 and limits.max_compression_ratio == 50.5
    assert limits.max_image_pixels == 89_478_485 and limits.min_classes == 2
    with pytest.raises(ConfigError, match="TLCORE_MAX_FILES"):
        data.ImportLimits.from_env({"TLCORE_MAX_FILES": "many"})
    with pytest.raises(ConfigError, match="min_classes"):
        data.ImportLimits(min_classes=1)
    with pytest.raises(ConfigError, match="max_files must be an integer"):
        data.ImportLimits(max_files=2.5)


# ---- split ------------------------------------------------------------------------------

def test_split_is_deterministic_and_stratified(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b", "c"), per_class=20, size=16)
    for extra in range(7):  # class sizes 20, 20, 27
        shutil.copy(folder / "a" / f"{extra:04d}.png", folder / "c" / f"x{extra}.png")
    first = data.import_dataset(folder, "s1", ws=ws)
    data.import_dataset(folder, "s2", ws=ws)
    data.import_dataset(folder, "s3", ws=ws, seed=1)

    def splits(name):
        return {im["source"]: im["split"] for im in data.load_manifest(name, ws)["images"]}

    assert splits("s1") == splits("s2")
    assert splits("s1") != splits("s3")
    for cls in ("a", "b", "c"):
        counts = first["counts"][cls]
        train, val, test = data.split_counts(counts["total"], 0.2, 0.1)
        assert (counts["train"], counts["val"], counts["test"]) == (train, val, test)
    assert first["counts"]["c"] == {"train": 19, "val": 5, "test": 3, "total": 27}
    assert first["splits"] == {"train": 47, "val": 13, "test": 7}


def test_split_counts_keep_a_training_image():
    assert data.split_counts(5, 0.2, 0.1) == (3, 1, 1)
    assert data.split_counts(2, 0.45, 0.45) == (1, 1, 0)
    assert data.split_counts(1, 0.5, 0.4) == (1, 0, 0)
    assert data.split_counts(100, 0.0, 0.0) == (100, 0, 0)


# ---- health -------------------------------------------------------------------------------

def test_duplicates_leakage_and_label_conflicts_are_reported(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=12, size=16)
    for k in range(6):
        shutil.copy(folder / "a" / "0000.png", folder / "a" / f"copy{k}.png")
    shutil.copy(folder / "a" / "0000.png", folder / "b" / "stray.png")
    Image.fromarray(rgb_array(9, 40)).save(folder / "b" / "big.png")
    info = data.import_dataset(folder, "dups", ws=ws, val=0.3, test=0.3)
    health = info["health"]

    assert len(health["duplicates"]) == 1
    group = health["duplicates"][0]
    assert sorted(group["files"]) == sorted(
        ["a/0000.png", "b/stray.png"] + [f"a/copy{k}.png" for k in range(6)])
    assert group["classes"] == ["a", "b"]
    assert health["label_conflicts"] == [group]
    manifest = data.load_manifest("dups", ws)
    copies = [im for im in manifest["images"] if im["sha256"] == group["sha256"]]
    assert group["splits"] == [s for s in data.SPLITS if any(im["split"] == s for im in copies)]
    assert len(group["splits"]) > 1 and health["leakage"] == [group]
    # Identical files of one class share one stored file.
    assert len({im["file"] for im in copies if im["class"] == "a"}) == 1
    assert health["imbalance_ratio"] == pytest.approx(18 / 14, abs=1e-3)
    assert health["sizes"]["width"] == {"min": 16, "max": 40, "median": 16}
    assert health["sizes"]["distinct"][0] == {"width": 16, "height": 16, "count": 31}
    assert any("leakage" in w for w in health["warnings"])


def test_imbalance_warning(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("big", "small"), per_class=5, size=16)
    write_class_folders(tmp_path / "more", ("big",), per_class=11, size=16, seed=3)
    for p in (tmp_path / "more" / "big").iterdir():
        shutil.copy(p, folder / "big" / f"m{p.name}")
    health = data.import_dataset(folder, "imb", ws=ws)["health"]
    assert health["imbalance_ratio"] == pytest.approx(16 / 5)
    assert any("imbalanced" in w for w in health["warnings"])


# ---- list, show, delete, samples, demo, progress -------------------------------------------

def test_list_show_sample_and_delete(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=8, size=16)
    shown = data.import_dataset(folder, "one", ws=ws)
    assert {"name", "classes", "n_images", "counts", "splits", "skipped", "health", "source",
            "created"} <= set(shown)
    assert shown == data.show_dataset("one", ws)
    rows = data.list_datasets(ws)
    assert [r["name"] for r in rows] == ["one"]
    assert rows[0]["n_images"] == 16 and rows[0]["classes"] == ["a", "b"]
    assert rows[0]["summary"]["splits"] == shown["splits"]

    samples = data.sample_files("one", per_class=3, ws=ws)
    assert set(samples) == {"a", "b"}
    for paths in samples.values():
        assert len(paths) == 3 and all(p.is_absolute() and p.is_file() for p in paths)

    data.delete_dataset("one", ws=ws)
    assert data.list_datasets(ws) == []
    assert not ws.dataset_dir("one").exists()
    with pytest.raises(NotFoundError, match="No dataset named 'one'"):
        data.delete_dataset("one", ws=ws)
    with pytest.raises(NotFoundError):
        data.show_dataset("one", ws)


def test_demo_dataset_feeds_the_image_cache(ws):
    info = data.create_demo(ws=ws)
    assert info["name"] == "demo" and len(info["classes"]) >= 3
    assert info["n_images"] >= 300 and info["skipped"] == []
    assert all(c["train"] > 0 and c["val"] > 0 for c in info["counts"].values())
    with pytest.raises(DatasetError, match="already exists"):
        data.create_demo(ws=ws)
    manifest = data.load_manifest("demo", ws)
    x, y = imagecache.split_arrays(ws, manifest, "val", 32)
    assert x.shape == (info["splits"]["val"], 32, 32, 3)
    assert sorted(set(y.tolist())) == list(range(len(info["classes"])))
    # The images are colourful, not gray: channels differ.
    assert float(np.abs(x[..., 0].astype(int) - x[..., 2]).mean()) > 5


def test_progress_callback_reaches_the_total(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    (folder / "a" / "junk.txt").write_text("x")
    calls = []
    data.import_dataset(folder, "p", ws=ws, progress=lambda *a: calls.append(a))
    assert calls[0][:2] == (0, 11) and calls[-1][:2] == (11, 11)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_data_package_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tlcore.data, tlcore.cli.datasets; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert out.stdout.strip() == "False"


def test_manifest_is_valid_json_on_disk(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", (UNICODE_CLASS, "b"), per_class=5, size=16)
    data.import_dataset(folder, "j", ws=ws)
    text = (ws.dataset_dir("j") / data.MANIFEST_NAME).read_text(encoding="utf-8")
    assert UNICODE_CLASS in text  # stored readable, not \u-escaped
    assert json.loads(text)["classes"] == sorted([UNICODE_CLASS, "b"])


# ---- imports in their own process -----------------------------------------------------------

def wait_for(job, timeout: float = 60.0) -> data.ImportStatus:
    deadline = time.monotonic() + timeout
    while (status := data.import_status(job)).running:
        assert time.monotonic() < deadline, "the import worker did not finish"
        time.sleep(0.05)
    return status


def test_background_import_reports_progress_and_the_dataset(ws, tmp_path):
    folder = write_class_folders(ws.import_dir / "bg", ("a", "b"), per_class=5, size=16)
    job = data.start_import("bg", source=folder, ws=ws, val=0.2, test=0.2, seed=1)
    assert job.parent == ws.tmp_dir and job.name.startswith("job-")
    status = wait_for(job)
    assert status.error is None and status.info["name"] == "bg"
    assert status.info["split"] == {"val": 0.2, "test": 0.2, "seed": 1}
    assert json.loads((job / "progress.json").read_text())["done"] == 10
    data.forget_import(job)
    assert list(ws.tmp_dir.iterdir()) == []


def test_background_import_failures_are_one_line(ws, tmp_path):
    one_class = io.BytesIO()
    with zipfile.ZipFile(one_class, "w") as zf:
        for i in range(5):
            zf.writestr(f"cat/{i}.png", encode_png(rgb_array(i, 16)))
    job = data.start_import("lonely", upload=("one.zip", one_class.getvalue()), ws=ws)
    status = wait_for(job)
    assert status.info is None and "\n" not in status.error
    assert status.error.startswith("Refused: only 1 class folder found (cat)")
    assert not (job / "upload").exists()  # the worker removed the uploaded zip
    data.forget_import(job)

    with pytest.raises(ConfigError, match="Only paths inside"):
        data.start_import("out", source=tmp_path, ws=ws)
    with pytest.raises(ConfigError, match="dataset name"):
        data.start_import("../x", demo=True, ws=ws)
    assert list(ws.tmp_dir.iterdir()) == []


def test_a_worker_that_died_without_a_result_is_reported(ws):
    from tlcore.data import staging

    job = staging.make_staging(ws, "job-")
    (job / "request.json").write_text(json.dumps({"name": "killed"}))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (job / ".owner").write_text(json.dumps({"host": socket.gethostname(), "pid": proc.pid}))
    status = data.import_status(job)
    assert not status.running and "\n" not in status.error
    assert status.error.startswith("The import stopped without a result")


def encode_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()
