"""Label issues, near-duplicates, outliers and a reviewer's decisions, on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore.data import label_issues as issues
from tlcore.errors import DatasetError


def blobs(per_class: int = 30, classes: int = 3, dims: int = 8, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters, one per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0, 1, (len(labels), dims)), labels


def test_swapped_labels_rank_first_with_the_true_class_suggested():
    features, truth = blobs()
    given = truth.copy()
    swapped = [3, 40, 77, 85]
    for i in swapped:
        given[i] = (truth[i] + 1) % 3
    ranking = issues.rank_label_issues(features, given, 3)
    assert set(ranking.order[:4]) == set(swapped)
    # cleanlab counts 3 of the 4 as issues (its noise-rate pruning), and nothing else.
    assert ranking.issue[swapped].sum() == 3 and ranking.issue.sum() == 3
    assert (ranking.suggested[swapped] == truth[swapped]).all()
    assert (ranking.scores[swapped] < 0.5).all() and np.nanmin(ranking.scores) >= 0
    assert ranking.confidence[swapped].min() > 0.5
    # Most suspicious first: the scores rise along the order.
    assert np.all(np.diff(ranking.scores[ranking.order]) >= 0)


def test_classes_too_small_to_cross_validate_are_left_out():
    features, labels = blobs(per_class=10)
    labels = labels.copy()
    labels[0] = 4  # alone in class 4; class 3 stays empty
    ranking = issues.rank_label_issues(features, labels, 5)
    assert ranking.skipped_classes == (4,)
    assert 0 not in ranking.order and len(ranking.order) == len(labels) - 1
    assert ranking.suggested[0] == -1 and np.isnan(ranking.scores[0])
    assert set(ranking.suggested[ranking.order]) <= {0, 1, 2}

    with pytest.raises(DatasetError, match="at least 2 classes with 2 or more images"):
        issues.rank_label_issues(features[:11], np.r_[np.zeros(10, int), 1], 2)


def test_near_duplicates_group_copies_and_nothing_else():
    features, _ = blobs()
    rng = np.random.default_rng(1)
    copies = features.copy()
    copies[50] = features[7] + rng.normal(0, 1e-3, features.shape[1])
    copies[60] = features[7] * 1.0001
    assert issues.near_duplicates(features) == []
    assert issues.near_duplicates(copies, block=16) == [[7, 50, 60]]


def test_outliers_are_the_images_far_from_all_others():
    features, _ = blobs()
    assert issues.outliers(features)[0] == []
    odd = features.copy()
    odd[12] = 60.0
    found, scores = issues.outliers(odd)
    assert found == [12]
    assert scores.shape == (len(odd),) and scores[12] == scores.min()
    assert issues.outliers(features[:2]) == ([], pytest.approx(np.ones(2)))


def test_pool_averages_feature_maps_over_space():
    maps = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    pooled = issues.pool(maps)
    assert pooled.shape == (2, 3) and pooled.dtype == np.float64
    assert pooled[0].tolist() == [4.5, 5.5, 6.5]
    assert issues.pool(pooled) is not None and issues.pool(pooled).shape == (2, 3)


def test_decisions_become_one_edit():
    suggested = {"a": "cat", "b": "dog", "c": "cat", "d": "dog"}
    relabel, remove = issues.fixes({"a": "relabel", "b": "keep", "c": "remove",
                                    "d": "relabel"}, suggested)
    assert relabel == {"a": "cat", "d": "dog"} and remove == ["c"]
    assert issues.fixes({}, suggested) == ({}, [])
    with pytest.raises(ValueError, match="action must be one of keep, relabel, remove"):
        issues.fixes({"a": "delete"}, suggested)
    with pytest.raises(ValueError, match="No suggested class for image z"):
        issues.fixes({"z": "relabel"}, suggested)
