"""Numeric settings read from environment variables, each checked the same way.

An unset or empty variable gives the default. A malformed one is refused in one
line that names the variable, says what it must be and quotes what it holds:
"TLCORE_MAX_WORKERS must be a positive integer (1 for one GPU). Received:
TLCORE_MAX_WORKERS='two'".
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TypeVar

from tlcore.errors import ConfigError

T = TypeVar("T", int, float)
D = TypeVar("D")


def positive(value: float) -> bool:
    """Above zero and finite."""
    return 0 < value < math.inf


def at_least_zero(value: float) -> bool:
    """Zero or more, and finite."""
    return 0 <= value < math.inf


def env_number(name: str, default: D, must: str, parse: Callable[[str], T] = float,
               valid: Callable[[T], bool] = positive) -> T | D:
    """The number in environment variable `name`, or `default` when it is unset or empty.

    Args:
        name: The variable, e.g. "TLCORE_MAX_WORKERS".
        default: What an unset or empty variable means (returned as is).
        must: What the value must be, for the message: "a positive integer".
        parse: Turns the stripped text into a number; ValueError or OverflowError
            means malformed. `int` refuses "1.5"; `float` reads "2e8".
        valid: Whether a parsed value is allowed; default `positive`.

    Raises:
        ConfigError: "<name> must be <must>. Received: <name>=<text>".
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except (ValueError, OverflowError):
        value = None
    if value is None or not valid(value):
        raise ConfigError(f"{name} must be {must}. Received: {name}={raw!r}")
    return value
