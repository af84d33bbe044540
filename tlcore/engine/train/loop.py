"""The training loop: a run from its config to its trained weights, test metrics and evaluation.

`run_training(run_id)` runs in a worker process (`python -m tlcore.workers.run`):

1. Read the run's config from the store, set up the devices, and load the
   dataset's decoded-image cache (`tlcore.engine.train.data`).
2. Find the frozen base (`tlcore.vgg16.bases`: stored once per workspace by the
   fingerprint of its weights; the run records it in `base.json`), build the
   model (`tlcore.engine.model`) and, when resuming, restore the last checkpoint
   (`tlcore.engine.train.checkpoint`).
3. Phase 1 trains the head on a frozen base (every layer with `base.trainable`:
   from scratch when the weights are none). Phase 2 (when `fine_tune.blocks`
   and `fine_tune.epochs` are > 0) unfreezes the last blocks, recompiles at
   `fine_tune.learning_rate` and continues the epoch axis: its first epoch is
   numbered after the last phase-1 epoch. What Keras fits in a phase is decided
   by `tlcore.engine.train.plan` (cached frozen features when it can).
4. The callbacks (`tlcore.engine.train.callbacks`) check for cancels, report
   progress, stop a diverging run, and record each epoch: metrics, the best
   weights in memory, early stopping, checkpoints.
5. Finally the best epoch's trained weights are written once (`trained.npz`:
   the head plus any trained blocks, never the frozen base), and the model is
   scored on the test split and evaluated from those predictions. The worker
   then marks the run completed and adds the evaluation's Grad-CAM overlays
   (`add_overlays`), the one step that needs the whole network on images.

The run's heartbeat (`Heartbeat`) is written by this loop as it makes progress:
between steps, per decoded-image, feature and download chunk, and per train,
validation and predict batch. A worker that hangs falls silent and
`runs.liveness.refresh` kills it. Large writes (checkpoints, trained weights, cached
arrays) check free space first and fail the run with "disk full: ..." (`space_for`).

With `train.distribute: mirrored` the model, the models Keras fits and their
optimizers are made in the scope of a `tf.distribute.MirroredStrategy`
(`backend.strategy`: every GPU, or the CPU's logical devices), and every phase
trains with Keras's `fit`, which splits each batch of `train.batch_size`
between the replicas (`plan.check_replicas`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from tlcore import backend
from tlcore.config import RunConfig
from tlcore.data import SPLITS, pin_run
from tlcore.engine import fastfit, runmodel
from tlcore.engine.kerasfile import load_keras_file
from tlcore.engine.model import build_model, compile_for_phase, set_phase, use_mixed_precision
from tlcore.engine.train.callbacks import (
    DivergenceGuard,
    EpochLog,
    FeatureReporter,
    Heartbeat,
    ProgressReporter,
    RunRecorder,
    check_cancel,
)
from tlcore.engine.train.checkpoint import (
    TrainState,
    checkpoint_interval,
    load_checkpoint,
    restore_optimizer,
    write_history,
)
from tlcore.engine.train.data import RunData, class_weights, load_data
from tlcore.engine.train.plan import (
    FitPlan,
    PhaseInputs,
    cached_head,
    check_replicas,
    plan_phase,
    predict_splits,
    split_metrics,
)
from tlcore.engine.weights import base_weights_source, conv_weights, load_base_weights
from tlcore.errors import RunCancelled
from tlcore.store import RunStore
from tlcore.vgg16 import bases
from tlcore.workspace import RunFiles, Workspace, atomic_write_text, check_free_space

log = logging.getLogger("tlcore.engine.train")  # one name in run logs for the whole loop


# ---- the frozen base ----------------------------------------------------------
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
        WeightsError, NotFoundError, RunStateError: as `weights.load_base_weights`.
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
    weights = base.weights or conv_weights(model)
    fp = base.fingerprint or bases.fingerprint(weights)
    bases.record_base(files, fp, base.source)
    bases.store(ws, weights, base.source)
    return fp


# ---- what the steps share -------------------------------------------------------
@dataclass
class TrainingRun:
    """The run being trained, as every step of `run_training` sees it.

    Attributes:
        run_id: The run.
        ws: The workspace.
        store: The run store.
        config: The run config.
        files: The run's files.
        heartbeat: The worker's sign of life.
        device: `backend.configure_devices()`'s description of the devices.
        strategy: `train.distribute`'s strategy, or None.
        replicas: The replicas each batch is split between (1 without a strategy).
        mixed: Whether the run computes in float16.
    """

    run_id: str
    ws: Workspace
    store: RunStore
    config: RunConfig
    files: RunFiles
    heartbeat: Heartbeat
    device: dict[str, Any]
    strategy: Any = None
    replicas: int = 1
    mixed: bool = False


@dataclass
class FoundBase:
    """The frozen base as the run first finds it.

    Attributes:
        known: Its fingerprint when the weights source was seen before: then it is
            not loaded yet, since cached features may be all the run needs.
        loaded: The base, loaded (None while `known` spares loading it).
        source: Where the conv weights come from, in words.
    """

    known: str | None
    loaded: Base | None
    source: str


@dataclass
class Network:
    """The model a run trains.

    Attributes:
        model: The full model, or the head alone when `head` is set.
        base_fp: The fingerprint of its frozen base, or None when it needs none.
        head: The head and every split's cached features (`plan.cached_head`) when
            the run trains only its head on them, else None.
    """

    model: keras.Model
    base_fp: str | None
    head: PhaseInputs | None = None


@dataclass
class Progress:
    """Where training stands.

    Attributes:
        state: The run state (epochs, best epoch, patience), checkpointed.
        best: The trained layers' weights at the best epoch so far, or None.
        optimizer: A checkpoint's optimizer state, waiting to be restored in the
            phase it was saved in, or None.
    """

    state: TrainState = field(default_factory=TrainState)
    best: bases.LayerWeights | None = None
    optimizer: list[np.ndarray] | None = None


# ---- the run ----------------------------------------------------------------
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
    run = _start(run_id, ws or Workspace.from_env())
    found = _find_base(run, resume)
    data = _read_data(run)
    # Under `train.distribute`, every variable (model, optimizer, metrics) and every
    # model Keras fits are made in the strategy's scope; outside it, they read as usual.
    with _scope(run.strategy):
        net = _build_network(run, data, found)
        progress = _restore_checkpoint(run, net) if resume else Progress()
        run.store.truncate_metrics(run_id, progress.state.epoch)
        try:
            for phase in _phases(run.config):
                _fit_phase(run, net, data, progress, phase, callbacks or [])
        finally:
            write_history(run.files.history, run.store.metrics(run_id))
    return _finish(run, net, data, progress)


def _start(run_id: str, ws: Workspace) -> TrainingRun:
    """Read the run, check the disk and the settings, and set up the devices."""
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
    run = TrainingRun(run_id, ws, store, config, files, heartbeat, device, strategy,
                      strategy.num_replicas_in_sync if strategy is not None else 1,
                      use_mixed_precision(config))
    store.update_run(run_id, device=device["device"])
    heartbeat.beat()
    return run


def _find_base(run: TrainingRun, resume: bool) -> FoundBase:
    """Find the run's frozen base, loading it only when its fingerprint is unknown."""
    config, ws, store = run.config, run.ws, run.store
    # A weights file seen before is known by its path, size and mtime: its base is
    # not loaded unless the run needs more than its cached features.
    known = None if resume else bases.lookup(ws, bases.source_key(config, ws))
    loaded = None if known else resolve_base(config, ws, run.heartbeat.beat)
    source = loaded.source if loaded else base_weights_source(config, ws)
    store.merge_extra(run.run_id, mixed_precision=run.mixed, weights_source=source,
                      backend=run.device["backend"])
    log.info("run %s on %s with %s, mixed precision %s", run.run_id, run.device["device"],
             run.device["backend"], "on" if run.mixed else "off")
    if run.strategy is not None:
        log.info("train.distribute %s: %d replica%s (%s), each step splits a batch of %d "
                 "between them", config.train.distribute, run.replicas,
                 "" if run.replicas == 1 else "s",
                 ", ".join(run.strategy.extended.worker_devices), config.train.batch_size)
        store.merge_extra(run.run_id, replicas=run.replicas)
    check_cancel(store, run.run_id)
    return FoundBase(known, loaded, source)


def _read_data(run: TrainingRun) -> RunData:
    """Load the run's dataset, record its class names, and check the batches fit the replicas."""
    config = run.config
    backend.set_random_seed(config.train.seed)
    version = pin_run(run.ws, run.run_id, config.dataset)
    data = load_data(config, run.ws, run.heartbeat.beat, version=version)
    atomic_write_text(run.files.class_names, json.dumps(data.classes, ensure_ascii=False))
    log.info("data: %s (version %s)", ", ".join(f"{s} {data.size(s)}" for s in SPLITS),
             version[:12])
    if data.train_rows is not None:
        log.info("train.subset %g: training on %d of %d training images", config.train.subset,
                 len(data.train_rows), data.size("train"))
        run.store.merge_extra(run.run_id, train_images=len(data.train_rows))
    check_replicas(config, run.replicas, data.train_images(), data.size("val"))
    check_cancel(run.store, run.run_id)
    run.heartbeat.beat()
    return data


def _build_network(run: TrainingRun, data: RunData, found: FoundBase) -> Network:
    """The head alone on cached features when that is all the run needs, else the full model."""
    config, ws = run.config, run.ws
    head = cached_head(config, data, ws, found.known, run.mixed) if found.known else None
    if head is None:
        base = found.loaded or resolve_base(config, ws, run.heartbeat.beat)
        model = build_model(config, len(data.classes), ws, mixed_precision=run.mixed,
                            base_weights=base.weights)
        net = Network(model, keep_base(run.files, config, model, base, ws))
    else:
        net = Network(head[0], found.known, head)
        bases.record_base(run.files, found.known, found.source)
        log.info("every split's features are cached: training the head alone")
    run.heartbeat.beat()
    return net


def _restore_checkpoint(run: TrainingRun, net: Network) -> Progress:
    """Set the model to the last checkpoint's weights; where training stands after it."""
    saved = load_checkpoint(run.files)
    if saved is None:
        return Progress()
    progress = Progress(saved.state, saved.best, saved.optimizer)
    if saved.full is not None:
        net.model.set_weights(saved.full)
        progress.best = _best_of_full_model(run.files, net.model, run.config)
    else:
        runmodel.set_weights(net.model, saved.weights)
    log.info("resuming after epoch %d (phase %d)%s", saved.state.epoch, saved.state.phase,
             ", optimizer state restored" if saved.optimizer else "")
    return progress


def _phases(config: RunConfig) -> list[int]:
    """The run's phases: the head, then fine-tuning when it is on."""
    return [1, 2] if config.fine_tune.enabled else [1]


def _fit_phase(run: TrainingRun, net: Network, data: RunData, progress: Progress, phase: int,
               callbacks: list[keras.callbacks.Callback]) -> None:
    """Fit `phase`'s remaining epochs (none left: nothing happens)."""
    config, state = run.config, progress.state
    if phase == 1 and state.phase1_done:
        return
    start = 0 if phase == 1 else state.phase1_epochs  # the phase's first epoch, 0-based
    first = state.epoch if phase == state.phase else state.phase1_epochs
    last = (config.train.epochs if phase == 1
            else state.phase1_epochs + config.fine_tune.epochs)
    if first >= last:
        return
    total = ((config.train.epochs if not state.phase1_done else state.phase1_epochs)
             + (config.fine_tune.epochs if config.fine_tune.enabled else 0))
    check_cancel(run.store, run.run_id)
    plan = _compile_phase(run, net, data, progress, phase, first, total)
    if first == start:
        state.wait = 0  # patience counts within a phase, except when resuming in one
    log.info("phase %d: epochs %d-%d", phase, first + 1, last)
    monitor = "val_loss" if data.size("val") else "loss"
    recorder = RunRecorder(run.store, run.run_id, run.files, net.model, config, phase, state,
                           monitor, progress.best)
    hooks = [ProgressReporter(run.store, run.run_id, phase, plan.steps, total,
                              validates=bool(data.size("val"))),
             DivergenceGuard(config, phase), recorder, run.heartbeat, *callbacks]
    weights = class_weights(data.train_labels(), len(data.classes), config.train.class_weight)
    try:
        _fit(plan, config, phase, first, last, weights, hooks)
    except RunCancelled:
        recorder.flush()
        raise
    progress.best = recorder.best
    if phase == 1:
        state.phase1_done = True


def _compile_phase(run: TrainingRun, net: Network, data: RunData, progress: Progress,
                   phase: int, first: int, total: int) -> FitPlan:
    """Freeze for `phase`, plan what Keras fits, compile it, and restore a resumed optimizer.

    The optimizer's checkpointed state is restored only when the run resumes in
    the middle of the phase it was saved in; a new phase starts a fresh optimizer.
    """
    config, state = run.config, progress.state
    if net.head is None:
        set_phase(net.model, config, phase)
    plan = plan_phase(net.model, config, phase, data, run.ws,
                      FeatureReporter(run.store, run.run_id, phase, first, total),
                      net.base_fp, net.head, run.replicas)
    compile_for_phase(plan.model, config, phase)
    start = 0 if phase == 1 else state.phase1_epochs
    if progress.optimizer is not None and phase == state.phase and first > start:
        restore_optimizer(plan.model, progress.optimizer)
    progress.optimizer = None
    return plan


def _fit(plan: FitPlan, config: RunConfig, phase: int, first: int, last: int,
         weights: dict[int, float] | None, hooks: list[keras.callbacks.Callback]) -> None:
    """Fit epochs `first + 1`..`last` of `phase` as `plan` says, calling `hooks`."""
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


def _finish(run: TrainingRun, net: Network, data: RunData, progress: Progress
            ) -> dict[str, Any]:
    """Save the best weights, score the test split, store the evaluation, drop the checkpoint."""
    if progress.best is not None:
        runmodel.set_weights(net.model, progress.best)
    runmodel.save_trained(run.files, runmodel.snapshot(net.model, run.config))
    run.heartbeat.beat()
    probs = predict_splits(net.model, run.config, data, ("test", "val"), run.ws,
                           _phases(run.config)[-1], run.heartbeat, net.base_fp, net.head)
    test = _test_metrics(run, probs.get("test"), data)
    _evaluate(run.run_id, run.ws, net.model if net.head is None else None, probs, run.heartbeat)
    shutil.rmtree(run.files.checkpoint_dir, ignore_errors=True)  # the trained weights are saved
    state = progress.state
    return {"epochs": state.epoch, "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss, "best_val_accuracy": state.best_val_accuracy,
            "test_metrics": test}


# ---- helpers of the steps -----------------------------------------------------
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
    return runmodel.snapshot(load_keras_file(files.model), config)


def _test_metrics(run: TrainingRun, probs: np.ndarray | None,
                  data: RunData) -> dict[str, float] | None:
    """Score the test-split predictions; store and write the result."""
    if probs is None:
        return None
    metrics = split_metrics(probs, data.splits["test"][1])
    atomic_write_text(run.files.test_metrics, json.dumps(metrics, indent=2))
    run.store.update_run(run.run_id, test_metrics=metrics)
    log.info("test: loss %.4f, accuracy %.4f", metrics["loss"], metrics["accuracy"])
    return metrics


def _evaluate(run_id: str, ws: Workspace, model: keras.Model | None,
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
