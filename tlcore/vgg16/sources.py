"""Where a run's VGG16 conv weights come from, checked without TensorFlow.

`base.weights` names ImageNet, no weights, a weights file, or `run:<id>`: the
conv layers of an earlier run's model. `check_source` refuses a file or a run
that cannot be used; the launch calls it before a run is queued
(`tlcore.runs.launch`) and the worker calls `check_run_source` again before it
reads the run's weights (`tlcore.engine.weights`), so both say the same thing.
"""

from __future__ import annotations

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError, RunStateError, WeightsError
from tlcore.store import COMPLETED, RunStore
from tlcore.vgg16 import backbones, bases
from tlcore.workspace import RunFiles, Workspace


def check_run_source(run_id: str, ws: Workspace, store: RunStore | None = None) -> RunFiles:
    """The files of run `run_id`, checked to hold a model `base.weights: run:<id>` can use.

    A run qualifies when it is completed and has its trained weights, or (trained
    before light runs) a complete `model.keras`.

    Args:
        run_id: The run `base.weights` names.
        ws: The workspace.
        store: The run store; default the workspace's.

    Raises:
        NotFoundError: if there is no such run.
        RunStateError: if the run is not completed.
        WeightsError: if its model files are missing, truncated or corrupt.
    """
    store = store or RunStore(ws)
    try:
        run = store.get_run(run_id)
    except (NotFoundError, ConfigError):
        raise NotFoundError(
            f"base.weights names run {run_id!r}, which does not exist; use 'run:<id>' with the "
            "id of a completed run (`python -m tlcore runs list`)."
        ) from None
    if run["status"] != COMPLETED:
        raise RunStateError(
            f"base.weights 'run:{run_id}' needs a completed run to take its VGG16 base from. "
            f"Received: run {run_id} is {run['status']}. Wait for it to finish or pick another "
            "run."
        )
    files = ws.run(run_id)
    if files.trained.is_file():
        return files
    try:
        files.check_model()  # a run trained before light runs
    except NotFoundError as exc:
        raise WeightsError(f"base.weights 'run:{run_id}' cannot be used: {exc}") from None
    return files


def check_source(config: RunConfig, ws: Workspace, store: RunStore | None = None) -> None:
    """Refuse a `base.weights` file or run that cannot be used (ImageNet is checked on use).

    Raises:
        WeightsError: if a weights file is missing or not VGG16's, or a run's model
            files are missing, truncated or corrupt.
        NotFoundError, RunStateError: if `run:<id>` names a missing or unfinished run.
    """
    if config.base.weights in ("imagenet", "none"):
        return
    if config.base.source.kind == "run":
        check_run_source(config.base.source.run_id, ws, store)
        return
    backbones.check_weights_file(config.base.weights)


def run_conv_weights(files: RunFiles, ws: Workspace) -> bases.LayerWeights:
    """The conv weights of a light run's model: its base with its trained conv layers on top.

    Read without building the model.

    Raises:
        NotFoundError: if the run's trained weights or its base lack a conv layer.
    """
    trained = bases.load_layer_weights(files.trained)
    fp = bases.run_base(files)
    weights = dict(bases.load(ws, fp)) if fp else {}
    weights.update({name: trained[name] for name in backbones.CONV_LAYERS if name in trained})
    missing = [name for name in backbones.CONV_LAYERS if name not in weights]
    if missing:
        raise NotFoundError(f"Run {files.id} has no weights for {', '.join(missing)}; pick "
                            "another run for base.weights.")
    return weights
