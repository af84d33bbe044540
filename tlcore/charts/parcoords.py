"""Parallel coordinates: one axis per hyperparameter, one line per run, coloured by a metric.

A pure builder like the others of `tlcore.charts`: a runs frame (`runs.runs_frame`)
in, a `go.Figure` out. `differing_params` picks the axes worth drawing: the
settings whose values differ between the runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.runs import CHAR_PX, METRIC_LABELS, value_text
from tlcore.charts.theme import chart_text, empty_figure, style_layout

# Hyperparameters worth a glance in the runs table and the parallel-coordinates plot.
KEY_PARAMS = (
    "image_size", "base.weights", "head.pooling", "head.dense", "head.dropout",
    "train.optimizer", "train.learning_rate", "train.batch_size", "train.epochs",
    "fine_tune.blocks", "fine_tune.epochs", "augment.flip",
)
TICK_CHARS_MAX = 20  # longer tick values of parallel coordinates keep their end
PARCOORDS_WIDTH_PX = 800  # the plot width that parallel coordinates' label spacing assumes
PARCOORDS_AXES_MAX = 8  # parameter axes of parallel coordinates; the title counts the rest
LOG_TICKS_MAX = 6  # ticks of a log axis of parallel coordinates


def parallel_coordinates(runs_df: pd.DataFrame, params: Sequence[str],
                         target: str = "best_val_accuracy",
                         title: str = "Hyperparameters vs best val accuracy",
                         log_params: Collection[str] = (),
                         max_axes: int = PARCOORDS_AXES_MAX) -> go.Figure:
    """Parallel-coordinates plot: one axis per hyperparameter, lines coloured by `target`.

    Text parameters (optimizer, pooling, ...) get one tick per value; lists
    (e.g. `head.dense`) are shown as text. Positive numbers spanning 10x or more
    (learning rates), and those of `log_params`, get a log axis labelled with
    real values; every number shows 3 significant digits. The first `max_axes`
    parameters get an axis; the title says how many more were left out. The
    colour scale spans the runs' usual range (`color_range`): an outlier takes
    the colour at its end instead of squeezing every other run into one shade.

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
        log_params: Parameters drawn on a log axis whenever their values are
            positive (those a sweep samples on a log scale).
        max_axes: At most this many parameter axes.

    Returns:
        A figure with one `Parcoords` trace, or an explanatory empty figure
        when no run has a value for `target`.
    """
    if target not in runs_df or runs_df[target].isna().all():
        return empty_figure(title, "No finished runs to compare yet")
    data = runs_df[runs_df[target].notna()]
    present = [p for p in params if p in data]
    left_out = len(present) - max_axes
    if left_out > 0:
        present = present[:max_axes]
        title = (f"{title} · {left_out} more setting{'s' if left_out > 1 else ''} differ, "
                 "not shown")
    labels = short_labels(present)
    dimensions = []
    for param in present:
        values = data[param]
        if values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all():
            numbers = values.astype(float)
            positive = numbers.min() > 0
            if positive and (param in log_params or numbers.max() >= 10 * numbers.min()):
                dimensions.append({"label": labels[param], **log_axis(numbers)})
            else:
                dimensions.append({"label": labels[param], "values": numbers.to_list(),
                                   "tickformat": ".3~g"})
        else:
            text = values.map(value_text)
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
    low, high = color_range(target_values)
    # Room for the outer axes' half labels and the first axis's ticks (drawn at its left),
    # the tilted labels' rise and the colour bar: ~7 px a character at these font sizes.
    first_ticks = max((len(t) for t in dimensions[0].get("ticktext", [])), default=6)
    layout = style_layout(title, height=400 + (40 if tilted else 0))
    layout["margin"] = {
        "l": max(48, CHAR_PX * first_ticks + 16, 4 * len(dimensions[0]["label"])),
        "r": 72 + 4 * len(target_label),
        "t": 96 + (3 * longest if tilted else 0), "b": 32}
    return go.Figure(data=[{
        "type": "parcoords", "dimensions": dimensions, "labelangle": -20 if tilted else 0,
        "line": {"color": target_values, "colorscale": "Viridis", "showscale": True,
                 **({"cmin": low, "cmax": high} if low < high else {}),
                 "colorbar": {"thickness": 12, "tickformat": ".2f"}},
        "labelfont": {"size": 12}, "tickfont": {"size": 11}}], layout=layout)


def log_axis(numbers: pd.Series, ticks_max: int = LOG_TICKS_MAX) -> dict[str, Any]:
    """A parallel-coordinates axis of positive numbers on a log scale, labelled with real values.

    Args:
        numbers: The axis's values, all positive.
        ticks_max: At most this many ticks: every distinct value up to it, else
            evenly spaced on the log scale from the smallest to the largest.

    Returns:
        The dimension's `values` (log10), `tickvals` and `ticktext` (3 significant digits).
    """
    logs = np.log10(numbers.to_numpy(dtype=float))
    distinct = np.unique(logs)
    ticks = distinct if len(distinct) <= ticks_max else np.linspace(
        distinct[0], distinct[-1], ticks_max)
    return {"values": logs.tolist(), "tickvals": ticks.tolist(),
            "ticktext": [f"{10 ** t:.3g}" for t in ticks]}


def color_range(values: Sequence[float]) -> tuple[float, float]:
    """The colour scale's ends: the values' range, without outliers.

    An outlier lies more than 1.5 interquartile ranges outside the middle half
    (Tukey's fences); the ends move in to the most extreme values that are not
    outliers. Unlike fixed percentiles, this keeps every value of a few runs
    and still drops the one diverged run of eight.

    Args:
        values: The colour values (no NaN).

    Returns:
        `(low, high)`, with `low < high` unless every value is the same.
    """
    array = np.asarray(values, dtype=float)
    q1, q3 = np.percentile(array, [25, 75])
    spread = 1.5 * (q3 - q1)
    inside = array[(array >= q1 - spread) & (array <= q3 + spread)]
    low, high = float(inside.min()), float(inside.max())
    if low == high:  # the middle half alike: only outliers differ, so keep them all
        return float(array.min()), float(array.max())
    return low, high


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


def differing_params(runs_df: pd.DataFrame, candidates: Sequence[str] = KEY_PARAMS,
                     limit: int | None = 8) -> list[str]:
    """The hyperparameter columns whose values differ between the rows.

    Falls back to the first few candidates when every run has the same values,
    so a parallel-coordinates plot always has axes.

    Args:
        runs_df: One row per run (see `runs_frame`).
        candidates: Columns to consider, in order; the default `KEY_PARAMS`
            first, then any other config column that differs.
        limit: At most this many columns; None for every one that differs.

    Returns:
        Column names.
    """
    config_columns = [c for c in runs_df.columns if "." in c or c == "image_size"]
    ordered = list(dict.fromkeys([*candidates, *config_columns]))
    differ = [c for c in ordered
              if c in runs_df and len({value_text(v) for v in runs_df[c].to_list()}) > 1]
    if differ:
        return differ[:limit]
    return [c for c in candidates if c in runs_df][:3]
