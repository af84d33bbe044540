"""A run's full model, assembled on demand from its frozen base and what it trained.

A run stores only the weights it trained (`runs/<id>/trained.npz`: the head,
plus the VGG16 blocks it fine-tuned or trained from scratch) and names its
frozen base (`runs/<id>/base.json`, a fingerprint in `tlcore.vgg16.bases`).
`assemble` builds the network from the run's config, loads the base's conv
weights and the trained ones by layer name: the result predicts what the model
predicted while training, on raw RGB images.

Evaluation, prediction and export open a run once (`tlcore.engine.openrun`)
and take its model from `run_model`: it keeps the last assembled model of each
run in this process, and still opens runs trained before light runs, which hold
a full `model.keras`. `keras_file` writes the assembled model as a `.keras` file
(into the cache, LRU-bounded) for download and export. `load_run_model` and
`model_file` do the same from a run id. TensorFlow is imported here: worker and
CLI processes only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.engine.kerasfile import load_keras_file
from tlcore.engine.model import build_model
from tlcore.engine.openrun import OpenedRun, check_model_files, open_run
from tlcore.errors import NotFoundError, TLCoreError
from tlcore.vgg16 import backbones, bases
from tlcore.workspace import RunFiles, Workspace, check_keras_file, space_for

MODEL_FILE = "model.keras"
# Assembled models kept in a process (a worker, a CLI call, a cached loader).
KEEP_IN_MEMORY = 4
_models: dict[tuple[str, int], keras.Model] = {}


def layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every leaf layer of `model`, nested models (the base, the head) walked through."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from layers(layer)
        else:
            yield layer


def trained_blocks(config: RunConfig) -> set[int]:
    """VGG16 blocks whose weights the run trains in any of its phases."""
    return set(backbones.trainable_blocks(config, 1)) | set(backbones.trainable_blocks(config, 2))


def trained_layers(model: keras.Model, config: RunConfig) -> list[keras.layers.Layer]:
    """The layers with weights the run trains: all but preprocessing and the frozen base.

    The set is the same in every phase of the run, so a checkpoint taken in phase 1
    restores the blocks phase 2 will fine-tune to their untouched values.
    """
    blocks = trained_blocks(config)
    out = []
    for layer in layers(model):
        if not layer.weights or layer.name == backbones.PREPROCESS_LAYER:
            continue
        block = backbones.block_of(layer.name)
        if block is None or block in blocks:
            out.append(layer)
    return out


def needs_base(config: RunConfig) -> bool:
    """Whether the run keeps some VGG16 conv layer frozen (else it trains them all)."""
    return len(trained_blocks(config)) < len(backbones.BLOCKS)


def snapshot(model: keras.Model, config: RunConfig) -> bases.LayerWeights:
    """Copies of the trained layers' current weights, by layer name."""
    return {layer.name: [np.array(w) for w in layer.get_weights()]
            for layer in trained_layers(model, config)}


def set_weights(model: keras.Model, weights: bases.LayerWeights) -> None:
    """Set the weights of the named layers of `model`.

    Raises:
        TLCoreError: if a name is not a layer of the model or the shapes differ
            (the stored weights do not belong to this config).
    """
    by_name = {layer.name: layer for layer in layers(model)}
    for name, values in weights.items():
        layer = by_name.get(name)
        try:
            if layer is None:
                raise ValueError(f"the model has no layer {name!r}")
            layer.set_weights(values)
        except ValueError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TLCoreError(f"Stored weights do not fit the run's model: {first}") from None


def save_trained(files: RunFiles, weights: bases.LayerWeights) -> None:
    """Write the run's trained weights (`trained.npz`) and drop an older full `model.keras`."""
    bases.save_layer_weights(files.trained, weights)
    files.model.unlink(missing_ok=True)


def assemble(files: RunFiles, config: RunConfig, num_classes: int,
             ws: Workspace) -> keras.Model:
    """The run's full model: its config's network, base conv weights, trained weights.

    Raises:
        NotFoundError: if the trained weights or the base are missing.
    """
    if not files.trained.is_file():
        raise NotFoundError(f"Run {files.id} has no trained weights ({files.trained.name}) "
                            f"in {files.dir}.")
    fp = bases.run_base(files)
    if fp is None and needs_base(config):
        raise NotFoundError(f"Run {files.id} does not name its frozen base "
                            f"({files.base_ref.name}); train it again.")
    base = bases.load(ws, fp) if fp else None
    model = build_model(config, num_classes, ws, base_weights=base or _unused_base(),
                        mixed_precision=False)
    set_weights(model, bases.load_layer_weights(files.trained))
    return model


def _unused_base() -> bases.LayerWeights:
    """Zero conv weights for a run that trained every conv layer (all are overwritten)."""
    return {name: [np.zeros(k, np.float32), np.zeros(b, np.float32)]
            for name, (k, b) in backbones.conv_shapes().items()}


def _version(files: RunFiles) -> int:
    """Changes whenever the run's model files do (a resumed run saves new weights)."""
    for path in (files.trained, files.model):
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return 0


def run_model(run: OpenedRun) -> keras.Model:
    """The full model of an opened run, kept in this process while its files do not change.

    Runs trained before light runs load their full `model.keras` (safe mode).

    Raises:
        NotFoundError: if the run has no model.
        WeightsError, TLCoreError: if a stored file is corrupt.
    """
    files = run.files
    key = (f"{run.ws.root}:{run.id}", _version(files))
    if key in _models:
        return _models[key]
    check_model_files(files)
    if files.trained.is_file():
        model = assemble(files, run.config, len(run.classes), run.ws)
    else:
        model = load_keras_file(files.model)
    for old in [k for k in _models if k[0] == key[0]]:
        del _models[old]
    while len(_models) >= KEEP_IN_MEMORY:
        del _models[next(iter(_models))]
    _models[key] = model
    return model


def load_run_model(run_id: str, ws: Workspace | None = None,
                   require_completed: bool = True) -> keras.Model:
    """A run's full model by id (`open_run`, then `run_model`).

    Raises:
        RunStateError: if `require_completed` and the run is not completed.
        NotFoundError: if the run has no model.
        WeightsError, TLCoreError: if a stored file is corrupt.
    """
    return run_model(open_run(run_id, ws, require_completed=require_completed))


def keras_file(run: OpenedRun) -> Path:
    """A `.keras` file of an opened run's full model (for download and export).

    A run trained before light runs has one in its folder; otherwise the model is
    assembled and saved once into the workspace cache (`cache/models/`, LRU).

    Raises:
        As `run_model`; DiskFullError if the cache's disk is full.
    """
    files, ws = run.files, run.ws
    if not files.trained.is_file() and files.model.is_file():
        return files.check_model()
    folder = ws.cache_dir / cache.MODELS_KIND / f"{run.id}-{_version(files):x}"
    path = folder / MODEL_FILE
    if path.is_file():
        cache.touch(folder)
        return check_keras_file(path, str(path))
    model = run_model(run)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"model.tmp{os.getpid()}.keras")
    try:
        with space_for(folder, sum(int(np.prod(w.shape)) * 4 for w in model.weights)):
            model.save(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / cache.META_FILE).write_text(json.dumps({"run": run.id}))
    cache.evict(ws, keep=(folder,))
    return path


def model_file(run_id: str, ws: Workspace | None = None) -> Path:
    """A `.keras` file of a completed run's full model by id (`open_run`, then `keras_file`).

    Raises:
        As `open_run` and `keras_file`.
    """
    return keras_file(open_run(run_id, ws))
