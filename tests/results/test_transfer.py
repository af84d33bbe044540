"""Transfer report: positive, negative and unclear transfer from stored metrics (no training)."""

from __future__ import annotations

import pytest

from tests.support.evalutil import make_run, run_config
from tlcore.config import DEFAULT_PRESET, preset
from tlcore.errors import ConfigError, RunStateError
from tlcore.results.transfer import (
    NEGATIVE,
    POSITIVE,
    UNCLEAR,
    baseline_candidates,
    baseline_config,
    comparison,
    find_baseline,
    transfer_report,
)
from tlcore.store import QUEUED, RUNNING


def _scratch(dataset="shapes", **overrides):
    return run_config(dataset, "none", **{"base.trainable": True, **overrides})


def _pair(ws, pretrained, baseline, test=(None, None), weights="imagenet"):
    run = make_run(ws, run_config("shapes", weights), val_accuracy=pretrained,
                   test_accuracy=test[0])
    base = make_run(ws, _scratch(), val_accuracy=baseline, test_accuracy=test[1])
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
    assert report["compared"] == (
        "ImageNet-pretrained (frozen base, head trained) vs trained from scratch (every layer, "
        "random init); same data, image size, head and seed.")


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
    other = make_run(ws, _scratch("other", **{"head.dense": [16]}), val_accuracy=[0.5])
    with pytest.raises(ConfigError) as info:
        transfer_report(run, other, ws=ws)
    assert "dataset: 'shapes' vs 'other'" in str(info.value)
    assert "head.dense: [8] vs [16]" in str(info.value)
    with pytest.raises(ConfigError, match="must train from scratch"):
        transfer_report(run, run, ws=ws)
    with pytest.raises(ConfigError, match="pass the pretrained run first"):
        transfer_report(other, run, ws=ws)
    running = make_run(ws, _scratch(), status=RUNNING)
    with pytest.raises(RunStateError, match="running, not completed"):
        transfer_report(run, running, ws=ws)


def test_random_frozen_features_are_not_a_baseline(ws):
    """weights none with a frozen base (every such run before base.trainable existed)."""
    run = make_run(ws, run_config("shapes", "imagenet"), val_accuracy=[0.9], test_accuracy=0.9)
    frozen = make_run(ws, run_config("shapes", "none"), val_accuracy=[0.4], test_accuracy=0.4)
    assert find_baseline(run, ws=ws) is None
    with pytest.raises(ConfigError, match="must train from scratch .* base.trainable=false"):
        transfer_report(run, frozen, ws=ws)
    with pytest.raises(ConfigError, match="keeps random features frozen"):
        baseline_config(run_config("shapes", "none"))


def test_baseline_config_trains_every_layer_from_random_init():
    config = run_config("shapes", "imagenet", **{
        "train.epochs": 7, "train.optimizer": "sgd", "train.learning_rate": 0.01,
        "train.batch_size": 16, "train.seed": 3, "augment.flip": "horizontal",
        "fine_tune.blocks": 2, "fine_tune.epochs": 4})
    base_cfg = baseline_config(config)
    assert base_cfg.base.from_scratch
    assert (base_cfg.train.optimizer, base_cfg.train.learning_rate) == ("adam", 1e-4)
    assert base_cfg.train.epochs == 30 and not base_cfg.fine_tune.enabled
    # Same data, size, head, batch, augmentation and seed.
    for key in ("dataset", "image_size", "head.dense", "head.dropout", "train.batch_size",
                "train.seed", "augment.flip", "train.early_stopping_patience"):
        assert base_cfg.flat()[key] == config.flat()[key], key
    # A long pretrained run gets a baseline at least as long (both phases together).
    long = baseline_config(config.with_overrides({"train.epochs": 40}))
    assert long.train.epochs == 44
    assert baseline_config(config.with_overrides({"train.epochs": 9000, "fine_tune.epochs": 9000})
                           ).train.epochs == 10_000
    # The "From scratch (baseline)" preset is the baseline of the default recipe.
    assert baseline_config(preset(DEFAULT_PRESET, "d")) == preset("From scratch (baseline)", "d")
    with pytest.raises(ConfigError, match="already trains from scratch"):
        baseline_config(base_cfg)


def test_comparison_says_what_each_side_trains():
    assert comparison(run_config("d", "run:abc", **{"fine_tune.blocks": 1,
                                                   "fine_tune.epochs": 2})).startswith(
        "Pretrained on your run abc (frozen base, head trained, then the last 1 block "
        "fine-tuned) vs trained from scratch (every layer, random init)")
    assert comparison(run_config("d", "imagenet", **{"base.trainable": True})).startswith(
        "ImageNet-pretrained (every layer trained) vs")


def test_baseline_config_and_find_baseline(ws):
    config = run_config("shapes", "imagenet", **{"train.epochs": 7})
    base_cfg = baseline_config(config)

    run = make_run(ws, config, val_accuracy=[0.9])
    assert find_baseline(run, ws=ws) is None
    make_run(ws, run_config("shapes", "none"), val_accuracy=[0.5])  # frozen random: no match
    make_run(ws, _scratch(**{"head.dense": [16]}), val_accuracy=[0.5])  # other head: no match
    queued = make_run(ws, base_cfg, status=QUEUED)
    assert find_baseline(run, ws=ws) is None
    assert find_baseline(run, ws=ws, statuses=(QUEUED, RUNNING)) == queued
    first = make_run(ws, base_cfg, val_accuracy=[0.5])
    newest = make_run(ws, base_cfg, val_accuracy=[0.6])
    assert find_baseline(run, ws=ws) == newest != first
    assert find_baseline(newest, ws=ws) is None  # a scratch run has no baseline


def test_unequal_budgets_and_other_differences_are_named_in_the_summary(ws):
    run = make_run(ws, run_config("shapes", "imagenet", **{"train.epochs": 10}),
                   val_accuracy=[0.9], test_accuracy=0.9)
    base = make_run(ws, _scratch(**{"train.epochs": 3, "image_size": 48}),
                    val_accuracy=[0.6], test_accuracy=0.6)
    report = transfer_report(run, base, ws=ws)
    assert report["verdict"] == POSITIVE
    assert report["summary"] == (
        "Starting from ImageNet raised test accuracy by 30.0 points over training from "
        "scratch. Unequal training budgets: pretrained 10 epochs, baseline 3 epochs. The "
        "baseline trained for fewer epochs, which favours the pretrained run. The runs also "
        "differ in image_size (32 vs 48).")
    assert report["budget"] == {"pretrained": "10 epochs", "baseline": "3 epochs",
                                "equal": False}
    assert report["differences"] == [
        {"setting": "training budget", "pretrained": "10 epochs", "baseline": "3 epochs"},
        {"setting": "image_size", "pretrained": 32, "baseline": 48}]
    assert report["compared"].endswith("; same dataset, but not the same image_size.")


def test_the_budget_counts_each_phase(ws):
    tuned = run_config("shapes", "imagenet", **{"fine_tune.blocks": 1, "fine_tune.epochs": 2})
    run = make_run(ws, tuned, val_accuracy=[0.9], test_accuracy=0.9)
    base = make_run(ws, baseline_config(tuned), val_accuracy=[0.6], test_accuracy=0.6)
    report = transfer_report(run, base, ws=ws)
    assert report["budget"]["pretrained"] == "3 epochs + 2 fine-tuning epochs"
    assert "Unequal training budgets: pretrained 3 epochs + 2 fine-tuning epochs, baseline 30 " \
           "epochs." in report["summary"]
    assert "favours" not in report["summary"]  # the baseline trained longer
    settings = [d["setting"] for d in report["differences"]]
    assert settings == ["training budget", "fine_tune.blocks", "train.learning_rate"]
    same = make_run(ws, _scratch(**{"train.learning_rate": 0.001}), val_accuracy=[0.5])
    plain = make_run(ws, run_config("shapes", "imagenet"), val_accuracy=[0.9])
    assert transfer_report(plain, same, ws=ws)["differences"] == []


def test_any_completed_from_scratch_run_of_the_dataset_is_a_candidate_closest_first(ws):
    config = run_config("shapes", "imagenet")
    run = make_run(ws, config, val_accuracy=[0.9])
    assert baseline_candidates(run, ws=ws) == []
    other_head = make_run(ws, _scratch(**{"head.dense": [16]}), val_accuracy=[0.5])
    hand_made = make_run(ws, _scratch(**{"train.epochs": 3}), val_accuracy=[0.5])
    make_run(ws, _scratch("other"), val_accuracy=[0.5])  # another dataset
    make_run(ws, run_config("shapes", "none"), val_accuracy=[0.5])  # frozen random features
    make_run(ws, _scratch(), status=RUNNING)  # not finished
    assert baseline_candidates(run, ws=ws) == [hand_made, other_head]
    matching = make_run(ws, baseline_config(config), val_accuracy=[0.5])
    assert baseline_candidates(run, ws=ws) == [matching, hand_made, other_head]
    assert baseline_candidates(matching, ws=ws) == []
    # A run that differs in more than how it trains is still compared, and says so.
    report = transfer_report(run, other_head, ws=ws)
    assert "head.dense ([8] vs [16])" in report["summary"]
