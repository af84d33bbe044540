"""The facts every part of tlcore shares: run statuses, stages, splits and record types.

The store writes these values, workers report them and the dashboard shows them;
declaring them here lets a chart or a page use them without importing the store,
the importer or SQLAlchemy. This module imports nothing from tlcore.
"""

from __future__ import annotations

from typing import Any, TypedDict

# ---- run statuses -----------------------------------------------------------
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST = (
    "queued", "running", "completed", "failed", "cancelled", "lost")
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST)
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (COMPLETED, FAILED, CANCELLED, LOST)

# ---- what a running worker is doing (a progress row's `stage`) --------------
# "validate": the epoch's last training batch is done, and validation runs until the epoch ends.
STAGE_TRAIN, STAGE_FEATURES, STAGE_VALIDATE = "train", "features", "validate"

# A worker writes its heartbeat at least this often while it makes progress.
HEARTBEAT_INTERVAL_S = 5.0

# ---- datasets and metrics ---------------------------------------------------
SPLITS = ("train", "val", "test")  # every split name, in display order

# What a run records per epoch, besides the epoch and the phase.
METRIC_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")


# ---- records the store returns ----------------------------------------------
class DatasetRecord(TypedDict):
    """One imported dataset, as `RunStore.list_datasets` returns it."""

    name: str
    created: float
    n_images: int
    classes: list[str]
    summary: dict[str, Any]
    owner: str | None  # the user who imported it; None: the local operator


class RunRecord(TypedDict):
    """One run, as `RunStore.get_run` and `RunStore.list_runs` return it."""

    id: str
    seq: int
    name: str
    dataset: str
    config: dict[str, Any]  # parsed, keys added since the run was stored at their defaults
    status: str
    created: float
    started: float | None
    ended: float | None
    device: str | None
    error: str | None
    pid: int | None
    heartbeat: float | None
    cancel_requested: bool
    best_val_accuracy: float | None
    best_val_loss: float | None
    best_epoch: int | None
    test_metrics: dict[str, Any] | None
    extra: dict[str, Any] | None
    gpu: str | None  # the CUDA_VISIBLE_DEVICES value the run holds (or held) while running
    owner: str | None  # the user who launched it; None: the local operator
    tags: list[str]  # sorted, lower-case; [] when none
    note: str | None


class EpochRecord(TypedDict):
    """One epoch's metrics of a run (a metric a run does not report is None)."""

    run_id: str
    epoch: int
    phase: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float | None
    epoch_time: float | None


class ProgressRecord(TypedDict):
    """A run's position inside its current epoch (or feature pass, see `stage`)."""

    run_id: str
    phase: int | None
    epoch: int | None
    epochs: int | None
    batch: int | None
    batches: int | None
    eta_s: float | None
    updated: float | None
    stage: str


def peak_epoch(rows: list[EpochRecord], key: str = "val_accuracy") -> int | None:
    """The epoch with the highest `key` (the first one on a tie); None without values.

    A run's `best_epoch` is the epoch of its lowest val loss, whose weights the model
    keeps; its `best_val_accuracy` may come from another epoch, which this names.
    """
    scored = [row for row in rows if row.get(key) is not None]
    return max(scored, key=lambda row: (row[key], -row["epoch"]))["epoch"] if scored else None
