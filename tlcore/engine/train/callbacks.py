"""The Keras callbacks of a run: heartbeat, progress and cancel, divergence, bookkeeping.

* `Heartbeat`: the worker's sign of life, written as the loop makes progress.
* `ProgressReporter`: cancel checks and progress with an ETA, throttled by time.
* `FeatureReporter`: progress of the frozen-feature pass, with an ETA.
* `DivergenceGuard`: a loss that turns nan/inf or explodes stops the run
  (`DivergedError`, naming the epoch and the learning rate).
* `RunRecorder`: per epoch a metrics row, the best epoch's trained weights kept
  in memory, early stopping, and the checkpoint (`tlcore.engine.train.checkpoint`).
* `EpochLog`: Keras's per-epoch lines for fits that bypass `fit`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import keras

from tlcore import entities
from tlcore.config import RunConfig
from tlcore.engine import runmodel
from tlcore.engine.eta import RateClock, StepClock
from tlcore.engine.train.checkpoint import (
    TrainState,
    checkpoint_interval,
    optimizer_state,
    save_checkpoint,
)
from tlcore.errors import DivergedError, RunCancelled
from tlcore.store import STAGE_FEATURES, STAGE_TRAIN, STAGE_VALIDATE, RunStore
from tlcore.vgg16 import bases
from tlcore.workspace import RunFiles

log = logging.getLogger("tlcore.engine.train")  # one name in run logs for the whole loop

PROGRESS_INTERVAL_S = 0.5  # progress rows at most twice a second
# A loss above both of these has diverged: a cross-entropy that has been learning never
# climbs a hundredfold from its lowest value, let alone to a thousand.
DIVERGED_LOSS = 1e3
DIVERGED_FACTOR = 100.0
# Cancel checks read the run store; once per this many seconds, not per batch.
CANCEL_CHECK_INTERVAL_S = 0.5


class Heartbeat(keras.callbacks.Callback):
    """The worker's sign of life, written by the training loop as it makes progress.

    `beat()` writes the run's heartbeat at most every `entities.HEARTBEAT_INTERVAL_S`;
    the loop calls it between steps, as a progress callback of long steps, and
    (as a Keras callback) after every train, validation and predict batch. Never
    from a thread of its own: a loop that hangs must fall silent, so that
    `runs.liveness.refresh` notices and kills the worker.

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


def check_cancel(store: RunStore, run_id: str) -> None:
    """Stop the run when its cancel flag is set.

    Raises:
        RunCancelled: if a cancel was requested.
    """
    if store.cancel_requested(run_id):
        raise RunCancelled(f"Run {run_id} was cancelled.")


class ProgressReporter(keras.callbacks.Callback):
    """Cancel checks and progress with an ETA for the whole run, throttled by time.

    Between batches nothing touches the run store unless `CANCEL_CHECK_INTERVAL_S`
    or `PROGRESS_INTERVAL_S` has passed; each epoch begins with a cancel check.

    The ETA comes from measured steady step times (`tlcore.engine.eta.StepClock`),
    so the first steps' compiling does not inflate it; it is None until then.
    The row of an epoch's last batch has the stage "validate" when the fit
    validates: the epoch then runs on, without batches to count, until it ends.

    Args:
        store: The run store.
        run_id: The run.
        phase: The phase being fitted.
        steps: Training batches per epoch.
        total_epochs: Planned epochs of the whole run (both phases).
        validates: Whether each epoch ends with validation.
    """

    def __init__(self, store: RunStore, run_id: str, phase: int, steps: int,
                 total_epochs: int, validates: bool = True) -> None:
        super().__init__()
        self.store, self.run_id, self.phase = store, run_id, phase
        self.steps, self.total_epochs, self.validates = steps, total_epochs, validates
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
        stage = STAGE_VALIDATE if self.validates and done >= self.steps else STAGE_TRAIN
        self.store.set_progress(self.run_id, phase=self.phase, epoch=self.epoch + 1,
                                epochs=self.total_epochs, batch=done, batches=self.steps,
                                eta_s=None if eta is None else round(eta, 1), stage=stage)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._cancel_check(time.monotonic())


class FeatureReporter:
    """Progress of the frozen-feature pass (images done of all), with an ETA, as the run's.

    Called with `(done, total)` before the first chunk and after every chunk
    (`tlcore.cache.features`); each row it writes is also a heartbeat. The ETA
    comes from the measured images per second (`tlcore.engine.eta.RateClock`).

    Args:
        store: The run store.
        run_id: The run.
        phase: The phase whose features are computed.
        epoch: Epochs of the run done before it (the row shows the next one).
        total_epochs: Planned epochs of the whole run (both phases).
    """

    def __init__(self, store: RunStore, run_id: str, phase: int, epoch: int,
                 total_epochs: int) -> None:
        self.store, self.run_id, self.phase = store, run_id, phase
        self.epoch, self.total_epochs = epoch, total_epochs
        self.clock = RateClock()
        self.last_report = -math.inf

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        eta = self.clock.eta(now, done, total)
        if now - self.last_report < PROGRESS_INTERVAL_S and 0 < done < total:
            return
        self.last_report = now
        self.store.set_progress(self.run_id, phase=self.phase, epoch=self.epoch + 1,
                                epochs=self.total_epochs, batch=done, batches=total,
                                eta_s=None if eta is None else round(eta, 1),
                                stage=STAGE_FEATURES)


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
