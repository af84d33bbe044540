"""Keras backends: choosing one, a run on JAX end to end, and the same model on every backend.

This test process computes with TensorFlow; JAX (and PyTorch where it is
installed) run in subprocesses, as workers do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from tests.support.runs import wait_for
from tlcore import backend, processes
from tlcore import data as datasets_api
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.engine.feed import predict_probs
from tlcore.engine.gradcam import gradcam
from tlcore.errors import ConfigError
from tlcore.results import export
from tlcore.results.predict import load_image, predict_images
from tlcore.runs import children, launch, liveness
from tlcore.store import COMPLETED, RunStore

CLASSES = ("disc", "square", "triangle")
OTHER_BACKENDS = [name for name in ("jax", "torch") if backend.installed(name)]
RUN_TIMEOUT_S = 300


def _python(code: str, name: str, ws=None, timeout: float = 300) -> str:
    """Run `code` in a fresh Python on backend `name`; its stdout."""
    path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    env = {**(children.worker_env(ws) if ws else {**os.environ, "PYTHONPATH": path}),
           **backend.environment(name)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_auto_is_the_keras_backend_variable_else_tensorflow(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    assert backend.resolve("auto") == backend.resolve(None) == "tensorflow"
    monkeypatch.setenv(backend.ENV, "jax")
    assert backend.resolve("auto") == "jax"
    assert backend.resolve("torch") == "torch"
    monkeypatch.setenv(backend.ENV, "theano")  # not a Keras 3 backend: the default
    assert backend.resolve("auto") == "tensorflow"
    with pytest.raises(ConfigError, match="train.backend must be auto, tensorflow, jax, torch"):
        backend.resolve("mxnet")
    assert backend.environment("jax")["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert RunConfig.from_dict({"dataset": "d"}).train.backend == "auto"  # old configs: auto


def test_a_backend_that_is_not_installed_is_refused_at_launch(ws, tmp_path, monkeypatch):
    folder = write_class_folders(tmp_path / "src", CLASSES, per_class=5, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    monkeypatch.setattr(backend, "installed", lambda name: name != "torch")
    config = RunConfig.from_dict({"dataset": "shapes", "image_size": 32,
                                  "base": {"weights": "none"}, "train": {"backend": "torch"}})
    with pytest.raises(ConfigError) as caught:
        launch.launch(config, ws=ws)
    message = str(caught.value)
    assert "\n" not in message and "needs PyTorch, which is not installed" in message
    assert "pip install torch" in message and "tensorflow, jax" in message
    assert RunStore(ws).list_runs() == []  # nothing half-made


def test_export_formats_that_need_tensorflow_say_so_when_it_is_missing(ws, monkeypatch):
    monkeypatch.setattr(backend, "installed", lambda name: name != "tensorflow")
    for fmt in ("savedmodel", "tflite"):
        with pytest.raises(ConfigError, match=r"needs TensorFlow, which is not installed "
                                              r"here: pip install tensorflow.*Keras \(\.keras\) "
                                              r"format needs no TensorFlow"):
            export.export_run("aaaaaaaaaaaa", fmt, ws.root / "out.zip", ws=ws)


@pytest.mark.skipif(not OTHER_BACKENDS, reason="neither JAX nor PyTorch is installed")
def test_gradcam_and_predictions_agree_on_every_backend(tmp_path):
    from tlcore.engine import model as engine

    config = RunConfig.from_dict({"dataset": "d", "image_size": 32, "base": {"weights": "none"},
                                  "head": {"dense": [8]}})
    keras.utils.set_random_seed(0)
    model = engine.build_model(config, 3, mixed_precision=False)
    path = tmp_path / "model.keras"
    model.save(path)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    maps, probs = gradcam(model, images), predict_probs(model, images)
    assert maps.shape == (5, 32, 32) and maps.max() == pytest.approx(1.0)
    for name in OTHER_BACKENDS:
        out = tmp_path / f"{name}.npz"
        _python(
            "import keras, numpy as np\n"
            "from tlcore.engine.gradcam import gradcam\n"
            "from tlcore.engine.feed import predict_probs\n"
            f"assert keras.backend.backend() == {name!r}\n"
            f"m = keras.models.load_model({str(path)!r}, compile=False, safe_mode=True)\n"
            f"x = np.load({str(tmp_path / 'images.npy')!r})\n"
            f"np.savez({str(out)!r}, maps=gradcam(m, x), probs=predict_probs(m, x))\n", name)
        with np.load(out) as theirs:
            np.testing.assert_allclose(theirs["probs"], probs, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(theirs["maps"], maps, atol=1e-3, err_msg=name)


@pytest.mark.slow
@pytest.mark.skipif(not backend.installed("jax"), reason="JAX is not installed")
def test_a_run_on_jax_end_to_end_and_its_model_on_tensorflow(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", CLASSES, per_class=10, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    config = RunConfig.from_dict({
        "dataset": "shapes", "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        # 21 training images, 3 batches of 7: JAX compiles one shape per step, not two.
        "train": {"epochs": 2, "batch_size": 7, "early_stopping_patience": 0, "backend": "jax"},
        "fine_tune": {"blocks": 1, "epochs": 1}})
    run_id = launch.launch(config, ws=ws)
    store = RunStore(ws)
    wait_for(lambda: liveness.refresh(ws=ws) or store.get_run(run_id)["status"] not in (
        "queued", "running"), "the JAX run", RUN_TIMEOUT_S)
    run = store.get_run(run_id)
    assert run["status"] == COMPLETED, run["error"]
    pid = run["pid"]
    wait_for(lambda: not processes.alive(pid), "the worker's Grad-CAM overlays", 120)
    assert run["extra"]["backend"] == "jax" and run["device"] == "CPU"
    log = ws.run(run_id).log.read_text()
    assert "with jax" in log and "phase 2: epochs 3-3" in log
    assert "oneDNN custom operations" not in log  # TensorFlow's import banner: never loaded
    assert "Grad-CAM overlays stored" in log
    assert [m["epoch"] for m in store.metrics(run_id)] == [1, 2, 3]

    # On JAX: predict (without importing TensorFlow, which GPU machines may lack) and
    # export the .keras file; here (TensorFlow): the same classes.
    images = sorted(str(p) for p in (tmp_path / "src").rglob("*.png"))[::4]
    _python(
        "import json, sys\n"
        "from tlcore.results.export import export_run\n"
        "from tlcore.results.predict import predict_images\n"
        f"items = predict_images({run_id!r}, {images!r})\n"
        "assert 'tensorflow' not in sys.modules, 'predict on JAX imported TensorFlow'\n"
        f"open({str(tmp_path / 'jax.json')!r}, 'w').write(json.dumps(items))\n"
        # Keras's own `save` imports TensorFlow where it is installed (not on GPU machines).
        f"export_run({run_id!r}, 'keras', {str(tmp_path / 'out.zip')!r})\n", "jax", ws)
    on_jax = json.loads((tmp_path / "jax.json").read_text())
    for ours, theirs in zip(predict_images(run_id, images, ws=ws), on_jax, strict=True):
        assert ours["top"][0]["class"] == theirs["top"][0]["class"]
        assert ours["top"][0]["probability"] == pytest.approx(theirs["top"][0]["probability"],
                                                              abs=1e-4)
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        zf.extract("model.keras", tmp_path)
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    probs = predict_probs(loaded, np.stack([load_image(p, 32) for p in images]))
    assert [int(i) for i in probs.argmax(axis=1)] == [item["top"][0]["index"] for item in on_jax]
