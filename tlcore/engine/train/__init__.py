"""Training a run: `run_training(run_id)` in a worker process, `add_overlays` after it.

* `data`: the run's dataset (decoded images per split, `train.subset`, class weights).
* `plan`: what Keras fits and predicts with in a phase (cached frozen features when it can).
* `checkpoint`: the run state, checkpoints with the optimizer's state, the history CSV.
* `callbacks`: heartbeat, progress and cancel, divergence, per-epoch bookkeeping.
* `loop`: `run_training` as a sequence of steps, and the evaluation that follows it.
"""

from tlcore.engine.train.callbacks import (
    DivergenceGuard,
    EpochLog,
    Heartbeat,
    ProgressReporter,
    RunRecorder,
)
from tlcore.engine.train.checkpoint import (
    ENV_CHECKPOINT_INTERVAL,
    Checkpoint,
    TrainState,
    checkpoint_interval,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
    write_history,
)
from tlcore.engine.train.data import RunData, class_weights, load_data
from tlcore.engine.train.loop import add_overlays, run_training
from tlcore.engine.train.plan import (
    ENV_FEATURE_CACHE,
    FitPlan,
    check_replicas,
    feature_key,
    frozen_cut,
    phase_inputs,
    plan_phase,
    predict_splits,
    split_metrics,
)

__all__ = [
    "ENV_CHECKPOINT_INTERVAL",
    "ENV_FEATURE_CACHE",
    "Checkpoint",
    "DivergenceGuard",
    "EpochLog",
    "FitPlan",
    "Heartbeat",
    "ProgressReporter",
    "RunData",
    "RunRecorder",
    "TrainState",
    "add_overlays",
    "check_replicas",
    "checkpoint_interval",
    "class_weights",
    "feature_key",
    "frozen_cut",
    "load_checkpoint",
    "load_data",
    "phase_inputs",
    "plan_phase",
    "predict_splits",
    "restore_optimizer",
    "run_training",
    "save_checkpoint",
    "split_metrics",
    "write_history",
]
