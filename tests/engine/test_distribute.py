"""`train.distribute: mirrored`: one run over several devices trains as it does on one.

Logical devices must be set before TensorFlow initialises its own, so the runs
train in worker processes started with `TLCORE_CPU_DEVICES=2` (two logical CPU
devices, two replicas); this test process may have initialised TensorFlow already.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.runs import wait_for
from tlcore import backend
from tlcore import data as datasets_api
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.engine import train
from tlcore.errors import ConfigError
from tlcore.runs import launch, liveness
from tlcore.store import COMPLETED, FAILED, RunStore
from tlcore.vgg16 import bases

CLASSES = ("disc", "square", "triangle")
RUN_TIMEOUT_S = 300
MIRRORED_MESSAGE = ("train.distribute 'mirrored' uses TensorFlow's MirroredStrategy; set "
                    "train.backend to tensorflow (or auto), or train.distribute to none.")


@pytest.fixture
def dataset(ws, tmp_path):
    # 14 images per class: 30 training images (one batch, split 15 + 15), 9 for validation.
    folder = write_class_folders(tmp_path / "src", CLASSES, per_class=14, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"


def config_for(dataset: str, distribute: str, **train_fields) -> RunConfig:
    return RunConfig.from_dict({
        "dataset": dataset, "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 32, "early_stopping_patience": 0, "seed": 0,
                  "distribute": distribute, **train_fields},
        "fine_tune": {"blocks": 1, "epochs": 1, "learning_rate": 1e-4}})


def _finished(store: RunStore, ws, run_id: str) -> dict:
    wait_for(lambda: liveness.refresh(ws=ws) or store.get_run(run_id)["status"] not in (
        "queued", "running"), f"run {run_id}", RUN_TIMEOUT_S)
    return store.get_run(run_id)


@pytest.mark.slow
def test_a_mirrored_run_on_two_devices_trains_as_on_one(ws, dataset, monkeypatch):
    monkeypatch.setenv(backend.ENV_CPU_DEVICES, "2")  # the workers' environment
    store = RunStore(ws)
    single = launch.launch(config_for(dataset, "none"), name="one device", ws=ws)
    mirrored = launch.launch(config_for(dataset, "mirrored"), name="mirrored", ws=ws)
    runs = {run_id: _finished(store, ws, run_id) for run_id in (single, mirrored)}
    for run in runs.values():
        assert run["status"] == COMPLETED, run["error"]
    assert runs[mirrored]["extra"]["replicas"] == 2 and "replicas" not in runs[single]["extra"]
    assert "train.distribute mirrored: 2 replicas" in ws.run(mirrored).log.read_text()

    # Not exact: the two replicas' gradients are summed in another order than one
    # batch's, and the one-device run trains its head with `fastfit` (its own loss
    # and validation code) where the mirrored run uses Keras's `fit`; both round
    # at float32 (about 1e-7 relative), so 1e-5 leaves room and still catches a
    # batch split or scaled wrongly (a percent or more). One batch per epoch keeps
    # the batch order out of it: to build a model under a strategy, Keras reads
    # one pass of the shuffled training data first, so later batches come one
    # shuffle later than on one device.
    one, two = store.metrics(single), store.metrics(mirrored)
    assert [(m["epoch"], m["phase"]) for m in two] == [(1, 1), (2, 1), (3, 2)]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose([m[key] for m in two], [m[key] for m in one], rtol=1e-5,
                                   err_msg=key)
    weights = {run_id: bases.load_layer_weights(ws.run(run_id).trained) for run_id in runs}
    assert "block5_conv1" in weights[mirrored] and "predictions" in weights[mirrored]
    assert weights[mirrored].keys() == weights[single].keys()
    for layer, arrays in weights[single].items():
        for a, b in zip(arrays, weights[mirrored][layer], strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=layer)


@pytest.mark.slow
def test_a_diverging_mirrored_run_fails_with_the_reason(ws, dataset, monkeypatch):
    monkeypatch.setenv(backend.ENV_CPU_DEVICES, "2")
    config = config_for(dataset, "mirrored", epochs=5, learning_rate=10).with_overrides(
        {"fine_tune.blocks": 0, "fine_tune.epochs": 0})
    run = _finished(RunStore(ws), ws, launch.launch(config, ws=ws))
    assert run["status"] == FAILED
    assert run["error"].startswith("Training diverged at epoch ")
    assert "Lower the learning rate (train.learning_rate is now 10.0)" in run["error"]


def test_mirrored_needs_tensorflow(ws, dataset, monkeypatch):
    with pytest.raises(ConfigError) as caught:
        config_for(dataset, "mirrored", backend="jax")
    assert str(caught.value) == f"{MIRRORED_MESSAGE} Received: train.backend=jax"
    # "auto" resolves on the machine that launches: refused there, in one line.
    monkeypatch.setenv(backend.ENV, "jax")
    with pytest.raises(ConfigError) as caught:
        launch.launch(config_for(dataset, "mirrored"), ws=ws)
    assert str(caught.value) == (f"{MIRRORED_MESSAGE} Received: train.backend=auto, which is "
                                 f"jax here")
    assert RunStore(ws).list_runs() == []
    # Configs written before the field train on one device.
    assert RunConfig.from_dict({"dataset": "d"}).train.distribute == "none"
    assert config_for(dataset, "none", backend="jax").train.backend == "jax"


def test_batches_must_split_evenly_between_replicas():
    config = config_for("d", "mirrored", batch_size=30)
    train.check_replicas(config, 1, 7, 1)  # one replica splits nothing
    train.check_replicas(config, 2, 100, 9)  # a small validation split is batched to fit
    with pytest.raises(ConfigError, match=r"between 4 replicas, so train.batch_size must be a "
                                          r"multiple of 4. Received: train.batch_size=30$"):
        train.check_replicas(config, 4, 100, 20)
    with pytest.raises(ConfigError, match=r"Received: 27 training images, train.batch_size=30"):
        train.check_replicas(config, 2, 27, 20)
    with pytest.raises(ConfigError, match=r"needs at least 4 images.*Received: 3 validation"):
        train.check_replicas(config_for("d", "mirrored", batch_size=32), 4, 100, 3)


def test_cpu_devices_setting(monkeypatch):
    monkeypatch.delenv(backend.ENV_CPU_DEVICES, raising=False)
    assert backend.cpu_devices() == 1
    monkeypatch.setenv(backend.ENV_CPU_DEVICES, "3")
    assert backend.cpu_devices() == 3
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(backend.ENV_CPU_DEVICES, bad)
        with pytest.raises(ConfigError, match="TLCORE_CPU_DEVICES must be a whole number"):
            backend.cpu_devices()
