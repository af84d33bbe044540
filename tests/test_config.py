"""Run config: defaults, validation messages, unknown keys, overrides, JSON round trip."""

import json

import pytest

from tlcore.config import PRESETS, RunConfig, preset
from tlcore.errors import ConfigError


def test_defaults_reproduce_the_keras_recipe():
    cfg = RunConfig(dataset="d")
    assert cfg.image_size == 150
    assert cfg.base.weights == "imagenet"
    assert cfg.head.pooling == "flatten" and cfg.head.dense == (256,)
    assert cfg.train.optimizer == "adam" and cfg.train.epochs == 10
    assert not cfg.fine_tune.enabled and not cfg.augment.enabled


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name, "demo")
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["head"]["dense"] == list(cfg.head.dense)


def test_fine_tune_preset_unfreezes_block5_only():
    cfg = preset("Fine-tune block 5", "d")
    assert cfg.fine_tune.blocks == 1 and cfg.fine_tune.enabled


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"train": {"optimizer": "adagrad"}}, ["train.optimizer", "adam, sgd, rmsprop", "'adagrad'"]),
        ({"image_size": 16}, ["image_size", "32 to 512", "16"]),
        ({"image_size": 64.0}, ["image_size", "integer"]),
        ({"head": {"dense": [0]}}, ["head.dense", "Received: dense=[0]"]),
        ({"head": {"dropout": 1.0}}, ["head.dropout", "[0.0, 1.0)"]),
        ({"train": {"learning_rate": 0}}, ["train.learning_rate", "(0.0"]),
        ({"train": {"epochs": True}}, ["train.epochs", "integer"]),
        ({"fine_tune": {"blocks": 6}}, ["fine_tune.blocks", "0 to 5"]),
        ({"augment": {"flip": "diagonal"}}, ["augment.flip", "horizontal"]),
        ({"base": {"weights": ""}}, ["base.weights", "imagenet"]),
        ({"base": {"weights": "run:"}}, ["base.weights", "run id"]),
        ({"colour": 1}, ["Unknown config key", "colour"]),
        ({"head": {"units": 3}}, ["Unknown key", "head", "units"]),
        ({"train": 3}, ["train must be a JSON object"]),
    ],
)
def test_invalid_values_name_field_allowed_and_received(data, fragments):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"dataset": "d", **data})
    for fragment in fragments:
        assert fragment in str(info.value)


def test_dataset_is_required():
    with pytest.raises(ConfigError, match="dataset"):
        RunConfig.from_dict({"image_size": 64})


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        RunConfig(dataset="d", image_size=9999)


def test_overrides_parse_json_values_and_reject_unknown_keys():
    cfg = RunConfig(dataset="d").with_overrides(
        ["train.epochs=3", "head.dense=[64, 32]", "head.batchnorm=true", "dataset=other",
         "base.weights=none"])
    assert cfg.train.epochs == 3 and cfg.head.dense == (64, 32) and cfg.head.batchnorm
    assert cfg.dataset == "other" and cfg.base.weights == "none"
    with pytest.raises(ConfigError, match="train has"):
        cfg.with_overrides(["train.epoch=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        cfg.with_overrides(["train.epochs"])
    with pytest.raises(ConfigError, match="Unknown override key"):
        cfg.with_overrides(["model.depth=3"])


def test_flat_view_has_dotted_keys():
    flat = RunConfig(dataset="d").flat()
    assert flat["train.learning_rate"] == 1e-3 and flat["head.dense"] == [256]
    assert "dataset" in flat and "augment.flip" in flat


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="Keras recipe"):
        preset("Turbo", "d")
