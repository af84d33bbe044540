"""What Keras fits and predicts with in a phase: the full model, or the rest past a frozen cut.

When augmentation is off, the frozen prefix of the network (preprocessing + the
base up to the last frozen layer) is a pure function of the image: its output
comes from the frozen-feature cache (`tlcore.cache.features`, computed once per
dataset, size, weights and cut, shared across runs) and Keras fits only the
trainable rest, which shares its layers with the full model. What a phase fits
is decided in one place, `plan_phase`; `predict_splits` predicts the same way.
Set TLCORE_FEATURE_CACHE=0 to train every epoch through the whole network.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlcore import backend
from tlcore.cache import features as featcache
from tlcore.config import RunConfig
from tlcore.data import SPLITS
from tlcore.engine import feed
from tlcore.engine.model import BASE_NAME, HEAD_NAME, build_head, dtype_policy
from tlcore.engine.train.callbacks import Heartbeat
from tlcore.engine.train.data import RunData
from tlcore.errors import ConfigError
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace

log = logging.getLogger("tlcore.engine.train")  # one name in run logs for the whole loop

ENV_FEATURE_CACHE = "TLCORE_FEATURE_CACHE"


@dataclass
class FitPlan:
    """What `model.fit` runs on in one phase.

    Attributes:
        model: The model Keras fits. It shares its layers with the full model, so
            training it trains the full model.
        train: Training batches `(inputs, labels)` from `feed.batches` (None with
            `arrays`).
        val: Validation batches, or None when the dataset has no validation split
            (or with `arrays`).
        steps: Batches per training epoch.
        cut: The base layer whose cached output the plan trains on, or None when
            it trains on images.
        arrays: `{"train": (x, y), "val": (x, y)}` when only the head trains, on
            cached features that fit in memory, on TensorFlow without
            `train.distribute`: then `tlcore.engine.fastfit` trains it with one compiled
            call per epoch instead of Keras's `fit` (which a strategy needs).
    """

    model: keras.Model
    train: Any
    val: Any
    steps: int
    cut: str | None = None
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] | None = None


def feature_cache_enabled() -> bool:
    """False when $TLCORE_FEATURE_CACHE is "0" (train every epoch through the whole network)."""
    return os.environ.get(ENV_FEATURE_CACHE, "1") != "0"


def frozen_cut(model: keras.Model, config: RunConfig, phase: int) -> str | None:
    """The last base layer of the frozen prefix in `phase`, or None when nothing can be cached.

    The prefix (preprocessing + base layers up to the cut) must be frozen and see no
    random augmentation: then its output is a function of the image alone.
    """
    if config.augment.enabled or not feature_cache_enabled():
        return None
    trainable = backbones.trainable_blocks(config, phase)
    cut = None
    for layer in model.get_layer(BASE_NAME).layers[1:]:  # [0] is the InputLayer
        if backbones.block_of(layer.name) in trainable:
            break
        cut = layer.name
    return cut


def frozen_prefix(model: keras.Model, cut: str) -> keras.Model:
    """Raw images -> output of base layer `cut`, sharing the full model's layers."""
    base = model.get_layer(BASE_NAME)
    inner = keras.Model(base.input, base.get_layer(cut).output)
    inputs = keras.Input(shape=model.input.shape[1:], dtype="float32")
    return keras.Model(inputs, inner(model.get_layer(backbones.PREPROCESS_LAYER)(inputs)))


def feature_key(model: keras.Model, cut: str) -> str:
    """Cut layer plus the precision it computes in (float16 features differ from float32).

    Read from the layer itself: `build_model` restores the global dtype policy, so
    the global one says nothing about how this model computes.
    """
    return f"{cut}@{model.get_layer(BASE_NAME).get_layer(cut).dtype_policy.name}"


def trainable_rest(model: keras.Model, cut: str, feature_shape: tuple[int, ...]) -> keras.Model:
    """Output of base layer `cut` -> class probabilities, sharing the full model's layers."""
    base = model.get_layer(BASE_NAME)
    inputs = keras.Input(shape=feature_shape, dtype="float32", name="frozen_features")
    x, after = inputs, False
    for layer in base.layers[1:]:
        if after:
            x = layer(x)
        after = after or layer.name == cut
    return keras.Model(inputs, model.get_layer(HEAD_NAME)(x))


FeatureProgress = Callable[[int, int], None]


def _offset(progress: FeatureProgress, before: int, total: int) -> FeatureProgress:
    """`progress` of one split's images as a count over all the splits: `before` done already."""
    return lambda done, _split_total: progress(before + done, total)
# What a phase runs: the model to fit or predict with, `{split: (x, y)}`, the cut.
PhaseInputs = tuple[keras.Model, dict[str, tuple[np.ndarray, np.ndarray]], str | None]


def phase_inputs(model: keras.Model, config: RunConfig, phase: int, data: RunData,
                 ws: Workspace, splits: tuple[str, ...],
                 progress: FeatureProgress | None = None, base_fp: str | None = None
                 ) -> PhaseInputs:
    """The model to run in `phase` and its inputs per split.

    With a frozen cut, the frozen prefix runs once per image and its output comes
    from the feature cache (computed on a miss, shared across runs); the returned
    model is the trainable rest. Without one, it is the full model on images.

    `progress` gets `(done, total)` images over every split still to compute, from
    0 to the total once, whatever the number of splits.

    `base_fp` is the fingerprint of the model's frozen base (`tlcore.vgg16.bases`): the
    prefix holds only base layers that never train, so it keys their features.
    Without it, the prefix's weights are hashed.

    Returns:
        `(model, {split: (x, y)}, cut)`.
    """
    cut = frozen_cut(model, config, phase)
    if cut is None:
        return model, {s: data.rows(s, *data.splits[s]) for s in splits}, None
    prefix = frozen_prefix(model, cut)
    key = feature_key(model, cut)
    weights_fp = base_fp or featcache.weights_fingerprint(prefix.layers)
    run_prefix = feed.forward(prefix)
    # One count over every split still to compute, so the run shows one bar and one ETA.
    todo = [s for s in splits if not featcache.is_cached(ws, data.manifest, s, config.image_size,
                                                         key, weights_fp)]
    total, done = sum(data.size(s) for s in todo), 0
    inputs = {}
    for split in splits:
        feats, labels, hit = featcache.split_features(
            ws, data.manifest, split, config.image_size, run_prefix, key, weights_fp,
            _offset(progress, done, total) if progress and split in todo else None)
        log.info("%s features at %s: %s %s", split, cut, "cache hit" if hit else "computed",
                 tuple(feats.shape))
        if split in todo:
            done += len(feats)
        inputs[split] = data.rows(split, feats, labels)
    rest = trainable_rest(model, cut, tuple(prefix.output.shape[1:]))
    return rest, inputs, cut


def cached_head(config: RunConfig, data: RunData, ws: Workspace, base_fp: str,
                mixed: bool) -> PhaseInputs | None:
    """The head alone with every split's cached features, when that is all a run needs.

    That is a run that trains only its head (no fine-tuning, nothing trainable in
    the base, no augmentation) on a base whose features are cached for every
    split: then the network is never built, nor the base loaded. None otherwise.
    """
    if (config.fine_tune.enabled or config.augment.enabled or not feature_cache_enabled()
            or backbones.trainable_blocks(config, 1)):
        return None
    cut = backbones.BLOCKS[-1].pool
    key = f"{cut}@{'mixed_float16' if mixed else 'float32'}"
    inputs = {}
    for split in SPLITS:
        feats = featcache.cached_features(ws, data.manifest, split, config.image_size, key,
                                          base_fp)
        if feats is None:
            if split != "test" or data.size(split):
                return None
            continue  # an empty test split is never predicted
        inputs[split] = data.rows(split, feats, data.splits[split][1])
    with dtype_policy(mixed):
        head = build_head(config, inputs["train"][0].shape[1:], len(data.classes))
    return head, inputs, cut


def plan_phase(model: keras.Model, config: RunConfig, phase: int, data: RunData,
               ws: Workspace, progress: FeatureProgress | None = None,
               base_fp: str | None = None, prepared: PhaseInputs | None = None,
               replicas: int = 1) -> FitPlan:
    """The model and inputs Keras fits in `phase` (after `set_phase` froze the full model).

    When augmentation is off, the frozen prefix is replaced by its cached output and
    only the trainable rest is fitted (see `phase_inputs`); `prepared` gives the
    model and inputs directly (`cached_head`). `replicas` is the number of
    replicas `train.distribute` splits each batch between (see `check_replicas`).
    """
    fit_model, inputs, cut = prepared or phase_inputs(model, config, phase, data, ws,
                                                      ("train", "val"), progress, base_fp)
    (x, y), (xv, yv) = inputs["train"], inputs["val"]
    batch = config.train.batch_size
    steps = math.ceil(len(y) / batch)
    if (cut is not None and not backbones.trainable_blocks(config, phase)
            and feed.fits_in_memory(x, xv) and backend.current() == "tensorflow"
            and config.train.distribute == "none"):
        return FitPlan(fit_model, None, None, steps, cut, {"train": (x, y), "val": (xv, yv)})
    seed = config.train.seed + phase
    # Under a strategy, Keras reads the shapes of the first validation batch by
    # adding up its replicas' shares, which fails when they differ in size: a split
    # smaller than one batch is validated in batches of a multiple of `replicas`
    # (the metrics add up over every image either way).
    val_batch = batch if len(yv) >= batch else max(len(yv) - len(yv) % replicas, 1)
    val = feed.batches(xv, yv, val_batch, shuffle=False, seed=seed) if len(yv) else None
    return FitPlan(fit_model, feed.batches(x, y, batch, shuffle=True, seed=seed), val,
                   steps, cut)


def check_replicas(config: RunConfig, replicas: int, train_images: int,
                   val_images: int) -> None:
    """Refuse batches that `train.distribute` cannot split evenly between its replicas.

    Under a strategy, Keras reads the shapes of a fit's first batch by adding up the
    replicas' shares, which fails when they differ in size. The first training
    batch (`train.batch_size` images, or the whole training split when it is
    smaller) must therefore be a multiple of `replicas`; `plan_phase` batches a
    small validation split to fit, which needs one image per replica.

    Raises:
        ConfigError: naming what to change, in one line.
    """
    if replicas == 1:
        return
    split = (f"train.distribute {config.train.distribute!r} splits each batch evenly between "
             f"{replicas} replicas")
    batch = config.train.batch_size
    if batch <= train_images and batch % replicas:
        raise ConfigError(f"{split}, so train.batch_size must be a multiple of {replicas}. "
                          f"Received: train.batch_size={batch}")
    if train_images < batch and train_images % replicas:
        raise ConfigError(f"{split}, so a training split smaller than one batch must hold a "
                          f"multiple of {replicas} images; change train.subset or train.batch_size"
                          f", or set train.distribute to none. Received: {train_images} training "
                          f"images, train.batch_size={batch}")
    if 0 < val_images < replicas:
        raise ConfigError(f"{split}, so the validation split needs at least {replicas} images; "
                          f"set train.distribute to none. Received: {val_images} validation "
                          f"image(s)")


def predict_splits(model: keras.Model, config: RunConfig, data: RunData,
                   splits: tuple[str, ...], ws: Workspace, phase: int = 1,
                   heartbeat: Heartbeat | None = None, base_fp: str | None = None,
                   prepared: PhaseInputs | None = None) -> dict[str, np.ndarray]:
    """Class probabilities of the full model on each non-empty split.

    Uses `phase`'s frozen cut when there is one: the prefix up to it did not train
    in that phase, so its cached output is still valid for the trained model.
    `prepared` gives the model and inputs directly (`cached_head`). `heartbeat`
    beats through feature chunks and predict batches.
    """
    splits = tuple(s for s in splits if data.size(s))
    run_model, inputs, cut = prepared or phase_inputs(
        model, config, phase, data, ws, splits, heartbeat.beat if heartbeat else None, base_fp)
    head_only = cut is not None and not backbones.trainable_blocks(config, phase)
    out = {}
    for split in splits:
        x, y = inputs[split]
        if head_only and feed.fits_in_memory(x):  # a few direct calls beat predict's setup
            out[split] = feed.predict_in_memory(run_model, x)
            continue
        out[split] = run_model.predict(
            feed.batches(x, y, config.train.batch_size, shuffle=False, seed=0, labels=False),
            verbose=0, callbacks=[heartbeat] if heartbeat else None)
    return out


def split_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Unweighted mean cross-entropy and accuracy of predicted probabilities."""
    picked = probs[np.arange(len(y)), y].astype(np.float64)
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    return {"loss": loss, "accuracy": float(np.mean(probs.argmax(axis=1) == y)), "n": len(y)}
