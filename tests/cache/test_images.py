"""Decoded-image cache and the cache bound: hit/miss, invalidation, eviction, clear."""

import os
import time

import numpy as np
import pytest

from tlcore import data
from tlcore.cache import images as imagecache
from tlcore.cache import lru as cache
from tlcore.data import demo
from tlcore.errors import ConfigError, DiskFullError


@pytest.fixture
def manifest(ws, tmp_path):
    demo.write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=40)
    data.import_dataset(tmp_path / "src", "tiny", ws=ws)
    return data.load_manifest("tiny", ws=ws)


def test_decode_once_then_memory_mapped(ws, manifest, monkeypatch):
    x, y = imagecache.split_arrays(ws, manifest, "train", 32)
    n_train = sum(im["split"] == "train" for im in manifest["images"])
    assert x.shape == (n_train, 32, 32, 3) and x.dtype == np.uint8
    assert isinstance(x, np.memmap) and y.dtype == np.int32 and len(y) == n_train
    # A second call must not decode anything.
    monkeypatch.setattr(imagecache, "decode", lambda *a: pytest.fail("decoded twice"))
    x2, y2 = imagecache.split_arrays(ws, manifest, "train", 32)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_pixels_match_a_direct_decode(ws, manifest):
    x, y = imagecache.split_arrays(ws, manifest, "val", 48)
    first = next(im for im in manifest["images"] if im["split"] == "val")
    direct = imagecache.decode(ws.dataset_dir("tiny") / first["file"], 48)
    np.testing.assert_array_equal(x[0], direct)
    assert y[0] == first["label"]


def test_size_and_content_change_miss(ws, manifest, tmp_path):
    imagecache.split_arrays(ws, manifest, "train", 32)
    imagecache.split_arrays(ws, manifest, "train", 40)
    assert len(cache.entries(ws)) == 2
    changed = dict(manifest, fingerprint="f" * 64)
    assert imagecache.entry_dir(ws, changed["fingerprint"], 32) != imagecache.entry_dir(
        ws, manifest["fingerprint"], 32)


def test_a_full_disk_refuses_the_build_and_leaves_nothing(ws, manifest, full_disk):
    with pytest.raises(DiskFullError, match=r"^disk full: 5 MB free in .*/cache/images/"):
        imagecache.split_arrays(ws, manifest, "train", 32)
    assert [p.name for p in ws.cache_dir.rglob("*") if p.is_file()] == []


def test_unknown_split_is_refused(ws, manifest):
    with pytest.raises(ValueError, match="split must be one of"):
        imagecache.split_arrays(ws, manifest, "holdout", 32)


def test_lru_eviction_keeps_recent_entries(ws, manifest):
    for size in (32, 40, 48):
        imagecache.split_arrays(ws, manifest, "train", size)
    oldest = imagecache.entry_dir(ws, manifest["fingerprint"], 32)
    past = time.time() - 3600
    os.utime(oldest, (past, past))
    sizes = {e["key"]: e["bytes"] for e in cache.entries(ws)}
    removed = cache.evict(ws, limit=sum(sizes.values()) - 1)
    assert removed == [oldest.name]
    assert not oldest.exists()


def test_clear_and_bound_setting(ws, manifest, monkeypatch):
    imagecache.split_arrays(ws, manifest, "train", 32)
    assert cache.clear(ws, "images") > 0 and cache.entries(ws) == []
    with pytest.raises(ConfigError, match="kind must be one of"):
        cache.clear(ws, "everything")
    monkeypatch.setenv(cache.ENV_MAX_GB, "zero")
    with pytest.raises(ConfigError, match="TLCORE_CACHE_MAX_GB"):
        cache.max_bytes()


def test_cache_cli_lists_and_clears(ws, manifest):
    import json
    import subprocess
    import sys

    imagecache.split_arrays(ws, manifest, "train", 32)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tlcore", "cache", *args],
                              capture_output=True, text=True, check=True).stdout

    listed = json.loads(cli("list", "--json"))
    assert [e["meta"]["dataset"] for e in listed["entries"]] == ["tiny"]
    assert listed["total_bytes"] > 0
    assert "tiny" in cli("list")
    assert cli("clear", "--kind", "images").startswith("freed")
    assert json.loads(cli("list", "--json"))["entries"] == []
