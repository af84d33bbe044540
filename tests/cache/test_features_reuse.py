"""A new dataset version computes frozen features only for the images no cache entry holds."""

import io
import logging

import keras
import numpy as np
import pytest

from tlcore import data as datasets_api
from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.data import SPLITS, demo
from tlcore.engine import feed, train
from tlcore.engine.model import build_model
from tlcore.engine.train.plan import frozen_prefix


@pytest.fixture
def dataset(ws, tmp_path):
    demo.write_class_folders(tmp_path / "src", ("a", "b"), per_class=8, size=40)
    datasets_api.import_dataset(tmp_path / "src", "tiny", ws=ws)
    return "tiny"


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    demo.synth_image(seed % 4, 40, np.random.default_rng(seed)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def counted(monkeypatch):
    """The number of images the frozen base runs on, over every forward pass."""
    seen = {"images": 0}
    real = feed.forward

    def forward(model, jit=None):
        run = real(model, jit)

        def counting(batch):
            seen["images"] += len(batch)
            return run(batch)
        return counting

    monkeypatch.setattr(feed, "forward", forward)
    return seen


def _features(ws, config, model):
    data = train.load_data(config, ws)
    _, inputs, _ = train.phase_inputs(model, config, 1, data, ws, SPLITS)
    return data, inputs


def test_adding_10_images_computes_features_for_those_10_only(ws, dataset, counted, caplog):
    config = RunConfig.from_dict({"dataset": dataset, "image_size": 32,
                                  "base": {"weights": "none"}, "head": {"dense": [8]}})
    keras.utils.set_random_seed(0)
    model = build_model(config, 2, mixed_precision=False)
    _features(ws, config, model)
    assert counted["images"] == 16

    datasets_api.add_images(dataset, "a", [_png(100 + i) for i in range(5)], ws=ws)
    datasets_api.add_images(dataset, "b", [_png(200 + i) for i in range(5)], ws=ws)
    counted["images"] = 0
    with caplog.at_level(logging.INFO, logger="tlcore.cache.features"):
        data, inputs = _features(ws, config, model)
    assert counted["images"] == 10  # the 16 earlier images came from the first version's entry
    assert "computed" in caplog.text and "reused from earlier cache entries" in caplog.text

    version = datasets_api.load_manifest(dataset, ws)["fingerprint"]
    [entry] = [e for e in cache.entries(ws)
               if e["kind"] == "features" and e["meta"]["fingerprint"] == version]
    rows = entry["meta"]["rows"]
    assert sum(r["reused"] for r in rows.values()) == 16
    assert sum(r["computed"] for r in rows.values()) == 10

    # Reused rows are the features the base gives those images.
    prefix = frozen_prefix(model, "block5_pool")
    for split in SPLITS:
        images, _ = data.splits[split]
        if len(images):
            expect = prefix.predict(np.asarray(images, dtype=np.float32), verbose=0)
            np.testing.assert_allclose(inputs[split][0], expect, atol=1e-5)


def test_a_relabel_only_version_runs_the_base_on_no_image(ws, dataset, counted):
    config = RunConfig.from_dict({"dataset": dataset, "image_size": 32,
                                  "base": {"weights": "none"}, "head": {"dense": [8]}})
    keras.utils.set_random_seed(0)
    model = build_model(config, 2, mixed_precision=False)
    _features(ws, config, model)
    first = datasets_api.list_images(dataset, ws=ws)[0]["id"]
    datasets_api.relabel_image(dataset, first, "b", ws=ws)
    counted["images"] = 0
    _, inputs = _features(ws, config, model)
    assert counted["images"] == 0
    assert sum(int((inputs[s][1] == 1).sum()) for s in SPLITS) == 9  # the moved image's label
