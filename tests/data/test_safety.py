"""Import safety: path traversal, symlinks, zip bombs, pixel bombs, size and memory limits,
polyglot files, disk full and staging leftovers."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tlcore import data
from tlcore.data import importer, staging
from tlcore.data.demo import write_class_folders
from tlcore.errors import DatasetError, StoreError
from tlcore.store import RunStore

REPO = Path(__file__).resolve().parents[2]


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
    assert stored == {"images", "manifest.json", "versions"}


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


# ---- stored files are only images ---------------------------------------------------------

def hdf5_bytes(tmp_path: Path) -> bytes:
    """A real (tiny) HDF5 file, the payload of a PNG/HDF5 polyglot."""
    import h5py

    path = tmp_path / "payload.h5"
    with h5py.File(path, "w") as f:
        f["kernel"] = np.arange(16, dtype=np.float32)
    return path.read_bytes()


def test_polyglot_files_are_stored_as_clean_images(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    payload = hdf5_bytes(tmp_path)
    coarse = np.random.default_rng(0).integers(0, 255, (4, 4, 3), np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((32, 32), Image.BILINEAR))
    (folder / "a" / "polyglot.png").write_bytes(encode(pixels, "PNG") + payload)
    marker = b"TLCORE-HIDDEN-PAYLOAD" * 8
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", marker.decode())
    (folder / "a" / "text-chunk.png").write_bytes(encode(pixels[::-1], "PNG", pnginfo=info))
    (folder / "b" / "polyglot.jpg").write_bytes(encode(pixels, "JPEG", quality=90) + payload)

    info = data.import_dataset(folder, "poly", ws=ws)
    assert info["n_images"] == 13
    stored = {im["source"]: ws.dataset_dir("poly") / im["file"]
              for im in data.load_manifest("poly", ws)["images"]}
    for source in ("a/polyglot.png", "a/text-chunk.png", "b/polyglot.jpg"):
        raw = stored[source].read_bytes()
        assert b"HDF" not in raw and marker[:21] not in raw, source
    # A PNG is stored as a fresh encode of its pixels, nothing else.
    assert stored["a/polyglot.png"].read_bytes() == encode(pixels, "PNG", compress_level=1)
    jpeg = stored["b/polyglot.jpg"].read_bytes()
    assert jpeg.endswith(b"\xff\xd9") and jpeg.count(b"\xff\xd9") == 1
    assert np.abs(np.asarray(Image.open(stored["b/polyglot.jpg"])).astype(int)
                  - np.asarray(Image.open(folder / "b" / "polyglot.jpg"))).mean() < 2


def encode(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


# ---- paths on the server ------------------------------------------------------------------

def test_csv_rows_through_a_linked_folder_out_of_the_tree_are_skipped(ws, tmp_path):
    root = tmp_path / "csvroot"
    write_class_folders(root / "imgs", ("a", "b"), per_class=5, size=16)
    outside = write_class_folders(tmp_path / "outside", ("secret",), per_class=1, size=16)
    os.symlink(outside / "secret", root / "escape")  # a linked folder leading out
    os.symlink(root / "imgs" / "a", root / "alias")  # a linked folder that stays inside
    rows = ["filepath,label"] + [f"imgs/{c}/{i:04d}.png,{c}" for c in "ab" for i in range(5)]
    rows += ["escape/0000.png,a", "alias/0001.png,b"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")

    info = data.import_dataset(root / "labels.csv", "csvlinks", ws=ws)
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["escape/0000.png"].startswith("symbolic link leads out of the CSV's folder")
    assert "alias/0001.png" not in reasons
    assert info["n_images"] == 11


def test_a_file_swapped_for_a_link_after_listing_is_not_read(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    real_read = importer.read_entry

    def swap_then_read(entry, limits, budget):
        if entry.source == "a/0000.png":
            (folder / "a" / "0000.png").unlink()
            os.symlink(secret, folder / "a" / "0000.png")
        return real_read(entry, limits, budget)

    monkeypatch.setattr(importer, "read_entry", swap_then_read)
    info = data.import_dataset(folder, "swap", ws=ws)
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["a/0000.png"].startswith("unreadable")
    assert info["n_images"] == 11


def test_folders_nested_a_thousand_deep_are_skipped_with_a_reason(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    levels = 1100  # deeper than Python's recursion limit
    deep = folder / "a"
    for _ in range(levels):  # Path.mkdir(parents=True) would recurse too deep
        deep = deep / "d"
        deep.mkdir()
    (deep / "x.png").write_bytes(png_bytes())
    try:
        info = data.import_dataset(folder, "deep", ws=ws)
    finally:
        for depth in range(levels, 0, -1):  # shutil.rmtree itself would recurse too deep
            (deep / "x.png").unlink(missing_ok=True)
            os.rmdir(folder / "a" / "/".join(["d"] * depth))
    (skip,) = [s for s in info["skipped"] if "nested deeper" in s["reason"]]
    assert skip["file"].startswith("a/d/d/") and skip["file"].endswith("/")
    assert info["n_images"] == 10


# ---- decode memory ------------------------------------------------------------------------

PEAK_RSS_CODE = """
import io, json, resource, sys
import numpy as np
from pathlib import Path
from PIL import Image
from tlcore import data
from tlcore.workspace import Workspace

root = Path(sys.argv[1])
for cls in ("a", "b"):
    (root / cls).mkdir(parents=True)
    for i in range(2):
        # 3000x3000 16-bit gray: 18 MB decoded, a few KB on disk.
        Image.fromarray(np.full((3000, 3000), 1000 * (i + 1) + (cls == "b"), np.uint16)).save(
            root / cls / f"{i}.png")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = data.import_dataset(root, "deep16", ws=Workspace.from_env())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": info["n_images"], "growth_mib": (after - before) / 1024}))
"""


def test_sixteen_bit_images_decode_within_the_import_memory_bound(ws, tmp_path):
    env = {**os.environ, "TLCORE_MAX_IMPORT_MEMORY_MB": "64", "TLCORE_MIN_PER_CLASS": "2"}
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_CODE, str(tmp_path / "src")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["n"] == 4
    # One image at a time (64 MiB bound), no float64 copies: about 40 MiB at most; the
    # float64 conversion alone of one such image took over 250 MiB.
    assert result["growth_mib"] < 100, result


def test_images_over_the_decode_budget_are_skipped_unread(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    # Headers only (their pixel data is for 8x8): decoding would fail as "undecodable".
    (folder / "a" / "rgb.png").write_bytes(pixel_bomb_png(600, 600))  # 600*600*4 > 1 MB
    gray16 = encode(np.zeros((8, 8), np.uint16), "PNG")
    (folder / "b" / "gray16.png").write_bytes(claim_size(gray16, 800, 800))  # 800*800*2
    gray8 = encode(np.zeros((8, 8), np.uint8), "PNG")
    (folder / "b" / "gray8.png").write_bytes(claim_size(gray8, 800, 800))  # 800*800*1: fits
    info = data.import_dataset(folder, "budget", ws=ws,
                               limits=data.ImportLimits(max_image_bytes=1_000_000))
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["a/rgb.png"] == ("too large to decode: 600x600 RGB needs 1.4 MiB > "
                                    "max_image_bytes=976.6 KiB")
    assert reasons["b/gray16.png"].startswith("too large to decode: 800x800 I;16 needs 1.2 MiB")
    # Within budget, so it was decoded (and found truncated).
    assert reasons["b/gray8.png"].startswith("undecodable")

    small = data.ImportLimits(max_import_memory_mb=1)
    big = encode(np.zeros((600, 600, 3), np.uint8), "PNG")
    (folder / "a" / "big.png").write_bytes(big)
    info = data.import_dataset(folder, "memory", ws=ws, limits=small)
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["a/big.png"].endswith("> max_import_memory_mb=1")


def claim_size(png: bytes, width: int, height: int) -> bytes:
    """`png` with its header claiming width x height."""
    png = bytearray(png)
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_large_jpegs_are_decoded_at_reduced_size(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)
    pixels = np.random.default_rng(1).integers(0, 255, (50, 50, 3), np.uint8)
    photo = Image.fromarray(pixels).resize((400, 300), Image.BILINEAR)
    photo.save(folder / "a" / "photo.jpg", quality=90)
    info = data.import_dataset(folder, "draft", ws=ws,
                               limits=data.ImportLimits(max_image_bytes=200_000))
    (im,) = [im for im in data.load_manifest("draft", ws)["images"]
             if im["source"] == "a/photo.jpg"]
    assert (im["width"], im["height"]) == (200, 150)  # 400x300x4 bytes > 200 kB: 1/2 scale
    assert Image.open(ws.dataset_dir("draft") / im["file"]).size == (200, 150)
    assert any("decoded and stored at reduced size (1/2" in w
               for w in info["health"]["warnings"])


def test_decoding_threads_stay_within_the_memory_bound(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    for cls in ("a", "b"):
        for i in range(3):
            Image.new("RGB", (400, 400), (i, 9, 9)).save(folder / cls / f"big{i}.png")
    running, peak = [], []
    real_finish = importer.finish_image

    def counted(opened):
        running.append(getattr(opened, "cost", 0))
        peak.append(sum(running))
        time.sleep(0.02)
        try:
            return real_finish(opened)
        finally:
            running.remove(getattr(opened, "cost", 0))

    monkeypatch.setattr(importer, "finish_image", counted)
    # Each 400x400 RGB image needs about 1.1 MB: a 2 MiB bound lets one decode at a time.
    data.import_dataset(folder, "threads", ws=ws,
                        limits=data.ImportLimits(max_import_memory_mb=2))
    assert max(peak) <= 2 << 20


# ---- disk full, staging leftovers -----------------------------------------------------------

def test_disk_full_stops_the_import_with_one_line_and_leaves_nothing(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    calls = []

    def full(path, payload):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)

    monkeypatch.setattr(importer, "_store_image", full)
    with pytest.raises(DatasetError) as err:
        data.import_dataset(folder, "full", ws=ws)
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(rf"disk full: \d+ MB free in {re.escape(str(ws.tmp_dir))};", msg)
    assert "nothing was kept" in msg
    assert_nothing_left(ws, "full")


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_import_that_cannot_even_start_its_staging_folder_leaves_nothing(ws, tmp_path,
                                                                             monkeypatch):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=3, size=16)
    monkeypatch.setattr(staging, "claim", no_space)  # the first write of an import
    with pytest.raises(DatasetError, match="disk full: .* nothing was kept"):
        data.import_dataset(folder, "full", ws=ws)
    assert_nothing_left(ws, "full")


def test_deleting_a_dataset_on_a_full_disk_keeps_record_and_folder_together(ws, tmp_path,
                                                                           monkeypatch):
    data.import_dataset(write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16),
                        "pets", ws=ws)
    images = sorted(p.name for p in ws.dataset_dir("pets").rglob("*.png"))

    def store_full(self, name):
        raise StoreError("The run store cannot write: the disk is full.")

    monkeypatch.setattr(staging, "claim", no_space)
    monkeypatch.setattr(RunStore, "delete_dataset", store_full)
    with pytest.raises(StoreError):
        data.delete_dataset("pets", ws=ws)
    # Nothing changed: the record and every image are where they were.
    assert RunStore(ws).has_dataset("pets")
    assert sorted(p.name for p in ws.dataset_dir("pets").rglob("*.png")) == images
    assert list(ws.tmp_dir.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(staging, "claim", no_space)  # owning the trash needs a write too
    data.delete_dataset("pets", ws=ws)
    assert_nothing_left(ws, "pets")


def stale_folder(ws, name: str, age_s: float, pid: int | None) -> Path:
    folder = ws.tmp_dir / name
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "x.png").write_bytes(png_bytes())
    if pid is not None:
        (folder / ".owner").write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
    then = time.time() - age_s
    os.utime(folder, (then, then))
    return folder


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_is_removed_when_an_import_starts(ws, tmp_path):
    dead = dead_pid()
    killed_import = stale_folder(ws, "import-pets-abc123", 3600, dead)
    killed_upload = stale_folder(ws, "job-def456", 3600, dead)
    legacy_upload = stale_folder(ws, "upload-0123abcd", 2 * 24 * 3600, None)
    live = stale_folder(ws, "import-live-aaa111", 3600, os.getpid())
    fresh = stale_folder(ws, "job-bbb222", 10, dead)
    recent_unowned = stale_folder(ws, "upload-ccc333", 3600, None)
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=5, size=16)

    data.import_dataset(folder, "next", ws=ws)
    assert not killed_import.exists() and not killed_upload.exists()
    assert not legacy_upload.exists()
    assert live.exists() and fresh.exists() and recent_unowned.exists()


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
