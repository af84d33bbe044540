"""The Evaluate page: empty, with a stored evaluation, transfer report, and no TensorFlow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.evalutil import (
    CLASSES,
    SIZE,
    engine_model,
    make_dataset,
    run_config,
    write_evaluation,
)
from tests.support.evalutil import make_run as add_eval_run
from tests.support.markup import shown
from tlcore.results.evaluate import classification_metrics, mistakes, png_bytes
from tlcore.results.export import FORMATS, QUANTIZED
from tlcore.results.transfer import baseline_config
from tlcore.runs import launch, queue
from tlcore.store import COMPLETED, QUEUED, RunStore
from tlcore.ui import studio

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/evaluate.py"


def _texts(at) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "warning", "success",
                                  "error") for e in getattr(at, kind)]
    return "\n".join(shown(str(p)) for p in parts)


def stored_evaluation(ws, run_id: str, dataset: str = "shapes") -> dict:
    """A fixed evaluation JSON as `evaluate_run` stores it, with one Grad-CAM overlay."""
    manifest = json.loads((ws.dataset_dir(dataset) / "manifest.json").read_text())
    splits = {}
    for split, seed in (("test", 0), ("val", 1)):
        files = [im["file"] for im in manifest["images"] if im["split"] == split]
        y = np.array([im["label"] for im in manifest["images"] if im["split"] == split])
        probs = np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), len(y))
        m = classification_metrics(y, probs, list(CLASSES))
        m["mistakes"] = mistakes(y, probs, list(CLASSES), files)
        m["samples"] = {"file": files, "true": y.tolist(),
                        "predicted": probs.argmax(1).tolist(),
                        "confidence": probs.max(1).round(6).tolist()}
        splits[split] = m
    cam = ws.run(run_id).dir / "eval" / "gradcam" / dataset / "1" / "test-0.png"
    cam.parent.mkdir(parents=True)
    cam.write_bytes(png_bytes(np.zeros((SIZE, SIZE, 3), np.uint8)))
    splits["test"]["mistakes"][0]["gradcam"] = f"gradcam/{dataset}/1/test-0.png"
    evaluation = {"run_id": run_id, "dataset": dataset, "trained_on": "shapes",
                  "domain_shift": dataset != "shapes", "classes": list(CLASSES),
                  "image_size": SIZE, "created": 1.8e9, "eval_seconds": 1.0, "splits": splits}
    write_evaluation(ws, run_id, evaluation)
    return evaluation


@pytest.fixture
def evaluated(ws):
    """Dataset "shapes", a completed ImageNet run with a stored evaluation."""
    make_dataset(ws, "shapes")
    run_id = add_eval_run(ws, run_config("shapes", "imagenet"), name="pretrained",
                          val_accuracy=[0.6, 0.8, 0.9], test_accuracy=0.85)
    return run_id, stored_evaluation(ws, run_id)


def test_empty_workspace(app):
    at = app(PAGE)
    assert not at.exception
    assert "No completed runs yet" in _texts(at)


def test_completed_run_with_stored_evaluation(app, ws, evaluated):
    run_id, ev = evaluated
    at = app(PAGE)
    assert not at.exception, at.exception
    assert at.selectbox(key="eval_run").value == run_id
    assert at.selectbox(key="eval_dataset").value == "shapes"
    assert at.button(key="eval_evaluate").label == "Re-evaluate"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == f"{ev['splits']['test']['accuracy'] * 100:.1f}%"
    assert metrics["Images"] == str(ev["splits"]["test"]["n"])

    # A confusion-matrix cell: its images and their count.
    at.selectbox(key="eval_cell_true").set_value("disc")
    at.selectbox(key="eval_cell_pred").set_value("disc").run()
    assert not at.exception
    s = ev["splits"]["test"]["samples"]
    hits = sum(t == p == 0 for t, p in zip(s["true"], s["predicted"], strict=True))
    assert f"**{hits}** image" in _texts(at)

    # The val split, and the mistakes gallery.
    at.radio(key="eval_split").set_value("val").run()
    assert not at.exception
    assert at.metric[0].value == f"{ev['splits']['val']['accuracy'] * 100:.1f}%"
    assert "most confident first" in _texts(at)

    # No baseline yet: one click queues the matching from-scratch config.
    launched = []

    def fake_launch(config, name=None, ws=None):
        launched.append((config, name))
        return RunStore(ws).create_run(config, name)

    jobs_launch = launch.launch
    launch.launch = fake_launch
    try:
        at.button(key="eval_train_baseline").click().run()
    finally:
        launch.launch = jobs_launch
    assert not at.exception
    (config, name), = launched
    assert config.base.from_scratch and config.dataset == "shapes"
    assert (config.train.optimizer, config.train.learning_rate) == ("adam", 1e-4)
    assert name == "pretrained · from scratch"
    assert "Baseline queued" in _texts(at)
    assert "baseline is queued" in _texts(at)
    assert at.button(key="eval_predict").disabled  # nothing uploaded yet
    assert at.selectbox(key="eval_export_format").value == "keras"


def test_transfer_report_when_baseline_completed(app, ws, evaluated):
    run_id, _ = evaluated
    add_eval_run(ws, baseline_config(run_config("shapes", "imagenet")), name="scratch",
                 val_accuracy=[0.3, 0.4, 0.5], test_accuracy=0.45)
    at = app(PAGE)
    assert not at.exception
    assert "itself the baseline" in _texts(at)  # the newest run, from scratch, comes first
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    assert "Positive transfer." in "\n".join(s.value for s in at.success)
    assert "raised test accuracy by 40.0 points" in _texts(at)
    shown = re.sub(r"\\(.)", r"\1", _texts(at))  # Markdown escapes of plain()
    assert ("Compared: ImageNet-pretrained (frozen base, head trained) vs trained from scratch "
            "(every layer, random init); same data, image size, head and seed.") in shown


def test_random_frozen_features_are_not_a_baseline(app, ws, evaluated):
    """A run with weights none and a frozen base, as runs were before base.trainable."""
    run_id, _ = evaluated
    add_eval_run(ws, run_config("shapes", "none"), name="frozen random",
                 val_accuracy=[0.3, 0.4, 0.5], test_accuracy=0.45)
    at = app(PAGE)
    assert "neither pretrained nor a from-scratch baseline" in _texts(at)
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception and not at.success  # no verdict against random features
    assert at.button(key="eval_train_baseline")
    assert "every layer trained from random weights (adam at 0.0001, 30 epochs)" in _texts(at)


@pytest.mark.parametrize("link, message", [
    ("nope", "Run 'nope' not found"),
    ("running", "is running, not completed"),
])
def test_a_link_to_a_run_that_cannot_be_shown_says_so(app, ws, evaluated, link, message):
    run_id, _ = evaluated
    if link == "running":
        link = add_eval_run(ws, run_config("shapes"), status="running")
    at = app(PAGE)
    at.query_params["run"] = link
    at.run()
    assert not at.exception
    (warning,) = at.warning
    assert message in warning.value
    assert at.selectbox(key="eval_run").value == run_id  # the picker still offers the rest


def test_not_evaluated_and_failing_evaluation_shows_one_line(app, ws):
    make_dataset(ws, "shapes")
    add_eval_run(ws, run_config("shapes"), name="no-model")
    at = app(PAGE)
    assert not at.exception
    assert "Not evaluated on this dataset yet" in _texts(at)
    at.button(key="eval_evaluate").click().run(timeout=120)
    assert not at.exception
    (error,) = at.error
    assert "has no model in" in shown(error.value) and "Traceback" not in error.value


def test_the_page_never_imports_tensorflow(ws, evaluated):
    """Render every tab in a fresh interpreter and look at what it imported."""
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(studio.APP)!r}, default_timeout=60).run()\n"
        f"at.switch_page({PAGE!r}).run()\n"
        "assert not at.exception, at.exception\n"
        "assert at.title[0].value == 'Evaluate', at.title\n"
        "at.radio(key='eval_split').set_value('val').run()\n"
        "assert not at.exception, at.exception\n"
        "print('TF' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'clean')\n"
    )
    env = {**os.environ, "TLCORE_HOME": str(ws.root), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "clean"


@pytest.mark.slow
def test_predict_tab_classifies_uploads_through_the_shared_predict_path(app, ws):
    """The Predict tab and the Train page's "Try it" both use `tlcore.ui.predict`."""
    make_dataset(ws, "shapes")
    config = run_config("shapes")
    add_eval_run(ws, config, model=engine_model(config, len(CLASSES)), name="tiny")
    at = app(PAGE)
    pictures = [(f"p{i}.png", png_bytes(np.full((SIZE, SIZE, 3), 60 * i, np.uint8)), "image/png")
                for i in (1, 2)]
    at.file_uploader(key="eval_upload").set_value(pictures).run()
    at.button(key="eval_predict").click().run(timeout=180)
    assert not at.exception and not at.error
    keys = [c.key for c in at.get("plotly_chart")]
    assert {"eval_predict_chart_0", "eval_predict_chart_1"} <= set(keys)
    captions = [shown(c) for img in at.image for c in img.captions]
    assert captions.count("Grad-CAM") == 2 and {"p1.png", "p2.png"} <= set(captions)


def test_export_tab_lists_quantised_formats_and_states_their_report(app, ws, evaluated):
    run_id, _ = evaluated
    report = {"format": "tflite-dynamic", "quantization": QUANTIZED["tflite-dynamic"],
              "model_bytes": 15 * 2**20, "float32_bytes": 60 * 2**20, "size_ratio": 0.25,
              "test_images": 120, "test_accuracy": 0.84, "keras_test_accuracy": 0.85,
              "accuracy_delta": -0.01, "note": None}
    path = ws.run(run_id).export_zip("tflite-dynamic")
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.tflite", b"tflite")
        zf.writestr("report.json", json.dumps(report))
    at = app(PAGE)
    fmt = at.selectbox(key="eval_export_format")
    assert fmt.options == list(FORMATS.values())
    assert {"tflite-dynamic", "tflite-float16"} <= set(FORMATS)
    fmt.set_value("tflite-dynamic").run()
    assert not at.exception
    assert at.get("download_button")[0].label.startswith(f"Download {path.name}")
    assert ("Int8 weights (dynamic-range quantisation): size 15.0 MB (25% of float32), test "
            "accuracy 84.0% (-1.0 pts vs the Keras model, 120 images)") in _texts(at)
    # Which size is which: the model file inside the zip, and the zip downloaded.
    zip_mb = path.stat().st_size / 2**20
    assert at.get("download_button")[0].label == f"Download {path.name} (zip, {zip_mb:.1f} MB)"
    assert f"Sizes: model file 15.0 MB, download (zip) {zip_mb:.1f} MB." in _texts(at)
    # A float32 format has no report to state.
    at.selectbox(key="eval_export_format").set_value("keras").run()
    assert "of float32" not in _texts(at)


def test_transfer_tab_polls_until_the_baseline_completes(app, ws, evaluated, fragment_timers,
                                                         monkeypatch):
    # No worker process: the test completes the baseline itself.
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    baseline = add_eval_run(ws, baseline_config(run_config("shapes", "imagenet")),
                            name="scratch", status=QUEUED,
                            val_accuracy=[0.3, 0.4, 0.5], test_accuracy=0.45)
    at = app(PAGE)
    assert not at.exception
    assert "baseline is queued" in _texts(at)
    assert fragment_timers["transfer_live"]
    RunStore(ws).update_run(baseline, status=COMPLETED)
    fragment_timers.clear()
    at.run()  # the tab's next tick
    assert "Positive transfer." in "\n".join(s.value for s in at.success)
    assert fragment_timers["transfer_live"] is None  # nothing left to wait for


def _cell(at) -> tuple[str, str]:
    return at.selectbox(key="eval_cell_true").value, at.selectbox(key="eval_cell_pred").value


def test_another_run_or_dataset_starts_from_its_own_cell(app, ws, evaluated):
    run_id, _ = evaluated
    other = add_eval_run(ws, run_config("shapes", "imagenet", **{"train.seed": 1}),
                         name="other")
    stored_evaluation(ws, other)
    make_dataset(ws, "shapes2")
    stored_evaluation(ws, other, "shapes2")
    at = app(PAGE)
    assert at.selectbox(key="eval_run").value == other
    true, pred = _cell(at)
    assert true != pred  # the most-confused cell
    at.selectbox(key="eval_cell_true").set_value("disc")
    at.selectbox(key="eval_cell_pred").set_value("disc").run()
    assert "of **disc** predicted as **disc**" in _texts(at)

    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    true, pred = _cell(at)
    assert true != pred

    at.selectbox(key="eval_run").set_value(other).run()
    at.selectbox(key="eval_cell_true").set_value("disc")
    at.selectbox(key="eval_cell_pred").set_value("disc").run()
    at.selectbox(key="eval_dataset").set_value("shapes2").run()
    assert not at.exception
    true, pred = _cell(at)
    assert true != pred


def test_the_transfer_study_shows_its_lines_and_reading_and_refuses_bad_sizes(app, ws,
                                                                             evaluated):
    run_id, _ = evaluated
    store = RunStore(ws)
    pretrained = run_config("shapes", "imagenet")
    for size, (pre, scratch) in {2: (0.6, 0.3), 5: (0.8, 0.7)}.items():
        for setting, accuracy, cfg in (("pretrained", pre, pretrained),
                                       ("scratch", scratch, baseline_config(pretrained))):
            study_run = add_eval_run(ws, cfg, name=f"transfer-{size}pc-{setting}",
                                     val_accuracy=[accuracy], test_accuracy=accuracy)
            store.merge_extra(study_run, study="aaaaaaaaaaaa", setting=setting,
                              images_per_class=size)
    at = app(PAGE)
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    assert ("Pretrained features beat training from scratch at every size tried (+30 points "
            "at 2 images per class, +10 points at 5 images per class): positive transfer. "
            "The gap narrows") in _texts(at)
    chart = next(c for c in at.get("plotly_chart") if c.key == "eval_study_chart")
    spec = json.loads(chart.proto.spec)
    assert [t.get("name") for t in spec["data"] if t.get("mode") == "lines+markers"] == [
        "Pretrained base", "From scratch"]
    at.text_input(key="eval_study_sizes").input("1, 5").run()
    at.button(key="eval_study_start").click().run()
    assert "sizes must be at least 2 images per class. Received: '1, 5'" in [
        shown(e.value) for e in at.error]
    assert len(store.list_runs()) == 5  # nothing queued


def _click_chart_point(at, key: str, point: dict) -> None:
    """Run the page with the selection event a browser sends when a chart's point is clicked.

    AppTest has no Plotly chart widget to click, so the chart's widget state, as
    the frontend serialises it, is added to the next run's widget states.
    """
    [chart] = [c for c in at.get("plotly_chart") if c.key == key]
    states = chart.root.get_widget_states()
    state = states.widgets.add()
    state.id = chart.proto.id
    state.string_value = json.dumps({"selection": {
        "points": [point], "point_indices": [point["point_index"]], "box": [], "lasso": []}})
    at._run(states)


@pytest.mark.parametrize("customdata", [[1, 1, 0], {"0": 1, "1": 1, "2": 0}],
                         ids=["list", "object"])
def test_clicking_a_confusion_cell_shows_its_images(app, ws, evaluated, customdata):
    run_id, ev = evaluated
    at = app(PAGE)
    true, pred = _cell(at)
    assert true != pred  # the most-confused cell; the click picks a diagonal one
    point = {"curve_number": 1, "point_number": 4, "point_index": 4,
             "x": CLASSES[1], "y": CLASSES[1], "customdata": customdata}
    _click_chart_point(at, f"eval_confusion_{run_id}_shapes", point)
    assert not at.exception, at.exception
    assert _cell(at) == (CLASSES[1], CLASSES[1])
    s = ev["splits"]["test"]["samples"]
    hits = sum(t == p == 1 for t, p in zip(s["true"], s["predicted"], strict=True))
    assert f"**{hits}** image{'s' if hits != 1 else ''} of **{CLASSES[1]}** predicted as " \
           f"**{CLASSES[1]}**" in _texts(at)


def test_any_from_scratch_run_of_the_dataset_can_be_the_baseline(app, ws, evaluated):
    """A hand-made baseline counts; the tab names what differs, the budget first."""
    run_id, _ = evaluated
    hand_made = add_eval_run(ws, run_config("shapes", "none", **{
        "base.trainable": True, "train.epochs": 2, "train.learning_rate": 1e-4}),
        name="my scratch", val_accuracy=[0.3, 0.4], test_accuracy=0.45)
    at = app(PAGE)
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    assert "No from-scratch baseline yet" not in _texts(at)
    picker = at.selectbox(key=f"eval_transfer_baseline_{run_id}")
    assert picker.value == hand_made
    assert picker.options == ["my scratch · 2 epochs · same data, image size, head and seed"]
    assert "Positive transfer." in "\n".join(s.value for s in at.success)
    assert ("Unequal training budgets: pretrained 3 epochs, baseline 2 epochs. The baseline "
            "trained for fewer epochs, which favours the pretrained run.") in _texts(at)
    (differences,) = [d.value for d in at.dataframe if "setting" in d.value.columns]
    assert differences.to_dict("records") == [
        {"setting": "training budget", "pretrained": "3 epochs", "baseline": "2 epochs"},
        {"setting": "train.learning_rate", "pretrained": "0.001", "baseline": "0.0001"}]
    assert at.button(key="eval_train_baseline")  # the like-for-like one is still offered

    matching = add_eval_run(ws, baseline_config(run_config("shapes", "imagenet")),
                            name="scratch", val_accuracy=[0.3, 0.9], test_accuracy=0.9)
    at = app(PAGE)
    at.selectbox(key="eval_run").set_value(run_id).run()
    picker = at.selectbox(key=f"eval_transfer_baseline_{run_id}")
    assert picker.value == matching and picker.options[0].endswith("the matching baseline")
    assert "Negative transfer." in "\n".join(s.value for s in at.warning)
    assert "Unequal training budgets: pretrained 3 epochs, baseline 30 epochs." in _texts(at)
    assert "eval_train_baseline" not in [b.key for b in at.button]
    picker.set_value(hand_made).run()
    assert not at.exception
    assert "Positive transfer." in "\n".join(s.value for s in at.success)


def test_the_per_class_table_sizes_every_column_to_show_support(app, ws, evaluated):
    at = app(PAGE)
    assert not at.exception
    (table,) = [d for d in at.dataframe if "support" in d.value.columns]
    columns = json.loads(table.proto.columns)
    assert columns["support"]["label"] == "Support" and columns["support"]["width"]
    assert all(columns[c].get("width") for c in ("precision", "recall", "f1", "auc", "support"))
    assert columns["class"].get("pinned")  # the class stays in view if the table scrolls


def test_a_study_with_pending_runs_reads_finished_pairs_only_and_shows_progress(
        app, ws, evaluated, monkeypatch):
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])  # the queued run waits
    run_id, _ = evaluated
    store = RunStore(ws)
    pretrained = run_config("shapes", "imagenet")
    for size, setting, accuracy, status in ((2, "pretrained", 0.6, COMPLETED),
                                            (2, "scratch", 0.3, COMPLETED),
                                            (5, "pretrained", 0.8, COMPLETED),
                                            (5, "scratch", None, QUEUED)):
        cfg = pretrained if setting == "pretrained" else baseline_config(pretrained)
        study_run = add_eval_run(ws, cfg, name=f"transfer-{size}pc-{setting}", status=status,
                                 val_accuracy=[accuracy] if accuracy else None,
                                 test_accuracy=accuracy)
        store.merge_extra(study_run, study="bbbbbbbbbbbb", setting=setting,
                          images_per_class=size)
    at = app(PAGE)
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    texts = _texts(at)
    assert ("Pretrained features beat training from scratch at every size finished so far "
            "(+30 points at 2 images per class): positive transfer.") in texts
    assert "Still to finish: 1 of 4 runs (size 5); the reading covers the finished sizes " \
           "only." in texts
    (progress,) = at.get("progress")
    assert progress.proto.text == "Study progress: 3 of 4 runs finished; 1 queued or running"
    assert progress.proto.value == 75
    chart = next(c for c in at.get("plotly_chart") if c.key == "eval_study_chart")
    spec = json.loads(chart.proto.spec)
    pre = next(t for t in spec["data"] if t.get("name") == "Pretrained base")
    assert pre["marker"]["symbol"] == ["circle", "circle-open"]
    at.text_input(key="eval_study_sizes").input(",".join(map(str, range(2, 1002)))).run()
    at.button(key="eval_study_start").click().run()
    assert [shown(e.value) for e in at.error] == [
        "sizes must be at most 12 per study (each queues two runs); pick fewer. Received: "
        "1000 sizes"]
    assert len(store.list_runs()) == 5  # nothing queued
