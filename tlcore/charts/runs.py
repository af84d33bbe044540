"""Plotly figure builders for the dashboard: DataFrame in, `go.Figure` out.

Every builder is a pure function (no Streamlit, no store access), so it can be
unit-tested on hand-made frames and reused from notebooks. The frame helpers at
the bottom turn store rows (`RunStore.list_runs`, `RunStore.metrics_for`,
`data.show_dataset`) into the frames the builders take.

Every figure of the dashboard, these and `tlcore.charts.evaluation`', carries one
Plotly template, `TEMPLATE` (`plotly_white` with the `COLORWAY` colour
sequence, fonts, title, margins and legend), applied by `styled` where the
figure is built; pages draw figures as they are (`st.plotly_chart(fig,
theme=None)`). A run keeps one colour across charts (`run_colors`).

Plotly renders a few HTML tags (`<a href>`, `<b>`, `<span style>`) and entities
in titles, tick labels, legends and hover text. Names of classes and runs go in
through `chart_text`, and `styled` escapes titles, so every name shows as typed.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from tlcore.config import flatten
from tlcore.entities import SPLITS

# Okabe-Ito-like qualitative palette: distinguishable for colour-blind readers.
COLORWAY = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
            "#000000", "#8C564B", "#7F7F7F")
MUTED_COLOR = "#7F7F7F"  # reference lines, baselines, empty-figure messages
HEIGHT = 360  # px, unless a builder needs more room
MARGIN = {"l": 56, "r": 24, "t": 56, "b": 48}
# Legends: up to LEGEND_BELOW_MAX entries in rows under the plot (the margin counts
# LEGEND_PER_ROW to a row), more in a column at the right, which scrolls; never over the title.
LEGEND_BELOW_MAX = 8
LEGEND_PER_ROW = 2
LEGEND_ROW_PX = 22
# Final metrics of more than BARS_VERTICAL_MAX runs: horizontal bars, values in hover.
BARS_VERTICAL_MAX = 6
BAR_ROW_PX = 26  # height per run of horizontal bars
# The config diff shows runs as rows above this many runs (fields as rows up to it).
DIFF_RUN_COLUMNS_MAX = 6
TICK_CHARS_MAX = 20  # longer tick values of parallel coordinates keep their end
PARCOORDS_WIDTH_PX = 800  # the plot width that parallel coordinates' label spacing assumes
SPLIT_COLORS = {"train": "#0072B2", "val": "#E69F00", "test": "#009E73"}
METRICS = ("loss", "accuracy")
METRIC_LABELS = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "best_val_accuracy": "Best val accuracy",
    "test_accuracy": "Test accuracy",
    "best_val_loss": "Best val loss",
    "test_loss": "Test loss",
}
# Hyperparameters worth a glance in the runs table and the parallel-coordinates plot.
KEY_PARAMS = (
    "image_size", "base.weights", "head.pooling", "head.dense", "head.dropout",
    "train.optimizer", "train.learning_rate", "train.batch_size", "train.epochs",
    "fine_tune.blocks", "fine_tune.epochs", "augment.flip",
)


# Rows under the plot, from the bottom edge of the figure (the margin makes room).
LEGEND_BELOW = {"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom",
                "x": 0.0, "xanchor": "left"}
# A column right of the plot, from its top; Plotly widens the right margin for it.
LEGEND_RIGHT = {"orientation": "v", "yref": "paper", "y": 1.0, "yanchor": "top",
                "x": 1.02, "xanchor": "left"}


def _template() -> go.layout.Template:
    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.update(
        colorway=list(COLORWAY),
        font={"size": 13},
        title={"x": 0.0, "xanchor": "left", "font": {"size": 16}},
        margin=MARGIN,
        legend=LEGEND_BELOW,
    )
    return template


TEMPLATE = _template()


def chart_text(text: object) -> str:
    """`text` escaped for Plotly's text fields, so that it shows exactly as typed.

    Args:
        text: A user-supplied string (a class or run name), or anything with a `str`.

    Returns:
        The text with `&`, `<` and `>` written as HTML entities, which Plotly
        shows as the characters themselves and never reads as tags.
    """
    return html.escape(str(text), quote=False)


def styled(fig: go.Figure, title: str | None, x_title: str | None = None,
           y_title: str | None = None, height: int = HEIGHT) -> go.Figure:
    """`fig` in the project's look: `TEMPLATE`, a title, axis titles, a height.

    Titles are plain text: names in them show as typed (see `chart_text`).

    Args:
        fig: The figure, changed in place.
        title: Figure title; None for none.
        x_title: X-axis title; None leaves it as it is.
        y_title: Y-axis title; None leaves it as it is.
        height: Height in pixels (Streamlit draws a figure at its own height
            only when the figure sets one).

    Returns:
        `fig`.
    """
    fig.update_layout(template=TEMPLATE, height=height,
                      title_text=None if title is None else chart_text(title))
    if x_title is not None:
        fig.update_xaxes(title_text=chart_text(x_title))
    if y_title is not None:
        fig.update_yaxes(title_text=chart_text(y_title))
    place_legend(fig)
    return fig


def legend_entries(fig: go.Figure) -> int:
    """How many entries the figure's legend lists (line and bar traces not hidden from it)."""
    return sum(1 for t in fig.data if t.type in ("scatter", "bar") and t.showlegend is not False)


def place_legend(fig: go.Figure) -> None:
    """Put the legend where it covers neither the title nor the plot.

    Up to `LEGEND_BELOW_MAX` entries go in rows under the plot, with the bottom
    margin grown to hold them; more go in a scrolling column at the right.

    Args:
        fig: The figure, changed in place.
    """
    entries = legend_entries(fig)
    if entries > LEGEND_BELOW_MAX:
        fig.update_layout(legend=LEGEND_RIGHT)
    elif entries > 1:
        rows = -(-entries // LEGEND_PER_ROW)
        fig.update_layout(legend=LEGEND_BELOW,
                          margin={"b": MARGIN["b"] + 8 + LEGEND_ROW_PX * rows})


def _empty(title: str, message: str) -> go.Figure:
    fig = styled(go.Figure(), title)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": MUTED_COLOR})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def run_colors(labels: Iterable[str]) -> dict[str, str]:
    """A stable colour per run label, in the order given.

    Args:
        labels: Run labels (the order decides the colours).

    Returns:
        `{label: "#rrggbb"}`, cycling through `COLORWAY`.
    """
    return {label: COLORWAY[i % len(COLORWAY)] for i, label in enumerate(dict.fromkeys(labels))}


def class_balance(df: pd.DataFrame, title: str = "Images per class") -> go.Figure:
    """Stacked bar chart of images per class, one colour per split.

    Args:
        df: Long frame with columns `class`, `split` (train/val/test) and `count`
            (see `counts_frame`).
        title: Figure title.

    Returns:
        A figure with one bar trace per split present in `df`.
    """
    if df.empty:
        return _empty(title, "No images")
    classes = list(dict.fromkeys(df["class"]))
    ticks = [chart_text(c) for c in classes]
    fig = go.Figure()
    present = [s for s in SPLITS if s in set(df["split"])]
    present += [s for s in dict.fromkeys(df["split"]) if s not in present]
    for split in present:
        part = df[df["split"] == split].set_index("class")["count"].reindex(classes, fill_value=0)
        fig.add_trace(go.Bar(
            x=ticks, y=part.to_list(), name=split,
            marker_color=SPLIT_COLORS.get(split),
            hovertemplate="%{x}<br>" + split + ": %{y} images<extra></extra>",
        ))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    return styled(fig, title, "Class", "Images")


def learning_curves(metrics_df: pd.DataFrame, metric: str = "loss",
                    runs: Sequence[str] | None = None, phase_boundaries: bool = True,
                    splits: Sequence[str] = ("train", "val"),
                    title: str | None = None) -> go.Figure:
    """Per-epoch curves of one metric, train solid and val dashed, one colour per run.

    With more curves than `LEGEND_BELOW_MAX`, the legend lists each run once (its
    entry toggles both curves) and its title says which dash is which split.

    Args:
        metrics_df: Frame with columns `run`, `epoch`, `phase` and the metric
            columns (`loss`, `val_loss`, `accuracy`, `val_accuracy`), as from
            `metrics_frame`.
        metric: `"loss"` or `"accuracy"`.
        runs: Run labels to draw, in this order (colours follow it); default
            every run in `metrics_df`.
        phase_boundaries: Mark where fine-tuning (phase 2) starts with a
            dotted vertical line per run.
        splits: Which curves to draw: any of `"train"`, `"val"`.
        title: Figure title; default from the metric.

    Returns:
        The figure: one trace per (run, split) that has data.

    Raises:
        ValueError: if `metric` or a split is not known.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}. Received: metric={metric!r}")
    bad = [s for s in splits if s not in ("train", "val")]
    if bad:
        raise ValueError(f"splits must be 'train' and/or 'val'. Received: splits={list(splits)!r}")
    label = METRIC_LABELS[metric]
    title = title or label
    if metrics_df.empty:
        return _empty(title, "No epochs finished yet")
    order = list(runs) if runs is not None else list(dict.fromkeys(metrics_df["run"]))
    colors = run_colors(order)
    single = len(order) == 1
    # Many runs: one legend entry per run (it toggles both curves), the dash in its title.
    per_run = len(order) * len(splits) > LEGEND_BELOW_MAX and len(splits) > 1
    fig = go.Figure()
    marked: set[float] = set()
    for run in order:
        part = metrics_df[metrics_df["run"] == run].sort_values("epoch")
        if part.empty:
            continue
        listed = False
        for split in splits:
            column = metric if split == "train" else f"val_{metric}"
            if column not in part or part[column].isna().all():
                continue
            if single:
                name = split
            else:
                name = chart_text(run if per_run else f"{run} · {split}")
            fig.add_trace(go.Scatter(
                x=part["epoch"], y=part[column], mode="lines+markers",
                name=name, showlegend=False if per_run and listed else None,
                legendgroup=chart_text(run), meta=[chart_text(run)],
                # One run: colour by split for contrast; several: colour by run, dash by split.
                line={"color": SPLIT_COLORS[split] if single else colors[run],
                      "dash": "solid" if split == "train" else "dash", "width": 2},
                marker={"size": 5},
                hovertemplate=(f"%{{meta[0]}}<br>epoch %{{x}}<br>{split} {metric}: "
                               "%{y:.4f}<extra></extra>"),
            ))
            listed = True
        if phase_boundaries and "phase" in part and (part["phase"] > 1).any():
            x = part.loc[part["phase"] > 1, "epoch"].min() - 0.5
            # Runs that start fine-tuning at the same epoch share one label.
            label_here = {"annotation_text": "fine-tuning", "annotation_position": "top left",
                          "annotation_font": {"size": 11, "color": "#555555"}}
            fig.add_vline(x=x, line={"dash": "dot", "width": 1.5,
                                     "color": "#555555" if single else colors[run]},
                          **({} if x in marked else label_here))
            marked.add(x)
    fig.update_xaxes(dtick=1 if metrics_df["epoch"].max() <= 15 else None)
    if metric == "accuracy":
        fig.update_yaxes(rangemode="tozero")
    fig = styled(fig, title, "Epoch", label)
    if per_run:
        fig.update_layout(legend_title_text="solid: train · dashed: val")
    return fig


def final_metrics_bar(runs_df: pd.DataFrame,
                      metrics: Sequence[str] = ("best_val_accuracy", "test_accuracy"),
                      title: str = "Final metrics") -> go.Figure:
    """Grouped bars of final metrics per run.

    Up to `BARS_VERTICAL_MAX` runs stand as columns with their values written
    above them (values that would overlap are hidden); more runs lie as
    horizontal bars, one row per run name, values in the hover text only.

    Args:
        runs_df: One row per run with a `run` label column and the `metrics`
            columns (missing values are left out).
        metrics: Columns to draw, one bar trace each.
        title: Figure title.

    Returns:
        The figure: one bar trace per metric column present in `runs_df`.
    """
    if runs_df.empty:
        return _empty(title, "No runs selected")
    many = len(runs_df) > BARS_VERTICAL_MAX
    names = runs_df["run"].map(chart_text)
    fig = go.Figure()
    for i, column in enumerate(m for m in metrics if m in runs_df):
        values = runs_df[column]
        bar = {"x": values, "y": names, "orientation": "h", "textposition": "none",
               "hovertemplate": "%{y}<br>%{x:.4f}<extra></extra>"} if many else {
            "x": names, "y": values, "textposition": "outside", "cliponaxis": False,
            "text": [f"{v:.3f}" if pd.notna(v) else "" for v in values],
            "hovertemplate": "%{x}<br>%{y:.4f}<extra></extra>"}
        fig.add_trace(go.Bar(name=METRIC_LABELS.get(column, column),
                             marker_color=COLORWAY[i % len(COLORWAY)], **bar))
    accuracies = all("accuracy" in m for m in metrics)
    value_title = "Accuracy" if accuracies else "Value"
    if many:
        fig.update_layout(barmode="group")
        # The first run on top, each name on its own row, as long as it is.
        fig.update_yaxes(type="category", autorange="reversed", automargin=True)
        if accuracies:
            fig.update_xaxes(range=[0, 1])
        return styled(fig, title, value_title, "Run",
                      height=max(HEIGHT, 140 + BAR_ROW_PX * len(runs_df)))
    # Labels too small to read beside their neighbours are left out, not overlapped.
    fig.update_layout(barmode="group", uniformtext={"minsize": 10, "mode": "hide"})
    fig.update_xaxes(type="category", automargin=True)
    if accuracies:
        fig.update_yaxes(range=[0, 1.08])
    return styled(fig, title, "Run", value_title)


def parallel_coordinates(runs_df: pd.DataFrame, params: Sequence[str],
                         target: str = "best_val_accuracy",
                         title: str = "Hyperparameters vs best val accuracy") -> go.Figure:
    """Parallel-coordinates plot: one axis per hyperparameter, lines coloured by `target`.

    Text parameters (optimizer, pooling, ...) get one tick per value; lists
    (e.g. `head.dense`) are shown as text. Positive numbers spanning 10x or more
    (learning rates) get a log axis, labelled with the real values.

    Axis labels are the last part of each dotted key (`short_labels`); Plotly
    shows no hover text on these axes, so the full keys are the config
    diff's. Labels are tilted when there are many axes or long labels, tick
    values longer than `TICK_CHARS_MAX` keep their end, and the margins
    grow to fit the outer axes' labels, ticks and the colour bar.

    Args:
        runs_df: One row per run with the `params` columns and `target`.
        params: Hyperparameter columns, one axis each, in this order.
        target: The metric column; also drawn as the last axis.
        title: Figure title.

    Returns:
        A figure with one `Parcoords` trace, or an explanatory empty figure
        when no run has a value for `target`.
    """
    if target not in runs_df or runs_df[target].isna().all():
        return _empty(title, "No finished runs to compare yet")
    data = runs_df[runs_df[target].notna()]
    present = [p for p in params if p in data]
    labels = short_labels(present)
    dimensions = []
    for param in present:
        values = data[param]
        if values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all():
            numbers = values.astype(float)
            if numbers.min() > 0 and numbers.max() >= 10 * numbers.min():
                ticks = sorted(set(numbers))
                dimensions.append({
                    "label": labels[param], "values": np.log10(numbers).to_list(),
                    "tickvals": np.log10(ticks).tolist(), "ticktext": [f"{t:g}" for t in ticks]})
            else:
                dimensions.append({"label": labels[param], "values": numbers.to_list(),
                                   "tickformat": ".3~g"})
        else:
            text = values.map(_as_text)
            ticks = sorted(set(text))
            codes = {t: i for i, t in enumerate(ticks)}
            dimensions.append({
                "label": labels[param], "values": [codes[t] for t in text],
                "tickvals": list(range(len(ticks))),
                "ticktext": [chart_text(_tick_end(t)) for t in ticks],
                "range": [-0.5, len(ticks) - 0.5] if len(ticks) == 1 else [0, len(ticks) - 1],
            })
    target_values = data[target].astype(float).to_list()
    target_label = METRIC_LABELS.get(target, target)
    dimensions.append({"label": target_label, "values": target_values, "tickformat": ".3~f"})
    longest = max(len(d["label"]) for d in dimensions)
    # Neighbouring labels overlap when their halves (~7 px a character) meet between
    # two axes of a typical wide chart; then all of them tilt.
    spacing = PARCOORDS_WIDTH_PX / max(1, len(dimensions) - 1)
    tilted = any(3.5 * (len(a["label"]) + len(b["label"])) > spacing
                 for a, b in itertools.pairwise(dimensions))
    fig = go.Figure(go.Parcoords(
        dimensions=dimensions, labelangle=-20 if tilted else 0,
        line={"color": target_values, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"thickness": 12, "tickformat": ".2f"}},
        labelfont={"size": 12}, tickfont={"size": 11},
    ))
    fig = styled(fig, title, height=400 + (40 if tilted else 0))
    # Room for the outer axes' half labels and the first axis's ticks (drawn at its left),
    # the tilted labels' rise and the colour bar: ~7 px a character at these font sizes.
    first_ticks = max((len(t) for t in dimensions[0].get("ticktext", [])), default=6)
    fig.update_layout(margin={
        "l": max(48, 7 * first_ticks + 16, 4 * len(dimensions[0]["label"])),
        "r": 72 + 4 * len(target_label),
        "t": 96 + (3 * longest if tilted else 0), "b": 32})
    return fig


def _tick_end(text: str) -> str:
    """`text`, or its last `TICK_CHARS_MAX - 1` characters after "…" (a file keeps its name)."""
    return text if len(text) <= TICK_CHARS_MAX else "…" + text[-(TICK_CHARS_MAX - 1):]


def short_labels(keys: Sequence[str]) -> dict[str, str]:
    """Axis labels: the last part of each dotted key, the full key where that repeats.

    Args:
        keys: Flat config keys such as `train.learning_rate`.

    Returns:
        `{key: label}`, e.g. `learning_rate`, but `train.epochs` and
        `fine_tune.epochs` when both are present.
    """
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def config_diff(configs: Mapping[str, Mapping[str, Any]],
                max_run_columns: int = DIFF_RUN_COLUMNS_MAX) -> pd.DataFrame:
    """A table of the config fields that differ between runs.

    Args:
        configs: `{run label: flat config}` (as from `RunConfig.flat()`).
        max_run_columns: Up to this many runs, one column per run; more runs
            get one row each (a table as wide as the fields that differ, not as
            the runs compared).

    Returns:
        A frame holding only the fields whose values are not all equal, values
        shown as text and a field a run lacks as "—": indexed by field name
        (`field`) with one column per run, or, above `max_run_columns` runs,
        indexed by run label (`run`) with one column per field. Empty when
        fewer than two runs.
    """
    labels = list(configs)
    if len(labels) < 2:
        return pd.DataFrame(columns=labels)
    keys = list(dict.fromkeys(k for c in configs.values() for k in c))
    missing = object()
    rows = {}
    for key in keys:
        values = [configs[label].get(key, missing) for label in labels]
        if len({_as_text(v) if v is not missing else "—" for v in values}) > 1:
            rows[key] = ["—" if v is missing else _as_text(v) for v in values]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=labels)
    frame.index.name = "field"
    if len(labels) > max_run_columns:
        frame = frame.T
        frame.index.name, frame.columns.name = "run", None
    return frame


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple | dict):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---- frames from store rows ------------------------------------------------
def counts_frame(counts: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """Long frame (`class`, `split`, `count`) from a dataset's per-class counts.

    Args:
        counts: `{class: {"train": n, "val": n, "test": n, ...}}` as in
            `data.show_dataset(...)["counts"]`; other keys are ignored.

    Returns:
        One row per (class, split), classes in the given order.
    """
    rows = [{"class": name, "split": split, "count": int(per.get(split, 0))}
            for name, per in counts.items() for split in SPLITS]
    return pd.DataFrame(rows, columns=["class", "split", "count"])


def run_labels(runs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """A unique display label per run id: its name, plus the id when names repeat.

    Args:
        runs: Run dicts with `id` and `name`.

    Returns:
        `{run id: label}`.
    """
    seen: dict[str, int] = {}
    for run in runs:
        seen[run["name"]] = seen.get(run["name"], 0) + 1
    return {r["id"]: r["name"] if seen[r["name"]] == 1 else f"{r['name']} ({r['id'][:6]})"
            for r in runs}


def format_duration(seconds: float | None) -> str:
    """`"1h 02m"`, `"3m 07s"` or `"42s"`; empty for None."""
    if seconds is None or pd.isna(seconds):
        return ""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def runs_frame(runs: Sequence[Mapping[str, Any]], now: float | None = None) -> pd.DataFrame:
    """One row per run for tables and comparison charts.

    Args:
        runs: Run dicts as from `RunStore.list_runs` (config as a dict).
        now: Clock for the duration of runs still going; default `time.time()`.

    Returns:
        Columns `id`, `run` (unique label), `name`, `dataset`, `status`,
        `created` (datetime), `duration_s`, `duration`, `device`, `sweep` (the sweep
        id of a sweep's trial, else ""),
        `best_val_accuracy`, `best_val_loss`, `best_epoch`, `test_accuracy`,
        `test_loss`, then one column per flat config key (dotted names).
    """
    now = time.time() if now is None else now
    labels = run_labels(runs)
    rows = []
    for run in runs:
        started, ended = run.get("started"), run.get("ended")
        duration = None
        if started:
            duration = (ended or now) - started
        test = run.get("test_metrics") or {}
        row = {
            "id": run["id"], "run": labels[run["id"]], "name": run["name"],
            "dataset": run["dataset"], "status": run["status"],
            "created": pd.to_datetime(run["created"], unit="s"),
            "duration_s": duration, "duration": format_duration(duration),
            "device": run.get("device") or "",
            "sweep": (run.get("extra") or {}).get("sweep") or "",
            "best_val_accuracy": run.get("best_val_accuracy"),
            "best_val_loss": run.get("best_val_loss"),
            "best_epoch": run.get("best_epoch"),
            "test_accuracy": test.get("accuracy"), "test_loss": test.get("loss"),
        }
        row.update(flatten(run.get("config") or {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["id", "run", "name", "dataset", "status", "created",
                                      "duration_s", "duration", "device", "sweep",
                                      "best_val_accuracy",
                                      "best_val_loss", "best_epoch", "test_accuracy",
                                      "test_loss"])
    for column in ("best_val_accuracy", "best_val_loss", "test_accuracy", "test_loss"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def metrics_frame(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> pd.DataFrame:
    """Per-epoch metrics of several runs with a `run` label column.

    Args:
        rows: Metric rows as from `RunStore.metrics_for` (with `run_id`).
        labels: `{run id: label}` (see `run_labels`); rows of other runs are dropped.

    Returns:
        Columns `run`, `run_id`, `epoch`, `phase`, `loss`, `accuracy`,
        `val_loss`, `val_accuracy`, `learning_rate`, `epoch_time`.
    """
    columns = ["run", "run_id", "epoch", "phase", "loss", "accuracy", "val_loss",
               "val_accuracy", "learning_rate", "epoch_time"]
    data = [{**row, "run": labels[row["run_id"]]} for row in rows if row["run_id"] in labels]
    frame = pd.DataFrame(data, columns=columns)
    for column in columns[4:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def differing_params(runs_df: pd.DataFrame, candidates: Sequence[str] = KEY_PARAMS,
                     limit: int = 8) -> list[str]:
    """The hyperparameter columns whose values differ between the rows.

    Falls back to the first few candidates when every run has the same values,
    so a parallel-coordinates plot always has axes.

    Args:
        runs_df: One row per run (see `runs_frame`).
        candidates: Columns to consider, in order; the default `KEY_PARAMS`
            first, then any other config column that differs.
        limit: At most this many columns.

    Returns:
        Column names.
    """
    config_columns = [c for c in runs_df.columns if "." in c or c == "image_size"]
    ordered = list(dict.fromkeys([*candidates, *config_columns]))
    differ = [c for c in ordered
              if c in runs_df and runs_df[c].map(_as_text).nunique(dropna=False) > 1]
    if differ:
        return differ[:limit]
    return [c for c in candidates if c in runs_df][:3]
