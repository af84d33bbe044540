"""The run config: one typed, validated, JSON-serialisable description of a run.

The dashboard form, the CLI (`--config FILE.json --set section.key=value`) and
the tests all build the same `RunConfig`. Each field is declared once below, on
a frozen Pydantic model, with its type, default, bounds or choices and a
one-line description; everything else reads that declaration: validation and
its messages, `field_spec`/`field_specs` (the Train page's widget limits and
tooltips), `markdown_table` (the README's table of keys) and
`RunConfig.model_json_schema()`.

Validation is strict: unknown keys are rejected, strings are never coerced to
numbers, booleans are not numbers, and an integer is accepted wherever a float
is expected (it becomes a float). Every error is a one-line `ConfigError` that
names the field, what is allowed and what was received. A run's config is
written to `runs/<id>/config.json` once and never mutated.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import reprlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from tlcore.backend import AUTO as AUTO_BACKEND
from tlcore.backend import check_distribute
from tlcore.errors import ConfigError

_RUN_PREFIX = "run:"
WeightsKind = Literal["imagenet", "none", "file", "run"]
FieldType = Literal["int", "float", "bool", "choice", "list", "str"]


@dataclass(frozen=True)
class Allowed:
    """What a field accepts, in words, where bounds and choices cannot say it."""

    text: str


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
            raise ConfigError(_message("base.weights", _WEIGHTS_ALLOWED, text))
        if text in ("imagenet", "none"):
            return cls(kind=text)
        if text.startswith(_RUN_PREFIX):
            run_id = text[len(_RUN_PREFIX):]
            if not run_id:
                raise ConfigError(_message("base.weights", "'run:<run id>' with a run id", text))
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
@dataclass(frozen=True)
class FieldSpec:
    """One config field as declared: what the UI, docs and search spaces need to know.

    Attributes:
        key: The dotted key, e.g. "head.dropout" (top-level fields have no dot).
        type: "int", "float", "bool", "choice", "list" or "str".
        default: The default in JSON form (a list for lists); None when required.
        help: The one-line description.
        required: Whether the field has no default.
        choices: The allowed values of a "choice" field.
        lower: The lower bound of a number, or of each item of a list.
        upper: The upper bound of a number, or of each item of a list.
        lower_open: Whether `lower` itself is excluded.
        upper_open: Whether `upper` itself is excluded.
        item_type: The type of each item of a "list" field.
        min_length: The fewest items of a "list" field.
        max_length: The most items of a "list" field.
        allowed_words: What a "str" field accepts, in words.
    """

    key: str
    type: FieldType
    default: Any
    help: str
    required: bool = False
    choices: tuple[Any, ...] | None = None
    lower: int | float | None = None
    upper: int | float | None = None
    lower_open: bool = False
    upper_open: bool = False
    item_type: FieldType | None = None
    min_length: int | None = None
    max_length: int | None = None
    allowed_words: str | None = None

    @property
    def allowed(self) -> str:
        """What the field accepts, in words: "an integer from 32 to 512", "one of a, b"."""
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices or ())
        if self.type in ("int", "float"):
            return self.allowed_words or _range_words(self.type, self)
        if self.type == "list":
            count = (f"{self.min_length or 0} to {self.max_length} items"
                     if self.max_length is not None else "items")
            return f"a list of {count}, each {_range_words(self.item_type or 'str', self)}"
        return self.allowed_words or "a string"

    @property
    def in_words(self) -> str:
        """What the field accepts in everyday words, for people filling in a form.

        "a whole number from 32 to 512", "a number from 0, below 1", "up to 8 whole
        numbers from 1 to 8192, separated by commas" (a list as a person types it).
        """
        if self.type == "bool":
            return "on or off"
        if self.type == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices or ())
        if self.type in ("int", "float"):
            return _plain_range(self.type, self)
        if self.type == "list":
            count = (f"{self.min_length or 0} to {self.max_length}" if self.min_length
                     else f"up to {self.max_length}") if self.max_length is not None else "any"
            items = _plain_range(self.item_type or "str", self)
            items = items.replace("a whole number", "whole numbers", 1).replace(
                "a number", "numbers", 1)
            return f"{count} {items}, separated by commas"
        return self.allowed_words or "some text"


def _plain_range(kind: str, spec: FieldSpec) -> str:
    """`_range_words` for a form: "a whole number from 1 to 8192", "a number above 0"."""
    if kind not in ("int", "float"):
        return "some text"
    noun = "a whole number" if kind == "int" else "a number"
    lo, hi = spec.lower, spec.upper
    lo_open, hi_open = spec.lower_open, spec.upper_open
    if kind == "int":  # an open bound of a whole number is the next whole number inside
        lo, lo_open = (lo + 1 if lo is not None and lo_open else lo), False
        hi, hi_open = (hi - 1 if hi is not None and hi_open else hi), False
    if lo is not None and hi is not None and not (lo_open or hi_open):
        return f"{noun} from {_number_words(lo)} to {_number_words(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'above' if lo_open else 'at least'} {_number_words(lo)}")
    if hi is not None:
        parts.append(f"{'below' if hi_open else 'at most'} {_number_words(hi)}")
    return " ".join([noun, " and ".join(parts)]) if parts else noun


def _number_words(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_words(kind: str, spec: FieldSpec) -> str:
    lo, hi = spec.lower, spec.upper
    if kind == "int":
        lo = lo + 1 if lo is not None and spec.lower_open else lo
        hi = hi - 1 if hi is not None and spec.upper_open else hi
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        if lo is not None or hi is not None:
            return f"an integer {'>=' if lo is not None else '<='} {lo if lo is not None else hi}"
        return "an integer"
    if kind == "float":
        if lo is not None and hi is not None:
            left, right = "(" if spec.lower_open else "[", ")" if spec.upper_open else "]"
            return f"a number in {left}{lo}, {hi}{right}"
        if lo is not None:
            return f"a number {'>' if spec.lower_open else '>='} {lo}"
        if hi is not None:
            return f"a number {'<' if spec.upper_open else '<='} {hi}"
        return "a number"
    return "a string"


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """Bounds and lengths from a field's Pydantic metadata (annotated-types objects)."""
    out: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            out.update(_constraints(item.metadata))
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(item, name, None) is not None:
                out[name] = getattr(item, name)
    return out


_TYPE_NAMES: dict[Any, FieldType] = {bool: "bool", int: "int", float: "float", str: "str"}


def _spec(key: str, info: FieldInfo) -> FieldSpec:
    annotation, metadata = info.annotation, list(info.metadata)
    kwargs: dict[str, Any] = {}
    if get_origin(annotation) is Literal:
        kwargs.update(type="choice", choices=get_args(annotation))
    elif get_origin(annotation) is tuple:
        item = get_args(annotation)[0]
        item_metadata = list(get_args(item)[1:]) if get_origin(item) is Annotated else []
        item = get_args(item)[0] if get_origin(item) is Annotated else item
        kwargs.update(type="list", item_type=_TYPE_NAMES[item])
        lengths = _constraints(metadata)
        kwargs.update(min_length=lengths.get("min_length"), max_length=lengths.get("max_length"))
        metadata = item_metadata
    else:
        kwargs["type"] = _TYPE_NAMES[annotation]
    bounds = _constraints(metadata)
    number = float if (kwargs.get("item_type") or kwargs["type"]) == "float" else int
    for side, closed, open_ in (("lower", "ge", "gt"), ("upper", "le", "lt")):
        if bounds.get(closed) is not None or bounds.get(open_) is not None:
            bound = bounds[open_] if bounds.get(open_) is not None else bounds[closed]
            kwargs[side] = number(bound)
            kwargs[f"{side}_open"] = bounds.get(open_) is not None
    words = [m.text for m in metadata if isinstance(m, Allowed)]
    required = info.is_required()
    default = None if required else info.get_default(call_default_factory=True)
    return FieldSpec(key=key, default=list(default) if isinstance(default, tuple) else default,
                     help=info.description or "", required=required,
                     allowed_words=words[0] if words else None, **kwargs)


@functools.cache
def _declared() -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    for name, info in RunConfig.model_fields.items():
        if name in SECTIONS:
            for field, section_info in SECTIONS[name].model_fields.items():
                out[f"{name}.{field}"] = _spec(f"{name}.{field}", section_info)
        else:
            out[name] = _spec(name, info)
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
                          f"Received: {_received(key)}")
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


# ---- checking a form, field by field ---------------------------------------------
def _item_ok(spec: FieldSpec, item: Any) -> bool:
    """Whether one item of a "list" field has the item type and lies within the bounds."""
    kind = int if spec.item_type == "int" else float if spec.item_type == "float" else str
    if isinstance(item, bool) or not isinstance(item, kind):
        return False
    if spec.lower is not None and (item <= spec.lower if spec.lower_open else item < spec.lower):
        return False
    return spec.upper is None or (item < spec.upper if spec.upper_open else item <= spec.upper)


def _got(spec: FieldSpec, value: Any) -> str:
    """The part of `value` to quote back: a list's first bad item, or how many it has."""
    if spec.type == "list" and isinstance(value, list | tuple):
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"{len(value)} of them"
        bad = [item for item in value if not _item_ok(spec, item)]
        if bad:
            return _received(bad[0])
    return _received(value)


def _field_valid(key: str, value: Any) -> bool:
    section, _, field = key.partition(".")
    try:
        if field:
            SECTIONS[section](**{field: value})
        else:
            RunConfig(**{"dataset": "dataset", key: value})
    except ConfigError:
        return False
    return True


def field_errors(values: dict[str, Any]) -> dict[str, str]:
    """Every invalid value among `values`, each with its own message in everyday words.

    Each field is checked on its own against its declaration, so a form can show
    every problem at once, next to the field it concerns.

    Args:
        values: Flat config keys and values, e.g. `{"head.dense": [256, "wide"]}`.

    Returns:
        `{key: message}` for the keys whose value is invalid, e.g. `{"head.dense":
        "use up to 8 whole numbers from 1 to 8192, separated by commas (got 'wide')"}`;
        empty when every value is valid. Messages start in lower case so that a form
        can put its field's label in front.
    """
    specs = field_specs()
    errors = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            errors[key] = "not a setting of a run"
        elif not _field_valid(key, value):
            errors[key] = f"use {spec.in_words} (got {_got(spec, value)})"
    return errors


# ---- settings links ------------------------------------------------------------------
LINK_MAX_CHARS = 4096


def changed_settings(cfg: RunConfig) -> dict[str, Any]:
    """The flat keys of `cfg` whose values differ from the declared defaults.

    Required fields (the dataset) are always included.
    """
    specs = field_specs()
    return {key: value for key, value in cfg.flat().items()
            if specs[key].required or value != specs[key].default}


def link_token(cfg: RunConfig) -> str:
    """`cfg` as a short URL-safe text (base64url of the JSON of `changed_settings`)."""
    text = json.dumps(changed_settings(cfg), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def from_link_token(token: str) -> RunConfig:
    """The config a `link_token` describes; missing keys take their defaults.

    Raises:
        ConfigError: if the token is too long, not base64url JSON of an object, or
            names an unknown key or an invalid value.
    """
    allowed = f"the base64url JSON of a settings object, at most {LINK_MAX_CHARS} characters"
    if not isinstance(token, str) or len(token) > LINK_MAX_CHARS:
        raise ConfigError(f"A settings link must hold {allowed}. Received: {_received(token)}")
    try:
        text = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        values = json.loads(text.decode())
    except (binascii.Error, ValueError, RecursionError):
        raise ConfigError(f"A settings link must hold {allowed}. "
                          f"Received: {_received(token)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"A settings link must hold {allowed}. Received: {_received(values)}")
    return RunConfig.from_dict(apply_overrides({}, values))


# ---- error messages ----------------------------------------------------------------
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 10, 10, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 120, 120, 60
_MAX_RECEIVED = 200


def _received(value: Any) -> str:
    """`repr(value)`, shortened so any input, however large or deep, fits on one short line."""
    text = _REPR.repr(value)
    return text if len(text) <= _MAX_RECEIVED else text[:_MAX_RECEIVED - 3] + "..."


def _message(path: str, allowed: str, value: Any) -> str:
    key = path.rsplit(".", 1)[-1]
    return f"{path} must be {allowed}. Received: {key}={_received(value)}"


def _key_words(key: Any) -> str:
    return key if isinstance(key, str) and key.isidentifier() else _received(key)


def _unknown_keys(section: str | None, keys: list[Any]) -> ConfigError:
    names = ", ".join(_key_words(k) for k in keys)
    if section is None:
        allowed = ", ".join(sorted((*TOP_LEVEL, *SECTIONS)))
        return ConfigError(f"Unknown config key(s) {names}; allowed top-level keys are "
                           f"{allowed}. Received: {_received(keys)}")
    fields = ", ".join(sorted(SECTIONS[section].model_fields))
    return ConfigError(f"Unknown key(s) in {section}: {names}; allowed: {fields}. "
                       f"Received: {_received(keys)}")


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
        return ConfigError(_message(full[0], "a JSON object", error["input"]))
    depth = 2 if full[0] in SECTIONS else 1
    path = ".".join(str(p) for p in full[:depth])
    allowed = _declared()[path].allowed
    if error["type"] == "missing":
        return ConfigError(f"{path} must be {allowed}. Received: nothing")
    value = _value_at(data, loc[:depth - len(prefix)], error["input"])
    return ConfigError(_message(path, allowed, value))


# ---- overrides ---------------------------------------------------------------------
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
    except (json.JSONDecodeError, RecursionError):
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
                    f"Received: {_received(item)}"
                )
            key, raw = item.split("=", 1)
            items.append((key.strip(), parse_value(raw.strip())))
    for key, value in items:
        parts = key.split(".")
        if len(parts) == 1 and key in TOP_LEVEL:
            out[key] = value
        elif len(parts) == 2 and parts[0] in SECTIONS:
            fields = SECTIONS[parts[0]].model_fields
            if parts[1] not in fields:
                raise ConfigError(
                    f"Unknown key {key}; {parts[0]} has {', '.join(sorted(fields))}. "
                    f"Received: {key}={_received(value)}"
                )
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            allowed = ", ".join(TOP_LEVEL) + ", or section.key with section one of " + ", ".join(
                SECTIONS)
            raise ConfigError(f"Unknown override key {key!r}; use {allowed}. Received: {key}")
    return out


# ---- presets -------------------------------------------------------------------------
# How a network with every layer trainable and random init trains (the from-scratch
# baseline). Adam at 1e-4: VGG16 has no BatchNorm, and from random init the 1e-3 that
# suits a head on frozen features tends to stall it (dead ReLUs) or make it diverge;
# 1e-4 is the usual rate for a plain VGG trained from scratch. 30 epochs, three times
# the head-only recipe's 10, because every layer starts from noise; early stopping
# still ends the run once the val loss stops improving. Small images (32-64 px) train
# fine this way; each epoch runs the whole network, so 150 px costs about 5x 64 px.
SCRATCH_TRAIN: dict[str, Any] = {"optimizer": "adam", "learning_rate": 1e-4, "epochs": 30}

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
    # The baseline of the Keras recipe: same data, size and head, every layer trained
    # from random init (`tlcore.results.transfer.baseline_config` of the recipe).
    "From scratch (baseline)": {
        "base": {"weights": "none", "trainable": True},
        "train": dict(SCRATCH_TRAIN),
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
