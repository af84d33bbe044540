"""The training loop: phases, callbacks, checkpoints, metrics to the run store.

`run_training(run_id)` runs in a worker process (`python -m tlcore.workers.run`):

1. Load the run's config from the store and the dataset's decoded-image cache
   (`imagecache.split_arrays`: memory-mapped uint8, decoded once per size).
2. Find the frozen base (`tlcore.vgg16.bases`: stored once per workspace by the
   fingerprint of its weights; the run records it in `base.json`), build the
   model (`tlcore.engine.model`) and, when resuming, restore the last checkpoint.
3. Phase 1 trains the head on a frozen base (every layer with `base.trainable`:
   from scratch when the weights are none). Phase 2 (when `fine_tune.blocks`
   and `fine_tune.epochs` are > 0) unfreezes the last blocks, recompiles at
   `fine_tune.learning_rate` and continues the epoch axis: its first epoch is
   numbered after the last phase-1 epoch.
4. Between batches: cancel checks and progress with ETA, both throttled by time.
   Every epoch: a metrics row, the best epoch's trained weights kept in memory,
   early stopping; every `checkpoint_interval()` seconds and at a phase's end a
   checkpoint of the trained weights and the optimizer's state, so resume
   continues the optimizer. A loss that turns nan/inf or explodes stops the run
   with `DivergedError`.
5. Finally the best epoch's trained weights are written once (`trained.npz`:
   the head plus any trained blocks, never the frozen base), and the model is
   scored on the test split and evaluated from those predictions. The worker
   then marks the run completed and adds the evaluation's Grad-CAM overlays
   (`add_overlays`), the one step that needs the whole network on images.

The run's heartbeat (`Heartbeat`) is written by this loop as it makes progress:
between steps, per decoded-image, feature and download chunk, and per train,
validation and predict batch. A worker that hangs falls silent and
`jobs.refresh` kills it. Large writes (checkpoints, trained weights, cached
arrays) check free space first and fail the run with "disk full: ..." (`space_for`).

What Keras fits in a phase is decided in one place, `plan_phase`. When
augmentation is off, the frozen prefix of the network (preprocessing + the base
up to the last frozen layer) is a pure function of the image: its output comes
from the frozen-feature cache (`tlcore.cache.features`, computed once per dataset,
size, weights and cut, shared across runs) and Keras fits only the trainable
rest, which shares its layers with the full model. The callbacks hold the full
model and snapshot its trained layers; `tlcore.engine.runmodel` assembles the complete
network from the base and those weights.
Set TLCORE_FEATURE_CACHE=0 to train every epoch through the whole network.

With `train.distribute: mirrored` the model, the models Keras fits and their
optimizers are made in the scope of a `tf.distribute.MirroredStrategy`
(`backend.strategy`: every GPU, or the CPU's logical devices), and every phase
trains with Keras's `fit`, which splits each batch of `train.batch_size`
between the replicas (`check_replicas`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tlcore import backend, entities
from tlcore.cache import features as featcache
from tlcore.cache import images as imagecache
from tlcore.config import RunConfig
from tlcore.data import SPLITS, load_manifest
from tlcore.data.splits import subset_rows
from tlcore.engine import fastfit, feed, runmodel
from tlcore.engine.eta import StepClock
from tlcore.engine.model import (
    BASE_NAME,
    HEAD_NAME,
    base_weights_source,
    build_head,
    build_model,
    compile_for_phase,
    dtype_policy,
    load_base_weights,
    set_phase,
    use_mixed_precision,
)
from tlcore.errors import ConfigError, DatasetError, DivergedError, RunCancelled
from tlcore.store import METRIC_COLUMNS, STAGE_FEATURES, RunStore
from tlcore.vgg16 import backbones, bases
from tlcore.workspace import RunFiles, Workspace, atomic_write_text, check_free_space

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5  # progress rows at most twice a second
# Auto class weights kick in when the largest training class is this many times the smallest.
IMBALANCE_RATIO = 1.5
HISTORY_COLUMNS = ("epoch", "phase", *METRIC_COLUMNS)
ENV_FEATURE_CACHE = "TLCORE_FEATURE_CACHE"
# A loss above both of these has diverged: a cross-entropy that has been learning never
# climbs a hundredfold from its lowest value, let alone to a thousand.
DIVERGED_LOSS = 1e3
DIVERGED_FACTOR = 100.0
ENV_CHECKPOINT_INTERVAL = "TLCORE_CHECKPOINT_INTERVAL_S"
DEFAULT_CHECKPOINT_INTERVAL_S = 30.0
CHECKPOINT_FORMAT = 2
LAST, BEST, OPTIMIZER = "last/", "best/", "optimizer/"
# Cancel checks read the run store; once per this many seconds, not per batch.
CANCEL_CHECK_INTERVAL_S = 0.5


# ---- data -------------------------------------------------------------------
@dataclass
class RunData:
    """A run's dataset: class names and `(x uint8 (N,S,S,3), y int32)` per split."""

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    manifest: dict[str, Any]
    train_rows: np.ndarray | None = None  # `train.subset`'s rows of the training split

    def size(self, split: str) -> int:
        """Number of images in `split` (the whole split: `train.subset` is applied by `rows`)."""
        return len(self.splits[split][1])

    def rows(self, split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(x, y)` of `split` (images or cached features) as the run trains on them.

        The training split keeps only `train.subset`'s rows; the others stay whole.
        """
        if split != "train" or self.train_rows is None:
            return x, y
        return np.asarray(x[self.train_rows]), np.asarray(y[self.train_rows])


def load_data(config: RunConfig, ws: Workspace,
              progress: Callable[[int, int], None] | None = None) -> RunData:
    """Decoded images of every split of the run's dataset (cached, memory-mapped).

    Args:
        config: The run config.
        ws: The workspace.
        progress: Optional callback `(done, total)` while images are decoded.

    Raises:
        NotFoundError: if the dataset no longer exists.
        DatasetError: if it has fewer than 2 classes or no training images.
    """
    manifest = load_manifest(config.dataset, ws)
    classes = list(manifest["classes"])
    splits = {split: imagecache.split_arrays(ws, manifest, split, config.image_size, progress)
              for split in SPLITS}
    data = RunData(classes, splits, manifest,
                   subset_rows(splits["train"][1], config.train.subset, config.train.seed))
    if len(classes) < 2 or data.size("train") == 0:
        raise DatasetError(
            f"Dataset {config.dataset!r} cannot train a classifier: it needs at least 2 classes "
            f"and some training images. Received: {len(classes)} class(es), "
            f"{data.size('train')} training image(s). Import a larger dataset."
        )
    return data


def class_weights(y: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Balanced class weights (`n / (k * count)`) when `mode` is "auto" and classes are imbalanced.

    Returns:
        None when weighting is off or the classes are balanced enough
        (largest / smallest training class below `IMBALANCE_RATIO`).
    """
    if mode != "auto" or len(y) == 0:
        return None
    counts = np.bincount(y, minlength=num_classes)
    present = counts[counts > 0]
    if present.max() / present.min() < IMBALANCE_RATIO:
        return None
    return {c: float(len(y) / (len(present) * counts[c])) if counts[c] else 1.0
            for c in range(num_classes)}


# ---- what Keras fits in a phase --------------------------------------------
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
    inputs = {}
    for split in splits:
        feats, labels, hit = featcache.split_features(
            ws, data.manifest, split, config.image_size, run_prefix, key, weights_fp, progress)
        log.info("%s features at %s: %s %s", split, cut, "cache hit" if hit else "computed",
                 tuple(feats.shape))
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


# ---- run state and checkpoints ---------------------------------------------
@dataclass
class TrainState:
    """Where a run stands; written with every last-epoch checkpoint for resume.

    Epochs are counted 1-based along the whole run (phase 2 continues phase 1).
    """

    epoch: int = 0
    phase: int = 1
    phase1_epochs: int = 0
    phase1_done: bool = False
    best_monitor: float = math.inf
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    wait: int = 0
    weights_file: str | None = None


@dataclass
class Checkpoint:
    """What resume restores: the state, the trained layers' weights, the optimizer.

    Attributes:
        state: Where the run stood.
        weights: The trained layers' weights after `state.epoch`, by layer name.
        best: The trained layers' weights at the best epoch so far, or None.
        optimizer: The optimizer's variables (its iteration count, moments, ...)
            in phase `state.phase`, or None.
        full: Every weight of the model in order: a checkpoint written before
            light runs (then `weights` is empty and the optimizer restarts).
    """

    state: TrainState
    weights: bases.LayerWeights
    best: bases.LayerWeights | None = None
    optimizer: list[np.ndarray] | None = None
    full: list[np.ndarray] | None = None


def optimizer_state(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    """Copies of an optimizer's variables (empty while it is not built)."""
    return [np.array(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]


def restore_optimizer(model: keras.Model, values: list[np.ndarray]) -> bool:
    """Build the compiled `model`'s optimizer and set its variables to `values`.

    Returns:
        False (and the optimizer stays fresh) when `values` do not fit it, e.g. a
        checkpoint of another optimizer.
    """
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    if len(variables) != len(values) or any(
            tuple(v.shape) != tuple(a.shape) for v, a in zip(variables, values, strict=True)):
        log.warning("the checkpoint's optimizer state does not fit; the optimizer restarts")
        return False
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return True


def save_checkpoint(files: RunFiles, state: TrainState, weights: bases.LayerWeights,
                    best: bases.LayerWeights | None = None,
                    optimizer: list[np.ndarray] | None = None) -> None:
    """Write a checkpoint so that a reader sees the old or the new one, never half.

    It holds only what training changes: the trained layers' weights (last and
    best epoch) and the optimizer's state; the frozen base is in `tlcore.vgg16.bases`.
    The weights go to a new file first; `state.json`, which names it, is replaced
    last; then older weights files are removed.

    Raises:
        DiskFullError: if the disk has no room; the previous checkpoint stays as
            it was and no temp file is left.
    """
    files.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = files.checkpoint_weights(state.epoch)
    extra = {f"{BEST}{layer}/{i}": w for layer, ws in (best or {}).items()
             for i, w in enumerate(ws)}
    extra.update({f"{OPTIMIZER}state/{i}": v for i, v in enumerate(optimizer or [])})
    bases.save_layer_weights(path, {f"{LAST}{k}": v for k, v in weights.items()}, extra)
    state.weights_file = path.name
    atomic_write_text(files.checkpoint_state, json.dumps(
        {**asdict(state), "format": CHECKPOINT_FORMAT, "optimizer": optimizer is not None}))
    for old in files.checkpoint_dir.glob("*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def load_checkpoint(files: RunFiles) -> Checkpoint | None:
    """The last epoch checkpoint of a run; None when there is none."""
    path = files.checkpoint_state
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    light = saved.pop("format", None) == CHECKPOINT_FORMAT
    has_optimizer = saved.pop("optimizer", False)
    state = TrainState(**saved)
    arrays_path = files.checkpoint_dir / state.weights_file
    if not light:
        with np.load(arrays_path) as arrays:
            return Checkpoint(state, {}, full=[arrays[f"arr_{i}"]
                                               for i in range(len(arrays.files))])
    best = bases.load_layer_weights(arrays_path, BEST)
    optimizer = bases.load_layer_weights(arrays_path, OPTIMIZER).get("state")
    return Checkpoint(state, bases.load_layer_weights(arrays_path, LAST), best or None,
                      optimizer if has_optimizer else None)


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write per-epoch metrics as CSV (atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---- callbacks --------------------------------------------------------------
class Heartbeat(keras.callbacks.Callback):
    """The worker's sign of life, written by the training loop as it makes progress.

    `beat()` writes the run's heartbeat at most every `entities.HEARTBEAT_INTERVAL_S`;
    the loop calls it between steps, as a progress callback of long steps, and
    (as a Keras callback) after every train, validation and predict batch. Never
    from a thread of its own: a loop that hangs must fall silent, so that
    `jobs.refresh` notices and kills the worker.

    Args:
        store: The run store.
        run_id: The run.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__()
        self.store, self.run_id = store, run_id
        self.last = -math.inf

    def beat(self, *_progress: int) -> None:
        """Write the heartbeat unless one was written within the interval.

        Takes and ignores a progress callback's `(done, total)`.
        """
        now = time.monotonic()
        if now - self.last >= entities.HEARTBEAT_INTERVAL_S:
            self.last = now
            self.store.heartbeat(self.run_id)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()


class EpochLog(keras.callbacks.Callback):
    """The per-epoch lines Keras's `fit(verbose=2)` prints, for fits that bypass it.

    Args:
        epochs: The last epoch number of the fit (the "/N" of "Epoch n/N").
    """

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs, self.start, self.steps = epochs, 0.0, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        self.start, self.steps = time.monotonic(), 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps = batch + 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.monotonic() - self.start
        metrics = " - ".join(f"{key}: {value:.4f}" for key, value in sorted((logs or {}).items()))
        print(f"{self.steps}/{self.steps} - {seconds:.0f}s - "
              f"{1000 * seconds / max(self.steps, 1):.0f}ms/step - {metrics}", flush=True)


def _check_cancel(store: RunStore, run_id: str) -> None:
    if store.cancel_requested(run_id):
        raise RunCancelled(f"Run {run_id} was cancelled.")


class ProgressReporter(keras.callbacks.Callback):
    """Cancel checks and progress with an ETA for the whole run, throttled by time.

    Between batches nothing touches the run store unless `CANCEL_CHECK_INTERVAL_S`
    or `PROGRESS_INTERVAL_S` has passed; each epoch begins with a cancel check.

    The ETA comes from measured steady step times (`tlcore.engine.eta.StepClock`),
    so the first steps' compiling does not inflate it; it is None until then.

    Args:
        store: The run store.
        run_id: The run.
        phase: The phase being fitted.
        steps: Training batches per epoch.
        total_epochs: Planned epochs of the whole run (both phases).
    """

    def __init__(self, store: RunStore, run_id: str, phase: int, steps: int,
                 total_epochs: int) -> None:
        super().__init__()
        self.store, self.run_id, self.phase = store, run_id, phase
        self.steps, self.total_epochs = steps, total_epochs
        self.epoch = 0
        self.last_report = 0.0
        self.last_cancel_check = -math.inf
        self.clock = StepClock(steps)

    def _cancel_check(self, now: float | None = None) -> None:
        """Stop on a pending cancel; with `now`, at most every `CANCEL_CHECK_INTERVAL_S`."""
        if now is not None and now - self.last_cancel_check < CANCEL_CHECK_INTERVAL_S:
            return
        self.last_cancel_check = time.monotonic() if now is None else now
        if self.store.cancel_requested(self.run_id):
            self.model.stop_training = True
            raise RunCancelled(f"Run {self.run_id} was cancelled during epoch {self.epoch + 1}.")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.clock.epoch_begin(time.monotonic())
        self._cancel_check()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        self._cancel_check(now)
        self.clock.step_end(now)
        done = batch + 1
        if now - self.last_report < PROGRESS_INTERVAL_S and done < self.steps:
            return
        self.last_report = now
        eta = self.clock.eta(done, max(self.total_epochs - (self.epoch + 1), 0))
        self.store.set_progress(self.run_id, phase=self.phase, epoch=self.epoch + 1,
                                epochs=self.total_epochs, batch=done, batches=self.steps,
                                eta_s=None if eta is None else round(eta, 1))

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._cancel_check(time.monotonic())


class DivergenceGuard(keras.callbacks.Callback):
    """Stop a diverging run with the reason and what to change (`DivergedError`).

    After every batch it reads Keras's running mean of the epoch's loss: nan or inf
    stops the run at once; so does a loss above both `DIVERGED_LOSS` and
    `DIVERGED_FACTOR` times the lowest loss seen in this phase (the first batch's is
    the untrained model's, before any update could blow it up).

    Args:
        config: The run config (for the learning rate named in the message).
        phase: The phase being fitted.
    """

    def __init__(self, config: RunConfig, phase: int) -> None:
        super().__init__()
        self.config, self.phase = config, phase
        self.epoch = 0
        self.lowest = math.inf

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self._stop(f"the loss is {loss}")
        if loss > DIVERGED_LOSS and loss > DIVERGED_FACTOR * self.lowest:
            self._stop(f"the loss rose to {loss:.3g}, over {DIVERGED_FACTOR:g} times its "
                       f"lowest value ({self.lowest:.3g})")
        self.lowest = min(self.lowest, loss)

    def _stop(self, reason: str) -> None:
        self.model.stop_training = True
        key = "train.learning_rate" if self.phase == 1 else "fine_tune.learning_rate"
        rate = (self.config.train.learning_rate if self.phase == 1
                else self.config.fine_tune.learning_rate)
        raise DivergedError(f"Training diverged at epoch {self.epoch + 1}: {reason}. Lower the "
                            f"learning rate ({key} is now {rate}).")


def checkpoint_interval() -> float:
    """Seconds between epoch checkpoints: `$TLCORE_CHECKPOINT_INTERVAL_S`, default 30.

    A phase's last epoch is always checkpointed; 0 checkpoints every epoch.

    Raises:
        ConfigError: if the variable is set but not a number >= 0.
    """
    raw = os.environ.get(ENV_CHECKPOINT_INTERVAL, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_CHECKPOINT_INTERVAL_S
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise ConfigError(f"{ENV_CHECKPOINT_INTERVAL} must be a number of seconds >= 0. "
                          f"Received: {ENV_CHECKPOINT_INTERVAL}={raw!r}")
    return value


class RunRecorder(keras.callbacks.Callback):
    """Per-epoch bookkeeping: metrics row, best weights, checkpoint, history, early stopping.

    The best epoch's trained weights are kept in memory (`best`), not written: the
    run saves them once at the end. The checkpoint (trained weights, best
    weights, the optimizer's state) is written at most every
    `checkpoint_interval()` seconds and after a phase's last epoch; `flush`
    writes it when the fit stops between epochs (a cancel), so no finished
    epoch is lost then.

    Args:
        store: The run store.
        run_id: The run.
        files: The run's files.
        full_model: The full model, whose trained layers are snapshotted.
        config: The run config.
        phase: The phase being fitted.
        state: The run state, updated in place.
        monitor: "val_loss", or "loss" when the dataset has no validation split.
        best: The best weights so far (from a resumed checkpoint), or None.
    """

    def __init__(self, store: RunStore, run_id: str, files: RunFiles, full_model: keras.Model,
                 config: RunConfig, phase: int, state: TrainState, monitor: str,
                 best: bases.LayerWeights | None = None) -> None:
        super().__init__()
        self.store, self.run_id, self.files = store, run_id, files
        self.full_model, self.config, self.phase = full_model, config, phase
        self.state, self.monitor, self.best = state, monitor, best
        self.epoch_start = 0.0
        self.interval = checkpoint_interval()
        self.last_checkpoint = time.monotonic()
        self.checkpointed = state.epoch
        self.between_epochs = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.monotonic()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.between_epochs = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        state, number = self.state, epoch + 1
        row = {key: _float(logs.get(key)) for key in ("loss", "accuracy", "val_loss",
                                                       "val_accuracy")}
        row["learning_rate"] = _float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        row["epoch_time"] = round(time.monotonic() - self.epoch_start, 3)
        self.store.add_epoch(self.run_id, number, self.phase, row)

        value = row.get(self.monitor)
        if value is not None and value < state.best_monitor:
            state.best_monitor, state.best_epoch, state.wait = value, number, 0
            state.best_val_loss = row["val_loss"]
            self.best = runmodel.snapshot(self.full_model, self.config)
        else:
            state.wait += 1
        if row["val_accuracy"] is not None:
            state.best_val_accuracy = max(state.best_val_accuracy or 0.0, row["val_accuracy"])

        patience = self.config.train.early_stopping_patience
        if patience and state.wait >= patience:
            log.info("early stopping: %s has not improved for %d epochs", self.monitor, patience)
            self.model.stop_training = True
        state.epoch, state.phase = number, self.phase
        last = self.phase_end(number)
        if self.phase == 1:
            state.phase1_epochs = number
            state.phase1_done = last
        self.between_epochs = True
        if last or time.monotonic() - self.last_checkpoint >= self.interval:
            self.checkpoint()
        self.store.update_run(self.run_id, best_val_accuracy=state.best_val_accuracy,
                              best_val_loss=state.best_val_loss, best_epoch=state.best_epoch)

    def checkpoint(self) -> None:
        """Write the checkpoint of the epoch that just ended."""
        save_checkpoint(self.files, self.state, runmodel.snapshot(self.full_model, self.config),
                        self.best, optimizer_state(self.model.optimizer))
        self.last_checkpoint, self.checkpointed = time.monotonic(), self.state.epoch

    def flush(self) -> None:
        """Checkpoint the last finished epoch if the fit stopped right after it."""
        if self.between_epochs and self.state.epoch > self.checkpointed:
            self.checkpoint()

    def phase_end(self, number: int) -> bool:
        """Whether epoch `number` ends the phase (its last planned one, or a stop)."""
        last = (self.config.train.epochs if self.phase == 1
                else self.state.phase1_epochs + self.config.fine_tune.epochs)
        return self.model.stop_training or number >= last


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---- the run ----------------------------------------------------------------
@dataclass
class Base:
    """The frozen base a run trains on.

    Attributes:
        fingerprint: Its key in `tlcore.vgg16.bases` (also the feature cache's), or None
            when the run trains every conv layer and needs no base.
        weights: Its conv weights, or None for a random init built with the model.
        source: Where it came from, in words.
    """

    fingerprint: str | None
    weights: bases.LayerWeights | None
    source: str


def resolve_base(config: RunConfig, ws: Workspace,
                 progress: Callable[[int, int], None] | None = None) -> Base:
    """Load the conv weights the config names and find (or store) their base.

    Raises:
        WeightsError, NotFoundError, RunStateError: as `model.load_base_weights`.
    """
    source = base_weights_source(config, ws)
    if config.base.weights == "none":
        return Base(None, None, source)
    key = bases.source_key(config, ws)
    weights = load_base_weights(config, ws, progress)
    fp = bases.lookup(ws, key) or bases.fingerprint(weights)
    bases.remember(ws, key, fp)
    return Base(fp, weights, source)


def keep_base(files: RunFiles, config: RunConfig, model: keras.Model, base: Base,
              ws: Workspace) -> str | None:
    """Record the run's base in its folder, then store the base once; returns its fingerprint.

    A random init is taken from the freshly built model. Recording comes first, so
    `bases.collect` never removes a base between the two steps.
    """
    if not runmodel.needs_base(config):
        bases.record_base(files, None, base.source)
        return None
    weights = base.weights or runmodel.conv_weights(model)
    fp = base.fingerprint or bases.fingerprint(weights)
    bases.record_base(files, fp, base.source)
    bases.store(ws, weights, base.source)
    return fp


def run_training(run_id: str, ws: Workspace | None = None, resume: bool = False,
                 callbacks: list[keras.callbacks.Callback] | None = None) -> dict[str, Any]:
    """Train run `run_id` to the end (the caller sets its status).

    Args:
        run_id: A run in the store; its config is read from there.
        ws: The workspace; default `Workspace.from_env()`.
        resume: Continue from the last epoch checkpoint when there is one.
        callbacks: More Keras callbacks for every phase, called after the run's own
            (a sweep's pruning: an exception raised there ends the run).

    Returns:
        `{"epochs", "best_epoch", "best_val_loss", "best_val_accuracy", "test_metrics"}`.

    Raises:
        RunCancelled: when the cancel flag was seen; what was saved stays.
        DiskFullError: when the disk is (nearly) full, before or during training.
        TLCoreError: for a missing dataset, unusable weights and the like.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    config = store.get_config(run_id)
    files = ws.run(run_id)
    files.dir.mkdir(parents=True, exist_ok=True)
    check_free_space(files.dir)
    checkpoint_interval()  # a bad setting fails the run now, not after its first epoch
    heartbeat = Heartbeat(store, run_id)

    device = backend.configure_devices()
    backend.compile_cache(ws.cache_dir / "jax")
    strategy = backend.strategy(config.train.distribute)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    mixed = use_mixed_precision(config)
    store.update_run(run_id, device=device["device"])
    heartbeat.beat()
    # A weights file seen before is known by its path, size and mtime: its base is
    # not loaded unless the run needs more than its cached features.
    known_fp = None if resume else bases.lookup(ws, bases.source_key(config, ws))
    base = None if known_fp else resolve_base(config, ws, heartbeat.beat)
    source = base.source if base else base_weights_source(config, ws)
    store.merge_extra(run_id, mixed_precision=mixed, weights_source=source,
                      backend=device["backend"])
    log.info("run %s on %s with %s, mixed precision %s", run_id, device["device"],
             device["backend"], "on" if mixed else "off")
    if strategy is not None:
        log.info("train.distribute %s: %d replica%s (%s), each step splits a batch of %d "
                 "between them", config.train.distribute, replicas, "" if replicas == 1 else "s",
                 ", ".join(strategy.extended.worker_devices), config.train.batch_size)
        store.merge_extra(run_id, replicas=replicas)
    _check_cancel(store, run_id)

    backend.set_random_seed(config.train.seed)
    data = load_data(config, ws, heartbeat.beat)
    atomic_write_text(files.class_names, json.dumps(data.classes, ensure_ascii=False))
    log.info("data: %s", ", ".join(f"{s} {data.size(s)}" for s in SPLITS))
    if data.train_rows is not None:
        log.info("train.subset %g: training on %d of %d training images", config.train.subset,
                 len(data.train_rows), data.size("train"))
        store.merge_extra(run_id, train_images=len(data.train_rows))
    check_replicas(config, replicas, data.size("train") if data.train_rows is None
                   else len(data.train_rows), data.size("val"))
    _check_cancel(store, run_id)
    heartbeat.beat()
    # Under `train.distribute`, every variable (model, optimizer, metrics) and every
    # model Keras fits are made in the strategy's scope; outside it, they read as usual.
    with _scope(strategy):
        head = cached_head(config, data, ws, known_fp, mixed) if known_fp else None
        if head is None:
            base = base or resolve_base(config, ws, heartbeat.beat)
            model = build_model(config, len(data.classes), ws, mixed_precision=mixed,
                                base_weights=base.weights)
            base_fp = keep_base(files, config, model, base, ws)
        else:
            model, base_fp = head[0], known_fp
            bases.record_base(files, base_fp, source)
            log.info("every split's features are cached: training the head alone")
        heartbeat.beat()

        saved = load_checkpoint(files) if resume else None
        state, best, pending_optimizer = TrainState(), None, None
        if saved is not None:
            state, best, pending_optimizer = saved.state, saved.best, saved.optimizer
            if saved.full is not None:
                model.set_weights(saved.full)
                best = _best_of_full_model(files, model, config)
            else:
                runmodel.set_weights(model, saved.weights)
            log.info("resuming after epoch %d (phase %d)%s", state.epoch, state.phase,
                     ", optimizer state restored" if pending_optimizer else "")
        store.truncate_metrics(run_id, state.epoch)
        monitor = "val_loss" if data.size("val") else "loss"
        weights = class_weights(data.rows("train", *data.splits["train"])[1], len(data.classes),
                                config.train.class_weight)

        phases = [1, 2] if config.fine_tune.enabled else [1]
        try:
            for phase in phases:
                if phase == 1 and state.phase1_done:
                    continue
                first = state.epoch if phase == state.phase else state.phase1_epochs
                last = (config.train.epochs if phase == 1
                        else state.phase1_epochs + config.fine_tune.epochs)
                if first >= last:
                    continue
                total = ((config.train.epochs if not state.phase1_done else state.phase1_epochs)
                         + (config.fine_tune.epochs if config.fine_tune.enabled else 0))
                _check_cancel(store, run_id)
                if head is None:
                    set_phase(model, config, phase)
                plan = plan_phase(model, config, phase, data, ws,
                                  _feature_progress(store, run_id, phase, first, total), base_fp,
                                  head, replicas)
                compile_for_phase(plan.model, config, phase)
                if pending_optimizer is not None and phase == state.phase and first > (
                        0 if phase == 1 else state.phase1_epochs):
                    restore_optimizer(plan.model, pending_optimizer)
                pending_optimizer = None
                if first == (0 if phase == 1 else state.phase1_epochs):
                    state.wait = 0  # patience counts within a phase, except when resuming in one
                log.info("phase %d: epochs %d-%d", phase, first + 1, last)
                recorder = RunRecorder(store, run_id, files, model, config, phase, state, monitor,
                                       best)
                hooks = [ProgressReporter(store, run_id, phase, plan.steps, total),
                         DivergenceGuard(config, phase), recorder, heartbeat, *(callbacks or [])]
                try:
                    if plan.arrays is not None:  # TensorFlow only (see plan_phase)
                        fastfit.fit_in_memory(
                            plan.model, *plan.arrays["train"], *plan.arrays["val"],
                            batch_size=config.train.batch_size, epochs=last, initial_epoch=first,
                            seed=config.train.seed + phase, class_weight=weights,
                            callbacks=[*hooks, EpochLog(last)])
                    else:
                        plan.model.fit(
                            plan.train, validation_data=plan.val, initial_epoch=first, epochs=last,
                            class_weight=weights, shuffle=False, verbose=2,  # the data shuffle
                            callbacks=hooks)
                except RunCancelled:
                    recorder.flush()
                    raise
                best = recorder.best
                if phase == 1:
                    state.phase1_done = True
        finally:
            write_history(files.history, store.metrics(run_id))

    if best is not None:
        runmodel.set_weights(model, best)
    runmodel.save_trained(files, runmodel.snapshot(model, config))
    heartbeat.beat()
    probs = predict_splits(model, config, data, ("test", "val"), ws, phases[-1], heartbeat,
                           base_fp, head)
    test = _test_metrics(store, run_id, ws, probs.get("test"), data)
    _evaluate(run_id, ws, model if head is None else None, probs, heartbeat)
    shutil.rmtree(files.checkpoint_dir, ignore_errors=True)  # the trained weights are saved
    return {"epochs": state.epoch, "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss, "best_val_accuracy": state.best_val_accuracy,
            "test_metrics": test}


def _scope(strategy: Any) -> contextlib.AbstractContextManager:
    """The scope of `train.distribute`'s strategy, or no scope without one."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _best_of_full_model(files: RunFiles, model: keras.Model,
                        config: RunConfig) -> bases.LayerWeights | None:
    """The best weights of a run resumed from a checkpoint written before light runs.

    Such runs kept their best epoch as a full `model.keras`.
    """
    if not files.model.is_file():
        return None
    saved = keras.models.load_model(files.model, compile=False, safe_mode=True)
    return runmodel.snapshot(saved, config)


def _feature_progress(store: RunStore, run_id: str, phase: int, epoch: int,
                      epochs: int) -> FeatureProgress:
    """Report frozen-feature computation (images done / total) as the run's progress."""
    def report(done: int, total: int) -> None:
        store.set_progress(run_id, phase=phase, epoch=epoch + 1, epochs=epochs, batch=done,
                           batches=total, eta_s=None, stage=STAGE_FEATURES)
    return report


def _test_metrics(store: RunStore, run_id: str, ws: Workspace, probs: np.ndarray | None,
                  data: RunData) -> dict[str, float] | None:
    """Score the test-split predictions; store and write the result."""
    if probs is None:
        return None
    metrics = split_metrics(probs, data.splits["test"][1])
    atomic_write_text(ws.run(run_id).test_metrics, json.dumps(metrics, indent=2))
    store.update_run(run_id, test_metrics=metrics)
    log.info("test: loss %.4f, accuracy %.4f", metrics["loss"], metrics["accuracy"])
    return metrics


def _evaluate(run_id: str, ws: Workspace, model: keras.Model,
              probs: dict[str, np.ndarray], heartbeat: Heartbeat) -> None:
    """Store the evaluation with the run, so the Evaluate page opens instantly.

    It is built from the predictions the run already has, without Grad-CAM
    overlays: those need the whole network on images and come right after the
    run is marked completed (`add_overlays`). A trained run stays a good run even
    if its evaluation breaks: the failure is logged and `python -m tlcore
    evaluate` can redo it.
    """
    from tlcore.results.evaluate import evaluate_run

    try:
        result = evaluate_run(run_id, ws=ws, model=model, require_completed=False, probs=probs,
                              gradcam_per_split=0, progress=heartbeat.beat)
        log.info("evaluation stored (%.1f s)", result["eval_seconds"])
    except Exception as exc:  # any failure: see the docstring
        log.warning("evaluation failed, run `python -m tlcore evaluate %s`: %s", run_id, exc)


def add_overlays(run_id: str, ws: Workspace) -> None:
    """Add Grad-CAM overlays to a completed run's stored evaluation (the worker's last step).

    A failure is logged, never raised: the run is complete without them, and
    `python -m tlcore evaluate` redoes the whole evaluation.
    """
    from tlcore.results.evaluate import add_gradcam

    started = time.monotonic()
    try:
        add_gradcam(run_id, ws)
        log.info("Grad-CAM overlays stored (%.1f s)", time.monotonic() - started)
    except Exception as exc:  # any failure: see the docstring
        log.warning("Grad-CAM overlays failed, run `python -m tlcore evaluate %s`: %s",
                    run_id, exc)
