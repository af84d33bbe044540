"""Label review of a dataset: likely wrong labels, near-duplicates and outliers.

`review_dataset` takes the frozen VGG16 base's output at `CUT` for every image
of every split from the frozen-feature cache (`tlcore.cache.features`, computed
on a miss and shared with training: a run that fine-tunes block 5 caches the same
cut), averages it over space, and hands the vectors to `tlcore.data.label_issues`.
The review is stored per (dataset version, base, image size) in the cache
(`tlcore.cache.reviews`); a second call returns it at once.

The dashboard runs a review in its own process (`start_review` starts
`python -m tlcore.workers.label_review` on a job folder `tmp/job-review-*`,
`review_status` reads its progress, `forget_review` removes the folder), as it
does imports: the feature pass needs Keras, which the dashboard never imports.
Keras is imported inside `frozen_features` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, time
from typing import Any

import numpy as np

from tlcore.cache import features as featcache
from tlcore.cache import reviews
from tlcore.config import RunConfig
from tlcore.data import SPLITS, jobs, load_manifest
from tlcore.data import label_issues as issues
from tlcore.vgg16 import backbones, bases
from tlcore.workspace import Workspace, check_dataset_name

# Block 4's pooled output: on Fashion-MNIST at 64 px it separates wrong labels
# better than block 5's (docs/benchmarks.md, "Label issues").
CUT = backbones.BLOCKS[3].pool
DEFAULT_SIZE = 64
JOB_PREFIX = "job-review-"
SCORE_DIGITS = 4

# `(done, total, message)`: images through the base, then the ranking.
ReviewProgress = Callable[[int, int, str], None]


def image_id(item: dict[str, Any]) -> str:
    """A manifest image's id: its stored file's stem (the first 16 hex digits of its sha256)."""
    return Path(item["file"]).stem


# ---- the review -----------------------------------------------------------------
def review_dataset(name: str, *, image_size: int = DEFAULT_SIZE, weights: str = "imagenet",
                   ws: Workspace | None = None, progress: ReviewProgress | None = None,
                   refresh: bool = False) -> dict[str, Any]:
    """Review every label of dataset `name`; cached per (version, base, size).

    Args:
        name: The dataset.
        image_size: Image size of the features.
        weights: "imagenet", "none" (VGG16's random init, seed `reviews.SEED`) or a
            VGG16 notop weights file.
        ws: The workspace.
        progress: Optional callback `(done, total, message)`.
        refresh: Compute again even when the review is cached.

    Returns:
        The review: `rows` (every reviewed image, most suspicious first: `image_id`,
        `file`, `source`, `split`, `given`, `suggested`, `score`, `confidence`,
        `issue`: cleanlab's `find_label_issues` counts it, `suspect`: an issue or
        the classifier suggests another class), `issues` and `suspects` (how many),
        `near_duplicates`, `outliers`, `skipped_classes`, `timings` and `features`
        (images computed and read from the cache), with the dataset, its
        `fingerprint`, `size`, `base` and `weights`.

    Raises:
        NotFoundError: no such dataset.
        ConfigError: an image size or weights not allowed.
        DatasetError: too few images per class to review.
        WeightsError: the weights cannot be had (offline ImageNet, a bad file).
    """
    ws = ws or Workspace.from_env()
    manifest = load_manifest(name, ws)
    config = reviews.review_config(name, image_size, weights)
    source = reviews.source_of(config, ws)
    if not refresh:
        found = reviews.find(ws, manifest["fingerprint"], image_size, source)
        if found is not None:
            return found
    began = monotonic()
    features, base_fp, computed = frozen_features(config, manifest, ws, progress)
    features_s = monotonic() - began
    if progress:
        progress(0, 1, "ranking the labels")
    began = monotonic()
    review = build_review(manifest, features)
    review.update(size=image_size, base=base_fp, weights=weights, created=time(),
                  timings={"features_s": round(features_s, 3),
                           "ranking_s": round(monotonic() - began, 3)},
                  features={"cut": CUT, "computed": computed,
                            "cached": len(manifest["images"]) - computed})
    reviews.save(ws, review, fingerprint=manifest["fingerprint"], size=image_size,
                 base_fp=base_fp, source=source)
    if progress:
        progress(1, 1, "done")
    return review


def frozen_features(config: RunConfig, manifest: dict[str, Any], ws: Workspace,
                    progress: ReviewProgress | None = None, cut: str = CUT
                    ) -> tuple[np.ndarray, str, int]:
    """The base's pooled output at a pool layer for every manifest image, in manifest order.

    Features come from the frozen-feature cache; the base is built (and Keras
    imported) only when some split is not cached for a base known by its source.

    Args:
        config: The review's config (`reviews.review_config`).
        manifest: The dataset's manifest.
        ws: The workspace.
        progress: Optional callback `(done, total, message)`.
        cut: The `blockN_pool` layer whose output to pool (`CUT` for a review).

    Returns:
        `(features (n, filters) float64, base fingerprint, images computed)`.
    """
    size, images = config.image_size, manifest["images"]
    block = next(b for b in backbones.BLOCKS if b.pool == cut)
    key = f"{cut}@float32"  # the feature cache's key of a float32 prefix (engine.train.plan)
    rows = {s: [i for i, im in enumerate(images) if im["split"] == s] for s in SPLITS}
    splits = [s for s in SPLITS if rows[s]]
    base_fp = bases.lookup(ws, bases.source_key(config, ws))
    run_prefix = None
    if base_fp is None or not all(featcache.is_cached(ws, manifest, s, size, key, base_fp)
                                  for s in splits):
        run_prefix, base_fp = _prefix(config, ws, progress, cut)
    todo = [s for s in splits if not featcache.is_cached(ws, manifest, s, size, key, base_fp)]
    total, done = sum(len(rows[s]) for s in todo), 0
    out = np.zeros((len(images), block.filters))
    for split in splits:
        report = _offset(progress, done, total) if progress and split in todo else None
        if run_prefix is None:
            feats = featcache.cached_features(ws, manifest, split, size, key, base_fp)
        else:
            feats, _, _ = featcache.split_features(ws, manifest, split, size, run_prefix, key,
                                                   base_fp, report)
        out[rows[split]] = issues.pool(feats)
        done += len(rows[split]) if split in todo else 0
    return out, base_fp, total


def _offset(progress: ReviewProgress, before: int, total: int) -> Callable[[int, int], None]:
    """A split's `(done, n)` feature progress as a count over every split to compute."""
    return lambda done, _n: progress(before + done, total, "features")


def _prefix(config: RunConfig, ws: Workspace, progress: ReviewProgress | None, cut: str
            ) -> tuple[Callable[[np.ndarray], Any], str]:
    """Raw images -> the frozen base's output at `cut` (float32, compiled), and its fingerprint."""
    from tlcore import backend

    backend.activate(backend.resolve(config.train.backend))
    import keras

    from tlcore.engine import feed
    from tlcore.engine.model import build_base, build_preprocess, dtype_policy
    from tlcore.engine.weights import load_base_weights

    def download(done: int, total: int) -> None:
        if progress:
            progress(0, 0, f"downloading the ImageNet weights: {done >> 20} / {total >> 20} MB")

    if progress:
        progress(0, 0, "loading the frozen base")
    backend.set_random_seed(config.train.seed)
    weights = load_base_weights(config, ws, download)
    size = config.image_size
    with dtype_policy(False):
        inputs = keras.Input(shape=(size, size, 3), dtype="float32")
        base = build_base(config, ws, weights=weights)
        inner = keras.Model(base.input, base.get_layer(cut).output)
        model = keras.Model(inputs, inner(build_preprocess(size)(inputs)))
    conv = weights or {n: base.get_layer(n).get_weights() for n in backbones.CONV_LAYERS}
    return feed.forward(model), bases.fingerprint(conv)


def build_review(manifest: dict[str, Any], features: np.ndarray) -> dict[str, Any]:
    """The review document of a dataset from one feature vector per manifest image.

    Raises:
        DatasetError: fewer than 2 classes have enough images to review.
    """
    images, classes = manifest["images"], manifest["classes"]
    labels = np.asarray([im["label"] for im in images], dtype=np.int64)
    ranking = issues.rank_label_issues(features, labels, len(classes))
    rows, seen = [], set()
    for i in ranking.order:
        im = images[i]
        key = image_id(im)
        if key in seen:  # identical images of one class share a stored file
            continue
        seen.add(key)
        rows.append({"image_id": key, "file": im["file"], "source": im.get("source"),
                     "split": im["split"], "given": classes[im["label"]],
                     "suggested": classes[ranking.suggested[i]],
                     "score": round(float(ranking.scores[i]), SCORE_DIGITS),
                     "confidence": round(float(ranking.confidence[i]), SCORE_DIGITS),
                     "issue": bool(ranking.issue[i]),
                     "suspect": bool(ranking.issue[i] or ranking.suggested[i] != im["label"])})
    groups = [{"images": [image_id(images[i]) for i in g],
               "files": [images[i]["file"] for i in g],
               "classes": [classes[images[i]["label"]] for i in g],
               "splits": [images[i]["split"] for i in g]}
              for g in issues.near_duplicates(features)]
    unusual, scores = issues.outliers(features)
    return {"dataset": manifest["name"], "fingerprint": manifest["fingerprint"],
            "classes": list(classes), "n_images": len(images), "rows": rows,
            "issues": sum(r["issue"] for r in rows),
            "suspects": sum(r["suspect"] for r in rows),
            "skipped_classes": [classes[k] for k in ranking.skipped_classes],
            "near_duplicates": groups,
            "outliers": [{"image_id": image_id(images[i]), "file": images[i]["file"],
                          "class": classes[images[i]["label"]], "split": images[i]["split"],
                          "score": round(float(scores[i]), SCORE_DIGITS)} for i in unusual]}


def cached_review(name: str, *, image_size: int = DEFAULT_SIZE, weights: str = "imagenet",
                  ws: Workspace | None = None) -> dict[str, Any] | None:
    """The stored review of the dataset's current version, or None; never computes.

    Needs no TensorFlow and reads no weights (see `reviews.find`).

    Raises:
        NotFoundError: no such dataset.
        ConfigError: an image size or weights not allowed.
    """
    ws = ws or Workspace.from_env()
    manifest = load_manifest(name, ws)
    config = reviews.review_config(name, image_size, weights)
    return reviews.find(ws, manifest["fingerprint"], image_size,
                        reviews.source_of(config, ws))


# ---- the review in its own process ------------------------------------------------------
@dataclass(frozen=True)
class ReviewStatus:
    """Where a background review stands.

    Attributes:
        running: The worker has not finished yet.
        done: Images through the base so far (or 0 while it loads or ranks).
        total: Images to compute (0 while unknown).
        message: What the worker is doing.
        error: The one-line reason the review failed, once it did.
    """

    running: bool
    done: int = 0
    total: int = 0
    message: str = ""
    error: str | None = None


def start_review(name: str, *, image_size: int = DEFAULT_SIZE, weights: str = "imagenet",
                 ws: Workspace | None = None) -> Path:
    """Start reviewing dataset `name` in a new process; returns its job folder.

    Raises:
        ConfigError: a malformed name, image size or weights.
        NotFoundError: no such dataset.
        DatasetError: the process cannot start (or the disk is full).
    """
    ws = ws or Workspace.from_env()
    check_dataset_name(name)
    reviews.review_config(name, image_size, weights)
    load_manifest(name, ws)
    return jobs.start_job(ws, JOB_PREFIX, "tlcore.workers.label_review",
                          {"name": name, "image_size": image_size, "weights": weights},
                          what="the label review", received=f"dataset {name!r}")


def review_status(job: str | os.PathLike) -> ReviewStatus:
    """Where the review in job folder `job` stands (see `ReviewStatus`)."""
    result, state = jobs.job_state(job, lambda _: {
        "error": "The label review stopped without a result (its process ended; out of "
                 "memory?). Start it again, or at a smaller image size."})
    if result is not None:
        return ReviewStatus(False, error=result.get("error"))
    return ReviewStatus(True, int(state.get("done", 0)), int(state.get("total", 0)),
                        str(state.get("message", "")))


def forget_review(job: str | os.PathLike) -> None:
    """Remove job folder `job` once its outcome has been shown."""
    jobs.forget_job(job)
