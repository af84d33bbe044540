"""Evaluate: how good a finished run is, where it fails and why; predict and export.

This process never imports TensorFlow. Evaluation (with Grad-CAM of the worst
mistakes), predictions and exports run in `python -m tlcore ...` subprocesses;
the page reads what they store in the run's folder. Everyone may evaluate, predict
and export; queueing the from-scratch baseline or a transfer study needs the member
role (`tlcore.auth`).
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from tlcore import auth
from tlcore.charts import evaluation as evalcharts
from tlcore.config import RunConfig, flatten
from tlcore.errors import TLCoreError
from tlcore.results import evaluate, transfer
from tlcore.results import transfer_study as transferstudy
from tlcore.results.export import FORMATS as EXPORT_FORMATS
from tlcore.results.export import QUANTIZED, report_summary
from tlcore.results.export import read_report as read_export_report
from tlcore.store import ACTIVE_STATUSES, COMPLETED, RunStore
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.cli import run_cli
from tlcore.ui.evaluation import image_grid, metric_cards, stored_evaluation
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.label_review import mistake_fixes
from tlcore.ui.predict import TOP_K, UPLOAD_TYPES, classify, export, show_prediction
from tlcore.ui.selection import confusion_cell
from tlcore.ui.text import percent, plain
from tlcore.workspace import Workspace

GALLERY = 12
TRANSFER_REFRESH_S = 3.0
VERDICT_BOXES = {transfer.POSITIVE: st.success, transfer.NEGATIVE: st.warning}
# Pixel widths that fit each header and its values; the table spans the page and the
# class column takes the rest, so every column, "Support" included, shows without
# scrolling however long the class names are.
PER_CLASS_COLUMNS = {"precision": ("Precision", 84), "recall": ("Recall", 70),
                     "f1": ("F1", 60), "auc": ("AUC", 60)}
SUPPORT_WIDTH = 76


# ---- helpers ------------------------------------------------------------------
def run_label(run: dict) -> str:
    best = run.get("best_val_accuracy")
    acc = f" · val {percent(best)}" if best is not None else ""
    return f"{run['name']} · {run['dataset']} · {run['config']['base']['weights']}{acc}"


# ---- pickers ------------------------------------------------------------------
def linked_run_warning(store: RunStore, completed: list[dict]) -> None:
    """Say so when the run in the URL cannot be shown: missing, or not completed."""
    wanted = st.query_params.get("run")
    if not wanted or any(r["id"] == wanted for r in completed):
        return
    try:
        status = store.get_run(wanted)["status"]
    except TLCoreError:
        st.warning(f"Run '{plain(wanted)}' not found: it may have been deleted, or the link is "
                   "mistyped. Pick a completed run below.", icon=":material/search_off:")
        return
    st.warning(f"Run '{plain(wanted)}' is {status}, not completed; only completed runs can be "
               "evaluated. Pick one below.", icon=":material/search_off:")


def pick_run(runs: list[dict]) -> dict:
    by_id = {r["id"]: r for r in runs}
    wanted = st.query_params.get("run")
    if st.session_state.get("eval_run") not in by_id:
        st.session_state["eval_run"] = wanted if wanted in by_id else runs[-1]["id"]
    run_id = st.selectbox("Run", list(reversed(by_id)), key="eval_run",
                          format_func=lambda i: run_label(by_id[i]),
                          help="Completed runs, newest first.")
    return by_id[run_id]


def pick_dataset(ws: Workspace, store: RunStore, run: dict, classes: list[str] | None) -> str:
    """The run's dataset, or another with the same classes (a domain-shift check)."""
    own = run["dataset"]
    names = [own]
    for row in store.list_datasets():
        if row["name"] != own and classes and sorted(row["classes"]) == sorted(classes):
            names.append(row["name"])
    names += [n for n in evaluate.list_evaluations(run["id"], ws=ws) if n not in names]
    if st.session_state.get("eval_dataset") not in names:
        st.session_state["eval_dataset"] = own
    return st.selectbox(
        "Evaluate on", names, key="eval_dataset",
        format_func=lambda n: f"{n} (trained on)" if n == own else f"{n} (domain shift)",
        help="Another dataset with the same class names shows how the model does on "
             "images from a different source.")


def evaluate_button(ws: Workspace, run: dict, dataset: str, evaluation: dict | None) -> None:
    label = "Re-evaluate" if evaluation else "Evaluate"
    if st.button(label, key="eval_evaluate", type="secondary" if evaluation else "primary",
                 icon=":material/fact_check:"):
        args = ["evaluate", run["id"], "--top-k", str(TOP_K)]
        if dataset != run["dataset"]:
            args += ["--dataset", dataset]
        if run_cli(ws, args, f"Evaluating on {plain(dataset)} (with Grad-CAM of the worst "
                             "mistakes)…") is not None:
            flash("eval", "success", f"Evaluated on {plain(dataset)}.")
            st.rerun()


# ---- sections -----------------------------------------------------------------
def select_cell_from_chart(classes: list[str], chart_key: str) -> None:
    """Clicking a confusion-matrix cell selects it in the two selectboxes.

    Args:
        classes: The matrix's class names, in index order.
        chart_key: The chart's widget key.
    """
    event = st.session_state.get(chart_key)
    # The axes show names escaped for Plotly; the cell's indexes name the classes.
    cell = confusion_cell(event.selection.points if event else [])
    if cell is not None:
        true, predicted = cell
        st.session_state["eval_cell_true"] = classes[true]
        st.session_state["eval_cell_pred"] = classes[predicted]


def image_path(ws: Workspace, dataset: str, rel: str) -> str | None:
    path = ws.dataset_dir(dataset) / rel
    return str(path) if path.is_file() else None


@st.cache_data(show_spinner=False, max_entries=256)
def side_by_side(original: str, cam: str) -> np.ndarray:
    """The image and its Grad-CAM overlay next to each other, at the overlay's size."""
    with Image.open(cam) as overlay:
        right = np.asarray(overlay.convert("RGB"))
    with Image.open(original) as img:
        left = np.asarray(img.convert("RGB").resize(right.shape[1::-1], Image.BILINEAR))
    gap = np.full((right.shape[0], max(2, right.shape[1] // 32), 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def confusion_section(ws: Workspace, evaluation: dict, m: dict) -> None:
    classes = evaluation["classes"]
    shown_for = [evaluation["run_id"], evaluation["dataset"]]
    if st.session_state.get("eval_cell_of") != shown_for:
        # Another run or dataset: start from its own most-confused cell, not the last pick.
        st.session_state["eval_cell_of"] = shown_for
        st.session_state.pop("eval_cell_true", None)
        st.session_state.pop("eval_cell_pred", None)
    # One chart widget per run and dataset, so a cell clicked on another run stays there.
    chart_key = f"eval_confusion_{evaluation['run_id']}_{evaluation['dataset']}"
    left, right = st.columns([3, 2], gap="large")
    with left:
        fig = evalcharts.confusion_figure(m["confusion"]["counts"], classes,
                                          m["confusion"]["normalized"])
        st.plotly_chart(fig, key=chart_key,
                        on_select=functools.partial(select_cell_from_chart, classes, chart_key),
                        selection_mode="points", width="stretch", theme=None)
        st.caption("Colour: share of the true class's images; number: count. Click a cell to "
                   "see its images.")
    with right:
        counts = m["confusion"]["counts"]
        if st.session_state.get("eval_cell_true") not in classes or \
                st.session_state.get("eval_cell_pred") not in classes:
            off = [(counts[i][j], i, j) for i in range(len(classes)) for j in range(len(classes))
                   if i != j and counts[i][j]]
            _, i, j = max(off) if off else (0, 0, 0)
            st.session_state["eval_cell_true"] = classes[i]
            st.session_state["eval_cell_pred"] = classes[j]
        c1, c2 = st.columns(2)
        true = c1.selectbox("True class", classes, key="eval_cell_true")
        pred = c2.selectbox("Predicted as", classes, key="eval_cell_pred")
        s = m["samples"]
        ti, pi = classes.index(true), classes.index(pred)
        picked = [k for k, (t, p) in enumerate(zip(s["true"], s["predicted"], strict=True))
                  if t == ti and p == pi]
        picked.sort(key=lambda k: -s["confidence"][k])
        st.markdown(f"**{len(picked)}** image{'s' if len(picked) != 1 else ''} of "
                    f"**{plain(true)}** predicted as **{plain(pred)}**")
        items = []
        for k in picked[:GALLERY]:
            path = image_path(ws, evaluation["dataset"], s["file"][k])
            if path:
                items.append((path, f"{percent(s['confidence'][k])} sure"))
        if picked and not items:
            st.warning(f"The images of dataset {plain(repr(evaluation['dataset']))} are no longer "
                       "there.")
        image_grid(items)


def per_class_section(m: dict) -> None:
    table = pd.DataFrame(m["per_class"])[["class", "precision", "recall", "f1", "auc",
                                           "support"]]
    config = {c: st.column_config.NumberColumn(label, format="%.3f", width=width)
              for c, (label, width) in PER_CLASS_COLUMNS.items()}
    st.dataframe(
        table, key="eval_per_class_table", hide_index=True, column_config={
            "class": st.column_config.TextColumn("Class", pinned=True),
            **config,
            "support": st.column_config.NumberColumn(
                "Support", format="%d", width=SUPPORT_WIDTH,
                help="Images of this class in the split")})
    st.plotly_chart(evalcharts.per_class_figure(table), key="eval_per_class_chart",
                    width="stretch", theme=None)


def metrics_tab(ws: Workspace, evaluation: dict | None, split: str | None) -> None:
    if evaluation is None or split is None:
        st.info("Not evaluated on this dataset yet: press **Evaluate** above.")
        return
    m = evaluation["splits"][split]
    metric_cards(m)
    for note in m["notes"]:
        st.caption(f":material/info: {plain(note)}")
    if not m["n"]:
        return
    confusion_section(ws, evaluation, m)
    per_class_section(m)


def mistakes_tab(ws: Workspace, actor: auth.Actor, run_id: str, evaluation: dict | None,
                 split: str | None) -> None:
    if evaluation is None or split is None:
        st.info("Not evaluated on this dataset yet: press **Evaluate** above.")
        return
    wrong = evaluation["splits"][split]["mistakes"]
    if not wrong:
        st.success(f"No mistakes on the {split} split.")
        return
    st.markdown(f"**{len(wrong)}** mistake{'s' if len(wrong) != 1 else ''} on the {split} split, "
                "most confident first. Right: Grad-CAM, where the model looked for the class "
                "it predicted (red = most).")
    items = []
    for w in wrong[:GALLERY]:
        original = image_path(ws, evaluation["dataset"], w["file"])
        cam = evaluate.gradcam_path(run_id, w, ws=ws)
        image = side_by_side(original, str(cam)) if original and cam else original or cam
        if image is not None:
            items.append((image, f"{plain(w['true'])} → {plain(w['predicted'])} "
                                 f"({percent(w['confidence'])})"))
    image_grid(items)
    mistake_fixes(ws, actor, evaluation, split, wrong[:GALLERY])
    if len(wrong) > GALLERY:
        with st.expander(f"All {len(wrong)} mistakes"):
            st.dataframe(pd.DataFrame(wrong).drop(columns=["gradcam"], errors="ignore"),
                         key="eval_mistakes_table", hide_index=True)


def matching_baseline_offer(ws: Workspace, run: dict, cfg: RunConfig, actor: auth.Actor,
                            lead: str) -> None:
    """The matching from-scratch baseline in words, and the button that queues it."""
    scratch = transfer.baseline_config(cfg)
    st.write(f"{lead}: the same data, image size, head and seed, with every layer trained from "
             f"random weights ({scratch.train.optimizer} at {scratch.train.learning_rate:g}, "
             f"{scratch.train.epochs} epochs).")
    refused = denied(actor, auth.LAUNCH)
    train = st.button("Train the matching baseline", key="eval_train_baseline",
                      icon=":material/model_training:", disabled=refused is not None,
                      help=refused)
    if train and permitted(actor, auth.LAUNCH):
        from tlcore.runs import launch

        # The operator launches as before owners existed (owner None, the default).
        owner = {"owner": actor.user} if actor.user else {}
        launch.launch(scratch, name=f"{run['name']} · from scratch", ws=ws, **owner)
        flash("eval", "success", "Baseline queued. The report appears here when it completes.")
        st.rerun()


def pick_baseline(store: RunStore, run: dict, candidates: list[str],
                  matching: str | None) -> str:
    """The baseline to compare with, among `candidates` (closest first, the default).

    Args:
        store: The run store.
        run: The pretrained run.
        candidates: `transfer.baseline_candidates` of the run.
        matching: The completed matching baseline (`transfer.find_baseline`), if any.
    """
    labels = {}
    for run_id in candidates:
        other = store.get_run(run_id)
        diff = transfer.config_differences(run["config"], other["config"])
        fit = ("the matching baseline" if run_id == matching else
               f"differs in {', '.join(diff)}" if diff else "same data, image size, head and seed")
        labels[run_id] = f"{other['name']} · {transfer.budget_text(other['config'])} · {fit}"
    key = f"eval_transfer_baseline_{run['id']}"
    if st.session_state.get(key) not in labels:
        st.session_state[key] = candidates[0]
    return st.selectbox("Baseline (trained from scratch)", candidates, key=key,
                        format_func=labels.get,
                        help="Completed from-scratch runs on this dataset, closest match "
                             "first. The report names every setting in which the two runs "
                             "differ.")


def differences_table(report: dict) -> None:
    """What differs between the two runs besides how they start, as a small table."""
    if not report["differences"]:
        st.caption("Besides how they start, the two runs have the same settings and "
                   "training budget.")
        return
    table = pd.DataFrame([{"setting": d["setting"],
                           "pretrained": transfer.value_text(d["pretrained"]),
                           "baseline": transfer.value_text(d["baseline"])}
                          for d in report["differences"]])
    st.dataframe(table, key="eval_transfer_differences", hide_index=True,
                 column_config={"setting": "What differs", "pretrained": "Pretrained",
                                "baseline": "From scratch"})


def transfer_tab(ws: Workspace, run: dict, actor: auth.Actor) -> None:
    try:
        cfg = RunConfig.from_dict(run["config"])
    except TLCoreError as exc:
        st.error(str(exc))
        return
    if cfg.base.from_scratch:
        st.info("This run trains every layer from scratch (random init), so it is itself the "
                "baseline that pretrained runs are compared with.")
        return
    if cfg.base.random_frozen:
        st.info("This run keeps an untrained (random) base frozen and trains only the head: it "
                "is neither pretrained nor a from-scratch baseline, so there is no transfer to "
                "report. A from-scratch baseline trains every layer (weights **From scratch** "
                "on the Train page).")
        return
    question = (f"Does starting from {plain(transfer.source_label(cfg.base.weights))} beat "
                "training the same network from scratch on this data?")
    try:
        store = RunStore(ws)
        candidates = transfer.baseline_candidates(run["id"], ws=ws)
        matching = transfer.find_baseline(run["id"], ws=ws)
        pending = None if matching else transfer.find_baseline(run["id"], ws=ws,
                                                               statuses=ACTIVE_STATUSES)
        if not candidates:
            st.caption(f"{question} Compared: {plain(transfer.comparison(cfg))}")
            if pending:
                st.info(f"The matching from-scratch baseline is {store.get_run(pending)['status']}"
                        "; the report appears here when it completes.")
            else:
                matching_baseline_offer(ws, run, cfg, actor, "No from-scratch baseline yet")
            return
        st.caption(question)
        baseline = pick_baseline(store, run, candidates, matching)
        report = transfer.transfer_report(run["id"], baseline, ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.caption(f"Compared: {plain(report['compared'])}")
    VERDICT_BOXES.get(report["verdict"], st.info)(
        f"**{report['verdict'].capitalize()}.** {plain(report['summary'])}")
    rows = pd.DataFrame(report["metrics"]).replace({None: float("nan")})
    rows["delta"] = rows["delta"] * 100
    rows["metric"] = rows["metric"].map({
        "test_accuracy": "Test accuracy", "best_val_accuracy": "Best val accuracy",
        "val_accuracy_auc": "Val-accuracy curve area"})
    left, right = st.columns(2, gap="large")
    left.dataframe(rows, key="eval_transfer_table", hide_index=True, column_config={
        "metric": "Metric",
        "pretrained": st.column_config.NumberColumn("Pretrained", format="percent"),
        "baseline": st.column_config.NumberColumn("From scratch", format="percent"),
        "delta": st.column_config.NumberColumn("Difference", format="%+.1f pts")})
    left.caption("Curve area: mean val accuracy over the epochs both runs trained, high when "
                 "a run gets good early.")
    with left:
        differences_table(report)
    right.plotly_chart(evalcharts.transfer_curves_figure(report), key="eval_transfer_chart",
                       width="stretch", theme=None)
    if matching is None:
        if pending:
            st.caption(f"The matching from-scratch baseline is "
                       f"{store.get_run(pending)['status']}; choose it above when it completes.")
        else:
            matching_baseline_offer(ws, run, cfg, actor,
                                    "For a comparison that differs only in how the runs train, "
                                    "train the matching baseline")


def training_on(ws: Workspace, dataset: str) -> bool:
    """Whether a run on `dataset` is queued or running: a pending baseline is one of them."""
    try:
        return bool(RunStore(ws).list_runs(dataset=dataset, statuses=ACTIVE_STATUSES))
    except TLCoreError:
        return False  # the tab itself shows the store's error


def transfer_section(ws: Workspace, run: dict, actor: auth.Actor) -> None:
    """The Transfer tab, drawn again on a timer while runs on its dataset train.

    A queued or running baseline is among them, so its report appears here when it
    completes, without a reload.
    """
    polling = training_on(ws, run["dataset"])
    st.fragment(transfer_live, run_every=TRANSFER_REFRESH_S if polling else None)(
        ws, run, polling, actor)


def transfer_live(ws: Workspace, run: dict, polling: bool, actor: auth.Actor) -> None:
    """The fragment of `transfer_section`; `polling` says whether it runs on a timer."""
    if training_on(ws, run["dataset"]) != polling:
        st.rerun()  # a baseline was queued or the last run ended: with or without the timer
    transfer_tab(ws, run, actor)
    st.divider()
    study_section(ws, run, actor)


def study_section(ws: Workspace, run: dict, actor: auth.Actor) -> None:
    """The transfer study on the run's dataset: pretrained vs scratch by training-set size."""
    st.markdown("**Transfer study: when does pretraining help on this dataset?**")
    study_id = transferstudy.latest(ws, run["dataset"])
    if study_id:
        rows = transferstudy.rows(ws, study_id)
        state = transferstudy.progress(rows)
        st.progress(state["finished"] / max(1, state["total"]),
                    text=f"Study progress: {transferstudy.progress_text(rows)}")
        st.plotly_chart(evalcharts.transfer_study_figure(rows), key="eval_study_chart",
                        width="stretch", theme=None)
        st.write(transferstudy.reading(rows))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    sizes = c1.text_input("Training images per class", "5, 10, 25, 50, 100",
                          key="eval_study_sizes",
                          help="One pretrained run (this run's settings) and one from-scratch "
                               f"baseline per size, at most {transferstudy.MAX_SIZES} sizes; "
                               "the pretrained runs are queued first. Validation and test "
                               "splits stay whole.")
    refused = denied(actor, auth.LAUNCH)
    start = c2.button("Run the study", key="eval_study_start", icon=":material/science:",
                      disabled=refused is not None, help=refused)
    if start and permitted(actor, auth.LAUNCH):
        try:
            flat = {k: v for k, v in flatten(run["config"]).items()
                    if k not in ("dataset", "train.subset")}
            transferstudy.launch(ws, run["dataset"], transferstudy.parse_sizes(sizes), flat,
                                 owner=actor.user)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        flash("eval", "success", "Transfer study queued: two runs per size, the pretrained "
                                 "ones first. The chart fills in as they complete.")
        st.rerun()


def predict_tab(ws: Workspace, run_id: str) -> None:
    files = st.file_uploader("Images to classify", type=UPLOAD_TYPES, accept_multiple_files=True,
                             key="eval_upload")
    with_cam = st.toggle("Grad-CAM overlay", value=True, key="eval_predict_gradcam")
    if st.button("Predict", key="eval_predict", disabled=not files, icon=":material/image_search:"):
        items = classify(ws, run_id, [(f.name, f.getvalue()) for f in files], top_k=TOP_K,
                         gradcam=with_cam)
        if items is not None:
            st.session_state["eval_predictions"] = {"run": run_id, "items": items}
    shown = st.session_state.get("eval_predictions")
    if not shown or shown["run"] != run_id:
        return
    for i, item in enumerate(shown["items"]):
        st.divider()
        show_prediction(item, key=f"eval_predict_chart_{i}")


def export_tab(ws: Workspace, run_id: str) -> None:
    st.caption("Each zip holds the model (raw RGB images in, class probabilities out; the VGG16 "
               "preprocessing is inside), class_names.json, the run's config.json and a README "
               "on loading it.")
    fmt = st.selectbox("Format", list(EXPORT_FORMATS), key="eval_export_format",
                       format_func=EXPORT_FORMATS.get)
    path = ws.run(run_id).export_zip(fmt)
    if not path.is_file():
        if st.button("Prepare download", key="eval_export", icon=":material/package_2:"):
            if export(ws, run_id, fmt, path, f"Exporting as {EXPORT_FORMATS[fmt]}…"):
                st.rerun()
        return
    size_mb = path.stat().st_size / 2**20
    st.download_button(f"Download {path.name} (zip, {size_mb:.1f} MB)",
                       data=functools.partial(path.read_bytes), file_name=path.name,
                       mime="application/zip", key="eval_export_download",
                       on_click="ignore", icon=":material/download:")
    try:
        report = read_export_report(path)
    except OSError as exc:
        st.error(plain(exc))
        return
    if report is not None:
        # Two sizes on screen: the model file inside the zip, and the zip itself.
        st.caption(f":material/compress: {QUANTIZED[fmt].capitalize()}: "
                   f"{plain(report_summary(report))}. Sizes: model file "
                   f"{report['model_bytes'] / 2**20:.1f} MB, download (zip) {size_mb:.1f} MB. "
                   "Measured on the run's test split with the TensorFlow Lite interpreter.")


# ---- page -----------------------------------------------------------------------
def render() -> None:
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Evaluate")
    st.caption("How good a finished run is, where it fails and why; whether transfer helped; "
               "classify new images and take the model away.")
    show_flash("eval")
    try:
        store = RunStore(ws)
        runs = store.list_runs(statuses=(COMPLETED,))
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    linked_run_warning(store, runs)
    if not runs:
        st.info("No completed runs yet. Train one on the Train page, then evaluate it here.",
                icon=":material/waving_hand:")
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return

    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        run = pick_run(runs)
    try:
        classes = evaluate.run_class_names(run["id"], ws=ws)
    except TLCoreError:
        classes = None
    with c2:
        dataset = pick_dataset(ws, store, run, classes)
    evaluation = stored_evaluation(ws, run["id"], dataset)

    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    with c1:
        if evaluation:
            when = dt.datetime.fromtimestamp(evaluation["created"]).strftime("%Y-%m-%d %H:%M")
            shift = " — domain shift: trained on " + plain(evaluation["trained_on"]) \
                if evaluation["domain_shift"] else ""
            st.caption(f"Evaluated {when} on {plain(evaluation['dataset'])}{shift}.")
        splits = [s for s in ("test", "val") if evaluation and s in evaluation["splits"]]
        split = None
        if splits:
            if st.session_state.get("eval_split") not in splits:
                st.session_state["eval_split"] = splits[0]
            split = st.radio("Split", splits, key="eval_split", horizontal=True)
    with c2:
        evaluate_button(ws, run, dataset, evaluation)

    tabs = st.tabs(["Metrics", "Mistakes & Grad-CAM", "Transfer", "Predict", "Export"])
    with tabs[0]:
        metrics_tab(ws, evaluation, split)
    with tabs[1]:
        mistakes_tab(ws, actor, run["id"], evaluation, split)
    with tabs[2]:
        transfer_section(ws, run, actor)
    with tabs[3]:
        predict_tab(ws, run["id"])
    with tabs[4]:
        export_tab(ws, run["id"])


render()
