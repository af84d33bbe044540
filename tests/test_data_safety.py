"""Import safety: path traversal, symlinks, zip bombs, pixel bombs and size limits."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tlcore import data
from tlcore.demo import write_class_folders
from tlcore.errors import DatasetError
from tlcore.store import RunStore


def class_zip(path: Path, tmp_path: Path, per_class: int = 5) -> Path:
    """A valid zip of two class folders (a/, b/) that tests then add entries to."""
    folder = write_class_folders(tmp_path / f"src-{path.stem}", ("a", "b"), per_class, 16)
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
    return path


def png_bytes(size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def pixel_bomb_png(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (its pixel data is for 8x8)."""
    png = bytearray(png_bytes((8, 8)))
    assert png[12:16] == b"IHDR"
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def assert_nothing_left(ws, name: str) -> None:
    assert not ws.dataset_dir(name).exists()
    assert not RunStore(ws).has_dataset(name)
    assert list(ws.tmp_dir.iterdir()) == []


def test_traversal_absolute_and_symlink_entries_are_skipped(ws, tmp_path):
    zpath = class_zip(tmp_path / "slip.zip", tmp_path)
    evil = ["../evil.png", "a/../../evil.png", "/tmp/evil-abs.png", "C:/evil.png",
            "b\\..\\..\\evil.png"]
    with zipfile.ZipFile(zpath, "a") as zf:
        for name in evil:
            zf.writestr(zipfile.ZipInfo(name), png_bytes())
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    assert set(evil) <= set(zipfile.ZipFile(zpath).namelist())

    info = data.import_dataset(zpath, "slip", ws=ws)
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    for name in evil:
        assert reasons[name].startswith("unsafe path"), name
    assert reasons["a/link.png"].startswith("symbolic link")
    assert info["n_images"] == 10
    # Nothing landed outside the dataset's images/ folder.
    assert not list(tmp_path.parent.rglob("evil*.png"))
    assert not Path("/tmp/evil-abs.png").exists()
    folder = ws.dataset_dir("slip")
    stored = {p.relative_to(folder).parts[0] for p in folder.rglob("*") if p.is_file()}
    assert stored == {"images", "manifest.json"}


def test_folder_symlinks_are_not_followed(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes())
    os.symlink(outside / "secret.png", folder / "a" / "link.png")
    os.symlink(outside, folder / "linked-class")
    info = data.import_dataset(folder, "links", ws=ws)
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["a/link.png"].startswith("symbolic link")
    assert reasons["linked-class/"].startswith("symbolic link")
    assert info["classes"] == ["a", "b"] and info["n_images"] == 10


def test_zip_bomb_is_refused_in_seconds_before_extracting(ws, tmp_path):
    bomb = class_zip(tmp_path / "bomb.zip", tmp_path)
    zeros = bytes(16 << 20)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open("a/huge.png", "w", force_zip64=True) as fh:
        for _ in range(64):  # 1 GiB of zeros, a few MiB on disk
            fh.write(zeros)
    assert bomb.stat().st_size < 8 << 20

    start = time.monotonic()
    with pytest.raises(DatasetError, match="zip bomb") as err:
        data.import_dataset(bomb, "bomb", ws=ws)
    assert time.monotonic() - start < 2.0
    assert "\n" not in str(err.value) and "nothing was extracted" in str(err.value)
    assert_nothing_left(ws, "bomb")


def test_entry_whose_header_understates_its_size_is_cut_off(ws, tmp_path):
    zpath = class_zip(tmp_path / "liar.zip", tmp_path)
    with zipfile.ZipFile(zpath, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("b/liar.png", bytes(32 << 20))
    raw = bytearray(zpath.read_bytes())
    local = raw.rindex(b"PK\x03\x04")  # the last entry's local header
    central = raw.rindex(b"PK\x01\x02")  # ... and its central directory record
    raw[local + 22:local + 26] = struct.pack("<I", 1000)
    raw[central + 24:central + 28] = struct.pack("<I", 1000)
    zpath.write_bytes(bytes(raw))

    start = time.monotonic()
    info = data.import_dataset(zpath, "liar", ws=ws)
    assert time.monotonic() - start < 2.0
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["b/liar.png"].startswith("unreadable")
    assert info["n_images"] == 10


def test_declared_total_size_and_file_count_limits(ws, tmp_path):
    zpath = class_zip(tmp_path / "big.zip", tmp_path)
    total = sum(i.file_size for i in zipfile.ZipFile(zpath).infolist())
    with pytest.raises(DatasetError, match="max_total_bytes"):
        data.import_dataset(zpath, "big", ws=ws,
                            limits=data.ImportLimits(max_total_bytes=total - 1))
    with pytest.raises(DatasetError, match="max_files=9"):
        data.import_dataset(zpath, "big", ws=ws, limits=data.ImportLimits(max_files=9))
    folder = write_class_folders(tmp_path / "many", ("a", "b"), per_class=5, size=16)
    with pytest.raises(DatasetError, match="more than max_files=9"):
        data.import_dataset(folder, "big", ws=ws, limits=data.ImportLimits(max_files=9))
    assert_nothing_left(ws, "big")


def test_oversized_file_is_skipped(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    Image.new("RGB", (200, 200), (1, 2, 3)).save(folder / "a" / "large.bmp")
    limit = (folder / "a" / "large.bmp").stat().st_size - 1
    info = data.import_dataset(folder, "sizes", ws=ws,
                               limits=data.ImportLimits(max_file_bytes=limit))
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["a/large.bmp"].startswith("file too large")
    assert info["n_images"] == 10


def test_pixel_bombs_are_skipped_without_decoding(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    (folder / "a" / "bomb.png").write_bytes(pixel_bomb_png(40000, 40000))
    # Over this import's own limit but under Pillow's hard limit: caught by our check.
    (folder / "b" / "wide.png").write_bytes(pixel_bomb_png(5000, 400))
    info = data.import_dataset(folder, "pixels", ws=ws,
                               limits=data.ImportLimits(max_image_pixels=1_000_000))
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    # Decoding these files would fail ("undecodable"): the reason shows it never happened.
    assert reasons["a/bomb.png"].startswith("too many pixels")
    assert reasons["b/wide.png"].startswith("too many pixels")
    assert "5000x400" in reasons["b/wide.png"]
    assert info["n_images"] == 10


def test_names_with_control_characters_are_skipped_and_listed_printably(ws, tmp_path):
    # Class names come from folder names and CSV labels and are kept as typed, so a
    # newline or a terminal escape in one would reach every listing; such entries are
    # skipped instead, and the skip list spells the characters out.
    folder = write_class_folders(tmp_path / "src", ("a", "b", "evil\x1b[2J"), 5, 16)
    (folder / "a" / "new\nline.png").write_bytes(png_bytes())
    info = data.import_dataset(folder, "folders", ws=ws)
    assert info["classes"] == ["a", "b"] and info["n_images"] == 10
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["evil\\x1b[2J/"] == "control character in the name"
    assert reasons["a/new\\nline.png"] == "control character in the name"

    zpath = class_zip(tmp_path / "labels.zip", tmp_path)
    with zipfile.ZipFile(zpath, "a") as zf:
        rows = [f"{name},{name[0]}" for name in sorted(zf.namelist())]
        zf.writestr("labels.csv", "\n".join(["filepath,label", *rows, 'a/0000.png,"two\nlines"',
                                             "b/0000.png,line\u2028sep"]))
    info = data.import_dataset(zpath, "labels", ws=ws)
    assert info["classes"] == ["a", "b"]
    reasons = [s["reason"] for s in info["skipped"]]
    assert reasons.count("control character in the label (labels.csv:12)") == 1
    assert reasons.count("control character in the label (labels.csv:13)") == 1
    assert all("\n" not in s["file"] and "\u2028" not in s["file"] for s in info["skipped"])
