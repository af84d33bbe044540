"""Plotly builders that compare runs: DataFrame in, `go.Figure` out.

Every builder is a pure function (no Streamlit, no store access), so it can be
unit-tested on hand-made frames and reused from notebooks. The frame helpers at
the bottom turn store rows (`RunStore.list_runs`, `RunStore.metrics_for`,
`data.show_dataset`) into the frames the builders take. Figures carry the
dashboard's template (`tlcore.charts.theme`); a run keeps one colour across
charts (`run_colors`). Parallel coordinates are `tlcore.charts.parcoords`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.theme import (
    COLORWAY,
    HEIGHT,
    LEGEND_BELOW,
    LEGEND_BELOW_MAX,
    LEGEND_ROW_PX,
    MARGIN,
    chart_text,
    empty_figure,
    style_layout,
    styled,
)
from tlcore.config import flatten
from tlcore.entities import SPLITS

# Final metrics of more than BARS_VERTICAL_MAX runs: horizontal bars, values in hover.
BARS_VERTICAL_MAX = 6
BAR_ROW_PX = 26  # height per run of horizontal bars
# The config diff shows runs as rows above this many runs (fields as rows up to it).
DIFF_RUN_COLUMNS_MAX = 6
# Learning curves of many runs: a legend below the plot in columns this wide at most
# (the compare chart spans the page), an entry holding a line sample and the run's name.
CURVES_WIDTH_PX = 700
LEGEND_SAMPLE_PX = 48
CHAR_PX = 7  # about one character of legend or label text at the template's font size
LINE_WIDTHS = {"train": 1.5, "val": 3.0}  # val thicker: the curve that decides
DASH_LEGEND = "solid: train · dashed: val"
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
X_TITLES = {"epoch": "Epoch", "time": "Time since start (s)"}
SMOOTHING_MAX = 0.99
RAW_OPACITY = 0.25  # the unsmoothed curve behind a smoothed one


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
        return empty_figure(title, "No images")
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
                    title: str | None = None, log_y: bool = False, smoothing: float = 0.0,
                    x: str = "epoch",
                    best_epochs: Mapping[str, int | None] | None = None) -> go.Figure:
    """Per-epoch curves of one metric, train solid and val dashed, one colour per run.

    Val curves are drawn thicker than train curves. With more curves than
    `LEGEND_BELOW_MAX`, the legend lists each run once (its entry toggles both
    curves) in columns below the plot, which grows to hold them, and its title
    says which dash is which split. With smoothing, each curve is its
    exponential moving average (as TensorBoard's), the raw values faint behind it.

    Args:
        metrics_df: Frame with columns `run`, `epoch`, `phase` and the metric
            columns (`loss`, `val_loss`, `accuracy`, `val_accuracy`; `epoch_time`
            for a time axis), as from `metrics_frame`.
        metric: `"loss"` or `"accuracy"`.
        runs: Run labels to draw, in this order (colours follow it); default
            every run in `metrics_df`.
        phase_boundaries: Mark where fine-tuning (phase 2) starts with a
            dotted vertical line per run.
        splits: Which curves to draw: any of `"train"`, `"val"`.
        title: Figure title; default from the metric.
        log_y: A logarithmic value axis.
        smoothing: The moving average's weight, 0 (none) to 0.99.
        x: `"epoch"`, or `"time"`: seconds since the run started, at each epoch's end.
        best_epochs: `{run label: best epoch}`: a star on each run's curve (val
            when drawn) at the epoch whose model the run kept.

    Returns:
        The figure: one trace per (run, split) that has data, each after its
        faint raw trace when smoothed, then one star per run with a best epoch.

    Raises:
        ValueError: if `metric`, a split, `x` or `smoothing` is not known.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}. Received: metric={metric!r}")
    bad = [s for s in splits if s not in ("train", "val")]
    if bad:
        raise ValueError(f"splits must be 'train' and/or 'val'. Received: splits={list(splits)!r}")
    check_curve_options(x, smoothing)
    label = METRIC_LABELS[metric]
    title = title or label
    if metrics_df.empty:
        return empty_figure(title, "No epochs finished yet")
    order = list(runs) if runs is not None else list(dict.fromkeys(metrics_df["run"]))
    colors = run_colors(order)
    single = len(order) == 1
    # Many runs: one legend entry per run (it toggles both curves), the dash in its title.
    per_run = len(order) * len(splits) > LEGEND_BELOW_MAX and len(splits) > 1
    at = "%{x:.0f} s" if x == "time" else "epoch %{x}"
    by_run = run_parts(metrics_df)
    # Traces as plain dicts, validated once by the figure: a trace object each costs more.
    curves: list[dict[str, Any]] = []
    stars: list[dict[str, Any]] = []
    boundaries: list[tuple[float, str]] = []
    for run in order:
        part = by_run.get(run)
        if part is None:
            continue
        xs = (part["elapsed_s"] if x == "time" else part["epoch"]).to_list()
        name_run = chart_text(run)
        listed = False
        for split in splits:
            column = metric if split == "train" else f"val_{metric}"
            if column not in part or part[column].isna().all():
                continue
            # One run: colour by split for contrast; several: colour by run, dash by split.
            line = {"color": SPLIT_COLORS[split] if single else colors[run],
                    "dash": "solid" if split == "train" else "dash",
                    "width": LINE_WIDTHS[split]}
            hover = f"%{{meta[0]}}<br>{at}<br>{split} {metric}: %{{y:.4f}}<extra></extra>"
            common = {"type": "scatter", "x": xs, "legendgroup": name_run, "meta": [name_run],
                      "line": line}
            if smoothing:
                curves.append({**common, "y": part[column].to_list(), "mode": "lines",
                               "opacity": RAW_OPACITY, "showlegend": False,
                               "hovertemplate": hover.replace(f"{split} {metric}",
                                                              f"raw {split} {metric}")})
            curves.append({**common, "y": ema(part[column], smoothing).to_list(),
                           "mode": "lines+markers",
                           "name": split if single else chart_text(run if per_run
                                                                   else f"{run} · {split}"),
                           "marker": {"size": 5}, "hovertemplate": hover,
                           **({"showlegend": False} if per_run and listed else {})})
            listed = True
        boundary = phase_boundary(part, x) if phase_boundaries else None
        if boundary is not None:
            boundaries.append((boundary, "#555555" if single else colors[run]))
        star = best_star(part, run, (best_epochs or {}).get(run), metric, splits, x, smoothing,
                         SPLIT_COLORS["val" if "val" in splits else "train"]
                         if single else colors[run])
        if star:
            stars.append(star)
    names = [t["name"] for t in curves if t.get("showlegend") is not False]
    layout = style_layout(title, entries=len(names), x_title=X_TITLES[x],
                          y_title=f"{label} (log)" if log_y else label)
    if x == "epoch" and metrics_df["epoch"].max() <= 15:
        layout["xaxis"]["dtick"] = 1
    if log_y:
        layout["yaxis"]["type"] = "log"
    elif metric == "accuracy":
        layout["yaxis"]["rangemode"] = "tozero"
    if per_run:
        layout.update(columns_legend(names, DASH_LEGEND, layout["height"]))
    fig = go.Figure(data=curves + stars, layout=layout)
    marked: set[float] = set()
    for boundary, color in boundaries:
        # Runs that start fine-tuning at the same epoch share one label.
        label_here = {"annotation_text": "fine-tuning", "annotation_position": "top left",
                      "annotation_font": {"size": 11, "color": "#555555"}}
        fig.add_vline(x=boundary, line={"dash": "dot", "width": 1.5, "color": color},
                      **({} if boundary in marked else label_here))
        marked.add(boundary)
    return fig


def run_parts(metrics_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each run's epochs in order with `elapsed_s`, by run label.

    `elapsed_s` is the seconds from the run's start to each epoch's end. An epoch
    without a time counts as none, so the epochs after it keep a time.
    """
    ordered = metrics_df.sort_values("epoch", kind="stable")
    times = (pd.to_numeric(ordered["epoch_time"], errors="coerce").fillna(0.0)
             if "epoch_time" in ordered else pd.Series(0.0, index=ordered.index))
    ordered = ordered.assign(elapsed_s=times.groupby(ordered["run"], sort=False).cumsum())
    return {run: part for run, part in ordered.groupby("run", sort=False)}


def phase_boundary(part: pd.DataFrame, x: str) -> float | None:
    """Where one run's fine-tuning (phase 2) starts on the x axis, or None without one.

    On the epoch axis, half an epoch before its first fine-tuning epoch; on the time
    axis, the end of the last epoch before it.
    """
    if "phase" not in part or not (part["phase"] > 1).any():
        return None
    tuned = part["phase"] > 1
    if x == "time":
        before = part.loc[~tuned & (part["epoch"] < part.loc[tuned, "epoch"].min()), "elapsed_s"]
        return float(before.max()) if not before.empty else 0.0
    return float(part.loc[tuned, "epoch"].min() - 0.5)


def check_curve_options(x: str, smoothing: float) -> None:
    """Raise ValueError for an unknown x axis or a smoothing weight outside [0, SMOOTHING_MAX]."""
    if x not in X_TITLES:
        raise ValueError(f"x must be one of {', '.join(X_TITLES)}. Received: x={x!r}")
    if not 0 <= smoothing <= SMOOTHING_MAX:
        raise ValueError(f"smoothing must be between 0 and {SMOOTHING_MAX}. "
                         f"Received: smoothing={smoothing!r}")


def best_star(part: pd.DataFrame, run: str, best: int | None, metric: str,
              splits: Sequence[str], x: str, smoothing: float,
              color: str) -> dict[str, Any] | None:
    """The star trace where a run's curve (val when drawn) passes its best epoch, or None.

    Args:
        part: The run's epochs in order, with `elapsed_s` (`run_parts`).
        run: The run's label.
        best: The epoch whose model the run kept; None when unknown.
        metric, splits, x, smoothing: As `learning_curves` draws the run.
        color: The star's colour.
    """
    if best is None or pd.isna(best):
        return None
    column = f"val_{metric}" if "val" in splits else metric
    if column not in part:
        return None
    values = ema(part[column], smoothing)
    hit = part["epoch"] == best
    if not hit.any() or pd.isna(values[hit].iloc[0]):
        return None
    where = part.loc[hit, "elapsed_s" if x == "time" else "epoch"].iloc[0]
    return {"type": "scatter", "x": [where], "y": [values[hit].iloc[0]], "mode": "markers",
            "showlegend": False, "legendgroup": chart_text(run), "meta": [chart_text(run), best],
            "marker": {"symbol": "star", "size": 14, "color": color,
                       "line": {"width": 1, "color": "#ffffff"}},
            "hovertemplate": "%{meta[0]}<br>model kept: epoch %{meta[1]}<br>"
                             f"{column}: %{{y:.4f}}<extra></extra>"}


def ema(values: pd.Series, weight: float) -> pd.Series:
    """TensorBoard's smoothing: a debiased exponential moving average, gaps left as gaps.

    Args:
        values: The raw values, in order.
        weight: The weight of the past, 0 (the values as they are) to below 1.

    Returns:
        The smoothed values, same index; the first equals the first raw value.
    """
    if not weight:
        return values
    out, last, count = [], 0.0, 0
    for value in values:
        if pd.isna(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return pd.Series(out, index=values.index, dtype=float)


def columns_legend(names: Sequence[str], title: str, height: int) -> dict[str, Any]:
    """A long legend in aligned columns below the plot, its title on a row of its own.

    Entries are as wide as the longest name, as many to a row as fit
    `CURVES_WIDTH_PX`; the figure grows by the legend's rows, so the plot keeps
    its height and nothing scrolls.

    Args:
        names: The legend's entries (as shown).
        title: The legend's title.
        height: The figure's height without the legend.

    Returns:
        The layout's `legend`, `margin` and `height`.
    """
    entry_px = LEGEND_SAMPLE_PX + CHAR_PX * max((len(n) for n in names), default=1)
    per_row = max(1, CURVES_WIDTH_PX // entry_px)
    rows = 1 + -(-len(names) // per_row)  # the title's row, then the entries
    grow = 8 + LEGEND_ROW_PX * rows
    return {"legend": {**LEGEND_BELOW, "entrywidth": entry_px, "entrywidthmode": "pixels",
                       "title": {"text": chart_text(title), "side": "top"}},
            "margin": {"b": MARGIN["b"] + grow}, "height": height + grow}


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
        return empty_figure(title, "No runs selected")
    many = len(runs_df) > BARS_VERTICAL_MAX
    names = [chart_text(n) for n in runs_df["run"]]
    bars = []
    for i, column in enumerate(m for m in metrics if m in runs_df):
        values = runs_df[column].to_list()
        bar = {"x": values, "y": names, "orientation": "h", "textposition": "none",
               "hovertemplate": "%{y}<br>%{x:.4f}<extra></extra>"} if many else {
            "x": names, "y": values, "textposition": "outside", "cliponaxis": False,
            "text": [f"{v:.3f}" if pd.notna(v) else "" for v in values],
            "hovertemplate": "%{x}<br>%{y:.4f}<extra></extra>"}
        bars.append({"type": "bar", "name": METRIC_LABELS.get(column, column),
                     "marker": {"color": COLORWAY[i % len(COLORWAY)]}, **bar})
    value_title = "Accuracy" if all("accuracy" in m for m in metrics) else "Value"
    if many:
        # The first run on top, each name on its own row, as long as it is.
        layout = style_layout(title, max(HEIGHT, 140 + BAR_ROW_PX * len(runs_df)), len(bars),
                              x_title=value_title, y_title="Run")
        layout["yaxis"].update(type="category", autorange="reversed", automargin=True)
        value_axis, top = layout["xaxis"], 1
    else:
        layout = style_layout(title, entries=len(bars), x_title="Run", y_title=value_title)
        layout["xaxis"].update(type="category", automargin=True)
        # Labels too small to read beside their neighbours are left out, not overlapped.
        layout["uniformtext"] = {"minsize": 10, "mode": "hide"}
        value_axis, top = layout["yaxis"], 1.08  # room for the values above the bars
    layout["barmode"] = "group"
    if value_title == "Accuracy":
        value_axis["range"] = [0, top]
    return go.Figure(data=bars, layout=layout)


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
        if len({value_text(v) if v is not missing else "—" for v in values}) > 1:
            rows[key] = ["—" if v is missing else value_text(v) for v in values]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=labels)
    frame.index.name = "field"
    if len(labels) > max_run_columns:
        frame = frame.T
        frame.index.name, frame.columns.name = "run", None
    return frame


def value_text(value: Any) -> str:
    """A config value as one table cell: lists and dicts as JSON, floats in short form."""
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
            "created": run["created"],
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
    frame["created"] = pd.to_datetime(frame["created"], unit="s")
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
