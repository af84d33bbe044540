"""Presenter view: chosen runs compared and evaluated, read-only, for a projector or a link.

Reached by `/present?runs=<id>,<id>` (`tlcore.ui.present.presenter_link`), with
the sidebar collapsed. It is a sequence of slides, one on screen at a time and
picked at the top (the slide is in the URL, `&slide=<n>`): first the runs'
learning curves, final metrics and config differences, then one per run with
its owner, tags and note, its stored evaluation (metrics, confusion matrix,
per-class scores) and the Grad-CAM overlays of its worst mistakes.
Nothing on it changes anything: the slide picker and a link back to the Runs
page are its only controls; type and charts are larger than on the working pages.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from tlcore.charts import evaluation as evalcharts
from tlcore.charts import runs as charts
from tlcore.config import flatten
from tlcore.errors import TLCoreError
from tlcore.results import evaluate
from tlcore.store import RunStore
from tlcore.ui.evaluation import image_grid, metric_cards, stored_evaluation
from tlcore.ui.present import URL_PATH, URL_RUNS, requested_runs, slide_picker
from tlcore.ui.text import percent, plain
from tlcore.workspace import Workspace

FONT_PX = 22  # readable from the back of a room
TITLE_PX = 28
CHART_HEIGHT = 420
GRADCAM_SHOWN = 8
# The page's text at projector size (charts get theirs from `large`).
PROJECTOR_CSS = """<style>
.stMainBlockContainer [data-testid="stMarkdownContainer"] p,
.stMainBlockContainer [data-testid="stMarkdownContainer"] li,
.stMainBlockContainer [data-testid="stCaptionContainer"],
.stMainBlockContainer [data-testid="stTable"] td,
.stMainBlockContainer [data-testid="stTable"] th { font-size: 1.45rem; }
.stMainBlockContainer h1 { font-size: 3.2rem; }
.stMainBlockContainer h2 { font-size: 2.6rem; }
.stMainBlockContainer h3 { font-size: 2rem; }
.stMainBlockContainer [data-testid="stMetricLabel"] [data-testid="stMarkdownContainer"] p {
  font-size: 1.5rem; }
.stMainBlockContainer [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p {
  font-size: 3.2rem; }
.stMainBlockContainer [data-testid="stButtonGroup"] p { font-size: 1.3rem; }
</style>"""


def large(fig: go.Figure, height: int = CHART_HEIGHT) -> go.Figure:
    """`fig` with the projector's larger fonts and height."""
    fig.update_layout(font={"size": FONT_PX}, title_font={"size": TITLE_PX}, height=height)
    return fig


def chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(large(fig), key=key, theme=None, width="stretch",
                    config={"displayModeBar": False})


def load_runs(store: RunStore, wanted: list[str]) -> list[dict]:
    """The runs of the link that exist, in its order; a warning names the others."""
    runs, unknown = [], []
    for run_id in wanted:
        try:
            runs.append(store.get_run(run_id))
        except TLCoreError:  # deleted, or not a run id at all
            unknown.append(run_id)
    if unknown:
        st.warning(f"The link names {'a run' if len(unknown) == 1 else 'runs'} not in this "
                   f"workspace: {plain(', '.join(unknown))}. It may have been deleted.",
                   icon=":material/link_off:")
    return runs


def compare_section(store: RunStore, runs: list[dict], labels: dict[str, str]) -> None:
    """Learning curves of every run, then final metrics and what differs between them."""
    metrics = charts.metrics_frame(store.metrics_for(list(labels)), labels)
    order = list(labels.values())
    left, right = st.columns(2, gap="large")
    for col, metric in ((left, "accuracy"), (right, "loss")):
        with col:
            chart(charts.learning_curves(metrics, metric, runs=order,
                                         title=f"Learning curves · {charts.METRIC_LABELS[metric]}"),
                  key=f"present_curves_{metric}")
    if len(runs) < 2:
        return
    frame = charts.runs_frame(runs)
    left, right = st.columns(2, gap="large")
    with left:
        chart(charts.final_metrics_bar(frame), key="present_final")
    with right:
        st.subheader("Config differences")
        diff = charts.config_diff({labels[r["id"]]: flatten(r["config"]) for r in runs})
        if diff.empty:
            st.write("These runs share the same config.")
        else:  # st.table reads headers and cells as Markdown: run names go through plain
            st.table(diff.rename(index=plain, columns=plain).map(plain))


def gradcam_gallery(ws: Workspace, run_id: str, mistakes: list[dict]) -> None:
    """The Grad-CAM overlays of the most confident mistakes, where the evaluation made them."""
    items = []
    for mistake in mistakes:
        cam = evaluate.gradcam_path(run_id, mistake, ws=ws)
        if cam is not None:
            items.append((str(cam), f"{plain(mistake['true'])} → {plain(mistake['predicted'])} "
                                    f"({percent(mistake['confidence'])})"))
        if len(items) == GRADCAM_SHOWN:
            break
    if not items:
        return
    st.markdown("**Grad-CAM of the most confident mistakes** · true → predicted; red: where "
                "the model looked for the class it predicted")
    image_grid(items)


def run_notes(run: dict) -> None:
    """The run's tags as badges and its note as a quote, when it has them."""
    if run["tags"]:
        st.markdown(" ".join(f":gray-badge[{plain(tag)}]" for tag in run["tags"]))
    if run["note"]:
        st.markdown("\n".join(f"> {plain(line)}" for line in run["note"].splitlines()))


def evaluation_section(ws: Workspace, run: dict, label: str) -> None:
    """One run: who made it and its notes, then its stored evaluation on its own dataset
    (the test split when it has one)."""
    st.header(plain(label), divider="gray")
    weights = run["config"].get("base", {}).get("weights", "?")
    owner = f" · by {plain(run['owner'])}" if run["owner"] else ""
    st.caption(f"Dataset {plain(run['dataset'])} · weights {plain(weights)} · "
               f"{run['status']}{owner}")
    run_notes(run)
    try:
        evaluation = stored_evaluation(ws, run["id"], run["dataset"])
    except (OSError, ValueError, TLCoreError):
        evaluation = None
    splits = [s for s in ("test", "val") if evaluation and evaluation["splits"].get(s, {}).get("n")]
    if not splits:
        st.write("Not evaluated yet: the Evaluate page computes its metrics and Grad-CAM.")
        return
    split = splits[0]
    m = evaluation["splits"][split]
    st.markdown(f"**On the {split} split of {plain(evaluation['dataset'])}**")
    metric_cards(m)
    left, right = st.columns([3, 2], gap="large")
    with left:
        counts, classes = m["confusion"]["counts"], evaluation["classes"]
        # Bigger cells for few classes, so the counts stay readable on a projector.
        height = max(CHART_HEIGHT, 60 * len(classes) + 160)
        fig = evalcharts.confusion_figure(counts, classes, m["confusion"]["normalized"])
        st.plotly_chart(large(fig, height), key=f"present_confusion_{run['id']}", theme=None,
                        width="stretch", config={"displayModeBar": False})
    with right:
        st.plotly_chart(large(evalcharts.per_class_figure(m["per_class"])),
                        key=f"present_per_class_{run['id']}", theme=None, width="stretch",
                        config={"displayModeBar": False})
    gradcam_gallery(ws, run["id"], m["mistakes"])


def render() -> None:
    ws = Workspace.from_env()
    wanted = requested_runs()
    if not wanted:
        st.title("Presenter view")
        st.info(f"Tick runs on the Runs & compare page and open their presenter link, or add "
                f"`?{URL_RUNS}=<run id>,<run id>` to this page's address (`/{URL_PATH}`).",
                icon=":material/slideshow:")
        return
    try:
        store = RunStore(ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    runs = load_runs(store, wanted)
    if not runs:
        return
    st.html(PROJECTOR_CSS)
    labels = charts.run_labels(runs)
    runs_param = ",".join(r["id"] for r in runs)
    titles = ["Comparison" if len(runs) > 1 else "Learning curves", *labels.values()]
    picker, back = st.columns([5, 1], vertical_alignment="center")
    with picker:
        index = slide_picker(titles)
    back.page_link("app_pages/runs.py", label="Runs & compare", icon=":material/arrow_back:",
                   query_params={URL_RUNS: runs_param})
    if index == 0:
        st.title(plain(" vs ".join(labels.values())) if len(runs) <= 3 else
                 f"{len(runs)} runs compared")
        datasets = sorted({r["dataset"] for r in runs})
        st.caption(f"Dataset{'s' if len(datasets) > 1 else ''}: {plain(', '.join(datasets))}")
        compare_section(store, runs, labels)
    else:
        run = runs[index - 1]
        evaluation_section(ws, run, labels[run["id"]])


render()
