"""Export: each format loads back and predicts what the run's model predicts."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.evalutil import CLASSES, engine_model, make_run, run_config
from tlcore.errors import ConfigError, RunStateError, TLCoreError
from tlcore.evaluate import load_model
from tlcore.export import export_run
from tlcore.store import FAILED


@pytest.fixture
def run(ws):
    """A completed run (random weights) and raw RGB images to predict on."""
    config = run_config("shapes")
    model = engine_model(config, len(CLASSES))
    run_id = make_run(ws, config, model=model)
    (ws.run(run_id).dir / "class_names.json").write_text(json.dumps(list(CLASSES)))
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    expected = load_model(ws.run(run_id).dir / "model.keras").predict(images, verbose=0)
    return run_id, images, expected, model.count_params()


def _unzip(path, dest):
    with zipfile.ZipFile(path) as zf:
        zf.extractall(dest)
        return sorted(zf.namelist())


def _check_sidecars(folder, fmt):
    assert json.loads((folder / "class_names.json").read_text()) == list(CLASSES)
    assert json.loads((folder / "config.json").read_text())["dataset"] == "shapes"
    readme = (folder / "README.txt").read_text()
    assert fmt in readme and "(N, 32, 32, 3)" in readme


def test_export_keras_round_trip(ws, run, tmp_path):
    run_id, images, expected, _ = run
    out = export_run(run_id, "keras", tmp_path / "k.zip", ws=ws)
    assert _unzip(out, tmp_path / "k") == ["README.txt", "class_names.json", "config.json",
                                           "model.keras"]
    _check_sidecars(tmp_path / "k", "keras")
    model = keras.models.load_model(tmp_path / "k" / "model.keras", safe_mode=True)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)


def test_export_savedmodel_round_trip(ws, run, tmp_path):
    run_id, images, expected, n_params = run
    out = export_run(run_id, "savedmodel", tmp_path, ws=ws)  # a folder: default file name
    assert out == tmp_path / f"{run_id}-savedmodel.zip"
    names = _unzip(out, tmp_path / "s")
    assert "saved_model/saved_model.pb" in names
    _check_sidecars(tmp_path / "s", "savedmodel")
    folder = tmp_path / "s" / "saved_model"
    loaded = tf.saved_model.load(str(folder))
    np.testing.assert_allclose(loaded.serve(tf.constant(images)).numpy(), expected, atol=1e-5)
    (served,) = loaded.signatures["serving_default"](tf.constant(images)).values()
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
    # Every weight stored once (Keras's model.export() stores each twice).
    stored = sum(int(np.prod(shape)) for name, shape in
                 tf.train.list_variables(str(folder / "variables" / "variables"))
                 if name.endswith("VARIABLE_VALUE"))
    assert stored == n_params


# TF still ships tf.lite.Interpreter and warns that it moves to ai_edge_litert.
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_export_tflite_round_trip(ws, run, tmp_path):
    run_id, images, expected, _ = run
    out = export_run(run_id, "tflite", tmp_path / "t.zip", ws=ws)
    assert "model.tflite" in _unzip(out, tmp_path / "t")
    _check_sidecars(tmp_path / "t", "tflite")
    interp = tf.lite.Interpreter(model_path=str(tmp_path / "t" / "model.tflite"))
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], images.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images)
    interp.invoke()
    diff = np.abs(interp.get_tensor(outp["index"]) - expected).max()
    assert diff < 1e-3, f"TFLite differs from the run's model by {diff:.2e}"


def test_export_refusals(ws, tmp_path):
    with pytest.raises(ConfigError, match="format must be one of keras, savedmodel, tflite"):
        export_run("abcdef123456", "onnx", tmp_path / "x.zip", ws=ws)
    run_id = make_run(ws, run_config("shapes"), status=FAILED)
    with pytest.raises(RunStateError, match="failed, not completed"):
        export_run(run_id, "keras", tmp_path / "x.zip", ws=ws)
    assert not list(tmp_path.glob("*.zip"))


def test_unsafe_keras_file_is_refused(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(TLCoreError, match="safe mode"):
        load_model(path)
