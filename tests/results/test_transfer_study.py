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
from tlcore.cli import main
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.data.splits import subset_rows
from tlcore.errors import ConfigError
from tlcore.results import transfer_study as transferstudy
from tlcore.runs import children, queue
from tlcore.store import RunStore


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
    assert len(transferstudy.parse_sizes(list(range(2, 14)))) == transferstudy.MAX_SIZES == 12
    with pytest.raises(ConfigError, match=r"^sizes must be at most 12 per study \(each queues "
                                          r"two runs\); pick fewer. Received: 1000 sizes$"):
        transferstudy.parse_sizes(",".join(map(str, range(2, 1002))))
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


def _rows(pairs, test_images=None):
    return [{"setting": s, "images_per_class": n, "test_accuracy": a, "val_accuracy": a,
             "train_images": None, "status": "completed" if a is not None else "running",
             "test_images": test_images if a is not None else None, "run_id": f"{s}{n}"}
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
    study = transferstudy.latest(ws, "shapes")
    assert [r["extra"]["setting"] for r in transferstudy.runs_of(ws, study)] == [
        "pretrained", "pretrained", "scratch", "scratch"]  # queued in this order
    assert f"study {study}: 4 of 4 runs finished" in result.stderr.splitlines()
    assert all(r["test_images"] for r in rows)  # each gap is read against its test set


def test_the_reading_waits_for_pending_runs_and_says_how_many():
    rows = _rows([("pretrained", 5, 0.7), ("scratch", 5, 0.3),
                  ("pretrained", 50, 0.85), ("scratch", 50, None)])
    assert transferstudy.gaps(rows) == pytest.approx({5: 40.0})
    text = transferstudy.reading(rows)
    assert text.startswith("Pretrained features beat training from scratch at every size "
                           "finished so far (+40 points at 5 images per class): positive")
    assert "Still to finish: 1 of 4 runs (size 50); the reading covers the finished sizes " \
           "only." in text
    assert transferstudy.progress(rows) == {"finished": 3, "active": 1, "ended": 0, "total": 4,
                                            "pending_sizes": [50]}
    assert transferstudy.progress_text(rows) == "3 of 4 runs finished; 1 queued or running"
    rows[-1]["status"] = "failed"
    assert "1 run ended without a result and is left out." in transferstudy.reading(rows)
    assert transferstudy.progress_text(rows) == "3 of 4 runs finished; 1 failed or cancelled"


def test_a_gap_within_the_test_sets_resolution_is_no_clear_difference():
    """One test image of 60 is 1.7 points: a 2-point gap is noise, a 30-point one is not."""
    low, high = transferstudy.wilson_interval(0.5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    one_image = _rows([("pretrained", 5, 51 / 60), ("scratch", 5, 50 / 60)], test_images=60)
    (pair,) = transferstudy.pairs(one_image)
    assert pair["outcome"] == transferstudy.UNCLEAR and pair["low"] < 0 < pair["high"]
    text = transferstudy.reading(one_image)
    assert text.startswith("No clear difference at any size (+2 points at 5 images per class, "
                           "95% interval -12 to +15).")
    assert "scored on 60 test images (one image is 1.7 points)" in text
    clear = _rows([("pretrained", 5, 0.9), ("scratch", 5, 0.6),
                   ("pretrained", 50, 0.95), ("scratch", 50, 0.94)], test_images=60)
    assert [p["outcome"] for p in transferstudy.pairs(clear)] == [
        transferstudy.HELPED, transferstudy.UNCLEAR]
    assert transferstudy.reading(clear).startswith(
        "Transfer helped with 5 images per class; no clear difference with 50 (+30 points at 5 "
        "images per class, 95% interval +15 to +44; +1 point at 50 images per class")
    # Without the test-set size (older runs), a gap under a point is no clear difference.
    assert transferstudy.pairs(_rows([("pretrained", 5, 0.805), ("scratch", 5, 0.8)]))[0][
        "outcome"] == transferstudy.UNCLEAR


def test_a_study_queues_its_pretrained_runs_first_and_refuses_too_many_sizes(
        ws, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])  # no training here
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=32)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    study = transferstudy.launch(ws, "shapes", [10, 2, 5], ["image_size=32"])
    assert [(r["extra"]["setting"], r["extra"]["images_per_class"])
            for r in transferstudy.runs_of(ws, study)] == [
        ("pretrained", 2), ("pretrained", 5), ("pretrained", 10),
        ("scratch", 2), ("scratch", 5), ("scratch", 10)]
    with pytest.raises(ConfigError, match="sizes must be at most 12"):
        transferstudy.launch(ws, "shapes", list(range(2, 1002)), ["image_size=32"])
    assert main(["study", "transfer", "shapes", "--sizes", ",".join(map(str, range(2, 1002))),
                 "--detach"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: sizes must be at most 12 per study") and "\n" not in err
    assert len(RunStore(ws).list_runs()) == 6  # nothing more queued
