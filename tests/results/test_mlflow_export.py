"""Runs exported to a real local MLflow tracking store (SQLite), read back through MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.evalutil import make_run, run_config, write_evaluation
from tlcore.store import RunStore

mlflow = pytest.importorskip("mlflow")
ROOT = Path(__file__).resolve().parents[2]


def _export(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # cwd: MLflow puts a new experiment's artifacts under ./mlruns.
    return subprocess.run([sys.executable, "-m", "tlcore", "runs", "export-mlflow", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_runs_are_logged_once_and_updated_on_a_second_export(ws, tmp_path):
    store = RunStore(ws)
    config = run_config("shapes")
    run_id = make_run(ws, config, name="pretrained", val_accuracy=[0.5, 0.7, 0.65],
                      test_accuracy=0.6)
    store.set_tags(run_id, ["demo", "vgg16"])
    store.set_note(run_id, "Frozen base, flatten head.")
    write_evaluation(ws, run_id, {"dataset": "shapes", "accuracy": 0.6})
    other = make_run(ws, config, name="other", val_accuracy=[0.4])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    result = _export(tmp_path, run_id, other, "--tracking-uri", uri, "--experiment", "demo",
                     "--json")
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    assert [item["created"] for item in first] == [True, True]

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demo")
    (logged,) = client.search_runs([experiment.experiment_id],
                                   filter_string=f"tags.`tlcore.run_id` = '{run_id}'")
    assert logged.info.run_name == "pretrained" and logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == str(config.train.epochs)
    assert logged.data.params["dataset"] == "shapes"
    history = client.get_metric_history(logged.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7), (3, 0.65)]
    assert logged.data.metrics["test_accuracy"] == 0.6
    assert logged.data.tags["tlcore.tags"] == "demo, vgg16"
    assert logged.data.tags["mlflow.note.content"] == "Frozen base, flatten head."
    files = {f.path for f in client.list_artifacts(logged.info.run_id)}
    assert "config.json" in files and "eval" in files
    assert [f.path for f in client.list_artifacts(logged.info.run_id, "eval")] == [
        "eval/shapes.json"]

    # A later epoch and a new tag: exporting again updates the same MLflow run.
    store.add_epoch(run_id, 4, 1, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6,
                                   "val_accuracy": 0.75})
    store.set_tags(run_id, ["demo"])
    result = _export(tmp_path, run_id, "--tracking-uri", uri, "--experiment", "demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"run {run_id}: updated MLflow run {logged.info.run_id}")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    history = client.get_metric_history(logged.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4]  # nothing logged twice
    assert client.get_run(logged.info.run_id).data.tags["tlcore.tags"] == "demo"


def test_an_unknown_run_is_refused_before_anything_is_logged(ws, tmp_path):
    run_id = make_run(ws, run_config("shapes"), val_accuracy=[0.5])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _export(tmp_path, run_id, "0123456789ab", "--tracking-uri", uri)
    assert result.returncode == 2
    assert result.stderr.startswith("error: No run with id '0123456789ab'")
    assert not (tmp_path / "mlflow.db").exists()
