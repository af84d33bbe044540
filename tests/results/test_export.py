"""Export: each format loads back and predicts what the run's model predicts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.support.evalutil import CLASSES, engine_model, make_dataset, make_run, run_config
from tlcore import data
from tlcore.cache.images import split_arrays
from tlcore.cli import main
from tlcore.engine.kerasfile import load_keras_file
from tlcore.errors import ConfigError, RunStateError, TLCoreError
from tlcore.results.export import (
    FORMATS,
    QUANTIZED,
    export_run,
    quantization_report,
    read_report,
    report_summary,
    tflite_probs,
)
from tlcore.store import FAILED


@pytest.fixture
def run(ws):
    """A completed run (random weights) and raw RGB images to predict on."""
    config = run_config("shapes")
    model = engine_model(config, len(CLASSES))
    run_id = make_run(ws, config, model=model)
    (ws.run(run_id).dir / "class_names.json").write_text(json.dumps(list(CLASSES)))
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    expected = load_keras_file(ws.run(run_id).dir / "model.keras").predict(images, verbose=0)
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
        load_keras_file(path)


# ---- quantised TFLite: smaller files, and their accuracy on the test split -----------------
@pytest.fixture
def measured(ws):
    """A completed run on dataset "shapes" (random weights) and its test split."""
    make_dataset(ws, "shapes")
    config = run_config("shapes")
    run_id = make_run(ws, config, model=engine_model(config, len(CLASSES)))
    x, y = split_arrays(ws, data.load_manifest("shapes", ws), "test", config.image_size)
    return run_id, np.asarray(x), y


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_quantized_tflite_exports_are_smaller_and_report_their_accuracy(ws, measured, tmp_path,
                                                                       capsys):
    run_id, x, y = measured
    assert set(QUANTIZED) == {"tflite-dynamic", "tflite-float16"} and set(QUANTIZED) <= set(FORMATS)
    _unzip(export_run(run_id, "tflite", tmp_path / "f.zip", ws=ws), tmp_path / "f")
    float32 = tmp_path / "f" / "model.tflite"
    keras_probs = load_keras_file(ws.run(run_id).model).predict(x.astype(np.float32), verbose=0)
    keras_accuracy = float((keras_probs.argmax(1) == y).mean())
    for fmt, most in (("tflite-dynamic", 0.3), ("tflite-float16", 0.55)):
        # Through the CLI: the zip's path on stdout, the size and accuracy on stderr.
        assert main(["export", run_id, "--format", fmt, "--out", str(tmp_path / "q.zip")]) == 0
        out, err = capsys.readouterr()
        folder = tmp_path / fmt
        assert {"model.tflite", "report.json"} <= set(_unzip(Path(out.strip()), folder))
        _check_sidecars(folder, fmt)
        assert "report.json" in (folder / "README.txt").read_text()
        size = (folder / "model.tflite").stat().st_size
        assert size < most * float32.stat().st_size, (fmt, size, float32.stat().st_size)
        report = read_report(tmp_path / "q.zip")
        assert report == json.loads((folder / "report.json").read_text())
        assert report["format"] == fmt and report["model_bytes"] == size
        assert report["float32_bytes"] == pytest.approx(float32.stat().st_size, rel=0.01)
        assert report["size_ratio"] == pytest.approx(size / report["float32_bytes"], abs=1e-4)
        # Measured with the interpreter on the test split, against the Keras model.
        probs = tflite_probs(folder / "model.tflite", x)
        assert report["test_images"] == len(y) > 0 and report["note"] is None
        assert report["test_accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
        assert report["keras_test_accuracy"] == pytest.approx(keras_accuracy)
        assert report["accuracy_delta"] == pytest.approx(
            report["test_accuracy"] - keras_accuracy)
        assert f"{fmt}: {report_summary(report)}" in err
        assert np.abs(probs - keras_probs).max() < 0.1
    assert read_report(tmp_path / "f.zip") is None  # float32 formats carry no report


def test_report_without_a_test_split_says_why(tmp_path):
    small, big = tmp_path / "q.tflite", tmp_path / "f.tflite"
    small.write_bytes(b"x" * 2**20)
    big.write_bytes(b"x" * 2**22)
    report = quantization_report("tflite-float16", None, small, big,
                                 "dataset 'shapes' is gone, so the test accuracy is not measured")
    assert report["size_ratio"] == 0.25 and report["test_accuracy"] is None
    assert report_summary(report) == ("size 1.0 MB (25% of float32); dataset 'shapes' is gone, "
                                      "so the test accuracy is not measured")
    report.update(test_accuracy=0.84, keras_test_accuracy=0.85, accuracy_delta=-0.01,
                  test_images=120, note=None)
    assert report_summary(report) == ("size 1.0 MB (25% of float32), test accuracy 84.0% "
                                      "(-1.0 pts vs the Keras model, 120 images)")
