"""Export a finished run's model as one downloadable zip (TensorFlow; worker or CLI only).

Each zip holds the model in one format, `class_names.json` (index = output
position), the run's `config.json` and a README.txt on loading it. Every
format takes raw RGB images, values 0-255 of shape `(N, S, S, 3)` in the
model's input dtype (float32 unless the model declares another): the VGG16
preprocessing is part of the model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tlcore.errors import ConfigError
from tlcore.evaluate import completed_run, load_model, run_class_names
from tlcore.workspace import Workspace

# Export formats (the `--format` choices) and how the dashboard names them.
FORMATS = {"keras": "Keras (.keras)", "savedmodel": "TensorFlow SavedModel",
           "tflite": "TensorFlow Lite (.tflite)"}
SAVEDMODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"

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
    return (
        f"Model of run {run_id}, exported as {fmt}.\n\n"
        f"Input: {dtype} RGB images with values 0-255, shape (N, {size}, {size}, 3); resize\n"
        "with bilinear interpolation. The VGG16 preprocessing is inside the model.\n"
        f"Output: (N, {len(classes)}) class probabilities; class_names.json gives the class of\n"
        "each position. config.json is the run config it was trained with.\n\n"
        "Load it:\n\n" + _LOAD_SNIPPETS[fmt].format(s=size, dtype=dtype)
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


def export_run(run_id: str, fmt: str, out_path: str | os.PathLike,
               ws: Workspace | None = None) -> Path:
    """Write a zip with the run's model in format `fmt`, class names, config and README.

    Args:
        run_id: A completed run.
        fmt: "keras", "savedmodel" or "tflite".
        out_path: The zip to write; a folder (existing, or any path ending in a
            slash) gets `<run_id>-<fmt>.zip` inside.
        ws: The workspace (default: from $TLCORE_HOME).

    Returns:
        Path of the zip, written atomically (a partial zip is never left behind).

    Raises:
        ConfigError: if `fmt` is not a supported format.
        RunStateError: if the run is not completed.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}. Received: format={fmt!r}")
    ws = ws or Workspace.from_env()
    _, config = completed_run(run_id, ws)
    classes = run_class_names(run_id, ws, config)
    out = Path(out_path)
    files = ws.run(run_id)
    if out.is_dir() or str(out_path).endswith(("/", os.sep)):
        out = out / files.export_zip(fmt).name
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=ws.tmp_dir) as tmp:
        stage = Path(tmp) / "export"
        stage.mkdir()
        # Loading also proves the file is a model that safe mode accepts.
        model = load_model(files.model)
        dtype = str(model.inputs[0].dtype)
        if fmt == "keras":
            shutil.copyfile(files.model, stage / files.model.name)
        elif fmt == "savedmodel":
            save_savedmodel(model, stage / SAVEDMODEL_DIR)
        else:
            model.export(str(stage / TFLITE_FILE), format="litert", verbose=False)
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
