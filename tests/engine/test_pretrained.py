"""Training with the real VGG16 ImageNet weights, when a local copy is given.

`TLCORE_TEST_VGG16_WEIGHTS` names the notop weights file (`.ci/run` sets it from
`../shared/weights/` when present); without it these tests skip.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tlcore import data
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.store import RunStore
from tlcore.vgg16 import backbones, bases

WEIGHTS = os.environ.get("TLCORE_TEST_VGG16_WEIGHTS", "")
# The first values of block1_conv1's bias in the original ImageNet weights.
BLOCK1_CONV1_BIAS = [0.73429835, 0.093403675, 0.06775674, 0.8862966]

pytestmark = pytest.mark.skipif(
    not WEIGHTS, reason="set TLCORE_TEST_VGG16_WEIGHTS to a VGG16 notop ImageNet weights file")


def test_the_weights_file_passes_the_check():
    assert backbones.check_weights_file(WEIGHTS) in ("keras3", "keras2")
    bias = backbones.read_conv_weights(WEIGHTS)["block1_conv1"][1]
    np.testing.assert_allclose(bias[:4], BLOCK1_CONV1_BIAS, rtol=1e-6)


@pytest.mark.slow
def test_training_starts_from_imagenet_weights(ws, tmp_path, monkeypatch):
    from tlcore.engine import runmodel
    from tlcore.engine.train import run_training

    monkeypatch.setenv(backbones.ENV_WEIGHTS, WEIGHTS)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no download, ever
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=10, size=48)
    data.import_dataset(folder, "shapes", ws=ws)
    store = RunStore(ws)
    run_id = store.create_run(RunConfig.from_dict({
        "dataset": "shapes", "image_size": 48, "base": {"weights": "imagenet"},
        "head": {"pooling": "avg", "dense": [16]},
        "train": {"epochs": 1, "batch_size": 8}}))
    run_training(run_id, ws)

    run = store.get_run(run_id)
    assert run["extra"]["weights_source"] == f"imagenet: {os.path.realpath(WEIGHTS)}"
    assert len(store.metrics(run_id)) == 1
    # The run keeps its head; the ImageNet base is stored once and the model assembled.
    assert bases.exists(ws, bases.run_base(ws.run(run_id)))
    model = runmodel.load_run_model(run_id, ws, require_completed=False)
    bias = model.get_layer("vgg16").get_layer("block1_conv1").get_weights()[1]
    # Phase 1 freezes the base, so the assembled model still holds the ImageNet values.
    np.testing.assert_allclose(bias[:4], BLOCK1_CONV1_BIAS, rtol=1e-6)
