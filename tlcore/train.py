"""The training loop: phases, callbacks, checkpoints, metrics to the run store.

`run_training(run_id)` runs in a worker process (`python -m tlcore.worker`):

1. Load the run's config from the store and the dataset's decoded-image cache
   (`imagecache.split_arrays`: memory-mapped uint8, decoded once per size).
2. Build the model (`tlcore.model`) and, when resuming, load the last epoch
   checkpoint.
3. Phase 1 trains the head on a frozen base (every layer with `base.trainable`:
   from scratch when the weights are none). Phase 2 (when `fine_tune.blocks`
   and `fine_tune.epochs` are > 0) unfreezes the last blocks, recompiles at
   `fine_tune.learning_rate` and continues the epoch axis: its first epoch is
   numbered after the last phase-1 epoch.
4. Every batch: cancel check and (throttled) progress with ETA. Every epoch: a
   metrics row, the best model by validation loss (`model.keras`, full model,
   atomic), the last-epoch checkpoint (for resume), `history.csv`, early stopping.
   A loss that turns nan/inf or explodes stops the run with `DivergedError`.
5. Finally the best model is scored on the test split.

The run's heartbeat (`Heartbeat`) is written by this loop as it makes progress:
between steps, per decoded-image, feature and download chunk, and per train,
validation and predict batch. A worker that hangs falls silent and
`jobs.refresh` kills it. Large writes (checkpoints, the model, cached arrays)
check free space first and fail the run with "disk full: ..." (`space_for`).

What Keras fits in a phase is decided in one place, `plan_phase`. When
augmentation is off, the frozen prefix of the network (preprocessing + the base
up to the last frozen layer) is a pure function of the image: its output comes
from the frozen-feature cache (`tlcore.featcache`, computed once per dataset,
size, weights and cut, shared across runs) and Keras fits only the trainable
rest, which shares its layers with the full model. The callbacks hold the full
model and save that, so `model.keras` is always the complete network.
Set TLCORE_FEATURE_CACHE=0 to train every epoch through the whole network.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tlcore import backbones, featcache, imagecache, jobs
from tlcore.config import RunConfig
from tlcore.data import SPLITS, load_manifest
from tlcore.errors import DatasetError, DivergedError, RunCancelled
from tlcore.eta import StepClock
from tlcore.model import (
    BASE_NAME,
    HEAD_NAME,
    base_weights_source,
    build_model,
    compile_for_phase,
    configure_devices,
    load_base_weights,
    set_phase,
    use_mixed_precision,
)
from tlcore.store import METRIC_COLUMNS, STAGE_FEATURES, RunStore
from tlcore.workspace import RunFiles, Workspace, atomic_write_text, check_free_space, space_for

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


# ---- data -------------------------------------------------------------------
@dataclass
class RunData:
    """A run's dataset: class names and `(x uint8 (N,S,S,3), y int32)` per split."""

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    manifest: dict[str, Any]

    def size(self, split: str) -> int:
        """Number of images in `split`."""
        return len(self.splits[split][1])


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
    data = RunData(classes, splits, manifest)
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


def array_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool,
                  seed: int) -> tf.data.Dataset:
    """Batches `(float32 x, int32 y)` gathered from (memory-mapped) arrays, prefetched.

    Only batch indices flow through `tf.data`; rows are read from `x` per batch, so
    memory stays bounded however large the split is. Works for images and for
    cached features alike.
    """
    n = len(y)
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    row_shape = tuple(x.shape[1:])

    def gather(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(idx)  # sequential reads from the memmap; order inside a batch is moot
        return np.asarray(x[idx], dtype=np.float32), np.asarray(y[idx], dtype=np.int32)

    def load(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        xb, yb = tf.numpy_function(gather, [idx], (tf.float32, tf.int32))
        xb.set_shape((None, *row_shape))
        yb.set_shape((None,))
        return xb, yb

    return (indices.batch(batch_size)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


# ---- what Keras fits in a phase --------------------------------------------
@dataclass
class FitPlan:
    """What `model.fit` runs on in one phase.

    Attributes:
        model: The model Keras fits. It shares its layers with the full model, so
            training it trains the full model.
        train: Training batches `(inputs, labels)`.
        val: Validation batches, or None when the dataset has no validation split.
        steps: Batches per training epoch.
        cut: The base layer whose cached output the plan trains on, or None when
            it trains on images.
    """

    model: keras.Model
    train: tf.data.Dataset
    val: tf.data.Dataset | None
    steps: int
    cut: str | None = None


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


def phase_inputs(model: keras.Model, config: RunConfig, phase: int, data: RunData,
                 ws: Workspace, splits: tuple[str, ...],
                 progress: FeatureProgress | None = None
                 ) -> tuple[keras.Model, dict[str, tuple[np.ndarray, np.ndarray]], str | None]:
    """The model to run in `phase` and its inputs per split.

    With a frozen cut, the frozen prefix runs once per image and its output comes
    from the feature cache (computed on a miss, shared across runs); the returned
    model is the trainable rest. Without one, it is the full model on images.

    Returns:
        `(model, {split: (x, y)}, cut)`.
    """
    cut = frozen_cut(model, config, phase)
    if cut is None:
        return model, {s: data.splits[s] for s in splits}, None
    prefix = frozen_prefix(model, cut)
    key = feature_key(model, cut)
    weights_fp = featcache.weights_fingerprint(prefix.layers)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    forward = tf.function(lambda batch: prefix(batch, training=False), jit_compile=on_gpu,
                          reduce_retracing=True)

    def run_prefix(batch: np.ndarray) -> np.ndarray:
        return forward(tf.convert_to_tensor(batch, dtype=tf.float32)).numpy()

    inputs = {}
    for split in splits:
        feats, labels, hit = featcache.split_features(
            ws, data.manifest, split, config.image_size, run_prefix, key, weights_fp, progress)
        log.info("%s features at %s: %s %s", split, cut, "cache hit" if hit else "computed",
                 tuple(feats.shape))
        inputs[split] = (feats, labels)
    rest = trainable_rest(model, cut, tuple(prefix.output.shape[1:]))
    return rest, inputs, cut


def plan_phase(model: keras.Model, config: RunConfig, phase: int, data: RunData,
               ws: Workspace, progress: FeatureProgress | None = None) -> FitPlan:
    """The model and inputs Keras fits in `phase` (after `set_phase` froze the full model).

    When augmentation is off, the frozen prefix is replaced by its cached output and
    only the trainable rest is fitted (see `phase_inputs`).
    """
    fit_model, inputs, cut = phase_inputs(model, config, phase, data, ws, ("train", "val"),
                                          progress)
    (x, y), (xv, yv) = inputs["train"], inputs["val"]
    batch = config.train.batch_size
    seed = config.train.seed + phase
    val = array_dataset(xv, yv, batch, shuffle=False, seed=seed) if len(yv) else None
    return FitPlan(fit_model, array_dataset(x, y, batch, shuffle=True, seed=seed), val,
                   math.ceil(len(y) / batch), cut)


def predict_splits(model: keras.Model, config: RunConfig, data: RunData,
                   splits: tuple[str, ...], ws: Workspace, phase: int = 1,
                   heartbeat: Heartbeat | None = None) -> dict[str, np.ndarray]:
    """Class probabilities of the full model on each non-empty split.

    Uses `phase`'s frozen cut when there is one: the prefix up to it did not train
    in that phase, so its cached output is still valid for the trained model.
    `heartbeat` beats through feature chunks and predict batches.
    """
    splits = tuple(s for s in splits if data.size(s))
    run_model, inputs, _ = phase_inputs(model, config, phase, data, ws, splits,
                                        heartbeat.beat if heartbeat else None)
    out = {}
    for split in splits:
        x, y = inputs[split]
        ds = array_dataset(x, y, config.train.batch_size, shuffle=False, seed=0)
        out[split] = run_model.predict(ds.map(lambda xb, _: xb), verbose=0,
                                       callbacks=[heartbeat] if heartbeat else None)
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


def save_checkpoint(files: RunFiles, model: keras.Model, state: TrainState) -> None:
    """Write the model's weights and `state` so that a reader sees the old or the new pair.

    The weights go to a new file first; `state.json`, which names it, is replaced
    last; then older weights files are removed.

    Raises:
        DiskFullError: if the disk has no room for the weights; the previous
            checkpoint stays as it was and no temp file is left.
    """
    files.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = files.checkpoint_weights(state.epoch)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    weights = model.get_weights()
    with space_for(files.checkpoint_dir, sum(w.nbytes for w in weights)):
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, *weights)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        atomic_write_text(files.checkpoint_state,
                          json.dumps({**asdict(state), "weights_file": path.name}))
    state.weights_file = path.name
    for old in files.checkpoint_dir.glob("*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def load_checkpoint(files: RunFiles, model: keras.Model) -> TrainState | None:
    """Restore the last epoch checkpoint into `model`; None when there is none."""
    path = files.checkpoint_state
    if not path.is_file():
        return None
    state = TrainState(**json.loads(path.read_text()))
    with np.load(files.checkpoint_dir / state.weights_file) as arrays:
        model.set_weights([arrays[f"arr_{i}"] for i in range(len(arrays.files))])
    return state


def save_model(model: keras.Model, path: Path) -> None:
    """Save the full model to `path` atomically (a reader never sees half a file).

    Raises:
        DiskFullError: if the disk has no room for it; the previous file stays.
    """
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    size = sum(math.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights)
    with space_for(path.parent, size):
        try:
            model.save(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


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

    `beat()` writes the run's heartbeat at most every `jobs.HEARTBEAT_INTERVAL_S`;
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
        if now - self.last >= jobs.HEARTBEAT_INTERVAL_S:
            self.last = now
            self.store.heartbeat(self.run_id)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.beat()


def _check_cancel(store: RunStore, run_id: str) -> None:
    if store.cancel_requested(run_id):
        raise RunCancelled(f"Run {run_id} was cancelled.")


class ProgressReporter(keras.callbacks.Callback):
    """Per-batch cancel check and throttled progress with an ETA for the whole run.

    The ETA comes from measured steady step times (`tlcore.eta.StepClock`),
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
        self.clock = StepClock(steps)

    def _cancel_check(self) -> None:
        if self.store.cancel_requested(self.run_id):
            self.model.stop_training = True
            raise RunCancelled(f"Run {self.run_id} was cancelled during epoch {self.epoch + 1}.")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.clock.epoch_begin(time.monotonic())
        self._cancel_check()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._cancel_check()
        now = time.monotonic()
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
        self._cancel_check()


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


class RunRecorder(keras.callbacks.Callback):
    """Per-epoch bookkeeping: metrics row, best model, checkpoint, history, early stopping.

    It holds the full model and saves that, whatever part of it Keras is fitting.

    Args:
        store: The run store.
        run_id: The run.
        files: The run's files.
        full_model: The full model (saved as `model.keras`).
        config: The run config.
        phase: The phase being fitted.
        state: The run state, updated in place.
        monitor: "val_loss", or "loss" when the dataset has no validation split.
    """

    def __init__(self, store: RunStore, run_id: str, files: RunFiles, full_model: keras.Model,
                 config: RunConfig, phase: int, state: TrainState, monitor: str) -> None:
        super().__init__()
        self.store, self.run_id, self.files = store, run_id, files
        self.full_model, self.config, self.phase = full_model, config, phase
        self.state, self.monitor = state, monitor
        self.epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.monotonic()

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
            save_model(self.full_model, self.files.model)
        else:
            state.wait += 1
        if row["val_accuracy"] is not None:
            state.best_val_accuracy = max(state.best_val_accuracy or 0.0, row["val_accuracy"])

        patience = self.config.train.early_stopping_patience
        if patience and state.wait >= patience:
            log.info("early stopping: %s has not improved for %d epochs", self.monitor, patience)
            self.model.stop_training = True
        state.epoch, state.phase = number, self.phase
        if self.phase == 1:
            state.phase1_epochs = number
            state.phase1_done = self.model.stop_training or number >= self.config.train.epochs
        save_checkpoint(self.files, self.full_model, state)
        write_history(self.files.history, self.store.metrics(self.run_id))
        self.store.update_run(self.run_id, best_val_accuracy=state.best_val_accuracy,
                              best_val_loss=state.best_val_loss, best_epoch=state.best_epoch)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---- the run ----------------------------------------------------------------
def run_training(run_id: str, ws: Workspace | None = None, resume: bool = False
                 ) -> dict[str, Any]:
    """Train run `run_id` to the end (the caller sets its status).

    Args:
        run_id: A run in the store; its config is read from there.
        ws: The workspace; default `Workspace.from_env()`.
        resume: Continue from the last epoch checkpoint when there is one.

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
    heartbeat = Heartbeat(store, run_id)

    device = configure_devices()
    mixed = use_mixed_precision(config)
    store.update_run(run_id, device=device["device"])
    heartbeat.beat()
    store.merge_extra(run_id, mixed_precision=mixed,
                      weights_source=base_weights_source(config, ws))
    log.info("run %s on %s, mixed precision %s", run_id, device["device"],
             "on" if mixed else "off")
    _check_cancel(store, run_id)

    keras.utils.set_random_seed(config.train.seed)
    data = load_data(config, ws, heartbeat.beat)
    atomic_write_text(files.class_names, json.dumps(data.classes, ensure_ascii=False))
    log.info("data: %s", ", ".join(f"{s} {data.size(s)}" for s in SPLITS))
    _check_cancel(store, run_id)
    heartbeat.beat()
    model = build_model(config, len(data.classes), ws, mixed_precision=mixed,
                        base_weights=load_base_weights(config, ws, heartbeat.beat))
    heartbeat.beat()

    state = load_checkpoint(files, model) if resume else None
    if state is None:
        state = TrainState()
    else:
        log.info("resuming after epoch %d (phase %d)", state.epoch, state.phase)
    store.truncate_metrics(run_id, state.epoch)
    monitor = "val_loss" if data.size("val") else "loss"
    weights = class_weights(data.splits["train"][1], len(data.classes), config.train.class_weight)

    phases = [1, 2] if config.fine_tune.enabled else [1]
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
        set_phase(model, config, phase)
        plan = plan_phase(model, config, phase, data, ws,
                          _feature_progress(store, run_id, phase, first, total))
        compile_for_phase(plan.model, config, phase)
        if first == (0 if phase == 1 else state.phase1_epochs):
            state.wait = 0  # patience counts within a phase, except when resuming inside one
        log.info("phase %d: epochs %d-%d", phase, first + 1, last)
        plan.model.fit(
            plan.train, validation_data=plan.val, initial_epoch=first, epochs=last,
            class_weight=weights, shuffle=False, verbose=2,  # the dataset shuffles itself
            callbacks=[ProgressReporter(store, run_id, phase, plan.steps, total),
                       DivergenceGuard(config, phase),
                       RunRecorder(store, run_id, files, model, config, phase, state,
                                   monitor),
                       heartbeat],
        )
        if phase == 1:
            state.phase1_done = True

    _restore_best(files, model)
    heartbeat.beat()
    probs = predict_splits(model, config, data, ("test", "val"), ws, phases[-1], heartbeat)
    test = _test_metrics(store, run_id, ws, probs.get("test"), data)
    _evaluate(run_id, ws, model, probs, heartbeat)
    return {"epochs": state.epoch, "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss, "best_val_accuracy": state.best_val_accuracy,
            "test_metrics": test}


def _feature_progress(store: RunStore, run_id: str, phase: int, epoch: int,
                      epochs: int) -> FeatureProgress:
    """Report frozen-feature computation (images done / total) as the run's progress."""
    def report(done: int, total: int) -> None:
        store.set_progress(run_id, phase=phase, epoch=epoch + 1, epochs=epochs, batch=done,
                           batches=total, eta_s=None, stage=STAGE_FEATURES)
    return report


def _restore_best(files: RunFiles, model: keras.Model) -> None:
    """Load the best checkpoint (by validation loss) into `model`, when there is one."""
    best = files.model
    if best.is_file():
        saved = keras.models.load_model(best, compile=False, safe_mode=True)
        model.set_weights(saved.get_weights())


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
    """Store the full evaluation with the run, so the Evaluate page opens instantly.

    A trained run stays a good run even if its evaluation breaks: the failure is
    logged and `python -m tlcore evaluate` can redo it.
    """
    from tlcore.evaluate import evaluate_run

    try:
        result = evaluate_run(run_id, ws=ws, model=model, require_completed=False, probs=probs,
                              progress=heartbeat.beat)
        log.info("evaluation stored (%.1f s)", result["eval_seconds"])
    except Exception as exc:  # any failure: see the docstring
        log.warning("evaluation failed, run `python -m tlcore evaluate %s`: %s", run_id, exc)
