"""Widget settings read from the run config's declaration: bounds, choices and help.

The Train page spreads these into Streamlit widgets, so a field's limits,
options and tooltip live only in `tlcore.config`. The functions here return
plain keyword dicts; they do not import Streamlit themselves.
"""

from __future__ import annotations

import math
from typing import Any

from tlcore.config import FieldSpec

# Digits kept when a bound is moved onto a slider's step grid (hides 0.9500000000000001).
_GRID_DIGITS = 10


def _number(spec: FieldSpec, value: float) -> int | float:
    return float(value) if spec.type == "float" else int(value)


def number_input_kwargs(spec: FieldSpec, step: int | float) -> dict[str, Any]:
    """`min_value`, `max_value`, `step` and `help` for `st.number_input`.

    A number input takes any typed value, so an open bound becomes the nearest
    value inside it (the next float, or the next integer).

    Args:
        spec: An "int" or "float" field.
        step: The increment of the +/- buttons.
    """
    lo, hi = spec.lower, spec.upper
    if spec.type == "float":
        lo = math.nextafter(lo, math.inf) if lo is not None and spec.lower_open else lo
        hi = math.nextafter(hi, -math.inf) if hi is not None and spec.upper_open else hi
    else:
        lo = lo + 1 if lo is not None and spec.lower_open else lo
        hi = hi - 1 if hi is not None and spec.upper_open else hi
    return {"min_value": None if lo is None else _number(spec, lo),
            "max_value": None if hi is None else _number(spec, hi),
            "step": _number(spec, step), "help": spec.help}


def slider_kwargs(spec: FieldSpec, step: int | float, value: Any = None) -> dict[str, Any]:
    """`min_value`, `max_value`, `step` and `help` for `st.slider`.

    A slider moves on a grid of steps from the lower bound, so an open bound
    becomes the nearest step inside it (dropout < 1 with step 0.05 ends at 0.95).

    Args:
        spec: An "int" or "float" field with both bounds.
        step: The slider's step.
        value: The value the slider will show; the range widens to include it, so
            a valid config from elsewhere (the CLI, a cloned run) always fits.
    """
    lo, hi = spec.lower, spec.upper
    # The grid is lower + k * step; an open bound moves to the nearest grid point inside.
    if spec.upper_open:
        hi = round(lo + (math.ceil((hi - lo) / step - 1e-9) - 1) * step, _GRID_DIGITS)
    if spec.lower_open:
        lo = round(lo + step, _GRID_DIGITS)
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = min(lo, value), max(hi, value)
    return {"min_value": _number(spec, lo), "max_value": _number(spec, hi),
            "step": _number(spec, step), "help": spec.help}


def selectbox_kwargs(spec: FieldSpec) -> dict[str, Any]:
    """`options` and `help` for `st.selectbox` over a "choice" field."""
    return {"options": list(spec.choices or ()), "help": spec.help}
