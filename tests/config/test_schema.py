"""Run config: validation and its messages, overrides, JSON, the declaration and its readers."""

import json
import re
from pathlib import Path

import pytest

from tlcore import config
from tlcore.config import (
    PRESETS,
    SECTIONS,
    TOP_LEVEL,
    HeadConfig,
    RunConfig,
    WeightsSource,
    field_spec,
    field_specs,
    markdown_table,
    preset,
)
from tlcore.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


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
        ({"train": {"optimizer": "adagrad"}},
         ["train.optimizer", "adam, sgd, rmsprop", "'adagrad'"]),
        ({"image_size": 16}, ["image_size", "32 to 512", "16"]),
        ({"image_size": 64.0}, ["image_size", "integer"]),
        ({"head": {"dense": [0]}}, ["head.dense", "Received: dense=[0]"]),
        ({"head": {"dense": [256, "wide"]}}, ["head.dense", "1 to 8192", "dense=[256, 'wide']"]),
        ({"head": {"dense": [1] * 9}}, ["head.dense", "0 to 8 items"]),
        ({"head": {"dropout": 1.0}}, ["head.dropout", "[0.0, 1.0)"]),
        ({"head": {"dropout": 1.5}}, ["head.dropout must be a number in [0.0, 1.0). "
                                      "Received: dropout=1.5"]),
        ({"head": {"batchnorm": 1}}, ["head.batchnorm", "true or false", "batchnorm=1"]),
        ({"train": {"learning_rate": 0}}, ["train.learning_rate", "(0.0"]),
        ({"train": {"learning_rate": "0.1"}}, ["train.learning_rate", "learning_rate='0.1'"]),
        ({"train": {"learning_rate": True}}, ["train.learning_rate", "learning_rate=True"]),
        ({"train": {"learning_rate": float("nan")}}, ["train.learning_rate", "nan"]),
        ({"train": {"epochs": True}}, ["train.epochs", "integer"]),
        ({"train": {"epochs": "3"}}, ["train.epochs", "1 to 10000", "epochs='3'"]),
        ({"fine_tune": {"blocks": 6}}, ["fine_tune.blocks", "0 to 5"]),
        ({"augment": {"flip": "diagonal"}}, ["augment.flip", "horizontal"]),
        ({"base": {"weights": ""}}, ["base.weights", "imagenet"]),
        ({"base": {"weights": "run:"}}, ["base.weights", "run id"]),
        ({"colour": 1}, ["Unknown config key", "colour"]),
        ({"head": {"units": 3}}, ["Unknown key", "head", "units"]),
        ({"train": 3}, ["train must be a JSON object"]),
        ({"dataset": "  "}, ["dataset must be the name of an imported dataset"]),
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


def test_the_message_is_the_projects_one_liner():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"dataset": "d", "train": {"optimizer": "adagrad"}})
    assert str(info.value) == ("train.optimizer must be one of adam, sgd, rmsprop. "
                               "Received: optimizer='adagrad'")


def test_sections_built_directly_name_their_section():
    with pytest.raises(ConfigError, match=r"^head\.dropout must be .* Received: dropout=2$"):
        HeadConfig(dropout=2)
    with pytest.raises(ConfigError, match="head.dropout"):
        RunConfig(dataset="d", head={"dropout": 2})


def test_an_integer_is_accepted_as_a_float_and_becomes_one():
    cfg = RunConfig.from_dict({"dataset": "d", "train": {"learning_rate": 1}})
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    lr = cfg.with_overrides(["train.learning_rate=10"]).train.learning_rate
    assert lr == 10.0 and isinstance(lr, float)
    assert json.loads(cfg.to_json())["train"]["learning_rate"] == 1.0


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    '{"dataset": "d", "head": {"dense": ' + "[" * 500 + "]" * 500 + "}}",
    '{"dataset": {"a": {"b": {"c": {"d": [1, [2, [3]]]}}}}}',
    '{"dataset": "d", "augment": ' + json.dumps({"flip": ["x" * 10_000] * 1000}) + "}",
    '{"dataset": "d", "head": {"dense": [' + ", ".join(["1"] * 100_000) + "]}}",
    "[1, 2]",
    "null",
])
def test_garbage_gives_a_one_line_config_error(text):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_json(text)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600


def test_deep_override_value_is_refused_plainly():
    with pytest.raises(ConfigError, match="head.dense"):
        RunConfig(dataset="d").with_overrides(["head.dense=" + "[" * 100_000])


def test_existing_config_json_still_loads():
    # As written by earlier versions: every key present, learning rates as written.
    text = json.dumps({
        "dataset": "demo", "image_size": 64, "base": {"name": "vgg16", "weights": "run:abc123"},
        "head": {"pooling": "avg", "dense": [128, 64], "activation": "gelu", "dropout": 0.3,
                 "l2": 0.0001, "batchnorm": True},
        "train": {"epochs": 3, "batch_size": 16, "optimizer": "sgd", "learning_rate": 0.01,
                  "early_stopping_patience": 0, "class_weight": "none", "seed": 7,
                  "mixed_precision": "off"},
        "fine_tune": {"blocks": 2, "epochs": 1, "learning_rate": 1e-05},
        "augment": {"flip": "both", "rotation": 0.1, "zoom": 0.2, "translate": 0.0,
                    "contrast": 0.5}})
    cfg = RunConfig.from_json(text)
    # Fields added since take their defaults, which keep the old meaning.
    assert cfg.to_json(None) == text.replace(
        '"weights": "run:abc123"}', '"weights": "run:abc123", "trainable": false}').replace(
        '"mixed_precision": "off"}',
        '"mixed_precision": "off", "subset": 1.0, "backend": "auto", "distribute": "none"}')
    assert cfg.head.dense == (128, 64) and cfg.fine_tune.enabled and cfg.augment.enabled


def test_weights_none_in_an_old_config_still_means_a_frozen_random_base():
    # Written before base.trainable existed: the base stayed frozen with random weights.
    old = RunConfig.from_json('{"dataset": "d", "base": {"name": "vgg16", "weights": "none"}}')
    assert old.base.random_frozen and not old.base.from_scratch and not old.base.trainable
    scratch = old.with_overrides(["base.trainable=true"])
    assert scratch.base.from_scratch and not scratch.base.random_frozen
    assert not RunConfig(dataset="d", base={"trainable": True}).base.from_scratch  # imagenet


def test_from_scratch_preset_trains_every_layer_with_its_own_rate_and_epochs():
    cfg = preset("From scratch (baseline)", "d")
    assert cfg.base.from_scratch
    assert (cfg.train.optimizer, cfg.train.learning_rate, cfg.train.epochs) == ("adam", 1e-4, 30)
    assert cfg.image_size == preset(config.DEFAULT_PRESET, "d").image_size


def test_weights_source_parses_every_form():
    assert RunConfig(dataset="d").base.source == WeightsSource(kind="imagenet")
    cfg = RunConfig.from_dict({"dataset": "d", "base": {"weights": "run:abc"}})
    assert cfg.base.source == WeightsSource(kind="run", run_id="abc")
    assert WeightsSource.parse("none").kind == "none"
    assert WeightsSource.parse("/w/vgg.h5") == WeightsSource(kind="file", path="/w/vgg.h5")
    for text in ("imagenet", "none", "/w/vgg.h5", "run:abc"):
        assert WeightsSource.parse(text).text == text
    with pytest.raises(ConfigError, match="run id"):
        WeightsSource.parse("run:")


def test_field_specs_cover_every_key_with_help():
    specs = field_specs()
    assert list(specs) == list(RunConfig(dataset="d").flat())
    assert all(spec.help for spec in specs.values())
    assert set(TOP_LEVEL) | set(SECTIONS) == {k.split(".")[0] for k in specs}


def test_field_spec_reads_the_declaration():
    dropout = field_spec("head.dropout")
    assert (dropout.type, dropout.default, dropout.lower, dropout.upper) == ("float", 0.5, 0.0, 1.0)
    assert not dropout.lower_open and dropout.upper_open
    assert dropout.allowed == "a number in [0.0, 1.0)"
    assert field_spec("train.optimizer").choices == ("adam", "sgd", "rmsprop")
    assert field_spec("train.learning_rate").lower_open
    dense = field_spec("head.dense")
    assert (dense.type, dense.item_type, dense.default) == ("list", "int", [256])
    assert (dense.lower, dense.upper, dense.max_length) == (1, 8192, 8)
    assert field_spec("head.batchnorm").type == "bool"
    dataset = field_spec("dataset")
    assert dataset.required and dataset.type == "str"
    with pytest.raises(ConfigError, match="head.dropout"):
        field_spec("head.drop")


def test_defaults_in_specs_are_the_models_defaults():
    flat = RunConfig(dataset="d").flat()
    for key, spec in field_specs().items():
        if not spec.required:
            assert spec.default == flat[key], key


def test_json_schema_exports_bounds_choices_and_help():
    schema = RunConfig.model_json_schema()
    head = schema["$defs"]["HeadConfig"]
    assert head["additionalProperties"] is False
    assert head["properties"]["dropout"]["exclusiveMaximum"] == 1.0
    assert head["properties"]["dropout"]["description"] == field_spec("head.dropout").help
    assert schema["$defs"]["TrainConfig"]["properties"]["optimizer"]["enum"] == [
        "adam", "sgd", "rmsprop"]
    assert schema["required"] == ["dataset"]


def test_readme_table_matches_the_declaration():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", text,
                      re.DOTALL)
    assert found, "README.md lost its config-table markers"
    assert found.group(1) == markdown_table(), (
        "README.md's config table is out of date; replace the lines between its markers with "
        "the output of: python -c 'from tlcore.config import markdown_table; "
        "print(markdown_table())'")


def test_readme_json_example_shows_the_defaults():
    text = README.read_text(encoding="utf-8")
    example = re.search(r"unknown keys are refused:\n\n```json\n(.*?)```", text, re.DOTALL)
    assert example and json.loads(example.group(1)) == RunConfig(dataset="demo").to_dict()


def test_module_keeps_no_second_copy_of_bounds_or_choices():
    # Limits live only in the declaration; the old per-field constants are gone.
    for name in ("POOLINGS", "OPTIMIZERS", "FLIPS", "IMAGE_SIZE_RANGE", "MAX_FINE_TUNE_BLOCKS",
                 "WEIGHTS_KEYWORDS", "RUN_WEIGHTS_PREFIX"):
        assert not hasattr(config, name)


def test_in_words_says_what_a_form_field_takes():
    assert field_spec("image_size").in_words == "a whole number from 32 to 512"
    assert field_spec("head.dropout").in_words == "a number at least 0 and below 1"
    assert field_spec("train.learning_rate").in_words == "a number above 0 and at most 10"
    assert field_spec("head.dense").in_words == ("up to 8 whole numbers from 1 to 8192, "
                                                 "separated by commas")
    assert field_spec("head.batchnorm").in_words == "on or off"
    assert field_spec("train.optimizer").in_words == "one of adam, sgd, rmsprop"


def test_field_errors_lists_every_problem_in_plain_words():
    errors = config.field_errors({
        "dataset": "pets", "image_size": 16, "head.dense": [256, "wide"], "head.dropout": 1.0,
        "train.optimizer": "adamw", "train.epochs": 5, "head.dense_units": 3})
    assert errors == {
        "image_size": "use a whole number from 32 to 512 (got 16)",
        "head.dense": "use up to 8 whole numbers from 1 to 8192, separated by commas "
                      "(got 'wide')",
        "head.dropout": "use a number at least 0 and below 1 (got 1.0)",
        "train.optimizer": "use one of adam, sgd, rmsprop (got 'adamw')",
        "head.dense_units": "not a setting of a run",
    }
    assert config.field_errors({"head.dense": list(range(1, 10))})["head.dense"].endswith(
        "(got 9 of them)")
    assert config.field_errors({"head.batchnorm": 1}) == {"head.batchnorm": "use on or off (got 1)"}
    assert config.field_errors(RunConfig(dataset="d").flat()) == {}


def test_a_link_token_holds_the_changed_settings_only():
    cfg = RunConfig.from_dict({"dataset": "pets", "image_size": 64,
                               "head": {"dense": [512, 128]}, "base": {"weights": "run:abc"}})
    assert config.changed_settings(cfg) == {"dataset": "pets", "image_size": 64,
                                            "base.weights": "run:abc", "head.dense": [512, 128]}
    token = config.link_token(cfg)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert config.from_link_token(token) == cfg


@pytest.mark.parametrize("token", [
    "not base64!", "e30", "W10", "eyJpbWFnZV9zaXplIjogMTZ9", "x" * 5000,
    "eyJkYXRhc2V0IjogImQiLCAiaGVhZC5ub3BlIjogMX0"])
def test_a_bad_link_token_is_one_config_error(token):
    with pytest.raises(ConfigError) as info:
        config.from_link_token(token)
    assert "\n" not in str(info.value)
