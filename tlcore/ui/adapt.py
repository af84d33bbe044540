"""The Adapt page's parts: pick a source run and a target, follow the job, show the report.

The adaptation runs in its own process (`tlcore.adapt.jobs`); `follow_job` is a
fragment that polls it and, once it ends, keeps the report for `show_report`.
Names of runs, datasets and classes are shown as plain text.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tlcore.adapt import jobs
from tlcore.adapt.lab import STEPS
from tlcore.adapt.methods import DEFAULT_SCORER, METHODS, SCORERS
from tlcore.charts.adapt import methods_figure
from tlcore.ui.text import percent, plain

JOB_KEY = "adapt_job"
REPORT_KEY = "adapt_report"
ERROR_KEY = "adapt_error"
POLL_S = 1.0
LEVEL_BOXES = {"similar": st.success, "moderate": st.info, "strong": st.warning}
STEP_TEXT = {"features": "Computing base features", "methods": "Fitting the methods",
             "shift": "Measuring the shift", "saving": "Saving the adapted run"}


def run_label(run: dict) -> str:
    """A completed run in the source picker: name, dataset, test accuracy."""
    test = (run.get("test_metrics") or {}).get("accuracy")
    acc = f" · test {percent(test)}" if test is not None else ""
    return f"{run['name']} · {run['dataset']}{acc}"


def dataset_label(row: dict) -> str:
    """A dataset in the target picker, marked when it has no labels."""
    unlabeled = list(row["classes"]) == ["unlabeled"]
    return f"{row['name']} ({'no labels' if unlabeled else 'labels hidden, used to score'})"


def options_form() -> tuple[list[str], str]:
    """The methods to compare and the scorer that chooses."""
    methods = st.multiselect(
        "Methods", list(METHODS), default=list(METHODS), key="adapt_methods",
        format_func=lambda n: METHODS[n][0],
        help="; ".join(f"{label}: {text}" for label, text in METHODS.values()))
    scorer = st.selectbox("Choose by", list(SCORERS), index=list(SCORERS).index(DEFAULT_SCORER),
                          key="adapt_scorer", format_func=lambda n: f"{n}: {SCORERS[n]}",
                          help="The unsupervised score that picks the method: it never "
                               "sees a target label.")
    return methods, scorer


@st.fragment(run_every=POLL_S)
def follow_job() -> None:
    """The running job's progress; once it ends, its report (or error) for the page."""
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    status = jobs.adapt_status(job)
    if status.running:
        step = STEP_TEXT.get(status.step, "Starting")
        index = STEPS.index(status.step) if status.step in STEPS else 0
        fraction = (index + (status.done / status.total if status.total else 0)) / len(STEPS)
        st.progress(min(fraction, 1.0), text=f"{step}… {status.done}/{status.total}"
                    if status.total else f"{step}…")
        return
    jobs.forget_adapt(job)
    del st.session_state[JOB_KEY]
    st.session_state[REPORT_KEY] = status.report
    st.session_state[ERROR_KEY] = status.error
    st.rerun()


def methods_table(report: dict) -> pd.DataFrame:
    """The methods as the page lists them: score, target accuracy, gain, seconds."""
    rows = []
    for m in report["methods"]:
        rows.append({"method": m["label"], "chosen": "✓" if m["name"] == report["chosen"] else "",
                     f"score ({report['scorer']})": m["score"],
                     "target accuracy": m["target_accuracy"],
                     "gain (points)": None if m["gain"] is None else round(m["gain"] * 100, 1),
                     **{s: m["scores"].get(s) for s in SCORERS if s != report["scorer"]},
                     "seconds": m["seconds"]})
    return pd.DataFrame(rows)


def show_shift(shift: dict) -> None:
    """The reading in a box of its level's colour, the measures, and per class."""
    LEVEL_BOXES.get(shift["level"], st.info)(plain(shift["reading"]))
    overall = shift["overall"]
    cols = st.columns(4)
    cols[0].metric("Proxy A-distance", f"{overall['proxy_a_distance']:.2f}",
                   help="2(1 - 2ε), ε the domain classifier's error: 0 = the domains look "
                        "alike, 2 = always told apart.")
    cols[1].metric("Domain classifier accuracy", percent(overall["domain_accuracy"]))
    cols[2].metric("MMD²", f"{overall['mmd2']:.4f}",
                   help="Kernel two-sample statistic, RBF kernel with the median bandwidth.")
    cols[3].metric("MMD p-value", f"{overall['mmd_p_value']:.3f}",
                   help="Permutation test; below 0.05 the difference is significant.")
    with st.expander("Shift per class"):
        st.caption("Source images by their label, target images by the class predicted "
                   "without adaptation; classes with fewer than 10 images in either domain "
                   "are not measured.")
        st.dataframe(pd.DataFrame(shift["per_class"]), hide_index=True, key="adapt_per_class")


def show_report(report: dict) -> None:
    """Shift, methods (table and chart), the source model and the chosen adapted run."""
    st.subheader("Shift")
    show_shift(report["shift"])
    st.subheader("Methods")
    if not report["labeled"]:
        st.caption("The target has no labels with the run's classes: only the unsupervised "
                   "scores are known.")
    source = report["source_model"]["target_accuracy"]
    if source is not None:
        st.caption(f"The source model (the run's own head) on the target: {percent(source)}. "
                   "Gains are measured against no adaptation, the same classifier as the "
                   "methods' trained on source features alone.")
    st.dataframe(methods_table(report), hide_index=True, key="adapt_methods_table")
    st.plotly_chart(methods_figure(report), theme=None, key="adapt_methods_chart")
    chosen = next(m for m in report["methods"] if m["name"] == report["chosen"])
    verdict = ""
    if chosen["gain"] is not None:
        verdict = (" — positive transfer" if chosen["gain"] > 0 else
                   " — negative transfer" if chosen["gain"] < 0 else " — no change")
        verdict += f" ({chosen['gain'] * 100:+.1f} points on the hidden labels)"
    st.success(f"Chosen without target labels: **{plain(chosen['label'])}**{verdict}. "
               f"Saved as run `{report['run_id']}`.")
    st.page_link("app_pages/evaluate.py", label="Evaluate the adapted run",
                  query_params={"run": report["run_id"]}, icon=":material/fact_check:")
