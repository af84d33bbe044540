"""Stored label reviews: one per (dataset version, base, size), found without the weights."""

from __future__ import annotations

import pytest

from tlcore.cache import lru, reviews
from tlcore.errors import ConfigError


def _save(ws, fingerprint="f" * 64, size=64, base_fp="b" * 64, source=reviews.RANDOM_INIT,
          rows=1):
    review = {"dataset": "pets", "fingerprint": fingerprint, "rows": [{"image_id": "x"}] * rows}
    return reviews.save(ws, review, fingerprint=fingerprint, size=size, base_fp=base_fp,
                        source=source)


def test_a_review_is_found_by_version_size_and_weights_source(ws):
    folder = _save(ws)
    assert folder.parent == ws.cache_dir / reviews.REVIEWS_SUBDIR
    assert reviews.load(ws, "f" * 64, 64, "b" * 64)["rows"] == [{"image_id": "x"}]
    assert reviews.find(ws, "f" * 64, 64, reviews.RANDOM_INIT)["dataset"] == "pets"
    for other in (("e" * 64, 64, reviews.RANDOM_INIT), ("f" * 64, 32, reviews.RANDOM_INIT),
                  ("f" * 64, 64, "file:/w.h5:1:2"), ("f" * 64, 64, None)):
        assert reviews.find(ws, *other) is None
    assert reviews.load(ws, "f" * 64, 64, "c" * 64) is None
    # Another base for the same version and size is another entry; both stay.
    _save(ws, base_fp="c" * 64, source="file:/w.h5:1:2", rows=2)
    assert len(reviews.find(ws, "f" * 64, 64, "file:/w.h5:1:2")["rows"]) == 2
    assert len(reviews.find(ws, "f" * 64, 64, reviews.RANDOM_INIT)["rows"]) == 1


def test_reviews_are_cache_entries_the_lru_bound_removes(ws):
    old = _save(ws, fingerprint="1" * 64)
    new = _save(ws, fingerprint="2" * 64, rows=50)
    kinds = {e["key"]: e["kind"] for e in lru.entries(ws)}
    assert kinds == {old.name: "reviews", new.name: "reviews"}
    assert reviews.find(ws, "1" * 64, 64, reviews.RANDOM_INIT) is not None  # marks it used
    size_new = next(e["bytes"] for e in lru.entries(ws) if e["key"] == new.name)
    lru.evict(ws, limit=size_new + 10)
    assert old.exists() and not new.exists()  # the least recently used went first
    assert lru.clear(ws, "reviews") > 0 and not old.exists()


def test_a_broken_entry_is_not_a_review(ws):
    folder = _save(ws)
    (folder / reviews.REVIEW_FILE).write_text("{not json")
    assert reviews.find(ws, "f" * 64, 64, reviews.RANDOM_INIT) is None
    assert reviews.load(ws, "f" * 64, 64, "b" * 64) is None


def test_review_weights_and_sizes_are_checked(ws, tmp_path):
    assert reviews.review_config("pets", 64, "none").base.weights == "none"
    assert reviews.source_of(reviews.review_config("pets", 64, "none"), ws) == "random-init"
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"x")
    source = reviews.source_of(reviews.review_config("pets", 64, str(weights)), ws)
    assert source.startswith(f"file:{weights.resolve()}:1:")
    with pytest.raises(ConfigError, match="weights must be 'imagenet', 'none' or a VGG16"):
        reviews.review_config("pets", 64, "run:abc123")
    with pytest.raises(ConfigError, match="image_size"):
        reviews.review_config("pets", 8, "none")
