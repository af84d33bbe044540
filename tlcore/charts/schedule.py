"""Plotly builders of how runs trained: learning rate and seconds per epoch.

Pure functions from the per-epoch frame of `tlcore.charts.runs.metrics_frame`
(columns `run`, `epoch`, `learning_rate`, `epoch_time`) to figures, one colour
per run as in the learning curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.runs import X_TITLES, check_curve_options, run_colors, run_parts
from tlcore.charts.theme import chart_text, empty_figure, styled


def _per_epoch_lines(metrics_df: pd.DataFrame, column: str, runs: Sequence[str] | None,
                    x: str, hover: str) -> go.Figure:
    """One line per run of `column` against epoch or time since start (unstyled)."""
    check_curve_options(x, 0.0)
    order = list(runs) if runs is not None else list(dict.fromkeys(metrics_df["run"]))
    colors = run_colors(order)
    at = "%{x:.0f} s" if x == "time" else "epoch %{x}"
    fig = go.Figure()
    by_run = run_parts(metrics_df)
    for run in order:
        part = by_run.get(run)
        if part is None or part[column].isna().all():
            continue
        fig.add_trace(go.Scatter(
            x=part["elapsed_s"] if x == "time" else part["epoch"], y=part[column],
            mode="lines+markers", name=chart_text(run), meta=[chart_text(run)],
            line={"color": colors[run], "width": 2}, marker={"size": 5},
            hovertemplate=f"%{{meta[0]}}<br>{at}<br>{hover}<extra></extra>"))
    if x == "epoch" and not metrics_df.empty:
        fig.update_xaxes(dtick=1 if metrics_df["epoch"].max() <= 15 else None)
    return fig


def learning_rate_chart(metrics_df: pd.DataFrame, runs: Sequence[str] | None = None,
                        x: str = "epoch", title: str = "Learning rate") -> go.Figure:
    """Each run's learning rate per epoch, on a log axis (rates span decades).

    Args:
        metrics_df: Per-epoch frame as from `metrics_frame`.
        runs: Run labels to draw, in this order (colours follow it); default all.
        x: `"epoch"` or `"time"` (seconds since the run started).
        title: Figure title.

    Returns:
        One line per run that logged a learning rate.

    Raises:
        ValueError: if `x` is not known.
    """
    fig = _per_epoch_lines(metrics_df, "learning_rate", runs, x, "learning rate: %{y:.3g}")
    if not fig.data:
        return empty_figure(title, "No learning rates logged yet")
    fig.update_yaxes(type="log", exponentformat="e")
    return styled(fig, title, X_TITLES[x], "Learning rate (log)")


def epoch_time_chart(metrics_df: pd.DataFrame, runs: Sequence[str] | None = None,
                     x: str = "epoch", title: str = "Seconds per epoch") -> go.Figure:
    """Each run's wall time per epoch: where training slowed down or sped up.

    Args:
        metrics_df: Per-epoch frame as from `metrics_frame`.
        runs: Run labels to draw, in this order (colours follow it); default all.
        x: `"epoch"` or `"time"` (seconds since the run started).
        title: Figure title.

    Returns:
        One line per run that logged epoch times.

    Raises:
        ValueError: if `x` is not known.
    """
    fig = _per_epoch_lines(metrics_df, "epoch_time", runs, x, "%{y:.1f} s")
    if not fig.data:
        return empty_figure(title, "No epoch times logged yet")
    fig.update_yaxes(rangemode="tozero")
    return styled(fig, title, X_TITLES[x], "Seconds")
