"""Overrides as the CLI takes them (`--set section.key=value`), and flat dotted keys.

`parse_overrides` turns `["train.epochs=3"]` or `{"train.epochs": 3}` into
`(key, value)` pairs, values parsed as JSON where they parse; `apply_overrides`
(in `schema`, which knows the keys) puts them into a config dict. `flatten` is
the inverse view: nested sections to dotted keys.
"""

from __future__ import annotations

import json
from typing import Any

from tlcore.config.messages import received
from tlcore.errors import ConfigError


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


def parse_overrides(overrides: list[str] | dict[str, Any]) -> list[tuple[str, Any]]:
    """The `(dotted key, value)` pairs of overrides, in the order given.

    Args:
        overrides: `["train.epochs=3", "dataset=demo"]` (values parsed as JSON when
            possible) or `{"train.epochs": 3}`.

    Raises:
        ConfigError: if a string override has no `=`.
    """
    if isinstance(overrides, dict):
        return list(overrides.items())
    items = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"An override must look like section.key=value (e.g. train.epochs=3). "
                f"Received: {received(item)}"
            )
        key, raw = item.split("=", 1)
        items.append((key.strip(), parse_value(raw.strip())))
    return items
