"""Plotly builders for the Sweeps page, in `theme.TEMPLATE`: trials in, figures out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.runs import value_text
from tlcore.charts.theme import COLORWAY, chart_text, empty_figure, styled

STATE_COLORS = {"complete": COLORWAY[0], "pruned": COLORWAY[3],
                "fail": COLORWAY[1], "running": COLORWAY[2]}


def trials_frame(trials: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trial: number, state, val accuracy, run id, seconds, then each parameter.

    A pruned trial's val accuracy is the last one it reported.
    """
    rows = [{"trial": t["number"], "state": t["state"], "best_val_accuracy":
             t["best_val_accuracy"] if t["state"] in ("complete", "pruned") else None,
             "run_id": t["run_id"], "seconds": t["seconds"],
             **{k: value_text(v) if isinstance(v, (list, tuple)) else v
                for k, v in t["params"].items()}} for t in trials]
    columns = ["trial", "state", "best_val_accuracy", "run_id", "seconds"]
    return pd.DataFrame(rows, columns=None if rows else columns).sort_values("trial") \
        if rows else pd.DataFrame(columns=columns)


def best_so_far(trials_df: pd.DataFrame, title: str = "Best val accuracy so far") -> go.Figure:
    """Finished trials' val accuracy as dots (by state), the best completed one as a step line."""
    done = trials_df[trials_df["state"] != "running"] if not trials_df.empty else trials_df
    if done.empty:
        return empty_figure(title, "No finished trial yet")
    fig = go.Figure()
    for state, group in done.groupby("state"):
        fig.add_trace(go.Scatter(
            x=group["trial"], y=group["best_val_accuracy"], mode="markers", name=state,
            marker={"color": STATE_COLORS.get(state), "size": 8},
            hovertemplate="trial %{x}<br>%{y:.3f}<extra>" + state + "</extra>"))
    complete = done["best_val_accuracy"].where(done["state"] == "complete")
    best = complete.fillna(float("-inf")).cummax().replace(float("-inf"), None)
    fig.add_trace(go.Scatter(x=done["trial"], y=best, mode="lines", line_shape="hv",
                             name="best so far", line={"color": COLORWAY[0], "width": 2},
                             hovertemplate="after trial %{x}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(dtick=max(1, math.ceil(len(done) / 10)))  # whole trial numbers
    return styled(fig, title, "Trial", "Val accuracy")


def importance(values: Mapping[str, float], title: str = "Parameter importance") -> go.Figure:
    """Horizontal bars of Optuna's parameter importances (largest on top)."""
    if not values:
        return empty_figure(title, "Needs two or more completed trials")
    keys = sorted(values, key=values.get)
    fig = go.Figure(go.Bar(x=[values[k] for k in keys], y=[chart_text(k) for k in keys],
                           orientation="h", marker_color=COLORWAY[0],
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_yaxes(automargin=True)
    return styled(fig, title, "Share of the objective's variance", None,
                         height=max(220, 90 + 40 * len(keys)))
