"""The Runs page's table and what follows it: run as one fragment, so a tick reruns only it.

`runs_section` lists one page of the runs the filters keep (`tlcore.ui.runs_table`),
the page picker, then the actions on the ticked runs (`tlcore.ui.runs_actions`)
and their comparison (`tlcore.ui.runs_compare`, a fragment of its own). The page
draws it with `st.fragment`: ticking a row, turning a page or picking a chart
reruns this section alone, never the filters, the sidebar or the app around it.
The ticked runs are kept in the URL (`?runs=id1,id2`), so a comparison can be
shared as a link; a search, filter or page turn never unticks the runs it hides.
"""

from __future__ import annotations

import streamlit as st

from tlcore import auth
from tlcore.store import RunFacets, RunFilter, RunStore
from tlcore.ui.present import presenter_link
from tlcore.ui.runs_actions import actions, notes_section
from tlcore.ui.runs_compare import compare
from tlcore.ui.runs_table import (
    keep_url,
    kept_selection,
    runs_table,
    table_frame,
    url_ids,
    url_selection,
)
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

PAGE_KEY = "runs_page"  # the table's page, from 1
PAGE_SIZE = 100  # rows of the table per page


def page_offset(total: int) -> int:
    """The first row of the table's page: the page picked below it, kept within `total`."""
    pages = max(1, -(-total // PAGE_SIZE))
    if st.session_state.get(PAGE_KEY, 1) > pages:
        st.session_state[PAGE_KEY] = pages  # fewer runs match now
    return (st.session_state.get(PAGE_KEY, 1) - 1) * PAGE_SIZE


def page_picker(total: int, offset: int, shown: int) -> None:
    """Which page of the matching runs the table shows, when they fill more than one."""
    if total <= PAGE_SIZE:
        return
    pages = -(-total // PAGE_SIZE)
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    c1.selectbox("Page", range(1, pages + 1), key=PAGE_KEY, label_visibility="collapsed",
                 format_func=lambda p: f"Page {p} of {pages}")
    c2.caption(f"Runs {offset + 1:,}–{offset + shown:,} of {total:,}, newest first.")


def runs_section(ws: Workspace, store: RunStore, actor: auth.Actor, facets: RunFacets,
                 which: RunFilter, columns: list[str], total: int) -> None:
    """One page of the runs `which` keeps, then the ticked runs' actions and comparison.

    Args:
        ws: The workspace.
        store: The run store.
        actor: Who uses the page.
        facets: The store's filter options (`RunStore.run_facets`).
        which: The filters above the table.
        columns: The columns picked for the table.
        total: How many runs `which` keeps (at least one).
    """
    linked = url_ids()
    wanted = url_selection(linked, {r["id"] for r in store.get_runs(linked)})
    offset = page_offset(total)
    rows, total = store.runs_page(which, limit=PAGE_SIZE, offset=offset)
    view = table_frame(rows, facets.repeated_names)
    # Owner and tags are columns once some run has one (a signed-in user's, a tag).
    absent = {c for c, there in (("owner", facets.any_owner), ("tags", bool(facets.tags)))
              if not there}
    ticked = runs_table(view, [c for c in columns if c not in absent], wanted)
    page_picker(total, offset, len(view))
    selected_ids = kept_selection(wanted, view["id"].to_list(), ticked)
    keep_url(selected_ids)
    if not selected_ids:
        st.caption("Tick the boxes at the left of the table to select runs.")
        return
    runs = store.get_runs(selected_ids)  # oldest first
    by_id = {r["id"]: r for r in runs}
    selected_ids = [i for i in selected_ids if i in by_id]  # deleted meanwhile
    hidden = [by_id[i]["name"] for i in selected_ids if i not in ticked]
    if hidden:
        where = "the search or filters" + (", or on another page" if total > PAGE_SIZE else "")
        st.caption(f":material/filter_alt: Also ticked, hidden by {where}: "
                   f"{plain(', '.join(hidden))}.")
    selected = [by_id[i] for i in selected_ids]
    st.link_button("Presenter view", presenter_link(selected_ids), key="runs_present",
                   icon=":material/slideshow:",
                   help="The ticked runs, read-only, in a new tab: for a projector or to share.")
    actions(ws, store, actor, selected)
    notes_section(store, actor, selected, facets.tags)
    if len(selected_ids) < 2:
        st.info("Tick one more run to compare learning curves, final metrics and configs.")
        return
    # Oldest first in every chart (the store's order), so run B of a pair is the later run.
    st.fragment(compare)(ws, store, table_frame(runs, facets.repeated_names), by_id)
