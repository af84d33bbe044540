"""Runs & compare: every run in a table; tick two or more to compare them side by side.

The table lists the newest run first, a page of PAGE_SIZE runs at a time, with the
columns the user picks (`tlcore.ui.runs_table`); the store filters, searches and
pages them in SQL, and only the ticked runs are read in full. The filters rerun
the page; the table and everything below it are one fragment
(`tlcore.ui.runs_view`): ticking a run reruns that alone.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore import auth
from tlcore.errors import TLCoreError
from tlcore.runs import liveness
from tlcore.store import STATUSES, RunFacets, RunFilter, RunStore
from tlcore.ui.access import page_actor
from tlcore.ui.flash import show_flash
from tlcore.ui.runs_table import pick_columns, runs_csv, sweep_labels
from tlcore.ui.runs_view import runs_section
from tlcore.ui.text import plain
from tlcore.workspace import Workspace


def filters(facets: RunFacets, actor: auth.Actor
            ) -> tuple[RunFilter, DeltaGenerator, DeltaGenerator]:
    """Search, Mine and the filters above the table; returns which runs they keep.

    Also returns the two cells left free in the search row, for the column picker
    and the CSV download.
    """
    # Signed in, a "Mine" toggle; without a login every run is the operator's.
    c0, *c6, c3, c4 = st.columns([5, *([1.2] if actor.user else []), 1.5, 1.9],
                                 vertical_alignment="bottom")
    c1, c2, c5 = st.columns(3)
    search = c0.text_input("Search", key="runs_search", placeholder="Name, tag or note",
                           icon=":material/search:",
                           help="Runs whose name, tags or note contain this text, in any case.")
    dataset_filter = c1.multiselect("Dataset", facets.datasets,
                                    key="runs_filter_dataset", placeholder="All datasets")
    status_filter = c2.multiselect("Status", STATUSES, key="runs_filter_status",
                                   placeholder="All statuses")
    sweep_names = sweep_labels(facets.sweeps)
    sweep_filter = c5.multiselect("Sweep", list(sweep_names), format_func=sweep_names.get,
                                  key="runs_filter_sweep", placeholder="Any run",
                                  help="Only the trials of these sweeps ('No sweep': runs "
                                       "launched one by one).")
    mine = bool(c6) and c6[0].toggle("Mine", key="runs_mine",
                                     help="Only the runs you launched.")
    which = RunFilter(statuses=status_filter, datasets=dataset_filter, sweeps=sweep_filter,
                      owner=actor.user if mine else None, search=search)
    return which, c3, c4


def render() -> None:
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Runs & compare")
    st.caption("Every run in this workspace. Tick rows to rename, clone or delete a run; tick "
               "two or more to compare them.")
    show_flash("runs")
    try:
        store = RunStore(ws)  # opening reads the database: an unreadable one stops here
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    try:
        liveness.refresh(ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
    facets = store.run_facets()
    if not facets.datasets:
        st.info("No runs yet — launch one on the Train page.", icon=":material/waving_hand:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return
    which, columns_cell, csv_cell = filters(facets, actor)
    with columns_cell.popover("Columns", icon=":material/view_column:", width="stretch",
                              key="runs_columns_menu"):
        columns = pick_columns()
    total = store.runs_page(which, limit=0)[1]
    # Every matching run, not only this page; names are free text: the CSV keeps any
    # that starts like a formula as text.
    csv_cell.download_button("Download CSV",
                             runs_csv(store, which, total, facets.repeated_names),
                             file_name="runs.csv", mime="text/csv", key="runs_csv",
                             icon=":material/download:", width="stretch")
    if not total:
        st.info("No runs match these filters.")
        return
    st.fragment(runs_section)(ws, store, actor, facets, which, columns, total)


render()
