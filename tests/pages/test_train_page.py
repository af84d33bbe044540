"""Train page: config form and validation, model preview, weights hint, launch, live panel."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import APP
from tests.support.evalutil import (
    CLASSES,
    SIZE,
    engine_model,
    make_dataset,
    run_config,
    write_keras_zip,
)
from tests.support.evalutil import make_run as add_eval_run
from tests.support.markup import shown
from tests.vgg16.test_backbones import write_keras3
from tlcore import backend, config
from tlcore.config import DEFAULT_PRESET, PRESETS
from tlcore.results.evaluate import png_bytes
from tlcore.runs import launch, queue
from tlcore.store import ACTIVE_STATUSES, CANCELLED, COMPLETED, RUNNING, RunStore
from tlcore.ui import predict as ui_predict

TRAIN = "app_pages/train.py"
FIELD_ERROR = ":red[:material/error: "  # how the page marks a message under a field


@pytest.fixture
def no_local_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("TLCORE_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def _form_errors(at) -> list[str]:
    # The live panel below the form shows the failed run's error too.
    return [shown(e.value) for e in at.error
            if shown(e.value) != "Out of memory while training."]


def _weights_warnings(at) -> list[str]:
    # Launch warnings (e.g. 150 px on the 32 px images of "pets") are other warnings.
    return [w.value for w in at.warning if "ImageNet weights" in w.value]


def _launch_warnings(at) -> list[str]:
    return [w.value for w in at.warning if w.icon == ":material/warning:"]


def _field_errors(at) -> list[str]:
    """The messages under the form's fields, as a reader sees them."""
    return [shown(c.value[len(FIELD_ERROR):-1]) for c in at.caption
            if c.value.startswith(FIELD_ERROR)]


def _reload(query_params: dict) -> AppTest:
    """A new session opened on the Train page with `query_params` in its URL."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query_params)
    at.run()
    return at.switch_page(TRAIN).run()


def test_every_problem_shows_at_its_field_in_plain_words(app, populated):
    at = app(TRAIN)
    assert not _field_errors(at) and not at.button(key="train_launch").disabled
    # Number widgets are bounded by the config, so an out-of-range size cannot be entered.
    at.number_input(key="cfg.image_size").set_value(16).run()
    assert at.number_input(key="cfg.image_size").value == 32 and not _field_errors(at)
    blocks = at.dataframe[0].value
    at.text_input(key="cfg.head.dense").input("256, wide")
    at.selectbox(key="cfg.weights_mode").set_value("run").run()
    assert _field_errors(at) == [
        "Source run: choose a completed run",
        "Dense layers: use up to 8 whole numbers from 1 to 8192, separated by commas "
        "(got 'wide')"]
    assert [t.label for t in at.tabs] == ["Base & weights ⚠", "Head ⚠", "Optimizer",
                                          "Fine-tuning", "Augmentation"]
    assert at.button(key="train_launch").disabled and not _form_errors(at)
    # The preview keeps showing the last valid model.
    assert at.dataframe[0].value.equals(blocks)
    assert "last valid settings" in "\n".join(c.value for c in at.caption)
    at.text_input(key="cfg.head.dense").input("512, 128")
    at.selectbox(key="cfg.weights_mode").set_value("none").run()
    assert not _field_errors(at) and not at.button(key="train_launch").disabled
    assert [t.label for t in at.tabs] == ["Base & weights", "Head", "Optimizer", "Fine-tuning",
                                          "Augmentation"]


def test_a_field_error_keeps_its_tab_open(app, populated):
    at = app(TRAIN)
    at.session_state["train_tabs"] = "Head"
    at.text_input(key="cfg.head.dense").input("wide").run()
    # The label changed: the open tab follows it instead of falling back to the first one.
    assert at.session_state["train_tabs"] == "Head ⚠"


def test_widgets_take_limits_choices_and_help_from_the_config_declaration(app, populated):
    at = app(TRAIN)
    dropout = at.slider(key="cfg.head.dropout")
    spec = config.field_spec("head.dropout")
    # dropout < 1 in the config: the slider stops at its last step below 1.
    assert (dropout.min, dropout.max, dropout.help) == (0.0, 0.95, spec.help)
    epochs = at.number_input(key="cfg.train.epochs")
    assert (epochs.min, epochs.max) == (1, 10_000)
    assert epochs.help == config.field_spec("train.epochs").help
    assert at.selectbox(key="cfg.train.optimizer").options == ["adam", "sgd", "rmsprop"]
    assert at.slider(key="cfg.fine_tune.blocks").max == 5
    assert at.toggle(key="cfg.head.batchnorm").help == config.field_spec("head.batchnorm").help


def test_changing_the_declaration_changes_the_widgets(app, populated, monkeypatch):
    specs = config.field_specs()
    specs["head.dropout"] = dataclasses.replace(specs["head.dropout"], upper=0.6,
                                                upper_open=False, help="Changed in one place.")
    specs["train.epochs"] = dataclasses.replace(specs["train.epochs"], upper=50)
    specs["train.optimizer"] = dataclasses.replace(specs["train.optimizer"],
                                                   choices=("adam", "sgd"))
    monkeypatch.setattr(config.schema, "field_specs", lambda: specs)  # the one reader
    at = app(TRAIN)
    dropout = at.slider(key="cfg.head.dropout")
    assert (dropout.max, dropout.help) == (0.6, "Changed in one place.")
    assert at.number_input(key="cfg.train.epochs").max == 50
    assert at.selectbox(key="cfg.train.optimizer").options == ["adam", "sgd"]


def test_a_model_over_the_parameter_limit_is_refused_in_the_preview(app, populated):
    at = app(TRAIN)
    at.number_input(key="cfg.image_size").set_value(512)
    at.selectbox(key="cfg.head.pooling").set_value("flatten")
    at.text_input(key="cfg.head.dense").input("8192").run()
    [error] = _form_errors(at)
    assert error.startswith("This model would have 1,088,") and "the limit is 200,000,000" in error
    assert at.button(key="train_launch").disabled
    at.text_input(key="cfg.head.dense").input("256").run()
    assert not _form_errors(at) and not at.button(key="train_launch").disabled


def test_model_preview_counts_frozen_and_trainable_blocks(app, populated):
    at = app(TRAIN)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"].endswith("M") and metrics["Phase 2 trains"] == "—"
    blocks = at.dataframe[0].value
    assert blocks["block"].to_list() == ["preprocess", "block1", "block2", "block3", "block4",
                                         "block5", "head"]
    assert blocks["phase1"].to_list() == [False] * 6 + [True]
    at.slider(key="cfg.fine_tune.blocks").set_value(2)
    at.number_input(key="cfg.fine_tune.epochs").set_value(3).run()
    blocks = at.dataframe[0].value
    assert blocks["phase2"].to_list() == [False] * 4 + [True] * 3
    assert {m.label: m.value for m in at.metric}["Phase 2 trains"].endswith("M")


def test_from_scratch_trains_every_layer_and_random_frozen_says_what_it_is(app, ws, populated):
    at = app(TRAIN)
    modes = at.selectbox(key="cfg.weights_mode")
    assert modes.format_func("scratch") == "From scratch (train every layer)"
    assert modes.format_func("none") == "Random frozen features (not a from-scratch baseline)"
    modes.set_value("scratch").run()
    blocks = at.dataframe[0].value
    assert blocks["phase1"].to_list() == [False] + [True] * 6  # every block, and the head
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Phase 1 trains"] == metrics["Parameters"]
    assert any("nothing frozen to cache" in c.value for c in at.caption)

    at.selectbox(key="cfg.weights_mode").set_value("none").run()
    assert at.dataframe[0].value["phase1"].to_list() == [False] * 6 + [True]
    assert any("only the head learns" in c.value for c in at.caption)

    # The preset made for the baseline: every layer, Adam at 1e-4, more epochs.
    at.selectbox(key="train_preset").set_value("From scratch (baseline)").run()
    assert at.selectbox(key="cfg.weights_mode").value == "scratch"
    assert at.number_input(key="cfg.train.learning_rate").value == 1e-4
    assert at.number_input(key="cfg.train.epochs").value == 30
    at.button(key="train_launch").click().run()
    try:
        run = RunStore(ws).list_runs()[-1]
    finally:
        for r in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
            launch.delete(r["id"], ws=ws)
    assert run["config"]["base"] == {"name": "vgg16", "weights": "none", "trainable": True}


def test_imagenet_run_can_train_its_whole_base_from_the_first_epoch(app, populated):
    at = app(TRAIN)
    at.toggle(key="cfg.base.trainable").set_value(True).run()
    assert at.dataframe[0].value["phase1"].to_list() == [False] + [True] * 6
    assert at.toggle(key="cfg.base.trainable").help == config.field_spec("base.trainable").help
    # After the from-scratch preset, choosing ImageNet starts from a frozen base again.
    at.selectbox(key="train_preset").set_value("From scratch (baseline)").run()
    at.selectbox(key="cfg.weights_mode").set_value("imagenet").run()
    assert not at.toggle(key="cfg.base.trainable").value
    assert at.dataframe[0].value["phase1"].to_list() == [False] * 6 + [True]


def test_suspicious_settings_warn_before_launch_without_blocking(app, populated):
    at = app(TRAIN)
    # "pets" has 32 px images: the recipe's 150 px is more than 4 times that.
    (size,) = _launch_warnings(at)
    assert size.startswith("image_size 150 is over 4 times the dataset's median image side "
                           "(32 px)")
    at.number_input(key="cfg.image_size").set_value(32)
    at.number_input(key="cfg.train.learning_rate").set_value(5.0)
    at.number_input(key="cfg.train.batch_size").set_value(1).run()
    found = _launch_warnings(at)
    assert [w.split()[0] for w in found] == ["train.learning_rate", "train.batch_size"]
    assert not at.button(key="train_launch").disabled
    at.number_input(key="cfg.train.learning_rate").set_value(1e-3)
    at.number_input(key="cfg.train.batch_size").set_value(16).run()
    assert not _launch_warnings(at)


def test_a_link_to_a_missing_run_says_so_and_still_lists_runs(app, populated):
    at = app(TRAIN)
    at.query_params["run"] = "no_pe*"
    at.run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "not found" in w.value]
    assert warning.startswith("Run 'no\\_pe\\*' not found")  # shown as typed, not Markdown
    # The panel below still shows a run and the way to all of them.
    assert any(m.value == "#### oom" for m in at.markdown)
    assert any(link.label == "All runs, side by side" for link in at.get("page_link"))


def test_a_diverged_run_shows_why_in_the_live_panel(app, ws, populated):
    store = RunStore(ws)
    store.update_run(populated["failed"], error=(
        "Training diverged at epoch 2: the loss is nan. Lower the learning rate "
        "(train.learning_rate is now 10.0).\n\nTraceback (last lines):\n  ..."))
    at = app(TRAIN)
    assert ("Training diverged at epoch 2: the loss is nan. Lower the learning rate "
            "(train.learning_rate is now 10.0).") in [shown(e.value) for e in at.error]


def test_preset_fills_every_knob_and_keeps_the_dataset(app, populated):
    at = app(TRAIN)
    assert at.selectbox(key="cfg.dataset").value == "pets"
    at.selectbox(key="train_preset").set_value("Fast feature extraction (GAP head)").run()
    fast = PRESETS["Fast feature extraction (GAP head)"]
    assert at.number_input(key="cfg.image_size").value == fast["image_size"]
    assert at.selectbox(key="cfg.head.pooling").value == "avg"
    assert at.number_input(key="cfg.train.batch_size").value == fast["train"]["batch_size"]
    assert at.selectbox(key="cfg.dataset").value == "pets"


def test_imagenet_offline_says_what_to_do(app, populated, no_local_weights):
    at = app(TRAIN)
    assert at.selectbox(key="cfg.weights_mode").value == "imagenet"
    assert any("**From scratch**" in w for w in _weights_warnings(at))
    assert at.file_uploader(key="train_weights_upload")
    at.file_uploader(key="train_weights_upload").set_value(
        ("vgg.h5", b"not an h5 file", "application/octet-stream"))
    at.run()
    at.button(key="train_weights_save").click().run()
    assert not at.exception
    assert any("vgg.h5" in e for e in _form_errors(at))
    at.selectbox(key="cfg.weights_mode").set_value("scratch").run()
    assert not _weights_warnings(at) and not at.file_uploader


def test_launch_queues_a_run_and_shows_it_at_once(app, ws, populated, no_local_weights):
    at = app(TRAIN)
    at.number_input(key="cfg.image_size").set_value(32)
    at.number_input(key="cfg.train.epochs").set_value(1)
    at.selectbox(key="cfg.weights_mode").set_value("none")
    at.text_input(key="train_run_name").input("tiny").run()
    at.button(key="train_launch").click().run()
    try:
        assert not at.exception and not _form_errors(at) and not _field_errors(at)
        run = RunStore(ws).list_runs()[-1]
        assert run["name"] == "tiny" and run["status"] in (*ACTIVE_STATUSES, "completed")
        assert run["config"]["image_size"] == 32
        assert run["config"]["train"]["epochs"] == 1
        assert run["config"]["base"]["weights"] == "none"
        assert at.query_params["run"] == run["id"]
        assert any(m.value == "#### tiny" for m in at.markdown)
        # By the Launch button, above the fold: the run and its state; no toast over the page.
        assert not at.toast
        by_launch = [c.value for c in at.caption] + [p.proto.text for p in at.get("progress")]
        assert any("tiny · " in line for line in by_launch)
        # A second launch queues behind the first.
        at.text_input(key="train_run_name").input("tiny-2").run()
        at.button(key="train_launch").click().run()
        assert [r["name"] for r in RunStore(ws).list_runs()][-2:] == ["tiny", "tiny-2"]
    finally:
        # Stop the real workers at once; the test only needs the queue entries.
        for r in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
            launch.delete(r["id"], ws=ws)


def test_live_panel_shows_a_finished_run_and_a_failure_in_plain_words(app, populated):
    at = app(TRAIN)
    # Without a run in the URL the newest run is shown: the failed one.
    assert any(m.value == "#### oom" for m in at.markdown)
    assert "Out of memory while training." in [shown(e.value) for e in at.error]
    assert all("Traceback" not in e.value for e in at.error)
    assert at.button(key=f"train_resume_{populated['failed']}")

    at.query_params["run"] = populated["adam"]
    at.run()
    assert any(shown(m.value) == "#### adam-flatten" for m in at.markdown)
    labels = {m.label: m.value for m in at.metric}
    # Each "best" names its own epoch: the highest val accuracy, the model's (lowest val loss).
    assert labels["Best val accuracy"].endswith("% · epoch 4")
    assert labels["Model kept"] == "epoch 4"
    charts = at.get("plotly_chart")
    assert len(charts) == 2


def test_live_panel_warns_about_a_silent_worker(app, populated, ws):
    store = RunStore(ws)
    run_id = store.create_run(config.RunConfig.from_dict(
        {"dataset": "pets", "image_size": 32, "base": {"weights": "none"}}), name="quiet")
    # A live process that looks like the run's worker but never beats.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "tlcore.workers.run", run_id], start_new_session=True)
    try:
        # Silent for a while but under half the 120 s limit: no alarm yet.
        store.update_run(run_id, status=RUNNING, pid=proc.pid, started=time.time() - 80,
                         heartbeat=time.time() - 40)
        at = app(TRAIN)
        assert any(m.value == "#### quiet" for m in at.markdown)
        assert not [w for w in at.warning if "worker" in w.value]
        store.update_run(run_id, heartbeat=time.time() - 70)
        at.run()
        [silence] = [w.value for w in at.warning if "worker" in w.value]
        assert re.fullmatch(r"No sign of life from the worker for 7\d s; it is marked lost "
                            r"after 120 s\.", silence)
        store.update_run(run_id, heartbeat=time.time())
        at.run()
        assert not [w for w in at.warning if "worker" in w.value]
    finally:
        proc.kill()
        proc.wait()


def test_clone_prefill_loads_the_runs_config(app, populated, ws):
    at = app()
    cfg = RunStore(ws).get_run(populated["sgd"])["config"]
    at.session_state["train_prefill"] = cfg
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert at.selectbox(key="cfg.train.optimizer").value == "sgd"
    assert at.number_input(key="cfg.train.learning_rate").value == 0.01
    assert at.selectbox(key="cfg.head.pooling").value == "avg"
    assert at.selectbox(key="cfg.weights_mode").value == "none"
    assert "cloned run" in at.success[0].value


def test_clone_with_a_value_between_slider_steps_keeps_it(app, populated, ws):
    at = app()
    cfg = RunStore(ws).get_run(populated["sgd"])["config"]
    at.session_state["train_prefill"] = {**cfg, "head": {**cfg["head"], "dropout": 0.97}}
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert at.slider(key="cfg.head.dropout").value == 0.97
    assert not _form_errors(at) and not _field_errors(at)


def test_form_survives_a_visit_to_another_page(app, populated):
    at = app(TRAIN)
    at.number_input(key="cfg.train.epochs").set_value(7).run()
    at.switch_page("app_pages/runs.py").run()
    at.switch_page(TRAIN).run()
    assert at.number_input(key="cfg.train.epochs").value == 7


def test_weights_from_an_earlier_run(app, ws, populated):
    write_keras_zip(ws.run(populated["sgd"]).model)  # launch checks that the file is whole
    at = app(TRAIN)
    at.selectbox(key="cfg.weights_mode").set_value("run").run()
    at.selectbox(key="cfg.weights_run").set_value(populated["sgd"]).run()
    assert not _field_errors(at)
    at.button(key="train_launch").click().run()
    try:
        run = RunStore(ws).list_runs()[-1]
    finally:
        for r in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
            launch.delete(r["id"], ws=ws)
    assert run["config"]["base"]["weights"] == f"run:{populated['sgd']}"


def test_weights_file_path_is_confined_to_the_allowed_folders(app, populated, ws, tmp_path,
                                                              monkeypatch):
    monkeypatch.delenv("TLCORE_SERVER_ROOTS", raising=False)
    outside = tmp_path / "elsewhere.weights.h5"
    outside.write_bytes(b"\x89HDF")
    at = app(TRAIN)
    at.selectbox(key="cfg.weights_mode").set_value("file").run()
    at.text_input(key="cfg.weights_file").input(str(outside)).run()
    errors = _field_errors(at)
    assert len(errors) == 1 and errors[0].startswith("Weights file path: Only paths inside")
    assert str(ws.weights_dir) in errors[0] and at.button(key="train_launch").disabled
    # The same words for a path that does not exist: nothing about the outside leaks.
    at.text_input(key="cfg.weights_file").input(str(tmp_path / "missing.h5")).run()
    assert _field_errors(at)[0].split(" Received:")[0] == errors[0].split(" Received:")[0]


NOISY_LOG = """\
I0000 00:00:1795836728.535547   20488 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1795836732.894844   20488 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
2026-11-28 03:32:12,900 INFO tlcore.engine.train: run abc on CPU, mixed precision off
Epoch 1/3
28/28 - 2s - 80ms/step - accuracy: 0.2143 - loss: 1.3913 - val_accuracy: 0.3125 - val_loss: 1.3764
2026-11-28 03:32:31,559 WARNING tensorflow: 5 out of the last 5 calls triggered tf.function retracing.
"""


def _write_log(ws, run_id: str, text: str) -> None:
    ws.run(run_id).dir.mkdir(parents=True, exist_ok=True)
    ws.run(run_id).log.write_text(text)


def test_log_shows_the_runs_own_lines_and_the_raw_log_on_request(app, ws, populated):
    _write_log(ws, populated["failed"], NOISY_LOG)
    at = app(TRAIN)
    log = at.main.code[-1]  # after the failure's details
    assert log.value.splitlines() == [
        "2026-11-28 03:32:12,900 INFO tlcore.engine.train: run abc on CPU, mixed precision off",
        "Epoch 1/3", NOISY_LOG.splitlines()[4]]
    at.toggle(key="train_raw_log").set_value(True).run()
    assert not at.exception
    assert at.main.code[-1].value == NOISY_LOG.rstrip("\n")


def test_log_of_tensorflow_noise_only_points_to_the_raw_log(app, ws, populated):
    _write_log(ws, populated["failed"], NOISY_LOG.splitlines()[1] + "\n")
    at = app(TRAIN)
    assert "TensorFlow's messages are in the raw log" in at.main.code[-1].value


def _camera_inputs(at) -> list:
    return list(at.get("camera_input"))


def test_try_it_is_offered_for_a_completed_run_only(app, ws, populated, make_run):
    at = app(TRAIN)
    at.query_params["run"] = populated["adam"]
    at.run()
    key = populated["adam"]
    assert at.file_uploader(key=f"train_try_upload_{key}")
    assert not _camera_inputs(at)  # the camera starts only when asked for
    at.toggle(key=f"train_try_camera_on_{key}").set_value(True).run()
    assert not at.exception and len(_camera_inputs(at)) == 1

    running = make_run(status="running", name="busy")
    RunStore(ws).update_run(running, ended=None, heartbeat=time.time())
    at.query_params["run"] = running
    at.run()
    assert not at.exception
    assert any(m.value == "#### busy" for m in at.markdown)
    assert not [u for u in at.file_uploader if u.key.startswith("train_try")]
    assert not _camera_inputs(at) and "Try it" not in [e.label for e in at.expander]
    for r in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
        launch.delete(r["id"], ws=ws)


@pytest.mark.slow
def test_try_it_shows_probabilities_and_grad_cam(app, ws, monkeypatch):
    """A tiny model (random weights) classifies an uploaded picture in a subprocess."""
    make_dataset(ws, "shapes")
    config_ = run_config("shapes")
    run_id = add_eval_run(ws, config_, model=engine_model(config_, len(CLASSES)), name="tiny")
    at = app(TRAIN)
    assert any(m.value == "#### tiny" for m in at.markdown)
    picture = png_bytes(np.full((SIZE, SIZE, 3), 200, np.uint8))
    at.file_uploader(key=f"train_try_upload_{run_id}").set_value(
        ("photo.png", picture, "image/png"))
    at.run(timeout=180)
    assert not at.exception and not at.error
    (chart,) = [c for c in at.get("plotly_chart") if c.key == "train_try_chart"]
    bars = json.loads(chart.proto.spec)["data"][0]
    assert sorted(bars["y"]) == sorted(CLASSES)  # top-3 of 3 classes
    assert [shown(c) for img in at.image for c in img.captions] == ["photo.png", "Grad-CAM"]
    # The panel redraws (on its timer, or a click) without classifying the picture again.
    calls = []
    monkeypatch.setattr(ui_predict, "run_cli", lambda *args, **kwargs: calls.append(args))
    at.run()
    assert not at.exception and calls == []
    assert [c.key for c in at.get("plotly_chart")].count("train_try_chart") == 1




def test_storing_a_weights_file_shows_the_weights_as_available(app, populated, no_local_weights,
                                                                tmp_path):
    weights = tmp_path / "vgg.weights.h5"
    write_keras3(weights)
    at = app(TRAIN)
    at.file_uploader(key="train_weights_upload").set_value(
        ("vgg.weights.h5", weights.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="train_weights_save").click().run()
    assert not at.exception
    assert not [w for w in at.warning if "No ImageNet weights" in w.value]
    assert not at.file_uploader
    assert "Stored vgg.weights.h5; ImageNet runs will use it." in [shown(s.value)
                                                                   for s in at.success]
    assert any(c.value.startswith(":material/check_circle: ImageNet weights") for c in at.caption)


def test_the_url_keeps_the_form_for_a_reload_or_a_shared_link(app, populated):
    at = app(TRAIN)
    at.number_input(key="cfg.image_size").set_value(64)
    at.text_input(key="cfg.head.dense").input("512, 128")
    at.selectbox(key="cfg.weights_mode").set_value("none")
    at.text_input(key="train_run_name").input("small").run()
    link = {k: at.query_params[k] for k in ("cfg", "name")}
    assert config.from_link_token(link["cfg"]).head.dense == (512, 128)

    again = _reload(link)
    assert not again.exception
    assert again.number_input(key="cfg.image_size").value == 64
    assert again.text_input(key="cfg.head.dense").value == "512, 128"
    assert again.selectbox(key="cfg.weights_mode").value == "none"
    assert again.text_input(key="train_run_name").value == "small"
    assert again.selectbox(key="train_preset").value == "Custom"
    assert not again.warning


@pytest.mark.parametrize("token", [
    "not a link",
    base64.urlsafe_b64encode(json.dumps({"dataset": "pets", "image_size": 16}).encode()).decode(),
    base64.urlsafe_b64encode(b'{"head.nope": 1}').decode(),
])
def test_a_bad_link_is_refused_with_a_warning(populated, token):
    at = _reload({"cfg": token})
    assert not at.exception
    (warning,) = [w for w in at.warning if "link" in w.value]
    assert warning.value.startswith("The settings in this link could not be used")
    assert at.number_input(key="cfg.image_size").value == 150
    assert at.selectbox(key="train_preset").value == DEFAULT_PRESET
    assert config.from_link_token(at.query_params["cfg"]).image_size == 150  # the URL is fixed


def test_preset_selector_names_what_the_form_holds(app, populated, ws):
    at = app(TRAIN)
    assert at.selectbox(key="train_preset").value == DEFAULT_PRESET
    at.number_input(key="cfg.train.epochs").set_value(7).run()
    assert at.selectbox(key="train_preset").value == "Custom"
    at.number_input(key="cfg.train.epochs").set_value(10).run()
    assert at.selectbox(key="train_preset").value == DEFAULT_PRESET

    at.session_state["train_prefill"] = RunStore(ws).get_run(populated["sgd"])["config"]
    at.session_state["train_prefill_name"] = "sgd-avg"
    at.run()
    assert at.selectbox(key="train_preset").value == "Cloned from sgd-avg"
    at.number_input(key="cfg.train.epochs").set_value(3).run()
    assert at.selectbox(key="train_preset").value == "Custom"
    fast = "Fast feature extraction (GAP head)"
    at.selectbox(key="train_preset").set_value(fast).run()
    assert at.selectbox(key="train_preset").value == fast
    assert at.number_input(key="cfg.image_size").value == PRESETS[fast]["image_size"]


def test_queued_run_counts_the_runs_ahead_of_it(app, ws, populated):
    store = RunStore(ws)
    cfg = config.RunConfig.from_dict({"dataset": "pets", "image_size": 32,
                                      "base": {"weights": "none"}})
    training = store.create_run(cfg, "training")
    store.update_run(training, status=RUNNING, started=time.time(), heartbeat=time.time())
    store.create_run(cfg, "first in line")
    waiting = store.create_run(cfg, "waiting")
    at = app()
    at.query_params["run"] = waiting
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert "Waiting for a free worker: 2 runs ahead of it (1 training, 1 queued)." in [
        i.value.split(" It starts")[0] for i in at.info]


def test_resume_restarts_the_live_refresh(app, ws, populated, make_run, fragment_timers,
                                          monkeypatch):
    # No worker process: the test moves the run through its states itself.
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    run_id = make_run(status=CANCELLED, name="stopped")
    at = app(TRAIN)
    assert fragment_timers["live_panel"] is None and fragment_timers["idle_watch"]
    fragment_timers.clear()
    at.button(key=f"train_resume_{run_id}").click().run()
    assert not at.exception
    assert f"train_resume_{run_id}" not in [b.key for b in at.button]
    assert any(i.value.startswith("Waiting for a free worker") for i in at.info)
    assert fragment_timers["live_panel"] and "idle_watch" not in fragment_timers

    store = RunStore(ws)
    store.update_run(run_id, status=RUNNING, started=time.time(), heartbeat=time.time())
    at.run()  # a tick of the live panel
    assert [p.value for p in at.get("progress")]
    store.update_run(run_id, status=COMPLETED, ended=time.time(), best_val_accuracy=0.9)
    at.run()
    assert {m.label: m.value for m in at.metric}["Best val accuracy"].startswith("90.0%")
    assert fragment_timers["live_panel"] is None  # idle again: the timer stops


def test_the_backend_choice_shows_what_is_installed_and_a_missing_one_is_refused(
        app, ws, populated, no_local_weights, monkeypatch):
    monkeypatch.setattr(backend, "installed", lambda name: name != "torch")
    at = app(TRAIN)
    choice = at.selectbox(key="cfg.train.backend")
    assert choice.options == ["auto", "tensorflow", "jax", "torch"] and choice.value == "auto"
    assert choice.help == config.field_spec("train.backend").help
    assert any("Installed here: TensorFlow, JAX; auto uses TensorFlow." in c.value
               for c in at.caption)
    at.number_input(key="cfg.image_size").set_value(32)
    at.selectbox(key="cfg.weights_mode").set_value("none")
    choice.set_value("torch").run()
    at.button(key="train_launch").click().run()
    assert any("train.backend torch needs PyTorch, which is not installed here" in e
               for e in _form_errors(at))
    assert len(RunStore(ws).list_runs()) == 3  # nothing launched


def test_best_accuracy_and_the_kept_epoch_each_name_their_epoch(app, ws, populated):
    store = RunStore(ws)
    run_id = store.create_run(config.RunConfig.from_dict(
        {"dataset": "pets", "image_size": 32, "base": {"weights": "none"}}), "peaked")
    # Epoch 2 has the highest val accuracy, epoch 3 the lowest val loss (the model kept).
    for epoch, (val_loss, val_acc) in enumerate([(0.9, 0.6), (0.7, 0.758), (0.6, 0.74)], 1):
        store.add_epoch(run_id, epoch, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": val_loss,
                                           "val_accuracy": val_acc})
    store.update_run(run_id, status=COMPLETED, started=time.time() - 9, ended=time.time(),
                     best_val_accuracy=0.758, best_val_loss=0.6, best_epoch=3)
    at = app(TRAIN)
    at.query_params["run"] = run_id
    at.run()
    labels = {m.label: m.value for m in at.metric}
    assert labels["Best val accuracy"] == "75.8% · epoch 2"
    assert labels["Model kept"] == "epoch 3"


def _progress_texts(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_a_resumed_run_shows_at_once_without_its_old_progress(app, ws, populated, make_run,
                                                              monkeypatch):
    # No worker process: the test moves the run through its states itself.
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    run_id = make_run(status=CANCELLED, name="again")
    store = RunStore(ws)
    store.set_progress(run_id, phase=1, epoch=2, epochs=4, batch=14, batches=14, eta_s=30.0)
    at = app(TRAIN)
    at.button(key=f"train_resume_{run_id}").click().run()
    assert not at.exception and not at.toast
    # The line by Launch follows the resumed run from the moment it is queued.
    assert any(c.value.endswith("again · queued: it starts as soon as a worker is free.")
               for c in at.caption)

    time.sleep(0.01)
    store.update_run(run_id, status=RUNNING, started=time.time(), heartbeat=time.time())
    at.run()
    # The last attempt's "batch 14/14" is not this attempt's progress.
    texts = _progress_texts(at)
    assert texts == ["again · Starting: loading data and building the model…",
                     "Starting: loading data and building the model…"]

    store.set_progress(run_id, phase=1, epoch=3, epochs=4, batch=420, batches=540, eta_s=65.0,
                       stage="features")
    at.run()
    assert _progress_texts(at)[1] == ("Phase 1 · computing frozen-base features 420/540 images "
                                      "(once per dataset, size and weights) · ETA 1m 05s")
    store.set_progress(run_id, phase=1, epoch=3, epochs=4, batch=14, batches=14, eta_s=20.0,
                       stage="validate")
    at.run()
    assert _progress_texts(at)[1] == "Phase 1 · epoch 3/4 · validating… · ETA 20s"


def test_cancel_says_so_in_the_panel_without_a_toast(app, ws, populated):
    store = RunStore(ws)
    run_id = store.create_run(config.RunConfig.from_dict(
        {"dataset": "pets", "image_size": 32, "base": {"weights": "none"}}), name="stopping")
    store.update_run(run_id, status=RUNNING, started=time.time(), heartbeat=time.time())
    at = app(TRAIN)
    at.query_params["run"] = run_id
    at.run()
    at.button(key=f"train_cancel_{run_id}").click().run()
    assert not at.exception and not at.toast
    assert any(i.value.startswith("Cancel requested: the run stops within seconds")
               for i in at.info)
