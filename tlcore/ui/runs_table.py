"""The Runs page's table: its columns and rows, the selection and its `?runs=` link.

The store filters, sorts and pages the runs (`RunStore.runs_page`); the table
shows one page of them (`table_frame`), parsing only those rows' configs.

The ticked runs live in the URL (`?runs=id1,id2`), so a comparison can be shared
as a link. The table selects rows by position, so whenever its rows change
(a search, a filter, a run added or deleted) it is ticked again from that list;
runs that a search or filter hides stay ticked until they are shown and unticked.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import auth
from tlcore.charts import runs as charts
from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.store import RunFilter, RunStore
from tlcore.ui import tables
from tlcore.ui.text import plain

TABLE_COLUMNS = {
    "run": "Run", "owner": "Owner", "tags": "Tags", "id": "Run id", "dataset": "Dataset",
    "status": "Status", "problem": "Problem",
    "image_size": "Size", "base.weights": "Weights", "head.pooling": "Pooling",
    "head.dense": "Dense", "train.optimizer": "Optimizer", "train.learning_rate": "LR",
    "train.epochs": "Epochs", "fine_tune.blocks": "FT blocks",
    "best_val_accuracy": "Best val acc", "test_accuracy": "Test acc", "duration": "Duration",
    "device": "Device", "sweep": "Sweep", "created": "Created", "note": "Note",
}
# The run's name is always shown; these others until the user picks columns. Owner and
# tags only once some run has one, so a workspace used alone keeps its table.
DEFAULT_COLUMNS = ["owner", "tags", "id", "dataset", "status", "problem", "base.weights",
                   "best_val_accuracy", "test_accuracy", "duration", "created"]
COLUMNS_KEY = "runs_columns"  # the column picker
SAVED_COLUMNS_KEY = "runs_columns_saved"  # its value, kept while another page is open
TABLE_KEY = "runs_table"
TABLE_IDS_KEY = "runs_table_ids"  # the table's run ids, row by row, when it was last drawn
URL_RUNS = "runs"  # ?runs=id1,id2: the selected runs, so a comparison can be shared
# The table's own column menu would be a second column picker, one that forgets its
# choice on every rerun: the "Columns" picker above the table is the one kept.
CSV_EAGER_MAX = 500  # the most matching runs whose CSV is built with the page
HIDE_TABLE_COLUMN_MENU = (
    f'<style>.st-key-{TABLE_KEY} [data-testid="stElementToolbarButton"]'
    ':has(button[aria-label^="Show/hide columns"]) {display: none;}</style>')


def problem(run: dict) -> str | None:
    """Why a run stopped short (the first line of its error, e.g. a diverged loss), else None."""
    error = (run.get("error") or "").strip()
    return error.splitlines()[0] if error else None


def sweep_labels(sweeps: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Sweep id -> a label ("" for runs outside any sweep), in the order given.

    Args:
        sweeps: `(sweep id, name of its newest trial)`, newest sweep first
            (`RunFacets.sweeps`).
    """
    labels = {"": "No sweep"}
    for sweep, name in sweeps:
        labels[sweep] = f"{name.rsplit('-', 1)[0]} ({sweep[:6]})"
    return labels


@functools.lru_cache(maxsize=20_000)
def stored_config(text: str) -> dict[str, Any]:
    """A stored config's JSON as the store reads it (keys added since read as defaults).

    A run's config never changes once stored, so each text is parsed once per
    process; the dict returned is shared: read it, never change it.
    """
    config = json.loads(text)
    try:
        return RunConfig.from_dict(config).to_dict()
    except ConfigError:
        return config  # shown as stored; `get_config` reports what is wrong with it


def table_frame(runs: Sequence[dict[str, Any]], repeated_names: set[str]) -> pd.DataFrame:
    """The runs table's rows: `runs_frame` with a problem, owner, tags and note column.

    Args:
        runs: Rows of `RunStore.runs_page` (config as JSON text) or records of
            `RunStore.get_runs` (config as a dict).
        repeated_names: Names more than one run in the store has: their runs are
            labelled with their id as well, on every page.
    """
    frame = charts.runs_frame([
        {**r, "config": stored_config(r["config"]) if isinstance(r["config"], str)
         else r["config"]} for r in runs])
    frame["run"] = [r["name"] if r["name"] not in repeated_names
                    else f"{r['name']} ({r['id'][:6]})" for r in runs]
    frame.insert(frame.columns.get_loc("status") + 1, "problem", [problem(r) for r in runs])
    frame["owner"] = [auth.owner_label(r["owner"]) for r in runs]
    frame["tags"] = [r["tags"] for r in runs]
    frame["note"] = [r["note"] or "" for r in runs]
    return frame


def pick_columns() -> list[str]:
    """The columns the user shows beside the run name; the choice outlives a page switch.

    The picker gets its value as its default on every run, never through Session
    State: the browser builds a picker inside a closed popover only when it opens,
    from the default it was last sent, and would otherwise open it empty.
    """
    chosen = st.session_state.get(COLUMNS_KEY, st.session_state.get(SAVED_COLUMNS_KEY,
                                                                     DEFAULT_COLUMNS))
    columns = st.multiselect("Columns", [c for c in TABLE_COLUMNS if c != "run"],
                             default=list(chosen), key=COLUMNS_KEY,
                             format_func=TABLE_COLUMNS.get, placeholder="Run name only")
    st.session_state[SAVED_COLUMNS_KEY] = columns
    return columns


def url_ids() -> list[str]:
    """The run ids of `?runs=`, in order, whether or not they are runs here."""
    text = st.query_params.get(URL_RUNS, "")
    return [i for i in dict.fromkeys(t.strip() for t in text.split(",")) if i]


def url_selection(wanted: list[str], known: set[str]) -> list[str]:
    """The run ids of `?runs=` that are runs here; a warning names the others.

    Args:
        wanted: The ids of `?runs=` (`url_ids`).
        known: Those of them that are runs in this workspace.
    """
    bad = [i for i in wanted if i not in known]
    if bad:
        st.warning(f"The link names {'a run' if len(bad) == 1 else 'runs'} not in this "
                   f"workspace: {plain(', '.join(bad))}. It may have been deleted.",
                   icon=":material/link_off:")
    return [i for i in wanted if i in known]


def keep_url(selected_ids: list[str]) -> None:
    """Write the selection to `?runs=` (no parameter when nothing is selected)."""
    text = ",".join(selected_ids)
    if text and st.query_params.get(URL_RUNS) != text:
        st.query_params[URL_RUNS] = text
    elif not text and URL_RUNS in st.query_params:
        del st.query_params[URL_RUNS]


def kept_selection(wanted: Sequence[str], shown: Sequence[str],
                   ticked: Sequence[str]) -> list[str]:
    """The selection after a run of the page: the ticked rows and the ticked runs not shown.

    Args:
        wanted: The selection so far (`?runs=`), in order.
        shown: The runs the table shows now (a search or filter may hide others).
        ticked: The rows ticked in the table now.

    Returns:
        `wanted` less the shown runs that are no longer ticked, then the newly
        ticked runs: a search or a filter never unticks the runs it hides.
    """
    on_screen, now = set(shown), set(ticked)
    kept = [i for i in wanted if i in now or i not in on_screen]
    return kept + [i for i in ticked if i not in kept]


def runs_table(view: pd.DataFrame, columns: list[str], wanted: list[str]) -> list[str]:
    """The runs table with row selection; returns the ticked run ids among its rows.

    Args:
        view: The runs to list, in table order.
        columns: Columns shown after the run name.
        wanted: Run ids to select when the table is drawn anew (first, or back from
            another page) or its rows change (filtered, a run added or deleted): the
            table selects rows by position.
    """
    ids = view["id"].to_list()
    if TABLE_KEY not in st.session_state or st.session_state.get(TABLE_IDS_KEY) != ids:
        rows = [ids.index(i) for i in wanted if i in ids]
        st.session_state[TABLE_KEY] = {"selection": {"rows": rows, "columns": []}}
        st.session_state[TABLE_IDS_KEY] = ids
    table = view[["run", *[c for c in columns if c in view]]].copy()
    if "head.dense" in table:
        table["head.dense"] = table["head.dense"].map(
            lambda d: ", ".join(map(str, d)) if isinstance(d, list) else d)
    if "created" in table:
        table["created"] = table["created"].dt.round("s")
    # Percent with one decimal everywhere (the "percent" format varies its decimals).
    for column in ("best_val_accuracy", "test_accuracy"):
        if column in table:
            table[column] = table[column] * 100
    st.html(HIDE_TABLE_COLUMN_MENU)
    event = st.dataframe(
        table, key=TABLE_KEY, on_select="rerun", selection_mode="multi-row",
        hide_index=True, height=min(420, 38 + 35 * len(table)), placeholder="—",
        column_config={
            **{k: st.column_config.Column(v) for k, v in TABLE_COLUMNS.items()},
            "problem": st.column_config.TextColumn(
                "Problem", help="Why a failed or lost run stopped; the Train page shows the "
                                "whole message."),
            "owner": st.column_config.TextColumn(
                "Owner", help="Who launched the run; operator: the server's command line, or "
                              "the studio before sign-in was set up."),
            "tags": st.column_config.ListColumn("Tags"),
            "train.learning_rate": st.column_config.NumberColumn("LR", format="%.0e"),
            "best_val_accuracy": st.column_config.NumberColumn("Best val acc", format="%.1f%%"),
            "test_accuracy": st.column_config.NumberColumn("Test acc", format="%.1f%%"),
            "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        },
    )
    rows = [i for i in event.selection.rows if i < len(view)]
    return view.iloc[rows]["id"].to_list()


def runs_csv(store: RunStore, which: RunFilter, total: int,
             repeated_names: set[str]) -> str | Callable[[], str]:
    """The CSV of every run that matches (see `tables.runs_table_csv`), newest first.

    Up to CSV_EAGER_MAX runs, the text itself, built with the page; beyond, a
    function that builds it when the download is clicked, so reruns (a tick, a page
    turn) never read and parse every matching run.

    Args:
        store: The run store.
        which: The page's filters and search.
        total: How many runs match.
        repeated_names: As `table_frame`.
    """
    def build() -> str:
        return tables.runs_table_csv(table_frame(store.runs_page(which)[0], repeated_names))

    return build() if total <= CSV_EAGER_MAX else build
