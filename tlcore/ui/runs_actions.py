"""Actions on the ticked runs of the Runs page: rename, clone, delete, tags and note.

A run's owner or an admin may rename, delete, tag and annotate it (`tlcore.auth`);
everyone else sees those controls disabled.
"""

from __future__ import annotations

import streamlit as st

from tlcore import auth
from tlcore.errors import TLCoreError
from tlcore.runs import launch
from tlcore.store import RunStore, check_note, check_tags
from tlcore.ui import access
from tlcore.ui.flash import flash
from tlcore.ui.runs_table import keep_url
from tlcore.ui.text import plain
from tlcore.ui.train_form import open_in_train
from tlcore.workspace import Workspace

NOTES_RUN_KEY = "runs_notes_run"  # whose tags and note the one editor shows


def actions(ws: Workspace, store: RunStore, actor: auth.Actor, selected: list[dict]) -> None:
    """Rename, clone and delete for the ticked runs; renaming and deleting are the owner's."""
    if len(selected) == 1:
        run = selected[0]
        refused = access.denied(actor, auth.MANAGE_OWN, run["owner"], "rename this run")
        c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
        new_name = c1.text_input("Name", value=run["name"], key=f"runs_rename_{run['id']}",
                                 disabled=refused is not None, help=refused)
        rename = c2.button("Rename", key="runs_rename", width="stretch", help=refused,
                           disabled=refused is not None or new_name.strip() == run["name"])
        if rename and access.permitted(actor, auth.MANAGE_OWN, run["owner"], "rename this run"):
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
        reason = access.denied(actor, auth.MANAGE_OWN, run["owner"], delete_what(run, selected))
        if reason is not None:
            return reason
    return None


def may_delete(actor: auth.Actor, selected: list[dict]) -> bool:
    """Check before deleting: False, with the first refusal in an error box, when refused."""
    return all(access.permitted(actor, auth.MANAGE_OWN, run["owner"], delete_what(run, selected))
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
    refused = access.denied(actor, auth.MANAGE_OWN, run["owner"], what)
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
        if not access.permitted(actor, auth.MANAGE_OWN, run["owner"], what):
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
