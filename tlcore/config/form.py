"""A form's values checked field by field, each problem in everyday words.

The Train page shows every problem at once, next to its field, before a
`RunConfig` is built; the words come from each field's declaration
(`FieldSpec.in_words`).
"""

from __future__ import annotations

from typing import Any

from tlcore.config import schema
from tlcore.config.fieldspec import FieldSpec
from tlcore.config.messages import received
from tlcore.config.schema import SECTIONS, RunConfig
from tlcore.errors import ConfigError


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
            return received(bad[0])
    return received(value)


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
    specs = schema.field_specs()
    errors = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            errors[key] = "not a setting of a run"
        elif not _field_valid(key, value):
            errors[key] = f"use {spec.in_words} (got {_got(spec, value)})"
    return errors

