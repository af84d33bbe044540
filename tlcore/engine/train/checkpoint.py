"""What a run keeps to resume: its state, trained weights, best weights, optimizer, history.

A checkpoint holds only what training changes (the trained layers' weights at
the last and the best epoch, and the optimizer's variables); the frozen base is
in `tlcore.vgg16.bases`. It is written every `checkpoint_interval()` seconds
(`$TLCORE_CHECKPOINT_INTERVAL_S`, default 30) and at each phase's end, so
resume continues the optimizer where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tlcore.errors import ConfigError
from tlcore.store import METRIC_COLUMNS
from tlcore.vgg16 import bases
from tlcore.workspace import RunFiles, atomic_write_text

log = logging.getLogger("tlcore.engine.train")  # one name in run logs for the whole loop

HISTORY_COLUMNS = ("epoch", "phase", *METRIC_COLUMNS)
ENV_CHECKPOINT_INTERVAL = "TLCORE_CHECKPOINT_INTERVAL_S"
DEFAULT_CHECKPOINT_INTERVAL_S = 30.0
CHECKPOINT_FORMAT = 2
LAST, BEST, OPTIMIZER = "last/", "best/", "optimizer/"


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
