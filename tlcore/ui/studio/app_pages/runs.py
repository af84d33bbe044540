"""Runs & compare: every run in a table; tick two or more to compare them side by side.

The table lists the newest run first, a page of PAGE_SIZE runs at a time, with the
columns the user picks (`tlcore.ui.runs_table`); the store filters, searches and
pages them in SQL, and only the ticked runs are read in full. The ticked runs are
kept in the URL (`?runs=id1,id2`), so a comparison can be shared as a link; a
search, filter or page turn never unticks the runs it hides. The comparison
below the table is a fragment (`tlcore.ui.runs_compare`): its controls rerun it
alone. A run's owner or an admin may rename, delete, tag and
annotate it (`tlcore.auth`); everyone else sees those controls disabled.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore import auth
from tlcore.errors import TLCoreError
from tlcore.runs import launch, liveness
from tlcore.store import STATUSES, RunFacets, RunFilter, RunStore, check_note, check_tags
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.present import presenter_link
from tlcore.ui.runs_compare import compare
from tlcore.ui.runs_table import (
    keep_url,
    kept_selection,
    pick_columns,
    runs_csv,
    runs_table,
    sweep_labels,
    table_frame,
    url_ids,
    url_selection,
)
from tlcore.ui.text import plain
from tlcore.ui.train_form import open_in_train
from tlcore.workspace import Workspace

NOTES_RUN_KEY = "runs_notes_run"  # whose tags and note the one editor shows
PAGE_KEY = "runs_page"  # the table's page, from 1
PAGE_SIZE = 100  # rows of the table per page


def actions(ws: Workspace, store: RunStore, actor: auth.Actor, selected: list[dict]) -> None:
    """Rename, clone and delete for the ticked runs; renaming and deleting are the owner's."""
    if len(selected) == 1:
        run = selected[0]
        refused = denied(actor, auth.MANAGE_OWN, run["owner"], "rename this run")
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
        new_name = c1.text_input("Name", value=run["name"], key=f"runs_rename_{run['id']}",
                                 disabled=refused is not None, help=refused)
        rename = c2.button("Rename", key="runs_rename", width="stretch", help=refused,
                           disabled=refused is not None or new_name.strip() == run["name"])
        if rename and permitted(actor, auth.MANAGE_OWN, run["owner"], "rename this run"):
            try:
                store.rename_run(run["id"], new_name)
            except TLCoreError as exc:
                st.error(plain(exc))
            else:
                flash("runs", "success", f"Renamed to {plain(new_name.strip())}.")
                st.rerun()
        if c3.button("Clone and edit", key="runs_clone", width="stretch",
                     icon=":material/content_copy:",
                     help="Open the Train page with this run's settings."):
            open_in_train(run["config"], run["name"])
    names = ", ".join(r["name"] for r in selected)
    refused = delete_refusal(actor, selected)
    if st.button(f"Delete {len(selected)} run(s)…", key="runs_delete", icon=":material/delete:",
                 disabled=refused is not None, help=refused):
        if may_delete(actor, selected):
            st.session_state["runs_confirm_delete"] = [r["id"] for r in selected]
    if st.session_state.get("runs_confirm_delete") != [r["id"] for r in selected]:
        return
    st.warning(f"Delete {plain(names)} with their models, logs and metrics? This cannot be undone.")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button("Yes, delete", key="runs_delete_yes", type="primary"):
        st.session_state.pop("runs_confirm_delete", None)
        if not may_delete(actor, selected):
            return
        errors, left = [], []
        for run in selected:
            try:
                launch.delete(run["id"], ws=ws)
            except TLCoreError as exc:
                errors.append(plain(f"{run['name']}: {exc}"))
                left.append(run["id"])
        keep_url(left)  # a deleted run is no link's any more
        if errors:
            st.error("\n\n".join(errors))
            return
        flash("runs", "success", f"Deleted {plain(names)}.")
        st.rerun()
    if no.button("Cancel", key="runs_delete_no"):
        st.session_state.pop("runs_confirm_delete", None)
        st.rerun()


def delete_what(run: dict, selected: list[dict]) -> str:
    """The deletion of `run`, as refusal messages put it."""
    return f"delete {run['name']}" if len(selected) > 1 else "delete this run"


def delete_refusal(actor: auth.Actor, selected: list[dict]) -> str | None:
    """Why `actor` may not delete all of the runs (the first one refused), or None."""
    for run in selected:
        reason = denied(actor, auth.MANAGE_OWN, run["owner"], delete_what(run, selected))
        if reason is not None:
            return reason
    return None


def may_delete(actor: auth.Actor, selected: list[dict]) -> bool:
    """Check before deleting: False, with the first refusal in an error box, when refused."""
    return all(permitted(actor, auth.MANAGE_OWN, run["owner"], delete_what(run, selected))
               for run in selected)


def notes_section(store: RunStore, actor: auth.Actor, selected: list[dict],
                  known_tags: list[str]) -> None:
    """One "Tags and note" expander for the ticked runs: a run to edit, then its editor.

    One editor, whatever the number of ticked runs, keeps the comparison close
    below the table; it starts open for a single run.
    """
    with st.expander("Tags and note", expanded=len(selected) == 1, icon=":material/sell:"):
        by_id = {r["id"]: r for r in selected}
        run_id = selected[0]["id"]
        if len(selected) > 1:
            if st.session_state.get(NOTES_RUN_KEY) not in by_id:
                st.session_state[NOTES_RUN_KEY] = run_id
            run_id = st.selectbox("Run", list(by_id), key=NOTES_RUN_KEY,
                                  format_func=lambda i: by_id[i]["name"],
                                  help="Whose tags and note to show and edit.")
        notes_editor(store, actor, by_id[run_id], known_tags)


def notes_editor(store: RunStore, actor: auth.Actor, run: dict, known_tags: list[str]) -> None:
    """A run's tags and note; its owner or an admin may save them.

    Args:
        store: The run store.
        actor: Who uses the page; anyone but the owner or an admin sees the values
            read-only.
        run: The run.
        known_tags: Every tag in the workspace, offered as options (new ones can be typed).
    """
    what = "edit this run's tags and note"
    refused = denied(actor, auth.MANAGE_OWN, run["owner"], what)
    run_id = run["id"]
    tags_key, note_key = f"runs_tags_{run_id}", f"runs_note_{run_id}"
    # Filled from the store when first drawn, and again after a save (the keys are dropped).
    st.session_state.setdefault(tags_key, list(run["tags"]))
    st.session_state.setdefault(note_key, run["note"] or "")
    c1, c2, c3 = st.columns([2, 3, 1], vertical_alignment="bottom")
    tags = c1.multiselect(
        "Tags", sorted({*known_tags, *st.session_state[tags_key]}), key=tags_key,
        accept_new_options=True, disabled=refused is not None, placeholder="Add tags",
        help=refused or "Type a new tag or pick one used before: letters, digits and "
                        "-_.: (kept in lower case).")
    note = c2.text_area("Note", key=note_key, height=68, disabled=refused is not None,
                        placeholder="What this run tried, what it showed…", help=refused)
    changed = (sorted(tags) != run["tags"]
               or (note if note.strip() else "") != (run["note"] or ""))
    if c3.button("Save", key=f"runs_notes_save_{run_id}", icon=":material/save:",
                 width="stretch", disabled=refused is not None or not changed,
                 help=refused):
        if not permitted(actor, auth.MANAGE_OWN, run["owner"], what):
            return
        try:
            clean_tags, clean_note = check_tags(tags), check_note(note)
            store.set_tags(run_id, clean_tags)
            store.set_note(run_id, clean_note)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        del st.session_state[tags_key], st.session_state[note_key]
        flash("runs", "success", f"Saved the tags and note of {plain(run['name'])}.")
        st.rerun()


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
    linked = url_ids()
    wanted = url_selection(linked, {r["id"] for r in store.get_runs(linked)})
    which, columns_cell, csv_cell = filters(facets, actor)
    with columns_cell.popover("Columns", icon=":material/view_column:", width="stretch",
                              key="runs_columns_menu"):
        columns = pick_columns()
    offset = page_offset(store.runs_page(which, limit=0)[1])
    rows, total = store.runs_page(which, limit=PAGE_SIZE, offset=offset)
    # Every matching run, not only this page; names are free text: the CSV keeps any
    # that starts like a formula as text.
    csv_cell.download_button("Download CSV",
                             runs_csv(store, which, total, facets.repeated_names),
                             file_name="runs.csv", mime="text/csv", key="runs_csv",
                             icon=":material/download:", width="stretch")
    if not total:
        st.info("No runs match these filters.")
        return
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


render()
