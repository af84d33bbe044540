"""The Train page's live run panel: progress, curves and log of a run while it trains.

Drawn from the run store alone, so every tab, a refreshed page and a teammate
see the same state. The page runs `live_panel` as a fragment on a timer while
runs are queued or running, and `idle_watch` on a slower one otherwise; Cancel
and Resume act on the watched run.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import streamlit as st

from tlcore import auth, entities
from tlcore.charts import runs as charts
from tlcore.charts import schedule
from tlcore.errors import TLCoreError
from tlcore.runs import launch, liveness, logs
from tlcore.store import (
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STAGE_FEATURES,
    STAGE_VALIDATE,
    RunStore,
)
from tlcore.ui import access
from tlcore.ui.predict import UPLOAD_TYPES, classify, show_prediction
from tlcore.ui.run_detail import run_detail
from tlcore.ui.status import PRUNED, STATUS_ICONS, shown_status, status_badge
from tlcore.ui.text import percent, plain
from tlcore.workers import runlog
from tlcore.workspace import Workspace

LIVE_REFRESH_S = 1.5
IDLE_CHECK_S = 3.0  # how often an idle page looks for a run queued elsewhere
LOG_LINES = 40
LOG_SCAN_LINES = 400  # raw lines read to find the run's own last LOG_LINES
TRY_KEY = "train_try"  # the last "Try it" prediction: run, picture digest, result
LAUNCHED_KEY = "train_launched"  # the run this session launched or resumed last
STARTING = "Starting: loading data and building the model…"


def watched_run(runs: list[dict]) -> dict | None:
    """The run to show in detail: the one in the URL, else a running one, else the newest.

    A run in the URL that does not exist (deleted, or a mistyped link) is named in a
    warning; the panel then shows the run it would show without one.
    """
    by_id = {r["id"]: r for r in runs}
    wanted = st.query_params.get("run")
    if wanted in by_id:
        return by_id[wanted]
    if wanted:
        st.warning(f"Run '{plain(wanted)}' not found: it may have been deleted, or the link is "
                   "mistyped. Runs are listed below and on the Runs page.",
                   icon=":material/search_off:")
    running = [r for r in runs if r["status"] == RUNNING]
    if running:
        return running[0]
    return runs[-1] if runs else None


def progress_text(progress: dict) -> tuple[float, str]:
    """Overall fraction and "Phase 1 · epoch 3/10 · batch 12/40 · ETA 1m 05s".

    Once an epoch's last batch is done, "validating…" instead of the batch until
    the epoch ends; while frozen-base features are computed, the images done of all.
    """
    epochs = max(1, progress.get("epochs") or 1)
    batches = max(1, progress.get("batches") or 1)
    epoch = progress.get("epoch") or 0
    batch = progress.get("batch") or 0
    done = min(1.0, max(0.0, (epoch - 1 + batch / batches) / epochs))
    stage = progress.get("stage")
    parts = [f"Phase {progress.get('phase') or 1}"]
    if stage == STAGE_FEATURES:
        parts.append(f"computing frozen-base features {batch}/{batches} images (once per "
                     "dataset, size and weights)")
    else:
        parts.append(f"epoch {epoch}/{epochs}")
        parts.append("validating…" if stage == STAGE_VALIDATE else f"batch {batch}/{batches}")
    if progress.get("eta_s") is not None:
        parts.append(f"ETA {charts.format_duration(progress['eta_s'])}")
    return done, " · ".join(parts)


def current_progress(store: RunStore, run: dict) -> dict | None:
    """A running run's progress row, or None before its worker wrote one in this attempt.

    A resumed run keeps its last attempt's row until the new worker writes its
    own: that row is older than the run's start and says nothing about now.
    """
    progress = store.progress(run["id"])
    if progress and run.get("started") and progress["updated"] < run["started"]:
        return None
    return progress


def queue_position(training: int, queued: int) -> str:
    """Where a queued run stands: how many runs train or wait before it."""
    ahead = training + queued
    if not ahead:
        return "Waiting for a free worker: it is next in line. It starts on its own."
    return (f"Waiting for a free worker: {ahead} run{'s' if ahead != 1 else ''} ahead of it "
            f"({training} training, {queued} queued). It starts on its own.")


def run_actions(ws: Workspace, run: dict, where: Any, actor: auth.Actor) -> None:
    """Cancel for a queued or running run, Resume for a stopped one, in `where`.

    Both are the run owner's or an admin's; anyone else sees them disabled. A pruned
    sweep trial has neither: the sweep chose not to train it further.
    """
    status = shown_status(run)
    if status in ACTIVE_STATUSES:
        refused = access.denied(actor, auth.MANAGE_OWN, run["owner"], "cancel this run")
        cancel = where.button("Cancel run", key=f"train_cancel_{run['id']}",
                              icon=":material/stop:", disabled=refused is not None, help=refused)
        if cancel and access.permitted(actor, auth.MANAGE_OWN, run["owner"], "cancel this run"):
            try:
                launch.cancel(run["id"], ws=ws)
            except TLCoreError as exc:
                st.error(plain(exc))
            else:
                st.rerun()  # the whole page, so the panel shows the new state at once
    elif status in (FAILED, CANCELLED, LOST):
        refused = access.denied(actor, auth.LAUNCH, run["owner"], "resume this run")
        resume = where.button("Resume", key=f"train_resume_{run['id']}",
                              icon=":material/replay:", disabled=refused is not None,
                              help=refused or "Continue from the last saved epoch.")
        if resume and access.permitted(actor, auth.LAUNCH, run["owner"], "resume this run"):
            try:
                launch.resume(run["id"], ws=ws)
            except TLCoreError as exc:
                st.error(plain(exc))
            else:
                st.session_state[LAUNCHED_KEY] = run["id"]
                st.rerun()  # the whole page: the panel shows the queued run and polls again


def run_details(ws: Workspace, store: RunStore, run: dict, queue: list[dict],
                actor: auth.Actor) -> None:
    """The watched run: state, progress or results, curves and log; Cancel or Resume.

    Cancel and Resume are its owner's or an admin's; anyone else sees them disabled.
    """
    status = run["status"]
    head, actions = st.columns([4, 1])
    head.markdown(f"#### {plain(run['name'])}")
    status_badge(shown_status(run), head)
    cfg = run["config"]
    owner = f" · by {plain(run['owner'])}" if run["owner"] else ""
    head.caption(f"Dataset {plain(run['dataset'])} · {cfg['image_size']} px · weights "
                 f"{plain(cfg['base']['weights'])} · "
                 f"{plain(run['device'] or 'device chosen at start')} · id {run['id']}{owner}")
    run_actions(ws, run, actions, actor)

    if run.get("cancel_requested") and status in ACTIVE_STATUSES:
        st.info("Cancel requested: the run stops within seconds, keeping its finished epochs.",
                icon=":material/stop_circle:")
    if status == QUEUED:
        training = len(store.list_runs(statuses=(RUNNING,)))
        queued = sum(r["seq"] < run["seq"] for r in queue)
        st.info(queue_position(training, queued), icon=":material/schedule:")
    elif status == RUNNING:
        progress = current_progress(store, run)
        fraction, text = progress_text(progress) if progress else (0.0, STARTING)
        st.progress(fraction, text=text)
        try:
            silence = liveness.silence_warning(run, (progress or {}).get("stage"))
        except TLCoreError:
            silence = None  # a bad setting: refresh's error is already shown above
        if silence:
            st.warning(silence, icon=":material/heart_broken:")
    elif status == COMPLETED:
        test = run.get("test_metrics") or {}
        peak = entities.peak_epoch(store.metrics(run["id"]))
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Best val accuracy", percent(run.get("best_val_accuracy"))
                  + (f" · epoch {peak}" if peak else ""),
                  help="The highest val accuracy of any epoch, and that epoch.")
        c2.metric("Test accuracy", percent(test.get("accuracy")),
                  help="The model kept, on the test split.")
        c3.metric("Model kept", f"epoch {run['best_epoch']}" if run.get("best_epoch") else "—",
                  help="The epoch with the lowest val loss: the saved model has its weights.")
        c4.metric("Duration", charts.format_duration(
            (run["ended"] or time.time()) - run["started"]) if run.get("started") else "—")
        try_it(ws, run["id"])
    elif shown_status(run) == PRUNED:
        st.info(plain(run["error"] or "Pruned by the sweep: its val accuracy fell behind the "
                                      "earlier trials'."), icon=":material/content_cut:")
    elif run.get("error"):
        first, _, rest = run["error"].strip().partition("\n")
        st.error(plain(first))
        if rest.strip():
            with st.expander("Details"):
                st.code(rest, language=None)
    elif status == CANCELLED:
        st.info("Cancelled. Resume continues from the last saved epoch.")

    metrics = charts.metrics_frame(store.metrics(run["id"]), {run["id"]: run["name"]})
    best = {run["name"]: run.get("best_epoch")}
    if not metrics.empty or status == RUNNING:
        left, right = st.columns(2)
        left.plotly_chart(charts.learning_curves(metrics, "loss", best_epochs=best),
                          key="train_live_loss", theme=None)
        right.plotly_chart(charts.learning_curves(metrics, "accuracy", best_epochs=best),
                           key="train_live_acc", theme=None)
    if not metrics.empty and status not in ACTIVE_STATUSES:
        # Drawn only while open: the panel redraws on a timer.
        speed = st.expander("Schedule and speed", key="train_schedule", on_change="rerun",
                            icon=":material/speed:")
        if speed.open:
            left, right = speed.columns(2)
            left.plotly_chart(schedule.learning_rate_chart(metrics), key="train_lr",
                              theme=None)
            right.plotly_chart(schedule.epoch_time_chart(metrics), key="train_epoch_time",
                               theme=None)
    with st.expander("Log", expanded=status == RUNNING):
        log_view(ws, run["id"])
    detail = st.expander("Details, parameters and files", key="train_detail",
                         on_change="rerun", icon=":material/folder_open:")
    if detail.open:
        with detail:
            run_detail(ws, run, key="train_detail")


def log_view(ws: Workspace, run_id: str) -> None:
    """The run's own log lines; TensorFlow's and CUDA's messages behind "Show raw log"."""
    raw = st.toggle("Show raw log", key="train_raw_log",
                    help="Everything the worker process printed, TensorFlow's and CUDA's "
                         "messages included.")
    try:
        text = logs.log_tail(run_id, lines=LOG_SCAN_LINES, ws=ws)
    except TLCoreError as exc:
        st.code(str(exc), language=None)
        return
    lines = text.splitlines() if raw else runlog.own_log_lines(text)
    if lines:
        st.code("\n".join(lines[-LOG_LINES:]), language=None, height=260)
    elif text and not raw:
        st.code("(no output from the run yet: TensorFlow's messages are in the raw log)",
                language=None)
    else:
        st.code("(no output yet)", language=None)


def try_it(ws: Workspace, run_id: str) -> None:
    """A completed run classifies a picture: class probabilities and Grad-CAM at once."""
    with st.expander("Try it", icon=":material/photo_camera:"):
        st.caption("Upload an image or take a picture: the model says what it sees, with the "
                   "top classes and where it looked (Grad-CAM, red = most).")
        upload = st.file_uploader("Image", type=UPLOAD_TYPES, key=f"train_try_upload_{run_id}")
        # The camera only starts (and the browser only asks for it) when switched on.
        camera = None
        if st.toggle("Use the camera", key=f"train_try_camera_on_{run_id}"):
            camera = st.camera_input("Take a picture", key=f"train_try_camera_{run_id}")
        picture = camera or upload
        if picture is None:
            return
        data = picture.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        # The live panel redraws on a timer while runs train: classify each picture once.
        done = st.session_state.get(TRY_KEY)
        if not done or done["run"] != run_id or done["digest"] != digest:
            items = classify(ws, run_id, [(picture.name, data)])
            done = {"run": run_id, "digest": digest, "item": items[0] if items else None}
            st.session_state[TRY_KEY] = done
        elif done["item"] is None:
            st.warning("This picture could not be classified; choose another one to try again.")
        if done["item"] is not None:
            show_prediction(done["item"], key="train_try_chart")


def live_panel(ws: Workspace, polling: bool, actor: auth.Actor) -> None:
    """The runs panel, drawn from the store alone, so any tab and a refreshed page agree.

    Args:
        ws: The workspace.
        polling: Whether this panel re-runs on a timer (while runs are active).
        actor: Who uses the page (Cancel and Resume are the run owner's).
    """
    st.subheader("Runs")
    try:
        liveness.refresh(ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
    store = RunStore(ws)
    runs = store.list_runs()
    if polling != any(r["status"] in ACTIVE_STATUSES for r in runs):
        st.rerun()  # runs started or all ended: draw the page again, with or without the timer
    run = watched_run(runs)
    if run is None:
        st.caption("No runs yet. Launched runs appear here and update live.")
        return
    queue = [r for r in runs if r["status"] == QUEUED]
    others = [r for r in runs if r["status"] in ACTIVE_STATUSES and r["id"] != run["id"]]
    run_details(ws, store, run, queue, actor)
    if others:
        st.markdown("**Also in the queue**")
        for other in others:
            st.page_link("app_pages/train.py", query_params={"run": other["id"]},
                         label=f"{plain(other['name'])} · {other['status']}",
                         icon=STATUS_ICONS[other["status"]])
    st.page_link("app_pages/runs.py", label="All runs, side by side",
                 icon=":material/compare_arrows:")


def launch_status(ws: Workspace, run_id: str) -> None:
    """One line by Launch: the run this session launched or resumed last, and how it goes.

    It shows from the moment the run is queued, so the run's state is in view
    without scrolling down to the runs panel.
    """
    store = RunStore(ws)
    try:
        run = store.get_run(run_id)
    except TLCoreError:  # deleted since
        return
    name, status = plain(run["name"]), run["status"]
    if status == RUNNING:
        progress = current_progress(store, run)
        fraction, text = progress_text(progress) if progress else (0.0, STARTING)
        st.progress(fraction, text=f"{name} · {text}")
    elif status == QUEUED:
        st.caption(f"{STATUS_ICONS[status]} {name} · queued: it starts as soon as a worker "
                   "is free.")
    else:
        st.caption(f"{STATUS_ICONS[status]} {name} · {status}: details in the runs panel below.")


def show_launch_status(ws: Workspace) -> None:
    """`launch_status` of this session's last launched run, on a timer while it is active."""
    run_id = st.session_state.get(LAUNCHED_KEY)
    if not run_id:
        return
    try:
        active = RunStore(ws).get_run(run_id)["status"] in ACTIVE_STATUSES
    except TLCoreError:
        return
    st.fragment(launch_status, run_every=LIVE_REFRESH_S if active else None)(ws, run_id)


def idle_watch(ws: Workspace) -> None:
    """Draw an idle page again, live panel and timer, once a run is queued from anywhere.

    Another tab, the Evaluate page's baseline or the CLI may queue one. This draws
    nothing and reads only the active runs, so its ticks stay cheap.
    """
    try:
        active = RunStore(ws).list_runs(statuses=ACTIVE_STATUSES)
    except TLCoreError:
        return  # the live panel above shows the store's error
    if active:
        st.rerun()


def show_runs(ws: Workspace, store: RunStore, actor: auth.Actor) -> None:
    """The live panel, polling only while something is queued or running.

    An idle page stays quiet: `idle_watch` then looks, cheaply, for a run queued
    from elsewhere and draws the page again with the panel's timer on.

    Args:
        ws: The workspace.
        store: The run store.
        actor: Who uses the page.
    """
    polling = bool(store.list_runs(statuses=ACTIVE_STATUSES))
    st.fragment(live_panel, run_every=LIVE_REFRESH_S if polling else None)(ws, polling, actor)
    if not polling:
        st.fragment(idle_watch, run_every=IDLE_CHECK_S)(ws)
