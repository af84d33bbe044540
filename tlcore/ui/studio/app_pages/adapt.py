"""Adapt: a completed run adapted to a target domain whose labels are unknown.

Pick the source run and the target dataset (unlabeled, or labeled with its
labels hidden and used only to score); the adaptation runs in its own process
(`tlcore.adapt.jobs`), and the page shows the shift, every method's
unsupervised score (and, with labels, its target accuracy and gain), and the
chosen model, saved as a run of its own. Earlier adaptations open from their
stored reports. Adapting creates a run, so it needs the member role.
"""

from __future__ import annotations

import streamlit as st

from tlcore import auth
from tlcore.adapt import adapted, jobs
from tlcore.errors import TLCoreError
from tlcore.store import COMPLETED, RunStore
from tlcore.ui import adapt as ui
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.text import plain
from tlcore.workspace import Workspace


def start(ws: Workspace, actor: auth.Actor, run_id: str, target: str, methods: list[str],
          scorer: str) -> None:
    if not permitted(actor, auth.LAUNCH, what="adapt a run"):
        return
    try:
        st.session_state[ui.JOB_KEY] = jobs.start_adapt(run_id, target, methods=methods,
                                                        scorer=scorer, ws=ws, owner=actor.user)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.session_state.pop(ui.REPORT_KEY, None)
    st.session_state.pop(ui.ERROR_KEY, None)


def earlier(ws: Workspace) -> None:
    """Earlier adaptations: open one's stored report."""
    done = adapted.adapted_runs(ws)
    if not done:
        return
    with st.expander(f"Earlier adaptations ({len(done)})"):
        by_id = {r["run_id"]: r for r in done}
        run_id = st.selectbox(
            "Adapted run", list(by_id), key="adapt_earlier",
            format_func=lambda i: f"{by_id[i]['name']} · {by_id[i]['method']} · "
                                  f"{by_id[i]['shift']} shift")
        if st.button("Show its report", key="adapt_show_earlier"):
            try:
                st.session_state[ui.REPORT_KEY] = adapted.load_report(run_id, ws)
                st.session_state[ui.ERROR_KEY] = None
            except TLCoreError as exc:
                st.error(plain(exc))


def render() -> None:
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Adapt")
    st.caption("Adapt a trained model to a new domain (another camera, site or season) whose "
               "images have no labels: measure the shift, compare adaptation methods on the "
               "run's base features, and keep the one an unsupervised score chooses.")
    try:
        store = RunStore(ws)
        runs = [r for r in store.list_runs(statuses=(COMPLETED,))
                if not (r.get("extra") or {}).get("adapted")]
        datasets = store.list_datasets()
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    if not runs:
        st.info("No completed runs yet. Train one on the Train page, then adapt it here.",
                icon=":material/waving_hand:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return
    by_id = {r["id"]: r for r in reversed(runs)}
    c1, c2 = st.columns(2)
    run_id = c1.selectbox("Source run", list(by_id), key="adapt_run",
                          format_func=lambda i: ui.run_label(by_id[i]),
                          help="A completed run: its base features and classes are the source.")
    by_name = {d["name"]: d for d in datasets if d["name"] != by_id[run_id]["dataset"]}
    if not by_name:
        st.info("Import the target images on the Data page first (or `python -m tlcore "
                "datasets import PATH --name NAME --unlabeled` for images without labels).")
        return
    target = c2.selectbox("Target dataset", list(by_name), key="adapt_target",
                          format_func=lambda n: ui.dataset_label(by_name[n]),
                          help="Images of the new domain. A labeled dataset's labels are "
                               "hidden from the adaptation and only score it.")
    methods, scorer = ui.options_form()
    busy = ui.JOB_KEY in st.session_state
    reason = denied(actor, auth.LAUNCH, what="adapt a run")
    if st.button("Adapt", key="adapt_start", type="primary", icon=":material/tune:",
                 disabled=busy or reason is not None, help=reason):
        start(ws, actor, run_id, target, methods, scorer)
        st.rerun()
    ui.follow_job()
    if st.session_state.get(ui.ERROR_KEY):
        st.error(plain(st.session_state[ui.ERROR_KEY]))
    if st.session_state.get(ui.REPORT_KEY):
        ui.show_report(st.session_state[ui.REPORT_KEY])
    earlier(ws)


render()
