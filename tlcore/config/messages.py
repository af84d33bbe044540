"""How config errors quote what they received: short, on one line, whatever the input."""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 10, 10, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 120, 120, 60
_MAX_RECEIVED = 200


def received(value: Any) -> str:
    """`repr(value)`, shortened so any input, however large or deep, fits on one short line."""
    text = _REPR.repr(value)
    return text if len(text) <= _MAX_RECEIVED else text[:_MAX_RECEIVED - 3] + "..."


def message(path: str, allowed: str, value: Any) -> str:
    """`"<path> must be <allowed>. Received: <key>=<value>"`, the message of a bad value."""
    key = path.rsplit(".", 1)[-1]
    return f"{path} must be {allowed}. Received: {key}={received(value)}"

