"""The run config: one typed, validated, JSON-serialisable description of a run.

The dashboard form, the CLI (`--config FILE.json --set section.key=value`) and
the tests all build the same `RunConfig`. Each field is declared once below, on
a frozen Pydantic model, with its type, default, bounds or choices and a
one-line description; everything else reads that declaration: validation and
its messages, `field_spec`/`field_specs` (the Train page's widget limits and
tooltips; every reader goes through `field_specs`), `markdown_table` (the
README's table of keys) and `RunConfig.model_json_schema()`. The modules
beside this one build on it: `links` (the Train page's `?cfg=` token),
`presets`, `form` (a form checked field by field), `advice`; `overrides`
parses `--set` values and `fieldspec` reads one field's declaration.

Validation is strict: unknown keys are rejected, strings are never coerced to
numbers, booleans are not numbers, and an integer is accepted wherever a float
is expected (it becomes a float). Every error is a one-line `ConfigError` that
names the field, what is allowed and what was received. A run's config is
written to `runs/<id>/config.json` once and never mutated.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tlcore.backend import AUTO as AUTO_BACKEND
from tlcore.backend import check_distribute
from tlcore.config.fieldspec import Allowed, FieldSpec, spec_of
from tlcore.config.messages import message, received
from tlcore.config.overrides import flatten, parse_overrides
from tlcore.errors import ConfigError

_RUN_PREFIX = "run:"
WeightsKind = Literal["imagenet", "none", "file", "run"]

_WEIGHTS_ALLOWED = "'imagenet', 'none', a weights file path or 'run:<run id>'"
_SUBSET_ALLOWED = "a fraction in (0, 1] or a whole number of images per class up to 100000"


# ---- the weights source ------------------------------------------------------
@dataclass(frozen=True)
class WeightsSource:
    """Where the convolutional base's weights come from: `base.weights`, parsed.

    Attributes:
        kind: "imagenet" (Keras download/cache, or a local file when offline),
            "none" (random init), "file" (a `.weights.h5`/`.h5` file) or "run"
            (the base of a finished run's model).
        path: The weights file, for kind "file".
        run_id: The source run, for kind "run".
    """

    kind: WeightsKind
    path: str | None = None
    run_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> WeightsSource:
        """The source a `base.weights` string names ("imagenet", "none", a path, "run:<id>").

        Raises:
            ConfigError: if `text` is blank or "run:" has no run id.
        """
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(message("base.weights", _WEIGHTS_ALLOWED, text))
        if text in ("imagenet", "none"):
            return cls(kind=text)
        if text.startswith(_RUN_PREFIX):
            run_id = text[len(_RUN_PREFIX):]
            if not run_id:
                raise ConfigError(message("base.weights", "'run:<run id>' with a run id", text))
            return cls(kind="run", run_id=run_id)
        return cls(kind="file", path=text)

    @property
    def text(self) -> str:
        """The `base.weights` string for this source (the inverse of `parse`)."""
        if self.kind == "run":
            return _RUN_PREFIX + (self.run_id or "")
        if self.kind == "file":
            return self.path or ""
        return self.kind


# ---- the declaration -----------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(type(self), exc, data) from None

    # Tell Pydantic this __init__ is its own (as its RootModel does): nested sections
    # are then validated by the parent's schema in one pass, and only the outermost
    # call turns the ValidationError into a ConfigError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class BaseConfig(_Model):
    """The pretrained convolutional base."""

    name: Literal["vgg16"] = Field(
        "vgg16", description="The backbone; VGG16 is the one available.")
    weights: Annotated[str, Allowed(_WEIGHTS_ALLOWED)] = Field(
        "imagenet", description="imagenet, none (random init), a VGG16 notop weights file "
                                "(.h5 or .weights.h5) or run:<id> (an earlier run's base).")
    # Off by default so that a config written before this field existed keeps its
    # meaning: weights none then was a frozen random base under a trained head.
    trainable: bool = Field(
        False, description="Train every base layer from the first epoch, with the head (from "
                           "scratch when weights are none). Off: the base stays frozen in "
                           "phase 1; fine-tuning may unfreeze its last blocks in phase 2.")

    @field_validator("weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        WeightsSource.parse(value)
        return value

    @property
    def source(self) -> WeightsSource:
        """`weights` as a typed `WeightsSource`."""
        return WeightsSource.parse(self.weights)

    @property
    def from_scratch(self) -> bool:
        """Whether the whole network trains from random init (weights none, base trainable)."""
        return self.weights == "none" and self.trainable

    @property
    def random_frozen(self) -> bool:
        """Whether the base keeps random, untrained weights frozen (weights none, not trainable).

        Only the head learns, on random features: this is not a from-scratch baseline.
        """
        return self.weights == "none" and not self.trainable


class HeadConfig(_Model):
    """The dense head on top of the base: pooling -> [Dense -> (BN) -> Dropout]* -> softmax."""

    pooling: Literal["flatten", "avg", "max"] = Field(
        "flatten", description="flatten keeps every position (many parameters, the Keras "
                               "recipe); avg/max pool each feature map to one number (small, "
                               "fast head).")
    # Lax at the list level so a JSON list becomes the tuple; each width stays strict.
    dense: tuple[Annotated[int, Field(strict=True, ge=1, le=8192)], ...] = Field(
        (256,), strict=False, max_length=8,
        description="Widths of the hidden dense layers, first to last, e.g. 512, 128; "
                    "empty for none.")
    activation: Literal["relu", "gelu", "elu", "selu", "tanh", "swish"] = Field(
        "relu", description="Activation of the hidden dense layers.")
    dropout: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="Fraction of dense units dropped while training; fights overfitting.")
    l2: float = Field(
        0.0, ge=0.0, le=1.0, description="Penalty on dense-layer weights (0 = off).")
    batchnorm: bool = Field(
        False, description="Normalise each dense layer's outputs before the activation.")


class TrainConfig(_Model):
    """Phase 1: train the head with the whole base frozen."""

    epochs: int = Field(
        10, ge=1, le=10_000, description="Passes over the training split in phase 1.")
    batch_size: int = Field(
        32, ge=1, le=4096,
        description="Images per step. Lower it if the GPU runs out of memory.")
    optimizer: Literal["adam", "sgd", "rmsprop"] = Field(
        "adam", description="The optimizer of both phases.")
    learning_rate: float = Field(
        1e-3, gt=0.0, le=10.0, description="Step size of the optimizer; 1e-3 suits Adam on a "
                                           "frozen base, 1e-4 when every layer trains from "
                                           "scratch.")
    early_stopping_patience: int = Field(
        5, ge=0, le=10_000, description="Stop after this many epochs without a better val "
                                        "loss (0 = off). The best epoch is kept.")
    class_weight: Literal["auto", "none"] = Field(
        "auto", description="auto weighs rare classes up so imbalance does not bias the model.")
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Same seed, same initial weights and batch order.")
    mixed_precision: Literal["auto", "on", "off"] = Field(
        "auto", description="float16 maths on GPUs (faster, less memory). auto: on when a "
                            "GPU is present.")
    subset: Annotated[float, Allowed(_SUBSET_ALLOWED)] = Field(
        1.0, gt=0.0, le=100_000,
        description="Train on part of the training split: a fraction (0 < s <= 1; 1 = all), "
                    "or a whole number of images per class (s > 1). Stratified and seeded by "
                    "train.seed; the validation and test splits stay whole.")
    backend: Literal["auto", "tensorflow", "jax", "torch"] = Field(
        "auto", description="The Keras backend that computes: tensorflow, jax or torch "
                            "(PyTorch is installed separately). auto: $KERAS_BACKEND, else "
                            "tensorflow. The model is the same on each; export to "
                            "SavedModel or TFLite needs TensorFlow.")
    # "none" by default, so that a config written before this field existed trains as it did.
    distribute: Literal["none", "mirrored"] = Field(
        "none", description="none: one device. mirrored: one run on every GPU of the "
                            "machine (TensorFlow's MirroredStrategy), for long fine-tunes; "
                            "train.batch_size is the batch of all GPUs together, split "
                            "between them. Needs the TensorFlow backend.")

    @field_validator("subset")
    @classmethod
    def _subset_whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("above 1 it counts images per class and must be a whole number")
        return value

    @model_validator(mode="after")
    def _distribute_on_its_backend(self) -> TrainConfig:
        # "auto" is checked where it resolves (launch, the worker): it depends on the machine.
        if self.backend != AUTO_BACKEND:
            check_distribute(self.distribute, self.backend)
        return self


class FineTuneConfig(_Model):
    """Phase 2: unfreeze the last `blocks` VGG16 blocks and continue at a low rate."""

    blocks: int = Field(
        0, ge=0, le=5, description="VGG16 blocks to unfreeze, from the top: 0 = no "
                                   "fine-tuning; 1 = block5 only; 5 = the whole base.")
    epochs: int = Field(
        0, ge=0, le=10_000, description="Epochs of phase 2 (0 = no fine-tuning).")
    learning_rate: float = Field(
        1e-5, gt=0.0, le=10.0, description="Keep it small (1e-5) so the pretrained weights "
                                           "are adjusted, not destroyed.")

    @property
    def enabled(self) -> bool:
        """Whether phase 2 runs at all."""
        return self.blocks > 0 and self.epochs > 0


class AugmentConfig(_Model):
    """Random augmentation, active in training only (Keras preprocessing layers)."""

    flip: Literal["none", "horizontal", "vertical", "both"] = Field(
        "none", description="Random flips of training images.")
    rotation: float = Field(
        0.0, ge=0.0, le=0.5, description="Random rotation, as a fraction of a full turn.")
    zoom: float = Field(
        0.0, ge=0.0, le=0.9, description="Random zoom in or out, as a fraction of the image "
                                         "size.")
    translate: float = Field(
        0.0, ge=0.0, le=0.9, description="Random shift, as a fraction of the image size.")
    contrast: float = Field(
        0.0, ge=0.0, le=0.9, description="Random contrast change, as a contrast factor.")

    @property
    def enabled(self) -> bool:
        """Whether any random augmentation is on."""
        return self.flip != "none" or any(
            v > 0 for v in (self.rotation, self.zoom, self.translate, self.contrast)
        )


class RunConfig(_Model):
    """Everything that defines a run. Build with `RunConfig.from_dict` or keywords."""

    dataset: Annotated[str, Allowed("the name of an imported dataset")] = Field(
        pattern=r"\S", description="The imported dataset to train on.")
    image_size: int = Field(
        150, ge=32, le=512, description="Images are resized to a square of this size. The "
                                        "Keras recipe uses 150; smaller trains much faster.")
    base: BaseConfig = Field(default_factory=BaseConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    # ---- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (lists instead of tuples)."""
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build and validate from a dict; missing keys take defaults, unknown keys fail.

        Raises:
            ConfigError: on unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"A run config must be a JSON object. Received: {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(cls, exc, data) from None

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The run config is not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError(
                "The run config is not valid JSON: it is nested too deeply.") from None
        return cls.from_dict(data)

    # ---- derived views -------------------------------------------------
    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> RunConfig:
        """A new config with `section.key=value` overrides applied (see `apply_overrides`)."""
        return RunConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def flat(self) -> dict[str, Any]:
        """`{"section.key": value}` for tables, diffs and parallel-coordinate plots."""
        return flatten(self.to_dict())


SECTIONS: dict[str, type[BaseModel]] = {
    name: info.annotation for name, info in RunConfig.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}
TOP_LEVEL: tuple[str, ...] = tuple(name for name in RunConfig.model_fields if name not in SECTIONS)


# ---- reading the declaration ---------------------------------------------------
@functools.cache
def _declared() -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    for name, info in RunConfig.model_fields.items():
        if name in SECTIONS:
            for field, section_info in SECTIONS[name].model_fields.items():
                out[f"{name}.{field}"] = spec_of(f"{name}.{field}", section_info)
        else:
            out[name] = spec_of(name, info)
    return out


def field_specs() -> dict[str, FieldSpec]:
    """Every config field by dotted key, in `RunConfig.flat()` order."""
    return dict(_declared())


def field_spec(key: str) -> FieldSpec:
    """The declaration of one config field, e.g. `field_spec("head.dropout")`.

    Raises:
        ConfigError: if `key` is not a config field.
    """
    specs = field_specs()
    if key not in specs:
        raise ConfigError(f"Unknown config key; use one of {', '.join(specs)}. "
                          f"Received: {received(key)}")
    return specs[key]


def markdown_table() -> str:
    """A Markdown table of every config key: key, type, default, allowed values, help."""

    def cell(text: str) -> str:
        # A bare "<run id>" would read as an HTML tag; "|" would end the cell.
        return text.replace("|", "\\|").replace("<", "\\<")

    rows = ["| key | type | default | allowed | help |", "|---|---|---|---|---|"]
    for spec in field_specs().values():
        kind = f"list of {spec.item_type}" if spec.type == "list" else spec.type
        default = "required" if spec.required else f"`{json.dumps(spec.default)}`"
        rows.append(f"| `{spec.key}` | {kind} | {default} | {cell(spec.allowed)} | "
                    f"{cell(spec.help)} |")
    return "\n".join(rows)



# ---- error messages ----------------------------------------------------------------
def _key_words(key: Any) -> str:
    return key if isinstance(key, str) and key.isidentifier() else received(key)


def _unknown_keys(section: str | None, keys: list[Any]) -> ConfigError:
    names = ", ".join(_key_words(k) for k in keys)
    if section is None:
        allowed = ", ".join(sorted((*TOP_LEVEL, *SECTIONS)))
        return ConfigError(f"Unknown config key(s) {names}; allowed top-level keys are "
                           f"{allowed}. Received: {received(keys)}")
    fields = ", ".join(sorted(SECTIONS[section].model_fields))
    return ConfigError(f"Unknown key(s) in {section}: {names}; allowed: {fields}. "
                       f"Received: {received(keys)}")


def _value_at(data: Any, loc: tuple[Any, ...], fallback: Any) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return fallback
    return data


def _config_error(model: type[BaseModel], exc: ValidationError, data: Any) -> ConfigError:
    """The first problem in `exc` as a one-line ConfigError in the project's style."""
    section = next((name for name, cls in SECTIONS.items() if cls is model), None)
    prefix = (section,) if section else ()
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] in ("extra_forbidden", "invalid_key")]
    if unknown:
        where = unknown[0]["loc"][:-1]
        keys = [e["loc"][-1] for e in unknown if e["loc"][:-1] == where]
        return _unknown_keys((prefix + where)[0] if prefix + where else None, keys)
    error = errors[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return cause
    loc = tuple(error["loc"])
    full = prefix + loc
    if not full:
        return ConfigError(f"A run config must be a JSON object. Received: "
                           f"{type(error['input']).__name__}")
    if full[0] in SECTIONS and len(full) == 1:
        return ConfigError(message(full[0], "a JSON object", error["input"]))
    depth = 2 if full[0] in SECTIONS else 1
    path = ".".join(str(p) for p in full[:depth])
    allowed = field_specs()[path].allowed
    if error["type"] == "missing":
        return ConfigError(f"{path} must be {allowed}. Received: nothing")
    value = _value_at(data, loc[:depth - len(prefix)], error["input"])
    return ConfigError(message(path, allowed, value))



# ---- overrides ---------------------------------------------------------------------

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
    for key, value in parse_overrides(overrides):
        parts = key.split(".")
        if len(parts) == 1 and key in TOP_LEVEL:
            out[key] = value
        elif len(parts) == 2 and parts[0] in SECTIONS:
            fields = SECTIONS[parts[0]].model_fields
            if parts[1] not in fields:
                raise ConfigError(
                    f"Unknown key {key}; {parts[0]} has {', '.join(sorted(fields))}. "
                    f"Received: {key}={received(value)}"
                )
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            allowed = ", ".join(TOP_LEVEL) + ", or section.key with section one of " + ", ".join(
                SECTIONS)
            raise ConfigError(f"Unknown override key {key!r}; use {allowed}. Received: {key}")
    return out
