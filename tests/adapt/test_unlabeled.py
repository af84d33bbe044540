"""Unlabeled target datasets: imported as one placeholder class, never trained on."""

from __future__ import annotations

import pytest

from tests.support.adaptlab import write_domain
from tests.support.runs import config_for
from tlcore import data as datasets_api
from tlcore.data.sources import UNLABELED_CLASS
from tlcore.errors import DatasetError
from tlcore.runs import launch
from tlcore.store import RunStore


def test_a_folder_of_images_imports_unlabeled_whatever_its_folders(ws, tmp_path):
    folder = write_domain(tmp_path / "photos", 5, 0, labeled=True)  # class folders, ignored
    info = datasets_api.import_dataset(folder, "target", ws=ws, unlabeled=True)
    manifest = datasets_api.load_manifest("target", ws)
    assert manifest["labeled"] is False and manifest["classes"] == [UNLABELED_CLASS]
    assert len(manifest["images"]) == 15 and info["name"] == "target"
    assert "labeled" not in datasets_api.load_manifest(
        datasets_api.import_dataset(folder, "labeled", ws=ws)["name"], ws)


def test_training_on_an_unlabeled_dataset_is_refused_before_anything_is_queued(ws, tmp_path):
    datasets_api.import_dataset(write_domain(tmp_path / "flat", 4, 0, labeled=False), "flat",
                                ws=ws, unlabeled=True)
    with pytest.raises(DatasetError, match="has no labels .* tlcore adapt RUN_ID flat"):
        launch.launch(config_for("flat"), ws=ws)
    assert RunStore(ws).list_runs() == []


def test_an_unlabeled_import_refuses_a_csv_and_too_few_images(ws, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("filepath,label\na.png,x\n")
    with pytest.raises(DatasetError, match="not a CSV"):
        datasets_api.import_dataset(csv, "c", ws=ws, unlabeled=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="at least"):
        datasets_api.import_dataset(tmp_path / "empty", "e", ws=ws, unlabeled=True)
    assert not ws.dataset_dir("c").exists() and not ws.dataset_dir("e").exists()
