"""Chart selections in both shapes Streamlit delivers: lists, and objects keyed by position."""

from __future__ import annotations

import pytest

from tlcore.ui.selection import confusion_cell, custom_values

# A click on a confusion-matrix marker: what Plotly keeps, and what the browser sends.
AS_LIST = {"curve_number": 1, "point_index": 5, "customdata": [2, 1, 0]}
AS_OBJECT = {"curve_number": 1, "point_index": 5, "customdata": {"0": 2, "1": 1, "2": 0}}


@pytest.mark.parametrize("point", [AS_LIST, AS_OBJECT], ids=["list", "object"])
def test_a_clicked_cell_reads_the_same_in_either_shape(point):
    assert custom_values(point, 3) == [2, 1, 0]
    assert confusion_cell([point]) == (2, 1)


def test_numpy_floats_and_integer_keys_are_read_as_indexes():
    assert confusion_cell([{"customdata": [2.0, 0.0, 7.0]}]) == (2, 0)
    assert confusion_cell([{"customdata": {0: 1, 1: 2}}]) == (1, 2)


def test_a_point_without_the_cell_is_skipped():
    heatmap = {"curve_number": 0, "point_index": [2, 1], "z": 0.4}
    assert custom_values(heatmap, 2) is None
    assert custom_values({"customdata": {"0": 2}}, 2) is None
    assert custom_values({"customdata": [2]}, 2) is None
    assert confusion_cell([heatmap]) is None
    assert confusion_cell([heatmap, AS_OBJECT]) == (2, 1)
    assert confusion_cell([]) is None
