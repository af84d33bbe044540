"""The Keras model: shapes and trainable counts per freeze setting, baked-in preprocessing,
safe-mode reload, mixed precision, and where the base weights come from (offline)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time

import keras
import numpy as np
import pytest

from tests.support.evalutil import write_keras_zip
from tlcore.config import RunConfig
from tlcore.engine.model import (
    BASE_NAME,
    HEAD_NAME,
    build_base,
    build_model,
    compile_for_phase,
    set_phase,
)
from tlcore.engine.weights import load_base_weights
from tlcore.errors import NotFoundError, RunStateError, WeightsError
from tlcore.store import COMPLETED, RunStore
from tlcore.vgg16 import backbones, sources


def _cfg(**data) -> RunConfig:
    data.setdefault("image_size", 32)
    return RunConfig.from_dict({"dataset": "d", "base": {"weights": "none"}, **data})


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def _count(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("float32")


CONFIGS = [
    dict(),
    dict(head={"pooling": "avg", "dense": [24, 12], "batchnorm": True, "dropout": 0.0},
         fine_tune={"blocks": 1, "epochs": 1}),
    dict(image_size=48, head={"pooling": "max", "dense": [], "l2": 0.01},
         fine_tune={"blocks": 3, "epochs": 1}, augment={"flip": "both", "rotation": 0.1}),
    dict(image_size=40, head={"dense": [8]}, fine_tune={"blocks": 5, "epochs": 2},
         augment={"zoom": 0.1, "translate": 0.1, "contrast": 0.2}),
    dict(base={"weights": "none", "trainable": True}, head={"dense": [8]},
         fine_tune={"blocks": 1, "epochs": 1}),
]


@pytest.mark.parametrize("data", CONFIGS, ids=["default", "bn-ft1", "max-ft3-aug", "ft5-aug",
                                               "scratch"])
def test_param_table_matches_keras(data):
    config = _cfg(**data)
    model = build_model(config, 3)
    rows = backbones.param_table(config, 3)
    layers = list(_leaf_layers(model))
    assert [layer.name for layer in layers] == [r["layer"] for r in rows]
    for layer, row in zip(layers, rows, strict=True):
        assert type(layer).__name__ == row["type"], layer.name
        assert layer.count_params() == row["params"], layer.name
        assert tuple(layer.output.shape[1:]) == row["output_shape"], layer.name
    summary = backbones.param_summary(config, 3)
    assert model.count_params() == summary["total"]
    assert _count(model.trainable_weights) == summary["trainable_phase1"]
    assert model.get_layer(BASE_NAME).trainable is config.base.trainable
    if config.fine_tune.enabled:
        set_phase(model, config, 2)
        assert _count(model.trainable_weights) == summary["trainable_phase2"]
        trainable = {layer.name for layer in _leaf_layers(model)
                     if layer.trainable and layer.weights and layer.name.startswith("block")}
        expected = {r["layer"] for r in rows if r["trainable_phase2"] and r["params"]
                    and r["block"] != "head"}
        assert trainable == expected
        set_phase(model, config, 1)
        assert _count(model.trainable_weights) == summary["trainable_phase1"]


def test_an_integer_learning_rate_reaches_keras_as_a_float():
    config = _cfg(head={"dense": [4]}).with_overrides(["train.learning_rate=1"])
    model = build_model(config, 2)
    compile_for_phase(model, config, 1)
    rate = model.optimizer.learning_rate
    assert rate.dtype == "float32" and float(keras.ops.convert_to_numpy(rate)) == 1.0
    loss = model.train_on_batch(_images(2, 32), np.array([0, 1]))
    assert np.isfinite(loss).all()


def test_output_shape_and_probabilities():
    model = build_model(_cfg(), 3)
    probs = model.predict(_images(5, 32), verbose=0)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_preprocessing_is_exact_vgg16_preprocess_input():
    model = build_model(_cfg(), 2)
    layer = model.get_layer(backbones.PREPROCESS_LAYER)
    assert not layer.trainable and layer.dtype == "float32"
    x = _images(3, 32, seed=1)
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)


def test_saved_model_reloads_in_safe_mode_and_predicts_the_same(tmp_path):
    config = _cfg(head={"dense": [8], "batchnorm": True},
                  augment={"flip": "horizontal", "rotation": 0.1, "contrast": 0.2})
    model = build_model(config, 2)
    x = _images(4, 32, seed=2)
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in _leaf_layers(loaded))


def test_augmentation_only_in_training():
    model = build_model(_cfg(augment={"flip": "both", "translate": 0.3}), 2)
    x = _images(2, 32, seed=3)
    inference = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    flip = model.get_layer("augment_flip")
    outs = [keras.ops.convert_to_numpy(flip(x, training=True)) for _ in range(6)]
    assert any(not np.array_equal(o, x) for o in outs)


def test_mixed_precision_keeps_output_float32():
    model = build_model(_cfg(train={"mixed_precision": "on"}), 2, mixed_precision=True)
    base = model.get_layer(BASE_NAME)
    assert base.get_layer("block1_conv1").compute_dtype == "float16"
    assert model.get_layer(HEAD_NAME).get_layer("predictions").compute_dtype == "float32"
    assert model.get_layer(backbones.PREPROCESS_LAYER).compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    compile_for_phase(model, _cfg(), 1)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_weights_file_is_loaded_by_layer_name(tmp_path):
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg.weights.h5"
    source.save_weights(path)
    assert backbones.check_weights_file(path) == "keras3"
    base = build_base(_cfg(image_size=64, base={"weights": str(path)}))
    for name in ("block1_conv1", "block5_conv3"):
        for got, want in zip(base.get_layer(name).get_weights(),
                             source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(WeightsError, match="does not exist"):
        build_base(_cfg(base={"weights": str(tmp_path / "missing.h5")}))


def test_base_from_a_completed_run(ws):
    store = RunStore(ws)
    source_cfg = _cfg(image_size=48)
    run_id = store.create_run(source_cfg)
    source = build_model(source_cfg, 2)
    ws.run(run_id).dir.mkdir(parents=True)
    source.save(ws.run(run_id).dir / "model.keras")
    target = _cfg(base={"weights": f"run:{run_id}"})  # another size: conv weights still fit
    with pytest.raises(RunStateError, match="needs a completed run.*queued"):
        build_base(target, ws)
    store.update_run(run_id, status=COMPLETED)
    base = build_base(target, ws)
    want = source.get_layer(BASE_NAME).get_layer("block3_conv2").get_weights()
    for got, expected in zip(base.get_layer("block3_conv2").get_weights(), want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_base_from_a_run_whose_model_is_truncated_or_not_a_model(ws):
    store = RunStore(ws)
    run_id = store.create_run(_cfg(), status=COMPLETED)
    target = _cfg(base={"weights": f"run:{run_id}"})
    write_keras_zip(ws.run(run_id).model, truncated=True)
    with pytest.raises(WeightsError, match=rf"^runs/{run_id}/model.keras is unreadable "
                                           r"\(truncated or corrupt\)"):
        load_base_weights(target, ws)
    write_keras_zip(ws.run(run_id).model)  # a complete zip, but no Keras model inside
    with pytest.raises(WeightsError, match="cannot be loaded as a Keras model"):
        load_base_weights(target, ws)


def test_the_launch_and_the_worker_refuse_a_base_run_alike(ws):
    store = RunStore(ws)
    run_id = store.create_run(_cfg(), status=COMPLETED)  # completed, but no model files
    for weights, error in ((f"run:{run_id}", WeightsError), ("run:abcdef123456", NotFoundError)):
        target = _cfg(base={"weights": weights})
        with pytest.raises(error) as at_launch:
            sources.check_source(target, ws)
        with pytest.raises(error) as in_worker:
            load_base_weights(target, ws)
        assert str(at_launch.value) == str(in_worker.value)
    assert str(at_launch.value).startswith("base.weights names run 'abcdef123456', which does "
                                           "not exist")


@pytest.fixture
def weights_server(monkeypatch, tmp_path):
    """A local HTTP server in place of the ImageNet weights download; returns its file body."""
    body = bytes(range(256)) * 9000  # a little over two download chunks

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(backbones, "VGG16_NOTOP_URL",
                        f"http://127.0.0.1:{server.server_port}/vgg16_notop.h5")
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    yield body
    server.shutdown()
    server.server_close()


def test_imagenet_download_reports_progress_and_checks_the_md5(ws, weights_server,
                                                             monkeypatch):
    from tlcore.engine.weights import _download_imagenet

    monkeypatch.setattr(backbones, "KERAS_WEIGHTS_MD5",
                        hashlib.md5(weights_server, usedforsecurity=False).hexdigest())
    calls = []
    path = _download_imagenet(ws, lambda done, total: calls.append((done, total)))
    assert path == backbones.keras_cache_file() and path.read_bytes() == weights_server
    n = len(weights_server)
    assert len(calls) >= 3 and calls[-1] == (n, n)  # one beat per chunk
    assert list(path.parent.iterdir()) == [path]

    path.unlink()
    monkeypatch.setattr(backbones, "KERAS_WEIGHTS_MD5", "0" * 32)
    with pytest.raises(WeightsError, match="MD5 is .*, expected 0{32}"):
        _download_imagenet(ws)
    assert list(path.parent.iterdir()) == []  # no partial file left behind


def test_imagenet_offline_fails_fast_with_what_to_do(ws, tmp_path, monkeypatch):
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    # Port 9 on localhost refuses at once: the same path as a machine without network.
    monkeypatch.setattr(backbones, "VGG16_NOTOP_URL", "http://127.0.0.1:9/vgg16_notop.h5")
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        build_model(_cfg(base={"weights": "imagenet"}), 2, ws)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert backbones.ENV_WEIGHTS in message
    assert str(ws.weights_dir) in message
    assert "'none'" in message
    assert not backbones.keras_cache_file().exists()
