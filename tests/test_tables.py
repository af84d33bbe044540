"""`tlcore.ui.tables`: downloads that a spreadsheet opens as data, never as formulas."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tlcore.ui.tables import FORMULA_STARTS, spreadsheet_cell, spreadsheet_safe, to_csv


@pytest.mark.parametrize("text", ['=HYPERLINK("http://127.0.0.1:9/","x")', "+1+1", "-2+3",
                                  "@SUM(A1)", "\t=1", "\r=1"])
def test_text_that_starts_a_formula_gets_a_quote(text):
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["adam", "run 1 = best", "", "'quoted", -0.5, 3, None,
                                   [256, 128]])
def test_everything_else_is_left_alone(value):
    assert spreadsheet_cell(value) == value


def test_frames_keep_numbers_and_dates_and_quote_text_cells():
    frame = pd.DataFrame({
        "name": ["=1+1", "ok", None], "lr": [-0.5, 1e-3, 2.0], "n": [-1, 2, 3],
        "created": pd.to_datetime([0, 1, 2], unit="s"),
        "label": pd.Series(["-x", "y", "@z"], dtype="string"),
    })
    safe = spreadsheet_safe(frame)
    assert safe["name"].to_list()[:2] == ["'=1+1", "ok"] and pd.isna(safe["name"][2])
    assert safe["label"].to_list() == ["'-x", "y", "'@z"]
    pd.testing.assert_frame_equal(safe[["lr", "n", "created"]], frame[["lr", "n", "created"]])
    assert frame["name"][0] == "=1+1"  # the input is not changed


def test_csv_text_has_no_cell_that_starts_a_formula():
    frame = pd.DataFrame({"=cmd": ["@a", "+b"], "value": [-1.5, 2.0]})
    back = pd.read_csv(io.StringIO(to_csv(frame)))
    assert list(back.columns) == ["'=cmd", "value"]
    assert back["'=cmd"].to_list() == ["'@a", "'+b"]
    assert back["value"].to_list() == [-1.5, 2.0]
    assert not any(cell.startswith(FORMULA_STARTS) for cell in back["'=cmd"])
