"""Transfer report: positive, negative and unclear transfer from stored metrics (no training)."""

from __future__ import annotations

import pytest

from tests.evalutil import make_run, run_config
from tlcore.errors import ConfigError, RunStateError
from tlcore.store import QUEUED, RUNNING
from tlcore.transfer import (
    NEGATIVE,
    POSITIVE,
    UNCLEAR,
    baseline_config,
    find_baseline,
    transfer_report,
)


def _pair(ws, pretrained, baseline, test=(None, None), weights="imagenet"):
    run = make_run(ws, run_config("shapes", weights), val_accuracy=pretrained,
                   test_accuracy=test[0])
    base = make_run(ws, run_config("shapes", "none"), val_accuracy=baseline,
                    test_accuracy=test[1])
    return run, base


def test_positive_transfer(ws):
    run, base = _pair(ws, [0.70, 0.85, 0.90], [0.40, 0.55, 0.60, 0.65], test=(0.88, 0.62))
    report = transfer_report(run, base, ws=ws)
    assert report["verdict"] == POSITIVE and report["criterion"] == "test_accuracy"
    rows = {m["metric"]: m for m in report["metrics"]}
    assert rows["test_accuracy"]["delta"] == pytest.approx(0.26)
    assert rows["best_val_accuracy"]["delta"] == pytest.approx(0.90 - 0.65)
    # Area under the val curve: mean over the 3 epochs both runs have.
    assert rows["val_accuracy_auc"]["pretrained"] == pytest.approx((0.70 + 0.85 + 0.90) / 3)
    assert rows["val_accuracy_auc"]["baseline"] == pytest.approx((0.40 + 0.55 + 0.60) / 3)
    assert report["curves"]["baseline"]["epoch"] == [1, 2, 3, 4]
    assert "ImageNet" in report["summary"] and "raised test accuracy by 26.0 points" in \
        report["summary"]


def test_negative_transfer_from_own_run_uses_val_without_test(ws):
    run, base = _pair(ws, [0.50, 0.55], [0.60, 0.72], weights="run:abcdef123456")
    report = transfer_report(run, base, ws=ws)
    assert report["verdict"] == NEGATIVE and report["criterion"] == "best_val_accuracy"
    assert report["delta"] == pytest.approx(0.55 - 0.72)
    assert report["source_label"] == "your run abcdef123456"
    assert "lowered best val accuracy by 17.0 points" in report["summary"]


def test_small_difference_is_no_clear_difference(ws):
    run, base = _pair(ws, [0.80], [0.80], test=(0.805, 0.80))
    assert transfer_report(run, base, ws=ws)["verdict"] == UNCLEAR


def test_mismatched_pair_names_the_differing_fields(ws):
    run = make_run(ws, run_config("shapes", "imagenet"), val_accuracy=[0.9])
    other = make_run(ws, run_config("other", "none", **{"head.dense": [16]}),
                     val_accuracy=[0.5])
    with pytest.raises(ConfigError) as info:
        transfer_report(run, other, ws=ws)
    assert "dataset: 'shapes' vs 'other'" in str(info.value)
    assert "head.dense: [8] vs [16]" in str(info.value)
    with pytest.raises(ConfigError, match="must train from scratch"):
        transfer_report(run, run, ws=ws)
    with pytest.raises(ConfigError, match="pass the pretrained run first"):
        transfer_report(other, run, ws=ws)
    running = make_run(ws, run_config("shapes", "none"), status=RUNNING)
    with pytest.raises(RunStateError, match="running, not completed"):
        transfer_report(run, running, ws=ws)


def test_baseline_config_and_find_baseline(ws):
    config = run_config("shapes", "imagenet", **{"train.epochs": 7})
    base_cfg = baseline_config(config)
    assert base_cfg.base.weights == "none" and base_cfg.train.epochs == 7
    assert base_cfg.with_overrides({"base.weights": "imagenet"}) == config
    with pytest.raises(ConfigError, match="already trains from scratch"):
        baseline_config(base_cfg)

    run = make_run(ws, config, val_accuracy=[0.9])
    assert find_baseline(run, ws=ws) is None
    make_run(ws, run_config("shapes", "none"), val_accuracy=[0.5])  # other epochs: no match
    queued = make_run(ws, base_cfg, status=QUEUED)
    assert find_baseline(run, ws=ws) is None
    assert find_baseline(run, ws=ws, statuses=(QUEUED, RUNNING)) == queued
    first = make_run(ws, base_cfg, val_accuracy=[0.5])
    newest = make_run(ws, base_cfg, val_accuracy=[0.6])
    assert find_baseline(run, ws=ws) == newest != first
    assert find_baseline(newest, ws=ws) is None  # a scratch run has no baseline
