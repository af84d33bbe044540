"""Label issues, near-duplicates and outliers of a dataset, found from image features.

Everything here works on plain arrays (one feature vector per image, e.g. the
frozen VGG16 base's output pooled over space, `pool`) and needs no TensorFlow:

* `rank_label_issues`: out-of-fold class probabilities from a standardised
  logistic regression (scikit-learn, stratified cross-validation: no image is
  scored by a classifier that saw its label), then cleanlab's label quality
  scores rank the images whose given label is likely wrong, and its
  `find_label_issues` marks the ones it counts as issues. The suggested label is
  the most probable class out of fold.
* `near_duplicates`: groups of images whose standardised features have a cosine
  similarity far above that of an image and its nearest distinct neighbour.
* `outliers`: images far from their nearest neighbours (cleanlab's
  `OutOfDistribution` scores, beyond Tukey's far-out fence).
* `fixes`: what a reviewer decided per image, as the arguments of one edit
  (`relabel`, `remove`).

scikit-learn and cleanlab are imported inside the functions, so importing this
module stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from tlcore.errors import DatasetError

# Logistic regression's inverse regularisation on standardised features: strong
# regularisation keeps a few hundred images from being fitted label by label.
DEFAULT_C = 0.01
DEFAULT_FOLDS = 5
MIN_PER_CLASS = 2  # images a class needs to be cross-validated at all
# Near-duplicates: at most this share of the median nearest-neighbour distance apart.
DUPLICATE_RATIO = 0.1
EXACT_DISTANCE = 1e-9  # cosine distance of exact copies, up to rounding
OUTLIER_FENCE = 3.0  # interquartile ranges above the third quartile of the kNN distances
OUTLIER_NEIGHBOURS = 10
MAX_ITER = 2000

KEEP, RELABEL, REMOVE = "keep", "relabel", "remove"
ACTIONS = (KEEP, RELABEL, REMOVE)


@dataclass(frozen=True)
class LabelRanking:
    """How likely each image's given label is wrong.

    Attributes:
        order: Indices of the reviewed images, most suspicious (lowest score) first.
        scores: Label quality per image in [0, 1] (cleanlab's self-confidence: the
            out-of-fold probability of the given label); NaN for images not reviewed.
        suggested: Most probable class per image out of fold (-1 when not reviewed).
        confidence: Out-of-fold probability of the suggested class (NaN when not reviewed).
        issue: Whether cleanlab's `find_label_issues` counts the label as an issue.
        skipped_classes: Classes with fewer than `MIN_PER_CLASS` images, left out.
    """

    order: np.ndarray
    scores: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray
    issue: np.ndarray
    skipped_classes: tuple[int, ...] = ()


def pool(features: np.ndarray) -> np.ndarray:
    """One float64 vector per image: feature maps `(n, h, w, c)` averaged over space."""
    x = np.asarray(features, dtype=np.float64)
    return x.reshape(len(x), -1, x.shape[-1]).mean(axis=1) if x.ndim > 2 else x


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, *, folds: int = DEFAULT_FOLDS,
                      c: float = DEFAULT_C, seed: int = 0) -> np.ndarray:
    """Class probabilities of each image from a classifier that never saw it.

    Args:
        features: `(n, d)` feature vectors.
        labels: `(n,)` labels `0..k-1`, each class present at least twice.
        folds: Stratified folds (fewer when the smallest class has fewer images).
        c: Inverse regularisation of the logistic regression.
        seed: Seed of the fold assignment.

    Returns:
        `(n, k)` probabilities.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    splits = max(2, min(folds, int(np.bincount(labels).min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER))
    cv = StratifiedKFold(splits, shuffle=True, random_state=seed)
    # One BLAS thread: the matrices are small, and threads that wait on each other
    # made the fits 20x slower on a busy 2-core machine (0.5 s against 13 s).
    with threadpool_limits(1):
        return cross_val_predict(model, features, labels, cv=cv, method="predict_proba")


def rank_label_issues(features: np.ndarray, labels: np.ndarray, num_classes: int, *,
                      folds: int = DEFAULT_FOLDS, c: float = DEFAULT_C,
                      seed: int = 0) -> LabelRanking:
    """Rank images by how likely their given label is wrong.

    Args:
        features: `(n, d)` feature vectors (see `pool`).
        labels: `(n,)` given labels in `0..num_classes-1`.
        num_classes: Number of classes of the dataset (some may be empty).
        folds: Cross-validation folds.
        c: Inverse regularisation of the logistic regression.
        seed: Seed of the fold assignment.

    Returns:
        The `LabelRanking`; classes with fewer than `MIN_PER_CLASS` images are
        left out of it.

    Raises:
        DatasetError: fewer than 2 classes have `MIN_PER_CLASS` images.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    kept = np.flatnonzero(counts >= MIN_PER_CLASS)
    skipped = tuple(int(k) for k in np.flatnonzero((counts > 0) & (counts < MIN_PER_CLASS)))
    if len(kept) < 2:
        raise DatasetError(
            f"A label review needs at least 2 classes with {MIN_PER_CLASS} or more images "
            f"each. Received: {len(kept)} such class(es). Add images first.")
    rows = np.flatnonzero(np.isin(labels, kept))
    compact = np.searchsorted(kept, labels[rows])  # the classifier's own label space
    probs = out_of_fold_probs(np.asarray(features)[rows], compact, folds=folds, c=c, seed=seed)
    scores = get_label_quality_scores(compact, probs, method="self_confidence")
    flagged = find_label_issues(compact, probs, n_jobs=1)

    n = len(labels)
    out_scores = np.full(n, np.nan)
    out_scores[rows] = scores
    suggested = np.full(n, -1, dtype=np.int64)
    suggested[rows] = kept[probs.argmax(axis=1)]
    confidence = np.full(n, np.nan)
    confidence[rows] = probs.max(axis=1)
    issue = np.zeros(n, dtype=bool)
    issue[rows[flagged]] = True
    order = rows[np.lexsort((rows, scores))]  # ties: the earlier image first
    return LabelRanking(order, out_scores, suggested, confidence, issue, skipped)


def _standardised_unit(features: np.ndarray) -> np.ndarray:
    """Features centred and scaled per dimension, then each vector to unit length.

    Centring matters: VGG16's features are non-negative (ReLU), so raw vectors all
    point the same way and their cosines are high for any two images.
    """
    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _cosine_blocks(unit: np.ndarray, block: int) -> Iterator[tuple[int, np.ndarray]]:
    """`(start, similarities of rows start.. to every row)`, an image with itself at -inf."""
    for start in range(0, len(unit), block):
        sims = unit[start:start + block] @ unit.T
        rows = np.arange(len(sims))
        sims[rows, rows + start] = -np.inf
        yield start, sims


def near_duplicates(features: np.ndarray, ratio: float = DUPLICATE_RATIO,
                    block: int = 1024) -> list[list[int]]:
    """Groups of images whose features are nearly the same.

    Two images are near-duplicates when the cosine distance (1 - cosine similarity)
    of their standardised features is at most `ratio` times the median distance of
    an image to its nearest neighbour: a threshold relative to the dataset, since
    how close distinct images come depends on the data (a folder of plain colour
    swatches has every image close to the next), while a copy is far closer than
    any two distinct images. Exact copies always count. Pairs are joined
    transitively (union-find); similarities are computed `block` rows at a time,
    so memory stays `block x n`.

    Returns:
        Groups of image indices (each sorted, at least 2), in order of their first image.
    """
    unit = _standardised_unit(features)
    n = len(unit)
    if n < 2:
        return []
    nearest = np.empty(n)
    for start, sims in _cosine_blocks(unit, block):
        nearest[start:start + len(sims)] = 1.0 - sims.max(axis=1)
    limit = max(ratio * float(np.median(nearest)), EXACT_DISTANCE)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start, sims in _cosine_blocks(unit, block):
        rows, cols = np.nonzero(1.0 - sims <= limit)
        for i, j in zip(rows + start, cols, strict=True):
            if i < j:
                parent[root(int(j))] = root(int(i))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def outliers(features: np.ndarray, fence: float = OUTLIER_FENCE
             ) -> tuple[list[int], np.ndarray]:
    """Images unlike the rest: far from their nearest neighbours in feature space.

    cleanlab's `OutOfDistribution` scores each image from its mean distance to its
    `OUTLIER_NEIGHBOURS` nearest neighbours (`exp(-distance / scale)`: lower is
    more unusual). An image is an outlier when that distance, `-log(score)`, lies
    above Tukey's far-out fence (the third quartile plus `fence` interquartile
    ranges), so a dataset without unusual images has none.

    Returns:
        `(indices, scores)`: the outliers, most unusual first, and every image's score.
    """
    from cleanlab.outlier import OutOfDistribution

    n = len(features)
    if n < 3:
        return [], np.ones(n)
    unit = _standardised_unit(features)
    ood = OutOfDistribution(params={"k": min(OUTLIER_NEIGHBOURS, n - 1)})
    scores = np.asarray(ood.fit_score(features=unit, verbose=False), dtype=np.float64)
    distance = -np.log(np.maximum(scores, np.finfo(np.float64).tiny))
    q1, q3 = np.percentile(distance, [25, 75])
    far = np.flatnonzero(distance > q3 + fence * (q3 - q1))
    return [int(i) for i in far[np.argsort(scores[far], kind="stable")]], scores


def fixes(decisions: Mapping[str, str], suggested: Mapping[str, str]
          ) -> tuple[dict[str, str], list[str]]:
    """A reviewer's decisions per image as the arguments of one edit.

    Args:
        decisions: `{image_id: action}`, action one of `ACTIONS`; images left out,
            and those kept, are not changed.
        suggested: `{image_id: class name}` that "relabel" moves an image to.

    Returns:
        `(relabel, remove)`: `{image_id: class}` and the image ids to remove, in
        the order of `decisions`.

    Raises:
        ValueError: an unknown action, or "relabel" for an image without a suggestion.
    """
    relabel: dict[str, str] = {}
    remove: list[str] = []
    for image_id, action in decisions.items():
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}. "
                             f"Received: {action!r} for image {image_id}")
        if action == RELABEL:
            if image_id not in suggested:
                raise ValueError(f"No suggested class for image {image_id} to relabel it to")
            relabel[image_id] = suggested[image_id]
        elif action == REMOVE:
            remove.append(image_id)
    return relabel, remove
