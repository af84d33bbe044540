"""Tables for download: frames written so that a spreadsheet shows them as data.

A spreadsheet that opens a CSV runs any cell starting with `=`, `+`, `-` or `@`
as a formula: a run named `=HYPERLINK("http://…", "open")` would become a live
link, and other formulas can fetch URLs or, in old programs, start commands.
Following OWASP's advice on CSV injection, text cells starting with one of
those characters, a tab or a carriage return get a leading single quote, which
spreadsheets read as "this is text". Numbers are left as they are.

`runs_table_csv` writes the runs table for a spreadsheet: one column per
meaning, numbers as numbers and times as ISO 8601 text.
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


def runs_table_csv(frame: pd.DataFrame) -> str:
    """The runs table as CSV text: one column per meaning, numbers and times a program reads.

    The display label `run` (the name, with the id when names repeat) goes, as the
    `name` and `id` columns hold it; the duration is `duration_s`, seconds as a
    number, not "7m 20s"; `created` is ISO 8601 text in UTC (`2024-05-01T09:30:00Z`);
    tags are one comma-separated cell.

    Args:
        frame: Runs as from `tlcore.charts.runs.runs_frame`, optionally with a
            `tags` column of lists.

    Returns:
        The CSV text (`to_csv`).
    """
    table = frame.drop(columns=[c for c in ("run", "duration") if c in frame])
    if "duration_s" in table:
        table["duration_s"] = pd.to_numeric(table["duration_s"]).round(1)
    if "created" in table:
        # runs_frame's times are UTC without a zone: written with "Z", to the second.
        table["created"] = pd.to_datetime(table["created"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if "tags" in table:
        table["tags"] = table["tags"].map(lambda tags: ", ".join(tags or []))
    return to_csv(table)
