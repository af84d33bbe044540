"""Transfer-learning studio: the Streamlit entry point (`streamlit run app.py`).

A router only: page config, navigation, the sign-in gate and the sidebar every page
shares (who is signed in, workspace, training device, worker slots, run queue, and a
warning while the studio is open to the network without a login). The pages live in
`app_pages/`. When a login is configured (`tlcore.ui.identity`), no page runs until
someone is signed in. This process never imports TensorFlow; training runs in worker
processes.
"""

from __future__ import annotations

import streamlit as st

from tlcore import backend
from tlcore.auth import Actor
from tlcore.errors import TLCoreError
from tlcore.runs import executors, inference, liveness, slots, sweeps
from tlcore.runs.executors import ray as rayjobs
from tlcore.runs.executors import ray_cluster
from tlcore.store import ACTIVE_STATUSES, RUNNING, RunStore
from tlcore.ui import identity, notices, signin
from tlcore.ui.deeplinks import remember_destination, take_destination
from tlcore.ui.device import device_summary
from tlcore.ui.network import exposure_warning
from tlcore.ui.present import URL_PATH as PRESENT_PATH
from tlcore.ui.status import STATUS_ICONS
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

QUEUE_REFRESH_S = 2.0
# Queued runs linked one by one in the sidebar; the rest are counted.
QUEUED_SHOWN = 5
# The Ray cluster's summary is asked at most this often, whatever the number of viewers.
RAY_SUMMARY_TTL_S = 5.0

st.set_page_config(page_title="Transfer-learning studio", page_icon=":material/model_training:",
                   layout="wide")

# Explicit URL paths: links such as /evaluate?run=<id> stay the same whatever the files are
# called or wherever they live.
PAGES = {
    "data": st.Page("app_pages/data.py", title="Data", icon=":material/photo_library:",
                    default=True),  # the default page is the root URL, /
    "train": st.Page("app_pages/train.py", title="Train", icon=":material/model_training:",
                     url_path="train"),
    "runs": st.Page("app_pages/runs.py", title="Runs & compare", icon=":material/compare_arrows:",
                    url_path="runs"),
    "evaluate": st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/fact_check:",
                        url_path="evaluate"),
    "sweeps": st.Page("app_pages/sweeps.py", title="Sweeps", icon=":material/tune:",
                      url_path="sweeps"),
    "adapt": st.Page("app_pages/adapt.py", title="Adapt", icon=":material/swap_horiz:",
                     url_path="adapt"),
    # Reached by its link only (tlcore.ui.present.presenter_link), not from the menu.
    "present": st.Page("app_pages/present.py", title="Presenter view", icon=":material/slideshow:",
                       url_path=PRESENT_PATH, visibility="hidden"),
}


@st.cache_data(ttl=RAY_SUMMARY_TTL_S, show_spinner=False)
def ray_summary(address: str) -> dict:
    """The Ray cluster's resources and the studio's jobs on it (two HTTP calls)."""
    return ray_cluster.cluster_summary(address)


def device_panel(ws: Workspace) -> None:
    """What training runs on, once the server's background probe has answered."""
    st.markdown("**Training runs on**")
    info = device_summary(ws)
    if info is None:
        st.caption(":material/hourglass_empty: Checking…")
    elif info.get("error"):
        st.warning(f"Could not check the device: {plain(info['error'])}")
    else:
        precision = "mixed precision on" if info["mixed_precision"] else "float32"
        icon = ":material/memory:" if info["gpus"] else ":material/computer:"
        engine = backend.LABELS.get(info.get("backend", ""), info.get("backend", "?"))
        st.caption(f"{icon} {plain(info['device'])} · {precision} · {engine}")


def workers_panel(running: list[dict]) -> None:
    """The executor, its worker slots and the run in each."""
    if rayjobs.enabled():
        info = ray_summary(rayjobs.address())
        if info.get("error"):
            st.warning(plain(info["error"]))
            return
        st.caption(f":material/hub: Ray cluster · {info['gpus_available']:g} of "
                   f"{info['gpus_total']:g} GPUs free · {info['cpus_available']:g} of "
                   f"{info['cpus_total']:g} CPUs free")
        st.caption(f"Studio jobs: {info['jobs_running']} running, "
                   f"{info['jobs_pending']} pending")
        return
    gpus = slots.gpu_slots()
    limit = slots.worker_limit(gpus)
    if not gpus:
        st.caption(f":material/computer: Local workers · {len(running)} of {limit} busy")
        return
    st.caption(f":material/memory: Local workers · {len(gpus)} GPU slots")
    for slot, run in slots.occupancy(gpus, running):
        holder = plain(run["name"]) if run else "free"
        st.caption(f"GPU {plain(slot)} · {holder}")


@st.fragment(run_every=QUEUE_REFRESH_S)
def queue_panel(ws: Workspace, actor: Actor | None) -> None:
    """The device, worker slots, then running and queued runs, each linking to its live panel.

    Sweep trials are running runs, listed with the rest; sweep workers between
    trials are counted on their own line. A run of `actor`'s that ends meanwhile
    gets a toast, whatever the page (`tlcore.ui.notices`).
    """
    device_panel(ws)
    try:
        liveness.refresh(ws=ws)
        executors.current().warm_up(ws)  # the next launch starts in a worker that has Keras loaded
        inference.ensure_service(ws)  # predictions and exports answer without a new process
        store = RunStore(ws)
        active = store.list_runs(statuses=ACTIVE_STATUSES)
        notices.announce(store, active, actor)
        running = [run for run in active if run["status"] == RUNNING]
        workers_panel(running)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    sweeping = sweeps.idle_workers(ws, {run["pid"] for run in running})
    st.markdown("**Queue**")
    if sweeping:
        st.caption(f":material/tune: {sweeping} sweep worker{'s' if sweeping != 1 else ''} "
                   f"starting {'their' if sweeping != 1 else 'its'} next trial")
    if not active:
        if not sweeping:
            st.caption("Nothing running. Launch a run on the Train page.")
        return
    queued = [run for run in active if run["status"] != RUNNING]
    for run in running + queued[:QUEUED_SHOWN]:
        trial = " · sweep trial" if (run["extra"] or {}).get("sweep") else ""
        st.page_link(PAGES["train"], label=f"{plain(run['name'])} · {run['status']}{trial}",
                     icon=STATUS_ICONS[run["status"]], query_params={"run": run["id"]})
    if len(queued) > QUEUED_SHOWN:
        st.caption(f"and {len(queued) - QUEUED_SHOWN:,} more queued (Runs & compare lists them)")


def sidebar(ws: Workspace, actor: Actor, mode: str, presenting: bool) -> None:
    """Who is signed in, then (except on the presenter view) the workspace, device and queue."""
    with st.sidebar:
        if mode != "none":
            signin.user_panel(actor, mode)
        if presenting:
            return
        exposed = exposure_warning()
        if exposed:
            st.warning(exposed, icon=":material/public:")
        st.markdown("**Workspace**")
        st.code(str(ws.root), language=None, wrap_lines=True)
        queue_panel(ws, actor)


workspace = Workspace.from_env()
try:
    login_mode = identity.login_mode()
    actor = identity.current_actor(workspace)
    problem = None
except TLCoreError as exc:  # a malformed secrets or roles file: nobody gets in
    login_mode, actor, problem = "none", None, plain(exc)
page = st.navigation(list(PAGES.values()), position="sidebar" if actor else "hidden")
if actor is None:
    if login_mode == "oidc":
        remember_destination(page.url_path)  # the sign-in returns to the root page
    signin.gate(login_mode, problem)
destination = take_destination()
if destination:
    path, query = destination
    target = next((p for p in PAGES.values() if p.url_path == path), None)
    if target is not None and (target is not page or query != st.query_params.to_dict()):
        st.switch_page(target, query_params=query)
presenting = page.url_path == PRESENT_PATH
if presenting:
    st.set_page_config(initial_sidebar_state="collapsed")
page.run()
# After the page, so the page is drawn first.
sidebar(workspace, actor, login_mode, presenting)
