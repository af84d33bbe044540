"""Runs & compare: every run in a table; tick two or more to compare them side by side.

The table lists the newest run first, with the columns the user picks. The
ticked runs are kept in the URL (`?runs=id1,id2`), so a comparison can be
shared as a link. A run's owner or an admin may rename, delete, tag and
annotate it (`tlcore.auth`); everyone else sees those controls disabled.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore import auth
from tlcore.charts import evaluation as evalcharts
from tlcore.charts import runs as charts
from tlcore.config import flatten
from tlcore.errors import TLCoreError
from tlcore.results import evaluate
from tlcore.runs import launch, liveness
from tlcore.store import COMPLETED, STATUSES, RunStore, check_note, check_tags
from tlcore.ui import tables
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.evaluation import stored_evaluation
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.present import presenter_link
from tlcore.ui.text import percent, plain
from tlcore.ui.train_form import open_in_train
from tlcore.workspace import Workspace

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


def problem(run: dict) -> str | None:
    """Why a run stopped short (the first line of its error, e.g. a diverged loss), else None."""
    error = (run.get("error") or "").strip()
    return error.splitlines()[0] if error else None


def sweep_labels(runs: list[dict]) -> dict[str, str]:
    """Sweep id -> a label ("" for runs outside any sweep), newest sweep first."""
    labels = {"": "No sweep"}
    for run in reversed(runs):
        sweep = (run.get("extra") or {}).get("sweep")
        if sweep and sweep not in labels:
            labels[sweep] = f"{run['name'].rsplit('-', 1)[0]} ({sweep[:6]})"
    return labels


def pick_columns() -> list[str]:
    """The columns the user shows beside the run name; the choice outlives a page switch."""
    if COLUMNS_KEY not in st.session_state:
        st.session_state[COLUMNS_KEY] = list(st.session_state.get(SAVED_COLUMNS_KEY,
                                                                  DEFAULT_COLUMNS))
    columns = st.multiselect("Columns", [c for c in TABLE_COLUMNS if c != "run"],
                             key=COLUMNS_KEY, format_func=TABLE_COLUMNS.get,
                             placeholder="Run name only")
    st.session_state[SAVED_COLUMNS_KEY] = columns
    return columns


def url_selection(known: set[str]) -> list[str]:
    """The run ids of `?runs=`, in order; a warning names those that are not runs here."""
    text = st.query_params.get(URL_RUNS, "")
    wanted = [i for i in dict.fromkeys(t.strip() for t in text.split(",")) if i]
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


def runs_table(view: pd.DataFrame, columns: list[str], wanted: list[str]) -> list[str]:
    """The runs table with row selection; returns the selected run ids.

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
        errors = []
        for run in selected:
            try:
                launch.delete(run["id"], ws=ws)
            except TLCoreError as exc:
                errors.append(plain(f"{run['name']}: {exc}"))
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


def notes_editor(store: RunStore, actor: auth.Actor, run: dict, known_tags: list[str],
                 expanded: bool) -> None:
    """A run's tags and note, in an expander; its owner or an admin may save them.

    Args:
        store: The run store.
        actor: Who uses the page; anyone but the owner or an admin sees the values
            read-only.
        run: The run.
        known_tags: Every tag in the workspace, offered as options (new ones can be typed).
        expanded: Whether the expander starts open.
    """
    what = "edit this run's tags and note"
    refused = denied(actor, auth.MANAGE_OWN, run["owner"], what)
    run_id = run["id"]
    tags_key, note_key = f"runs_tags_{run_id}", f"runs_note_{run_id}"
    # Filled from the store when first drawn, and again after a save (the keys are dropped).
    st.session_state.setdefault(tags_key, list(run["tags"]))
    st.session_state.setdefault(note_key, run["note"] or "")
    with st.expander(f"Tags and note · {plain(run['name'])}", expanded=expanded,
                     icon=":material/sell:"):
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


def evaluation_of(ws: Workspace, run: dict) -> dict | None:
    """The run's stored evaluation on its own dataset, or None (also when unreadable)."""
    try:
        return stored_evaluation(ws, run["id"], run["dataset"])
    except (OSError, ValueError, TLCoreError):
        return None


def pick_pair(ids: list[str], labels: dict[str, str], col_a: DeltaGenerator,
              col_b: DeltaGenerator) -> tuple[str, str]:
    """Runs A and B among three or more evaluated runs; the first two by default."""
    if st.session_state.get("runs_eval_a") not in ids:
        st.session_state["runs_eval_a"] = ids[0]
    a = col_a.selectbox("Run A", ids, key="runs_eval_a", format_func=labels.get)
    others = [i for i in ids if i != a]
    if st.session_state.get("runs_eval_b") not in others:
        st.session_state["runs_eval_b"] = others[0]
    b = col_b.selectbox("Run B", others, key="runs_eval_b", format_func=labels.get,
                        help="The F1 chart shows B minus A per class.")
    return a, b


def evaluation_compare(ws: Workspace, chosen: pd.DataFrame, runs: dict[str, dict],
                       labels: dict[str, str]) -> None:
    """Side-by-side confusion matrices and per-class F1 deltas of two evaluated runs."""
    evaluations: dict[str, dict[str, Any]] = {}
    missing = []
    for run_id in chosen["id"]:
        evaluation = evaluation_of(ws, runs[run_id])
        if evaluation:
            evaluations[run_id] = evaluation
        elif runs[run_id]["status"] == COMPLETED:
            missing.append(labels[run_id])
    if len(evaluations) < 2 and not missing:
        return
    st.markdown("**Confusion matrices and per-class F1**")
    if missing:
        names = plain(", ".join(missing))
        st.caption(f":material/info: Evaluate {'run' if len(missing) == 1 else 'runs'} {names} "
                   "on the Evaluate page to compare confusion matrices.")
    if len(evaluations) < 2:
        return
    ids = list(evaluations)
    cols = st.columns(4, vertical_alignment="bottom")
    if len(ids) > 2:
        a, b = pick_pair(ids, labels, cols[0], cols[1])
        split_col = cols[2]
    else:
        (a, b), split_col = ids, cols[0]
    ev_a, ev_b = evaluations[a], evaluations[b]
    splits = [s for s in evaluate.EVAL_SPLITS
              if ev_a["splits"].get(s, {}).get("n") and ev_b["splits"].get(s, {}).get("n")]
    if not splits:
        st.caption("These two evaluations have no split with images in common.")
        return
    if st.session_state.get("runs_eval_split") not in splits:
        st.session_state["runs_eval_split"] = splits[0]
    split = split_col.segmented_control("Split", splits, key="runs_eval_split") or splits[0]
    m_a, m_b = ev_a["splits"][split], ev_b["splits"][split]
    cols = st.columns(2, gap="large")
    for col, run_id, ev, m, slot in ((cols[0], a, ev_a, m_a, "a"), (cols[1], b, ev_b, m_b, "b")):
        fig = evalcharts.confusion_figure(
            m["confusion"]["counts"], ev["classes"], m["confusion"]["normalized"],
            title=f"{labels[run_id]} · {split} accuracy {percent(m['accuracy'])}")
        col.plotly_chart(fig, key=f"runs_confusion_{slot}", theme=None)
    st.caption("Rows: true class; columns: predicted. Colour: share of the true class's images; "
               "number: count.")
    if ev_a["dataset"] != ev_b["dataset"]:
        st.caption(f"Evaluated on different datasets ({plain(ev_a['dataset'])}, "
                   f"{plain(ev_b['dataset'])}): "
                   "classes are matched by name.")
    delta = evalcharts.f1_delta_frame(m_a, m_b)
    if delta["delta"].isna().all():
        st.caption("No class has an F1 score in both runs, so there is no difference to show.")
        return
    st.plotly_chart(evalcharts.f1_delta_figure(delta, labels[a], labels[b]),
                    key="runs_f1_delta", theme=None)
    if (delta["delta"].dropna().abs() < 5e-4).all():
        st.caption(f"{plain(labels[a])} and {plain(labels[b])} have the same F1 on every class "
                   "they share.")
    else:
        st.caption(f"Bars above zero: {plain(labels[b])} has the higher F1 on that class.")


def compare(ws: Workspace, store: RunStore, chosen: pd.DataFrame,
            runs: dict[str, dict]) -> None:
    st.subheader("Compare")
    labels = dict(zip(chosen["id"], chosen["run"], strict=True))
    c1, c2, _ = st.columns([1, 1, 2])
    metric = c1.segmented_control("Metric", list(charts.METRICS), default="accuracy",
                                  key="runs_metric") or "accuracy"
    splits = c2.segmented_control("Curves", ["train", "val"], default=["train", "val"],
                                  selection_mode="multi", key="runs_splits") or ["val"]
    metrics = charts.metrics_frame(store.metrics_for(list(labels)), labels)
    st.plotly_chart(
        charts.learning_curves(metrics, metric, runs=list(labels.values()), splits=splits,
                               title=f"Learning curves · {charts.METRIC_LABELS[metric]}"),
        key="runs_curves", theme=None)
    left, right = st.columns(2, gap="large")
    left.plotly_chart(charts.final_metrics_bar(chosen), key="runs_final", theme=None)
    with right:
        st.markdown("**Config differences**")
        diff = charts.config_diff({labels[i]: flatten(runs[i]["config"]) for i in labels})
        if diff.empty:
            st.caption("These runs share the same config.")
        else:
            st.dataframe(diff, key="runs_diff")
    st.plotly_chart(charts.parallel_coordinates(chosen, charts.differing_params(chosen)),
                    key="runs_parallel", theme=None)
    notes_table(chosen)
    evaluation_compare(ws, chosen, runs, labels)


def notes_table(chosen: pd.DataFrame) -> None:
    """Each compared run's tags and note, when any of them has one."""
    if not (chosen["tags"].map(bool).any() or chosen["note"].map(bool).any()):
        return
    st.markdown("**Tags and notes**")
    st.dataframe(chosen[["run", "tags", "note"]], key="runs_compare_notes", hide_index=True,
                 placeholder="—", column_config={
                     "run": "Run", "tags": st.column_config.ListColumn("Tags"),
                     "note": st.column_config.TextColumn("Note", width="large")})


def matches(run: dict, text: str) -> bool:
    """Whether `text` (already case-folded) is in the run's name, one of its tags, or its note."""
    fields = [run["name"], *run["tags"], run["note"] or ""]
    return any(text in field.casefold() for field in fields)


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
    runs = store.list_runs()
    if not runs:
        st.info("No runs yet — launch one on the Train page.", icon=":material/waving_hand:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return
    frame = charts.runs_frame(runs)
    frame.insert(frame.columns.get_loc("status") + 1, "problem", [problem(r) for r in runs])
    frame["owner"] = [auth.owner_label(r["owner"]) for r in runs]
    frame["tags"] = [r["tags"] for r in runs]
    frame["note"] = [r["note"] or "" for r in runs]
    wanted = url_selection(set(frame["id"]))
    # Signed in, a "Mine" toggle; without a login every run is the operator's.
    c0, *c6, c3, c4 = st.columns([5, *([1.2] if actor.user else []), 1.5, 1.9],
                                 vertical_alignment="bottom")
    c1, c2, c5 = st.columns(3)
    search = c0.text_input("Search", key="runs_search", placeholder="Name, tag or note",
                           icon=":material/search:",
                           help="Runs whose name, tags or note contain this text, in any case.")
    dataset_filter = c1.multiselect("Dataset", sorted(frame["dataset"].unique()),
                                    key="runs_filter_dataset", placeholder="All datasets")
    status_filter = c2.multiselect("Status", STATUSES, key="runs_filter_status",
                                   placeholder="All statuses")
    sweep_names = sweep_labels(runs)
    sweep_filter = c5.multiselect("Sweep", list(sweep_names), format_func=sweep_names.get,
                                  key="runs_filter_sweep", placeholder="Any run",
                                  help="Only the trials of these sweeps ('No sweep': runs "
                                       "launched one by one).")
    mine = bool(c6) and c6[0].toggle("Mine", key="runs_mine",
                                     help="Only the runs you launched.")
    view = frame
    if dataset_filter:
        view = view[view["dataset"].isin(dataset_filter)]
    if status_filter:
        view = view[view["status"].isin(status_filter)]
    if sweep_filter:
        view = view[view["sweep"].isin(sweep_filter)]
    text = search.strip().casefold()
    if text or mine:
        keep = {r["id"] for r in runs
                if (not text or matches(r, text)) and (not mine or r["owner"] == actor.user)}
        view = view[view["id"].isin(keep)]
    view = view.iloc[::-1].reset_index(drop=True)  # newest first
    # Names are free text: the CSV keeps any that starts like a formula as text.
    with c3.popover("Columns", icon=":material/view_column:", width="stretch"):
        columns = pick_columns()
    csv_view = view.drop(columns=["duration_s"]).assign(tags=view["tags"].map(", ".join))
    c4.download_button("Download CSV", tables.to_csv(csv_view),
                       file_name="runs.csv", mime="text/csv", key="runs_csv",
                       icon=":material/download:", width="stretch")
    if view.empty:
        st.info("No runs match these filters.")
        return
    # Owner and tags are columns once some run has one (a signed-in user's, a tag).
    absent = {c for c, there in (("owner", any(r["owner"] for r in runs)),
                                 ("tags", any(r["tags"] for r in runs))) if not there}
    selected_ids = runs_table(view, [c for c in columns if c not in absent], wanted)
    keep_url(selected_ids)
    by_id = {r["id"]: r for r in runs}
    if not selected_ids:
        st.caption("Tick the boxes at the left of the table to select runs.")
        return
    selected = [by_id[i] for i in selected_ids]
    st.link_button("Presenter view", presenter_link(selected_ids), key="runs_present",
                   icon=":material/slideshow:",
                   help="The ticked runs, read-only, in a new tab: for a projector or to share.")
    actions(ws, store, actor, selected)
    known_tags = sorted({t for r in runs for t in r["tags"]})
    for run in selected:
        notes_editor(store, actor, run, known_tags, expanded=len(selected) == 1)
    if len(selected_ids) < 2:
        st.info("Tick one more run to compare learning curves, final metrics and configs.")
        return
    # Oldest first in every chart, so run B of a pair is the later run.
    compare(ws, store, view[view["id"].isin(selected_ids)].iloc[::-1], by_id)


render()
