"""The Runs page's comparison of the ticked runs: curves, final metrics, configs, evaluations.

`compare` is drawn as a fragment (`st.fragment(compare)(...)`): switching its
Metric, Curves, axis, smoothing, run or split controls reruns the comparison
alone, not the page and its table. Its controls take their value as their
default on every run and keep it while another page is open, as the table's
column picker does. Schedule and speed, and one run's details, are drawn only
when asked for.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tlcore.charts import evaluation as evalcharts
from tlcore.charts import parcoords, schedule
from tlcore.charts import runs as charts
from tlcore.config import flatten
from tlcore.errors import TLCoreError
from tlcore.results import evaluate
from tlcore.store import COMPLETED, RunStore
from tlcore.ui.evaluation import stored_evaluation
from tlcore.ui.run_detail import run_detail
from tlcore.ui.text import percent, plain
from tlcore.workspace import Workspace

METRIC_KEY, SPLITS_KEY = "runs_metric", "runs_splits"
X_KEY, SMOOTH_KEY, LOG_KEY, BEST_KEY = "runs_x", "runs_smoothing", "runs_log_y", "runs_best"
MORE_KEY, DETAIL_RUN_KEY = "runs_more", "runs_detail_run"
MORE = {"schedule": "Schedule and speed", "detail": "Details, parameters and files"}


def kept_value(key: str, fallback: Any) -> Any:
    """The value to draw control `key` with: its own, else the one it had when last drawn.

    Args:
        key: The control's key; its last value is kept under `<key>_saved`.
        fallback: The value before the control was ever drawn.
    """
    return st.session_state.get(key, st.session_state.get(f"{key}_saved", fallback))


def keep_value(key: str, value: Any) -> None:
    """Remember control `key`'s value for when the page is drawn again (`kept_value`)."""
    st.session_state[f"{key}_saved"] = value


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
    """The comparison of two or more runs, below the runs table (run it as a fragment).

    Args:
        ws: The workspace.
        store: The run store.
        chosen: The runs to compare, one row each (`runs_frame` with the page's
            `tags` and `note` columns), in chart order.
        runs: Run records by id, with at least the chosen runs.
    """
    st.subheader("Compare")
    labels = dict(zip(chosen["id"], chosen["run"], strict=True))
    c1, c2, _ = st.columns([1, 1, 2])
    metric = c1.segmented_control("Metric", list(charts.METRICS), key=METRIC_KEY,
                                  default=kept_value(METRIC_KEY, "accuracy")) or "accuracy"
    splits = c2.segmented_control("Curves", ["train", "val"], selection_mode="multi",
                                  key=SPLITS_KEY,
                                  default=kept_value(SPLITS_KEY, ["train", "val"])) or ["val"]
    keep_value(METRIC_KEY, metric)
    keep_value(SPLITS_KEY, splits)
    options = curve_options()
    best = ({labels[i]: runs[i].get("best_epoch") for i in labels} if options.pop("best")
            else None)
    metrics = charts.metrics_frame(store.metrics_for(list(labels)), labels)
    st.plotly_chart(
        charts.learning_curves(metrics, metric, runs=list(labels.values()), splits=splits,
                               title=f"Learning curves · {charts.METRIC_LABELS[metric]}",
                               best_epochs=best, **options),
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
    st.plotly_chart(
        parcoords.parallel_coordinates(chosen, parcoords.differing_params(chosen, limit=None)),
        key="runs_parallel", theme=None)
    notes_table(chosen)
    # Drawn only when asked for, so they cost the comparison nothing otherwise.
    more = st.segmented_control("Also show", list(MORE), selection_mode="multi", key=MORE_KEY,
                                default=kept_value(MORE_KEY, []), format_func=MORE.get) or []
    keep_value(MORE_KEY, more)
    if "schedule" in more:
        left, right = st.columns(2, gap="large")
        left.plotly_chart(schedule.learning_rate_chart(metrics, runs=list(labels.values()),
                                                       x=options["x"]),
                          key="runs_lr", theme=None)
        right.plotly_chart(schedule.epoch_time_chart(metrics, runs=list(labels.values()),
                                                     x=options["x"]),
                           key="runs_epoch_time", theme=None)
    if "detail" in more:
        ids = list(labels)
        if st.session_state.get(DETAIL_RUN_KEY) not in ids:
            st.session_state[DETAIL_RUN_KEY] = ids[0]
        run_id = st.selectbox("Details, parameters and files of", ids, key=DETAIL_RUN_KEY,
                              format_func=labels.get)
        run_detail(ws, runs[run_id], key="runs_detail")
    evaluation_compare(ws, chosen, runs, labels)


def curve_options() -> dict[str, Any]:
    """The learning curves' reading options, a row of controls kept across pages.

    Returns:
        `log_y`, `smoothing` and `x` for `learning_curves`, and `best`: whether to
        star each run's best epoch.
    """
    c1, c2, c3, c4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
    x = c1.segmented_control("X axis", ["epoch", "time"], key=X_KEY,
                             default=kept_value(X_KEY, "epoch"),
                             format_func={"epoch": "Epoch", "time": "Time"}.get,
                             help="Time: seconds since the run started, at each epoch's "
                                  "end.") or "epoch"
    smoothing = c2.slider("Smoothing", 0.0, charts.SMOOTHING_MAX, step=0.01, key=SMOOTH_KEY,
                          value=kept_value(SMOOTH_KEY, 0.0),
                          help="Exponential moving average, as in TensorBoard: 0 draws the "
                               "values as they are; the raw curve stays faint behind.")
    log_y = c3.toggle("Log scale", key=LOG_KEY, value=kept_value(LOG_KEY, False))
    best = c4.toggle("Best epoch", key=BEST_KEY, value=kept_value(BEST_KEY, False),
                     help="A star at each run's model kept: its epoch of lowest val loss.")
    for key, value in ((X_KEY, x), (SMOOTH_KEY, smoothing), (LOG_KEY, log_y), (BEST_KEY, best)):
        keep_value(key, value)
    return {"x": x, "smoothing": smoothing, "log_y": log_y, "best": best}


def notes_table(chosen: pd.DataFrame) -> None:
    """Each compared run's tags and note, when any of them has one."""
    if not (chosen["tags"].map(bool).any() or chosen["note"].map(bool).any()):
        return
    st.markdown("**Tags and notes**")
    st.dataframe(chosen[["run", "tags", "note"]], key="runs_compare_notes", hide_index=True,
                 placeholder="—", column_config={
                     "run": "Run", "tags": st.column_config.ListColumn("Tags"),
                     "note": st.column_config.TextColumn("Note", width="large")})
