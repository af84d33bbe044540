"""Runs record the dataset version they train on; editing the dataset never changes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import config_for, wait_for
from tlcore import data
from tlcore.errors import DatasetError
from tlcore.runs import launch, logs
from tlcore.store import COMPLETED, FAILED, RunStore

REPO = Path(__file__).resolve().parents[2]


def test_launch_refuses_a_dataset_too_small_to_train(ws):
    data.create_dataset("fresh", ["a", "b"], ws=ws)
    with pytest.raises(DatasetError, match=r"cannot train a classifier: 2 classes have fewer "
                                           r"than min_per_class=5 images; add images"):
        launch.launch(config_for("fresh"), ws=ws)
    assert RunStore(ws).list_runs() == [] and list(ws.runs_dir.iterdir()) == []


def test_a_recorded_version_stays_and_runs_show_gives_it(ws, dataset):
    head = data.load_manifest(dataset, ws)["fingerprint"]
    run_id = RunStore(ws).create_run(config_for(dataset))
    ws.run(run_id).dir.mkdir(parents=True)
    assert data.record_run_version(ws, run_id, dataset) == head
    assert data.pin_run(ws, run_id, dataset) == head
    assert logs.get_run_details(run_id, ws)["dataset_version"] == head
    shown = subprocess.run([sys.executable, "-m", "tlcore", "runs", "show", run_id, "--json"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["dataset_version"] == head

    data.remove_class(dataset, "c", ws=ws)
    assert data.run_version(ws, run_id) == head
    assert data.run_manifest(ws, run_id, dataset)["classes"] == ["a", "b", "c"]
    assert data.run_manifest(ws, run_id, dataset, dataset)["fingerprint"] == head


def test_a_run_from_before_versions_reads_the_head(ws, dataset):
    run_id = RunStore(ws).create_run(config_for(dataset))
    assert data.run_version(ws, run_id) is None
    assert logs.get_run_details(run_id, ws)["dataset_version"] is None
    data.remove_class(dataset, "c", ws=ws)
    assert data.run_manifest(ws, run_id, dataset)["classes"] == ["a", "b"]


@pytest.mark.slow
def test_a_run_trains_and_evaluates_on_its_version_after_an_edit(ws, dataset):
    from tlcore.results.evaluate import evaluate_run

    original = data.load_manifest(dataset, ws)
    run_id = launch.launch(config_for(dataset), ws=ws)
    assert data.run_version(ws, run_id) == original["fingerprint"]
    data.remove_class(dataset, "c", ws=ws)  # while the run waits or trains
    store = RunStore(ws)
    wait_for(lambda: store.get_run(run_id)["status"] in (COMPLETED, FAILED), "the run to end")
    assert store.get_run(run_id)["status"] == COMPLETED, logs.log_tail(run_id, ws=ws)
    assert json.loads(ws.run(run_id).class_names.read_text()) == ["a", "b", "c"]
    evaluation = evaluate_run(run_id, ws=ws, gradcam_per_split=0)
    assert evaluation["dataset_version"] == original["fingerprint"]
    n_test = sum(im["split"] == "test" for im in original["images"])
    assert len(evaluation["splits"]["test"]["samples"]["true"]) == n_test
    assert data.load_manifest(dataset, ws)["classes"] == ["a", "b"]
