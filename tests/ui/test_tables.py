"""`tlcore.ui.tables`: downloads that a spreadsheet opens as data, never as formulas."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tlcore.charts.runs import runs_frame
from tlcore.config import RunConfig
from tlcore.ui.tables import (
    FORMULA_STARTS,
    runs_table_csv,
    spreadsheet_cell,
    spreadsheet_safe,
    to_csv,
)


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


def test_the_runs_csv_has_one_column_per_meaning_with_numbers_and_iso_times():
    config = RunConfig.from_dict({"dataset": "demo"}).to_dict()
    runs = [{"id": run_id, "name": "same", "dataset": "demo", "config": config,
             "status": "completed", "created": 1_700_000_000.123456, "started": 1_700_000_010.0,
             "ended": 1_700_000_450.04, "device": "CPU"} for run_id in ("a" * 12, "b" * 12)]
    frame = runs_frame(runs).assign(tags=[["baseline", "small"], []])
    back = pd.read_csv(io.StringIO(runs_table_csv(frame)), keep_default_na=False)
    # The display label "same (aaaaaa)" repeats name and id: only name and id are kept.
    assert "run" not in back and back["name"].to_list() == ["same", "same"]
    assert back["id"].to_list() == ["a" * 12, "b" * 12]
    # Seconds as a number, not "7m 20s".
    assert "duration" not in back and back["duration_s"].to_list() == [440.0, 440.0]
    # ISO 8601 in UTC, to the second, never nanoseconds.
    assert back["created"].to_list() == ["2023-11-14T22:13:20Z"] * 2
    assert back["tags"].to_list() == ["baseline, small", ""]
