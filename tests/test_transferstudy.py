"""The transfer study: training subsets, the study's plan and reading, both lines end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tlcore import data as datasets_api
from tlcore.charts import evaluation as evalcharts
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.data.splits import subset_rows
from tlcore.errors import ConfigError
from tlcore.results import transfer_study as transferstudy
from tlcore.runs import children


def test_a_subset_is_stratified_seeded_and_keeps_every_class():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
    assert subset_rows(labels, 1.0, 0) is None  # the whole split
    rows = subset_rows(labels, 3, seed=7)
    assert np.bincount(labels[rows]).tolist() == [3, 3, 3]
    assert rows.tolist() == sorted(rows.tolist())
    assert subset_rows(labels, 3, seed=7).tolist() == rows.tolist()  # same seed, same rows
    assert subset_rows(labels, 3, seed=8).tolist() != rows.tolist()
    assert np.bincount(labels[subset_rows(labels, 5, 0)]).tolist() == [5, 4, 5]  # all of 1
    assert np.bincount(labels[subset_rows(labels, 0.5, 0)]).tolist() == [5, 2, 3]
    assert np.bincount(labels[subset_rows(labels, 0.01, 0)]).tolist() == [1, 1, 1]


def test_subset_and_sizes_are_checked():
    with pytest.raises(ConfigError, match=r"train.subset must be a fraction in \(0, 1\] or a "
                                          r"whole number of images per class"):
        RunConfig.from_dict({"dataset": "d", "train": {"subset": 2.5}})
    with pytest.raises(ConfigError, match="train.subset"):
        RunConfig.from_dict({"dataset": "d", "train": {"subset": 0}})
    assert RunConfig.from_dict({"dataset": "d"}).train.subset == 1.0  # old configs: all
    assert transferstudy.parse_sizes("25, 5,10,5") == [5, 10, 25]
    for bad in ("5,x", "1,5", ""):
        with pytest.raises(ConfigError, match="sizes must"):
            transferstudy.parse_sizes(bad)
    with pytest.raises(ConfigError, match="base.weights must name pretrained weights"):
        transferstudy.plan("d", [5], {"base.weights": "none"})


def test_the_plan_pairs_each_size_with_its_from_scratch_baseline():
    runs = transferstudy.plan("d", [5, 50], ["image_size=64", "head.pooling=avg"])
    assert [(s, n) for s, n, _ in runs] == [("pretrained", 5), ("scratch", 5),
                                            ("pretrained", 50), ("scratch", 50)]
    (_, _, pre), (_, _, scratch) = runs[:2]
    assert pre.base.weights == "imagenet" and not pre.base.trainable
    assert scratch.base.from_scratch and scratch.train.learning_rate == 1e-4
    for config in (pre, scratch):
        assert config.train.subset == 5 and config.image_size == 64
        assert config.head.pooling == "avg"


def _rows(pairs):
    return [{"setting": s, "images_per_class": n, "test_accuracy": a, "val_accuracy": a,
             "train_images": None, "status": "completed", "run_id": f"{s}{n}"}
            for s, n, a in pairs]


def test_the_reading_says_positive_negative_or_mixed_transfer():
    positive = _rows([("pretrained", 5, 0.7), ("scratch", 5, 0.3),
                      ("pretrained", 50, 0.85), ("scratch", 50, 0.8)])
    assert transferstudy.gaps(positive) == pytest.approx({5: 40.0, 50: 5.0})
    text = transferstudy.reading(positive)
    assert text.startswith("Pretrained features beat training from scratch at every size")
    assert "+40 points at 5 images per class" in text and "gap narrows" in text
    negative = _rows([("pretrained", 5, 0.2), ("scratch", 5, 0.3)])
    assert "negative transfer" in transferstudy.reading(negative)
    mixed = _rows([("pretrained", 5, 0.6), ("scratch", 5, 0.4),
                   ("pretrained", 50, 0.7), ("scratch", 50, 0.8)])
    assert transferstudy.reading(mixed).startswith(
        "Transfer helped with 5 images per class and hurt with 50")
    figure = evalcharts.transfer_study_figure(positive)
    fills = [t for t in figure.data if t.fill == "toself"]
    assert len(fills) == 1 and "46,160,67" in fills[0].fillcolor  # the gap: positive, green
    assert [t.name for t in figure.data if t.mode == "lines+markers"] == [
        "Pretrained base", "From scratch"]


@pytest.mark.slow
def test_the_study_produces_both_lines_on_a_tiny_dataset(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "2")
    folder = write_class_folders(tmp_path / "src", ("disc", "square"), per_class=10, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    weights = tmp_path / "vgg16_notop.weights.h5"  # a seeded random "pretrained" base
    keras.utils.set_random_seed(0)
    keras.applications.VGG16(weights=None, include_top=False,
                             input_shape=(32, 32, 3)).save_weights(weights)
    result = subprocess.run(
        [sys.executable, "-m", "tlcore", "study", "transfer", "shapes", "--sizes", "2,5",
         "--set", "image_size=32", "--set", f"base.weights={weights}",
         "--set", "train.epochs=2", "--set", "train.batch_size=8", "--json"],
        capture_output=True, text=True, env=children.worker_env(ws), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["setting"], r["images_per_class"]) for r in rows] == [
        ("pretrained", 2), ("pretrained", 5), ("scratch", 2), ("scratch", 5)]
    for row in rows:
        assert row["status"] == "completed" and 0.0 <= row["test_accuracy"] <= 1.0
        assert row["train_images"] == 2 * row["images_per_class"]  # two classes
    assert set(transferstudy.gaps(rows)) == {2, 5}
    assert transferstudy.latest(ws, "shapes") is not None
