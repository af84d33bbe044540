"""Launch warnings: allowed but suspicious settings, in plain sentences (no TensorFlow)."""

from __future__ import annotations

import pytest

from tlcore.config import RunConfig, preset
from tlcore.config.advice import launch_warnings, median_side

SCRATCH = {"base.weights": "none", "base.trainable": True}
SIZES_48 = {"width": {"min": 40, "max": 56, "median": 48},
            "height": {"min": 40, "max": 56, "median": 48}}


def _cfg(**overrides) -> RunConfig:
    return RunConfig(dataset="d", image_size=64).with_overrides(overrides)


def test_every_preset_on_matching_images_raises_nothing():
    sizes = {"width": {"median": 150}, "height": {"median": 150}}
    for name in ("Keras recipe (150 px)", "Fine-tune block 5", "From scratch (baseline)"):
        assert launch_warnings(preset(name, "d"), sizes) == [], name


@pytest.mark.parametrize("optimizer, rate, warned", [
    ("adam", 0.1, False), ("adam", 0.11, True), ("rmsprop", 10, True),
    ("sgd", 1.0, False), ("sgd", 2.0, True),
])
def test_learning_rate_above_what_the_optimizer_survives(optimizer, rate, warned):
    found = launch_warnings(_cfg(**{"train.optimizer": optimizer, "train.learning_rate": rate}))
    assert bool(found) == warned
    if warned:
        (message,) = found
        assert message.startswith(f"train.learning_rate {rate:g} is very high for {optimizer}")
        assert "diverged" in message


def test_fine_tuning_rate_is_checked_only_when_fine_tuning_runs():
    high = {"fine_tune.learning_rate": 0.5}
    assert launch_warnings(_cfg(**high)) == []
    (message,) = launch_warnings(_cfg(**high, **{"fine_tune.blocks": 1, "fine_tune.epochs": 2}))
    assert message.startswith("fine_tune.learning_rate 0.5 is very high for adam")


@pytest.mark.parametrize("settings, warned", [
    ({**SCRATCH}, True),  # Adam's 1e-3 on a random VGG16: stuck at chance
    ({**SCRATCH, "train.optimizer": "rmsprop", "train.learning_rate": 5e-4}, True),
    ({**SCRATCH, "train.learning_rate": 1e-4}, False),
    ({**SCRATCH, "train.optimizer": "sgd", "train.learning_rate": 0.01}, False),
    ({"base.weights": "none"}, False),  # a frozen random base: only the head learns
    ({}, False),  # pretrained: 1e-3 suits a frozen base
])
def test_a_from_scratch_run_at_a_frozen_base_rate_is_named(settings, warned):
    found = launch_warnings(_cfg(**settings))
    assert bool(found) == warned
    if warned:
        (message,) = found
        assert "trains VGG16 from scratch" in message and "1e-4 is the usual start" in message


def test_batch_size_one():
    (message,) = launch_warnings(_cfg(**{"train.batch_size": 1}))
    assert message.startswith("train.batch_size 1:") and "8 or more" in message
    assert launch_warnings(_cfg(**{"train.batch_size": 2})) == []


def test_image_size_far_from_the_datasets_images():
    assert launch_warnings(_cfg(image_size=192), SIZES_48) == []  # 4x: still fine
    (up,) = launch_warnings(_cfg(image_size=200), SIZES_48)
    assert up.startswith("image_size 200 is over 4 times the dataset's median image side "
                         "(48 px)") and "near 48 px" in up
    big = {"width": {"median": 2000}, "height": {"median": 1000}}
    (down,) = launch_warnings(_cfg(image_size=64), big)
    assert down.startswith("image_size 64 is under 1/4 of the dataset's median image side "
                           "(1500 px)") and "nearer 512 px" in down
    assert launch_warnings(_cfg(image_size=512)) == []  # sizes unknown: not checked


def test_median_side():
    assert median_side(SIZES_48) == 48
    assert median_side({"width": {"median": 30}, "height": {"median": 50}}) == 40
    assert median_side(None) is None
    assert median_side({"width": {"median": None}, "height": {"median": None}}) is None


def test_several_problems_are_all_named_in_config_order():
    found = launch_warnings(_cfg(image_size=512, **{"train.learning_rate": 10,
                                                    "train.batch_size": 1}), SIZES_48)
    assert [m.split()[0] for m in found] == ["image_size", "train.learning_rate",
                                             "train.batch_size"]
