"""Chart selections as Streamlit delivers them: plain data in, plain values out.

Kept free of Streamlit calls so the shapes a browser sends can be tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def custom_values(point: Mapping[str, Any], count: int) -> list[Any] | None:
    """The first `count` values of a selected Plotly point's `customdata`.

    Plotly keeps a point's `customdata` as a list, but Streamlit's selection
    event from the browser delivers one row of a 2-D `customdata` as an object
    keyed by position (`{"0": 2, "1": 1, "2": 0}`). Both shapes read the same.

    Args:
        point: One point of `event.selection.points`.
        count: How many leading values to read.

    Returns:
        The values in position order, or None when the point carries fewer
        (a trace without `customdata`, such as the heatmap under the markers).
    """
    data = point.get("customdata")
    if isinstance(data, Mapping):
        values = []
        for i in range(count):
            for key in (str(i), i):
                if key in data:
                    values.append(data[key])
                    break
            else:
                return None
        return values
    if isinstance(data, Sequence) and not isinstance(data, str) and len(data) >= count:
        return list(data[:count])
    return None


def confusion_cell(points: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The `(true, predicted)` class indexes of a clicked confusion-matrix cell.

    Args:
        points: `event.selection.points` of a chart from
            `tlcore.charts.evaluation.confusion_figure`, whose markers carry
            `[true index, predicted index, count]` as `customdata`.

    Returns:
        The indexes from the first point that carries them, or None when no
        point does.
    """
    for point in points:
        values = custom_values(point, 2)
        if values is not None:
            return int(values[0]), int(values[1])
    return None
