"""One config field as declared, read from its Pydantic field: type, default, bounds, words.

`FieldSpec` is what the UI, the docs and search spaces need to know of a field;
`spec_of` reads it from the field's annotation and metadata. A field's allowed
values come out in two wordings: `allowed` for error messages and the README
("a number in [0.0, 1.0)"), `in_words` for people filling in a form ("a number
at least 0 and below 1").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

FieldType = Literal["int", "float", "bool", "choice", "list", "str"]


@dataclass(frozen=True)
class Allowed:
    """What a field accepts, in words, where bounds and choices cannot say it."""

    text: str


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


def spec_of(key: str, info: FieldInfo) -> FieldSpec:
    """The `FieldSpec` of the field `info` declares, under its dotted `key`."""
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

