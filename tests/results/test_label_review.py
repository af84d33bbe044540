"""The label review of a real dataset through a real (random-init) VGG16 base, and its job."""

from __future__ import annotations

import time

import pytest

from tests.support.labels import colour_dataset
from tlcore.cache import features as featcache
from tlcore.errors import ConfigError, NotFoundError
from tlcore.results import label_review


def test_swapped_labels_rank_first_and_the_review_is_cached(ws):
    manifest, swapped = colour_dataset(ws)
    seen = []
    review = label_review.review_dataset("colours", image_size=32, weights="none", ws=ws,
                                         progress=lambda d, n, m: seen.append((d, n, m)))
    rows = review["rows"]
    assert len(rows) == len(manifest["images"]) == 32
    assert {r["image_id"] for r in rows[:len(swapped)]} == swapped
    assert all(r["issue"] for r in rows[:len(swapped)]) and review["issues"] == len(swapped)
    assert [r["suspect"] for r in rows] == [True] * len(swapped) + [False] * (32 - len(swapped))
    for row in rows[:len(swapped)]:
        assert row["suggested"] != row["given"]
        assert row["source"].startswith(f"{row['given']}/{row['suggested']}")
        assert row["file"] == next(im["file"] for im in manifest["images"]
                                   if im["file"].endswith(f"{row['image_id']}.png"))
    assert all(r["given"] == r["suggested"] for r in rows[len(swapped):])
    assert [r["score"] for r in rows] == sorted(r["score"] for r in rows)
    assert review["near_duplicates"] == [] and review["outliers"] == []
    assert review["features"] == {"cut": "block4_pool", "computed": 32, "cached": 0}
    assert seen[0] == (0, 0, "loading the frozen base") and seen[-1] == (1, 1, "done")
    assert max(d for d, n, m in seen if m == "features") == 32

    # The features went to the shared feature cache (the key a float32 fine-tune of
    # block 5 uses), the review to the review cache: found without Keras or weights.
    assert featcache.is_cached(ws, manifest, "train", 32, "block4_pool@float32",
                               review["base"])
    assert label_review.cached_review("colours", image_size=32, weights="none",
                                      ws=ws) == review
    assert label_review.cached_review("colours", image_size=48, weights="none", ws=ws) is None
    assert label_review.review_dataset("colours", image_size=32, weights="none",
                                       ws=ws)["created"] == review["created"]
    again = label_review.review_dataset("colours", image_size=32, weights="none", ws=ws,
                                        refresh=True)
    assert again["features"] == {"cut": "block4_pool", "computed": 0, "cached": 32}
    assert again["rows"] == rows and again["created"] > review["created"]


@pytest.mark.slow
def test_a_review_started_in_the_background_reports_progress_and_lands_in_the_cache(ws):
    colour_dataset(ws, per_class=8, flipped=1)
    job = label_review.start_review("colours", image_size=32, weights="none", ws=ws)
    assert job.parent == ws.tmp_dir and job.name.startswith("job-review-")
    deadline = time.monotonic() + 120
    while (status := label_review.review_status(job)).running:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status.error is None
    review = label_review.cached_review("colours", image_size=32, weights="none", ws=ws)
    assert review is not None and len(review["rows"]) == 16
    label_review.forget_review(job)
    assert not job.exists()


def test_a_failing_review_reports_one_line_and_refuses_bad_requests_at_once(ws):
    colour_dataset(ws, per_class=8, flipped=1)
    with pytest.raises(NotFoundError, match="No dataset named 'nope'"):
        label_review.start_review("nope", image_size=32, weights="none", ws=ws)
    with pytest.raises(ConfigError, match="weights must be"):
        label_review.start_review("colours", image_size=32, weights="run:abc", ws=ws)
    assert not list(ws.tmp_dir.glob("job-review-*"))
    job = label_review.start_review("colours", image_size=32,
                                    weights=str(ws.root / "missing.weights.h5"), ws=ws)
    deadline = time.monotonic() + 120
    while (status := label_review.review_status(job)).running:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "missing.weights.h5" in status.error and "\n" not in status.error
    label_review.forget_review(job)
