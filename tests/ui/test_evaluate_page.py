"""The Evaluate page: empty, with a stored evaluation, transfer report, and no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.evalutil import CLASSES, SIZE, make_dataset, run_config, write_evaluation
from tests.evalutil import make_run as add_eval_run
from tests.ui.markup import shown
from tlcore import jobs
from tlcore.evaluate import classification_metrics, mistakes, png_bytes
from tlcore.store import COMPLETED, QUEUED, RunStore

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/evaluate.py"


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

    jobs_launch = jobs.launch
    jobs.launch = fake_launch
    try:
        at.button(key="eval_train_baseline").click().run()
    finally:
        jobs.launch = jobs_launch
    assert not at.exception
    (config, name), = launched
    assert config.base.weights == "none" and config.dataset == "shapes"
    assert name == "pretrained · from scratch"
    assert "Baseline queued" in _texts(at)
    assert "baseline is queued" in _texts(at)
    assert at.button(key="eval_predict").disabled  # nothing uploaded yet
    assert at.selectbox(key="eval_export_format").value == "keras"


def test_transfer_report_when_baseline_completed(app, ws, evaluated):
    run_id, _ = evaluated
    add_eval_run(ws, run_config("shapes", "none"), name="scratch",
                 val_accuracy=[0.3, 0.4, 0.5], test_accuracy=0.45)
    at = app(PAGE)
    assert not at.exception
    assert "itself the baseline" in _texts(at)  # the newest run, from scratch, comes first
    at.selectbox(key="eval_run").set_value(run_id).run()
    assert not at.exception
    assert "Positive transfer." in "\n".join(s.value for s in at.success)
    assert "raised test accuracy by 40.0 points" in _texts(at)


def test_not_evaluated_and_failing_evaluation_shows_one_line(app, ws):
    make_dataset(ws, "shapes")
    add_eval_run(ws, run_config("shapes"), name="no-model")
    at = app(PAGE)
    assert not at.exception
    assert "Not evaluated on this dataset yet" in _texts(at)
    at.button(key="eval_evaluate").click().run(timeout=120)
    assert not at.exception
    (error,) = at.error
    assert "has no model.keras" in shown(error.value) and "Traceback" not in error.value


def test_the_page_never_imports_tensorflow(ws, evaluated):
    """Render every tab in a fresh interpreter and look at what it imported."""
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60).run()\n"
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


def test_transfer_tab_polls_until_the_baseline_completes(app, ws, evaluated, fragment_timers,
                                                         monkeypatch):
    # No worker process: the test completes the baseline itself.
    monkeypatch.setattr(jobs, "start_queued", lambda ws=None: [])
    baseline = add_eval_run(ws, run_config("shapes", "none"), name="scratch", status=QUEUED,
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
