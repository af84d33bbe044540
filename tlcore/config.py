"""The run config: one typed, validated, JSON-serialisable description of a run.

The dashboard form, the CLI (`--config FILE.json --set section.key=value`) and
the tests all build the same `RunConfig`. It is validated at construction,
unknown keys are rejected, and every error names the field, what is allowed and
what was received. A run's config is written to `runs/<id>/config.json` once and
never mutated.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from tlcore.errors import ConfigError

IMAGE_SIZE_RANGE = (32, 512)
BACKBONES = ("vgg16",)
POOLINGS = ("flatten", "avg", "max")
ACTIVATIONS = ("relu", "gelu", "elu", "selu", "tanh", "swish")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
CLASS_WEIGHTS = ("auto", "none")
MIXED_PRECISION = ("auto", "on", "off")
FLIPS = ("none", "horizontal", "vertical", "both")
WEIGHTS_KEYWORDS = ("imagenet", "none")
RUN_WEIGHTS_PREFIX = "run:"
MAX_FINE_TUNE_BLOCKS = 5


def _fail(path: str, allowed: str, value: Any) -> None:
    key = path.rsplit(".", 1)[-1]
    raise ConfigError(f"{path} must be {allowed}. Received: {key}={value!r}")


def _int(path: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        _fail(path, f"an integer from {lo} to {hi}", value)


def _float(path: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
           hi_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        _fail(path, f"a number in {left}{lo}, {hi}{right}", value)


def _choice(path: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _fail(path, "one of " + ", ".join(allowed), value)


@dataclass(frozen=True)
class BaseConfig:
    """The pretrained convolutional base.

    Attributes:
        name: Backbone name; only "vgg16".
        weights: "imagenet" (Keras download/cache, or a local file when offline),
            "none" (random init), a path to a `.weights.h5`/`.h5` file, or
            "run:<id>" to take the base from a finished run's model.
    """

    name: str = "vgg16"
    weights: str = "imagenet"

    def __post_init__(self) -> None:
        _choice("base.name", self.name, BACKBONES)
        w = self.weights
        if not isinstance(w, str) or not w.strip():
            _fail("base.weights", "'imagenet', 'none', a weights file path or 'run:<run id>'", w)
        if w.startswith(RUN_WEIGHTS_PREFIX) and not w[len(RUN_WEIGHTS_PREFIX):]:
            _fail("base.weights", "'run:<run id>' with a run id", w)


@dataclass(frozen=True)
class HeadConfig:
    """The dense head on top of the base: pooling -> [Dense -> (BN) -> Dropout]* -> softmax."""

    pooling: str = "flatten"
    dense: tuple[int, ...] = (256,)
    activation: str = "relu"
    dropout: float = 0.5
    l2: float = 0.0
    batchnorm: bool = False

    def __post_init__(self) -> None:
        _choice("head.pooling", self.pooling, POOLINGS)
        dense = self.dense
        if isinstance(dense, list):
            dense = tuple(dense)
            object.__setattr__(self, "dense", dense)
        if not isinstance(dense, tuple) or len(dense) > 8 or any(
            isinstance(u, bool) or not isinstance(u, int) or not 1 <= u <= 8192 for u in dense
        ):
            _fail("head.dense", "a list of 0 to 8 layer widths, each an integer from 1 to 8192",
                  list(dense) if isinstance(dense, tuple) else dense)
        _choice("head.activation", self.activation, ACTIVATIONS)
        _float("head.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        _float("head.l2", self.l2, 0.0, 1.0)
        if not isinstance(self.batchnorm, bool):
            _fail("head.batchnorm", "true or false", self.batchnorm)


@dataclass(frozen=True)
class TrainConfig:
    """Phase 1: train the head with the whole base frozen."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    early_stopping_patience: int = 5
    class_weight: str = "auto"
    seed: int = 0
    mixed_precision: str = "auto"

    def __post_init__(self) -> None:
        _int("train.epochs", self.epochs, 1, 10_000)
        _int("train.batch_size", self.batch_size, 1, 4096)
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _float("train.learning_rate", self.learning_rate, 0.0, 10.0, lo_open=True)
        _int("train.early_stopping_patience", self.early_stopping_patience, 0, 10_000)
        _choice("train.class_weight", self.class_weight, CLASS_WEIGHTS)
        _int("train.seed", self.seed, 0, 2**31 - 1)
        _choice("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


@dataclass(frozen=True)
class FineTuneConfig:
    """Phase 2: unfreeze the last `blocks` VGG16 blocks and continue at a low rate."""

    blocks: int = 0
    epochs: int = 0
    learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        _int("fine_tune.blocks", self.blocks, 0, MAX_FINE_TUNE_BLOCKS)
        _int("fine_tune.epochs", self.epochs, 0, 10_000)
        _float("fine_tune.learning_rate", self.learning_rate, 0.0, 10.0, lo_open=True)

    @property
    def enabled(self) -> bool:
        """Whether phase 2 runs at all."""
        return self.blocks > 0 and self.epochs > 0


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation, active in training only (Keras preprocessing layers).

    `rotation` is a fraction of a full turn, `zoom` and `translate` fractions of
    the image size, `contrast` a contrast factor, as in the Keras layers.
    """

    flip: str = "none"
    rotation: float = 0.0
    zoom: float = 0.0
    translate: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        _choice("augment.flip", self.flip, FLIPS)
        _float("augment.rotation", self.rotation, 0.0, 0.5)
        _float("augment.zoom", self.zoom, 0.0, 0.9)
        _float("augment.translate", self.translate, 0.0, 0.9)
        _float("augment.contrast", self.contrast, 0.0, 0.9)

    @property
    def enabled(self) -> bool:
        """Whether any random augmentation is on."""
        return self.flip != "none" or any(
            v > 0 for v in (self.rotation, self.zoom, self.translate, self.contrast)
        )


SECTIONS: dict[str, type] = {
    "base": BaseConfig,
    "head": HeadConfig,
    "train": TrainConfig,
    "fine_tune": FineTuneConfig,
    "augment": AugmentConfig,
}
TOP_LEVEL = ("dataset", "image_size")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Build with `RunConfig.from_dict` or keywords."""

    dataset: str
    image_size: int = 150
    base: BaseConfig = field(default_factory=BaseConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            _fail("dataset", "the name of an imported dataset", self.dataset)
        _int("image_size", self.image_size, *IMAGE_SIZE_RANGE)
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                _fail(name, f"a {cls.__name__}", getattr(self, name))

    # ---- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (lists instead of tuples)."""
        out = dataclasses.asdict(self)
        out["head"]["dense"] = list(self.head.dense)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build and validate from a dict; missing keys take defaults, unknown keys fail.

        Raises:
            ConfigError: on unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"A run config must be a JSON object. Received: {type(data).__name__}")
        allowed = set(TOP_LEVEL) | set(SECTIONS)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(
                f"Unknown config key(s) {', '.join(unknown)}; allowed top-level keys are "
                f"{', '.join(sorted(allowed))}. Received: {unknown}"
            )
        kwargs: dict[str, Any] = {k: data[k] for k in TOP_LEVEL if k in data}
        if "dataset" not in kwargs:
            raise ConfigError("dataset must be the name of an imported dataset. Received: nothing")
        for name, section_cls in SECTIONS.items():
            section = data.get(name, {})
            if not isinstance(section, dict):
                _fail(name, "a JSON object", section)
            fields = {f.name for f in dataclasses.fields(section_cls)}
            bad = sorted(set(section) - fields)
            if bad:
                raise ConfigError(
                    f"Unknown key(s) in {name}: {', '.join(bad)}; allowed: "
                    f"{', '.join(sorted(fields))}. Received: {bad}"
                )
            kwargs[name] = section_cls(**section)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The run config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # ---- derived views -------------------------------------------------
    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> RunConfig:
        """A new config with `section.key=value` overrides applied (see `apply_overrides`)."""
        return RunConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def flat(self) -> dict[str, Any]:
        """`{"section.key": value}` for tables, diffs and parallel-coordinate plots."""
        return flatten(self.to_dict())


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys; lists are kept as values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def parse_value(text: str) -> Any:
    """Parse a CLI override value: JSON when it parses (numbers, lists, true), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of config dict `data` with overrides applied.

    Args:
        data: A config dict (as from `RunConfig.to_dict`).
        overrides: `["train.epochs=3", "dataset=demo"]` (values parsed as JSON when
            possible) or `{"train.epochs": 3}`.

    Raises:
        ConfigError: if an override is malformed or names an unknown key.
    """
    out = copy.deepcopy(data)
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(
                    f"An override must look like section.key=value (e.g. train.epochs=3). "
                    f"Received: {item!r}"
                )
            key, raw = item.split("=", 1)
            items.append((key.strip(), parse_value(raw.strip())))
    for key, value in items:
        parts = key.split(".")
        if len(parts) == 1 and key in TOP_LEVEL:
            out[key] = value
        elif len(parts) == 2 and parts[0] in SECTIONS:
            fields = {f.name for f in dataclasses.fields(SECTIONS[parts[0]])}
            if parts[1] not in fields:
                raise ConfigError(
                    f"Unknown key {key}; {parts[0]} has {', '.join(sorted(fields))}. "
                    f"Received: {key}={value!r}"
                )
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            allowed = ", ".join(TOP_LEVEL) + ", or section.key with section one of " + ", ".join(
                SECTIONS)
            raise ConfigError(f"Unknown override key {key!r}; use {allowed}. Received: {key}")
    return out


PRESETS: dict[str, dict[str, Any]] = {
    "Keras recipe (150 px)": {},
    "Fast feature extraction (GAP head)": {
        "image_size": 64,
        "head": {"pooling": "avg", "dense": [128], "dropout": 0.3},
        "train": {"epochs": 15, "batch_size": 64},
    },
    "Fine-tune block 5": {
        "train": {"epochs": 5},
        "fine_tune": {"blocks": 1, "epochs": 5, "learning_rate": 1e-5},
    },
}
DEFAULT_PRESET = "Keras recipe (150 px)"


def preset(name: str, dataset: str) -> RunConfig:
    """The named preset as a config for `dataset`.

    Raises:
        ConfigError: if `name` is not a preset.
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset; choose one of {', '.join(PRESETS)}. Received: {name!r}")
    data: dict[str, Any] = copy.deepcopy(PRESETS[name])
    data["dataset"] = dataset
    return RunConfig.from_dict(data)
