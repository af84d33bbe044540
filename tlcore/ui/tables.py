"""Tables for download: frames written so that a spreadsheet shows them as data.

A spreadsheet that opens a CSV runs any cell starting with `=`, `+`, `-` or `@`
as a formula: a run named `=HYPERLINK("http://…", "open")` would become a live
link, and other formulas can fetch URLs or, in old programs, start commands.
Following OWASP's advice on CSV injection, text cells starting with one of
those characters, a tab or a carriage return get a leading single quote, which
spreadsheets read as "this is text". Numbers are left as they are.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """One cell as a spreadsheet shows it as data.

    Args:
        value: A cell value.

    Returns:
        `"'" + value` for a string starting with one of `FORMULA_STARTS`;
        any other value unchanged (numbers such as -0.5 stay numbers).
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot start a formula.

    Args:
        frame: Any frame, e.g. the runs table.

    Returns:
        The same frame with `spreadsheet_cell` applied to every text cell and
        column name; numeric and date columns are untouched.
    """
    safe = frame.copy()
    for column in safe.columns:
        dtype = safe[column].dtype
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            safe[column] = safe[column].map(spreadsheet_cell)
    safe.columns = [spreadsheet_cell(c) for c in safe.columns]
    return safe


def to_csv(frame: pd.DataFrame) -> str:
    """`frame` as CSV text (no index column) that a spreadsheet opens as data.

    Args:
        frame: The table to download.

    Returns:
        The CSV text of `spreadsheet_safe(frame)`.
    """
    return spreadsheet_safe(frame).to_csv(index=False)
