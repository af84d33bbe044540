"""Export a finished run's model as one downloadable zip (Keras; worker or CLI only).

The Keras format works on any backend and loads on any. SavedModel and the
TFLite formats need TensorFlow: `export_run` switches the process to the
TensorFlow backend for them (the model's weights do not depend on the backend
that trained it) and says what to install when TensorFlow is missing.

Each zip holds the model in one format, `class_names.json` (index = output
position), the run's `config.json` and a README.txt on loading it. Every
format takes raw RGB images, values 0-255 of shape `(N, S, S, 3)` in the
model's input dtype (float32 unless the model declares another): the VGG16
preprocessing is part of the model.

The quantised TensorFlow Lite formats (`QUANTIZED`) store smaller weights:
int8 with dynamic-range quantisation, float16 with float16 quantisation. Their
zip also holds `report.json` (`REPORT_FILE`): the model's size against the
float32 TFLite model, and its accuracy on the run's test split, measured with
the TFLite interpreter, against the Keras model's on the same images.
`FORMATS`, `read_report` and `report_summary` need no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tlcore import backend
from tlcore.engine.openrun import class_mapping, open_run
from tlcore.errors import ConfigError, NotFoundError
from tlcore.workspace import Workspace

# Export formats (the `--format` choices) and how the dashboard names them.
FORMATS = {"keras": "Keras (.keras)", "savedmodel": "TensorFlow SavedModel",
           "tflite": "TensorFlow Lite (.tflite)",
           "tflite-dynamic": "TensorFlow Lite, dynamic-range quantised (int8 weights)",
           "tflite-float16": "TensorFlow Lite, float16 quantised (float16 weights)"}
# The quantised TFLite formats and what their quantisation stores.
QUANTIZED = {"tflite-dynamic": "int8 weights (dynamic-range quantisation)",
             "tflite-float16": "float16 weights (float16 quantisation)"}
SAVEDMODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
REPORT_FILE = "report.json"
# Images per TFLite interpreter call when a quantised model is measured.
TFLITE_BATCH = 32

_LOAD_SNIPPETS = {
    "keras": """\
import keras, numpy as np
model = keras.models.load_model("model.keras", safe_mode=True)
probs = model.predict(images.astype("{dtype}"))  # images: (N, {s}, {s}, 3) RGB 0-255
""",
    "savedmodel": """\
import tensorflow as tf
model = tf.saved_model.load("saved_model")
probs = model.serve(tf.constant(images, tf.{dtype}))  # images: (N, {s}, {s}, 3) RGB 0-255
""",
    "tflite": """\
import numpy as np, tensorflow as tf   # or: from ai_edge_litert.interpreter import Interpreter
interp = tf.lite.Interpreter(model_path="model.tflite")
inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
interp.resize_tensor_input(inp["index"], images.shape)  # images: (N, {s}, {s}, 3) RGB 0-255
interp.allocate_tensors()
interp.set_tensor(inp["index"], images.astype(np.{dtype}))
interp.invoke()
probs = interp.get_tensor(out["index"])
""",
}


def _readme(run_id: str, fmt: str, size: int, classes: list[str], dtype: str) -> str:
    quantized = (f"Weights: {QUANTIZED[fmt]}; {REPORT_FILE} gives the size and the test\n"
                 "accuracy against the float32 model.\n") if fmt in QUANTIZED else ""
    return (
        f"Model of run {run_id}, exported as {fmt}.\n\n"
        f"Input: {dtype} RGB images with values 0-255, shape (N, {size}, {size}, 3); resize\n"
        "with bilinear interpolation. The VGG16 preprocessing is inside the model.\n"
        f"Output: (N, {len(classes)}) class probabilities; class_names.json gives the class of\n"
        "each position. config.json is the run config it was trained with.\n" + quantized
        + "\nLoad it:\n\n"
        + _LOAD_SNIPPETS["tflite" if fmt in QUANTIZED else fmt].format(s=size, dtype=dtype)
    )


def save_savedmodel(model: Any, path: Path) -> None:
    """Write `model` as a SavedModel with a `serve` endpoint (also `serving_default`).

    Keras's own `model.export()` stores every weight twice (once per Keras
    variable wrapper, once per captured `tf.Variable`; keras-team/keras#23553),
    doubling a 60 MB VGG16 download. Tracking only the variables the traced
    function captures stores each once and loads the same way:
    `tf.saved_model.load(path).serve(images)`.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype,
                         name=model.inputs[0].name)
    serve = tf.function(lambda images: model(images, training=False), input_signature=[spec],
                        autograph=False)
    concrete = serve.get_concrete_function()
    module = tf.Module()
    module.serve = serve
    module.weights = list(concrete.variables)
    tf.saved_model.save(module, str(path), signatures={"serving_default": concrete})


def save_tflite(model: Any, path: Path, fmt: str = "tflite") -> None:
    """Write `model` as a TFLite flatbuffer, quantised as `fmt` says.

    Args:
        model: The Keras model.
        path: The `.tflite` file to write.
        fmt: "tflite" (float32), "tflite-dynamic" (int8 weights, float
            activations) or "tflite-float16" (float16 weights).
    """
    import tensorflow as tf

    options: dict[str, Any] = {}
    if fmt in QUANTIZED:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if fmt == "tflite-float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    model.export(str(path), format="litert", verbose=False, **options)


def tflite_probs(path: Path, x: np.ndarray, batch_size: int = TFLITE_BATCH) -> np.ndarray:
    """Class probabilities `(N, C)` of a TFLite model for raw RGB images, in batches."""
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF 2.21 still ships the interpreter and warns that it moves to ai_edge_litert.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interp = tf.lite.Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape, probs = None, []
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start:start + batch_size], dtype=inp["dtype"])
        if batch.shape != shape:
            interp.resize_tensor_input(inp["index"], batch.shape)
            interp.allocate_tensors()
            shape = batch.shape
        interp.set_tensor(inp["index"], batch)
        interp.invoke()
        probs.append(interp.get_tensor(out["index"]).astype(np.float64))
    return np.concatenate(probs) if probs else np.zeros((0, int(out["shape"][-1])))


def _test_split(run: Any, classes: list[str], ws: Workspace
                ) -> tuple[np.ndarray, np.ndarray] | str:
    """The run's test images and labels in its class order, or why there are none."""
    from tlcore.cache.images import split_arrays

    config = run.config
    try:
        manifest = run.manifest()
    except NotFoundError:
        return f"dataset {config.dataset!r} is gone, so the test accuracy is not measured"
    x, y = split_arrays(ws, manifest, "test", config.image_size)
    if not len(y):
        return f"dataset {config.dataset!r} has no test split, so the accuracy is not measured"
    return x, class_mapping(classes, list(manifest["classes"]), config.dataset)[y]


def quantization_report(fmt: str, model: Any, path: Path, float32_path: Path,
                        test: tuple[np.ndarray, np.ndarray] | str) -> dict[str, Any]:
    """Size and test accuracy of a quantised TFLite model against the float32 models.

    Args:
        fmt: The quantised format (a `QUANTIZED` key).
        model: The run's Keras model.
        path: The quantised `.tflite` file.
        float32_path: The same model converted without quantisation.
        test: The test split `(x, y)`, or the reason it is not measured.

    Returns:
        `format`, `quantization`, `model_bytes`, `float32_bytes`, `size_ratio`,
        `test_images`, `test_accuracy` (TFLite interpreter), `keras_test_accuracy`
        (the Keras model on the same images), `accuracy_delta` (the first minus the
        second) and `note` (why the accuracies are None, else None).
    """
    size, float32_size = path.stat().st_size, float32_path.stat().st_size
    report: dict[str, Any] = {
        "format": fmt, "quantization": QUANTIZED[fmt], "model_bytes": size,
        "float32_bytes": float32_size, "size_ratio": round(size / float32_size, 4),
        "test_images": 0, "test_accuracy": None, "keras_test_accuracy": None,
        "accuracy_delta": None, "note": None}
    if isinstance(test, str):
        report["note"] = test
        return report
    from tlcore.engine.feed import predict_probs

    x, y = test
    quantized = float((tflite_probs(path, x).argmax(1) == y).mean())
    keras_acc = float((predict_probs(model, x).argmax(1) == y).mean())
    report.update(test_images=len(y), test_accuracy=quantized, keras_test_accuracy=keras_acc,
                  accuracy_delta=quantized - keras_acc)
    return report


def read_report(zip_path: str | os.PathLike) -> dict[str, Any] | None:
    """The `report.json` of an export zip (no TensorFlow), or None when it has none.

    Raises:
        OSError: if the zip cannot be read.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            if REPORT_FILE not in zf.namelist():
                return None
            return json.loads(zf.read(REPORT_FILE))
    except zipfile.BadZipFile as exc:
        raise OSError(f"{zip_path} is not a readable zip: {exc}") from None


def report_summary(report: dict[str, Any]) -> str:
    """One line on a quantised export (no TensorFlow).

    Returns:
        E.g. "size 14.1 MB (25% of float32), test accuracy 84.2% (-0.8 pts vs the
        Keras model, 120 images)", or the size and the note when not measured.
    """
    size = (f"size {report['model_bytes'] / 2**20:.1f} MB "
            f"({report['size_ratio'] * 100:.0f}% of float32)")
    if report["test_accuracy"] is None:
        return f"{size}; {report['note']}"
    return (f"{size}, test accuracy {report['test_accuracy'] * 100:.1f}% "
            f"({report['accuracy_delta'] * 100:+.1f} pts vs the Keras model, "
            f"{report['test_images']} images)")


def require_tensorflow(fmt: str) -> None:
    """Compute with TensorFlow in this process, as format `fmt` needs.

    Raises:
        ConfigError: if TensorFlow is not installed, or this process already
            computes with another backend.
    """
    if not backend.installed("tensorflow"):
        raise ConfigError(
            f"Export to {FORMATS[fmt]} needs TensorFlow, which is not installed here: "
            f"{backend.INSTALL_HINT['tensorflow']}. The Keras (.keras) format needs no "
            f"TensorFlow and loads on every backend.")
    backend.activate("tensorflow")


def export_run(run_id: str, fmt: str, out_path: str | os.PathLike,
               ws: Workspace | None = None) -> Path:
    """Write a zip with the run's model in format `fmt`, class names, config and README.

    Args:
        run_id: A completed run.
        fmt: One of `FORMATS`: "keras", "savedmodel", "tflite", "tflite-dynamic"
            or "tflite-float16".
        out_path: The zip to write; a folder (existing, or any path ending in a
            slash) gets `<run_id>-<fmt>.zip` inside.
        ws: The workspace (default: from $TLCORE_HOME).

    Returns:
        Path of the zip, written atomically (a partial zip is never left behind).

    Raises:
        ConfigError: if `fmt` is not a supported format.
        RunStateError: if the run is not completed.
        ConfigError: for SavedModel and TFLite where TensorFlow is missing.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}. Received: format={fmt!r}")
    if fmt != "keras":
        require_tensorflow(fmt)
    ws = ws or Workspace.from_env()
    run = open_run(run_id, ws)
    config, classes = run.config, run.classes
    out = Path(out_path)
    if out.is_dir() or str(out_path).endswith(("/", os.sep)):
        out = out / run.files.export_zip(fmt).name
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=ws.tmp_dir) as tmp:
        stage = Path(tmp) / "export"
        stage.mkdir()
        from tlcore.engine.runmodel import MODEL_FILE, keras_file, run_model  # Keras

        model = run_model(run)
        dtype = str(model.inputs[0].dtype)
        if fmt == "keras":
            shutil.copyfile(keras_file(run), stage / MODEL_FILE)
        elif fmt == "savedmodel":
            save_savedmodel(model, stage / SAVEDMODEL_DIR)
        else:
            save_tflite(model, stage / TFLITE_FILE, fmt)
        if fmt in QUANTIZED:
            float32 = Path(tmp) / "float32.tflite"
            save_tflite(model, float32)
            report = quantization_report(fmt, model, stage / TFLITE_FILE, float32,
                                         _test_split(run, classes, ws))
            (stage / REPORT_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
        (stage / "class_names.json").write_text(
            json.dumps(classes, ensure_ascii=False, indent=2), encoding="utf-8")
        (stage / "config.json").write_text(config.to_json(), encoding="utf-8")
        (stage / "README.txt").write_text(
            _readme(run_id, fmt, config.image_size, classes, dtype), encoding="utf-8")
        partial = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(stage.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(stage).as_posix())
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return out
