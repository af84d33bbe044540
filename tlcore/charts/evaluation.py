"""Plotly figures of evaluations: plain data in, `go.Figure` out (no Streamlit, no TF).

They share the dashboard's template and palette (`tlcore.charts.theme.styled`); class
and run names go in through `tlcore.charts.theme.chart_text`, so they show as typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.theme import COLORWAY, MUTED_COLOR, chart_text, styled

PRETRAINED_COLOR = COLORWAY[0]
BASELINE_COLOR = MUTED_COLOR
METRIC_COLORS = {"precision": COLORWAY[0], "recall": COLORWAY[1], "f1": COLORWAY[2]}
GAIN_COLOR, LOSS_COLOR = COLORWAY[2], COLORWAY[3]  # a better or worse F1 per class
CONFUSION_HEIGHT = 420


def confusion_figure(counts: Sequence[Sequence[int]], labels: Sequence[str],
                     normalized: Sequence[Sequence[float | None]] | None = None,
                     title: str = "Confusion matrix",
                     height: int = CONFUSION_HEIGHT) -> go.Figure:
    """Heatmap of a confusion matrix: rows true class, columns predicted class.

    Colour is the row-normalised share (so small classes are as readable as
    big ones) and each cell shows its count. A transparent marker sits on
    every cell so that clicking it selects the cell (Plotly heatmaps do not
    report single-cell clicks as selections); its `customdata` is
    `[true index, predicted index]`.

    Args:
        counts: The matrix of counts, `counts[true][predicted]`.
        labels: Class names, in index order.
        normalized: Row shares as stored (None where a row is empty); default
            computed from `counts`.
        title: Figure title.
        height: Height in pixels.

    Returns:
        A heatmap trace and a clickable marker trace.
    """
    cm = np.asarray(counts, dtype=np.int64).reshape(len(labels), len(labels))
    if normalized is None:
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.full(cm.shape, np.nan), where=rows > 0)
    else:
        share = np.array([[np.nan if v is None else v for v in row] for row in normalized],
                         dtype=np.float64)
    labels = [chart_text(label) for label in labels]
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues",
        text=cm, texttemplate="%{text}", hoverinfo="skip",
        colorbar={"title": {"text": "share of row"}},
    ))
    ti, pi = np.meshgrid(np.arange(len(labels)), np.arange(len(labels)), indexing="ij")
    fig.add_trace(go.Scatter(
        x=[labels[j] for j in pi.ravel()], y=[labels[i] for i in ti.ravel()], mode="markers",
        marker={"symbol": "square", "size": 28, "color": "rgba(0,0,0,0)"},
        customdata=np.stack([ti.ravel(), pi.ravel(), cm.ravel()], axis=1),
        hovertemplate="true %{y} → predicted %{x}<br>%{customdata[2]} images<extra></extra>",
        showlegend=False,
    ))
    fig.update_layout(yaxis={"autorange": "reversed"}, clickmode="event+select")
    return styled(fig, title, "predicted", "true", height=height)


def per_class_figure(per_class: pd.DataFrame | list[dict[str, Any]],
                     title: str = "Per-class metrics") -> go.Figure:
    """Grouped bars of precision, recall and F1 per class (undefined values left out)."""
    df = pd.DataFrame(per_class)
    fig = go.Figure()
    for metric, color in METRIC_COLORS.items():
        fig.add_trace(go.Bar(x=df["class"].map(chart_text), y=df[metric], name=metric,
                             marker_color=color,
                             hovertemplate=f"%{{x}}<br>{metric} %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.05]})
    return styled(fig, title)


def transfer_curves_figure(report: dict[str, Any]) -> go.Figure:
    """Val accuracy per epoch of the pretrained run and its from-scratch baseline."""
    fig = go.Figure()
    for key, name, color, dash in (
            ("pretrained", chart_text(f"pretrained ({report['source_label']})"), PRETRAINED_COLOR,
             "solid"),
            ("baseline", "from scratch", BASELINE_COLOR, "dash")):
        curve = report["curves"][key]
        fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["val_accuracy"], mode="lines+markers",
                                 name=name, line={"color": color, "dash": dash}))
    fig.update_layout(xaxis={"dtick": 1}, yaxis={"range": [0, 1.02]})
    return styled(fig, f"Val accuracy: {report['verdict']}", "epoch", "val accuracy")


def topk_figure(top: list[dict[str, Any]], title: str = "") -> go.Figure:
    """Horizontal bars of one image's top-k class probabilities, best on top."""
    fig = go.Figure(go.Bar(
        x=[t["probability"] for t in top], y=[chart_text(t["class"]) for t in top],
        orientation="h",
        marker_color=PRETRAINED_COLOR, text=[f"{t['probability'] * 100:.1f}%" for t in top],
        textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig = styled(fig, title or None, height=60 + 40 * len(top))
    # A small chart beside its image: only the room its bars and labels need.
    fig.update_layout(xaxis={"range": [0, 1]}, yaxis={"autorange": "reversed"},
                      margin={"l": 10, "r": 10, "t": 30 if title else 10, "b": 10})
    return fig


def f1_delta_frame(metrics_a: dict[str, Any], metrics_b: dict[str, Any]) -> pd.DataFrame:
    """Per-class F1 of two runs' evaluations of one split, and B minus A.

    Args:
        metrics_a: `evaluation["splits"][split]` of run A (from `tlcore.results.evaluate`).
        metrics_b: The same for run B; classes are matched by name.

    Returns:
        Columns `class`, `f1_a`, `f1_b`, `delta` (NaN where undefined), in A's class
        order followed by classes only B has.
    """
    a = pd.DataFrame(metrics_a["per_class"])[["class", "f1"]]
    b = pd.DataFrame(metrics_b["per_class"])[["class", "f1"]]
    df = a.merge(b, on="class", how="outer", suffixes=("_a", "_b"))
    # An outer merge sorts the keys; put them back in A's order, then B's extra classes.
    order = list(a["class"]) + [c for c in b["class"] if c not in set(a["class"])]
    df = df.set_index("class").loc[order].reset_index()
    df[["f1_a", "f1_b"]] = df[["f1_a", "f1_b"]].astype(float)
    df["delta"] = df["f1_b"] - df["f1_a"]
    return df


def f1_delta_figure(frame: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> go.Figure:
    """Bars of per-class F1 change from run A to run B (`GAIN_COLOR` up, `LOSS_COLOR` down)."""
    delta = frame["delta"].astype(float)
    colors = [GAIN_COLOR if d >= 0 else LOSS_COLOR for d in delta.fillna(0)]
    # Labels keep a class with no change readable: its bar has no height.
    labels = ["" if np.isnan(d) else f"{d:+.2f}" for d in delta]
    fig = go.Figure(go.Bar(
        x=frame["class"].map(chart_text), y=delta, marker_color=colors,
        text=labels, textposition="outside", cliponaxis=False,
        customdata=frame[["f1_a", "f1_b"]].to_numpy(),
        meta=[chart_text(name_a), chart_text(name_b)],
        hovertemplate=("%{x}<br>%{meta[0]} %{customdata[0]:.3f} → %{meta[1]} "
                       "%{customdata[1]:.3f}<br>Δ %{y:+.3f}<extra></extra>")))
    fig.update_layout(yaxis={"zeroline": True, "zerolinewidth": 2})
    return styled(fig, f"Per-class F1: {name_b} minus {name_a}", y_title="Δ F1")


def transfer_study_figure(rows: Sequence[dict[str, Any]],
                          title: str = "Test accuracy by training-set size") -> go.Figure:
    """Test accuracy against images per class, one line per setting, the gap shaded.

    Between neighbouring sizes the area between the lines is green where the
    pretrained line is above (positive transfer) and red where it is below.

    Args:
        rows: `transferstudy.rows`: setting, images_per_class, test_accuracy.
    """
    from tlcore.results import transfer_study as transferstudy

    scored = [r for r in rows if r["test_accuracy"] is not None]
    if not scored:
        fig = go.Figure()
        fig.add_annotation(text="No run of the study has finished yet", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
        return styled(fig, title)
    lines = {s: {r["images_per_class"]: r["test_accuracy"] for r in scored
                 if r["setting"] == s} for s in transferstudy.SETTING_LABELS}
    fig = go.Figure()
    both = sorted(set(lines[transferstudy.PRETRAINED]) & set(lines[transferstudy.SCRATCH]))
    for a, b in zip(both, both[1:], strict=False):
        top = [lines[transferstudy.PRETRAINED][a], lines[transferstudy.PRETRAINED][b]]
        low = [lines[transferstudy.SCRATCH][a], lines[transferstudy.SCRATCH][b]]
        gain = sum(top) >= sum(low)
        fig.add_trace(go.Scatter(
            x=[a, b, b, a], y=[top[0], top[1], low[1], low[0]], fill="toself", mode="none",
            fillcolor=("rgba(46,160,67,0.18)" if gain else "rgba(214,39,40,0.18)"),
            hoverinfo="skip", showlegend=False))
    colors = {transferstudy.PRETRAINED: PRETRAINED_COLOR, transferstudy.SCRATCH: BASELINE_COLOR}
    for setting, label in transferstudy.SETTING_LABELS.items():
        points = sorted(lines[setting].items())
        if points:
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                name=label, line={"color": colors[setting], "width": 2},
                hovertemplate="%{x} images per class<br>test accuracy %{y:.3f}<extra>"
                              + label + "</extra>"))
    fig.update_xaxes(type="log", tickvals=sorted({r["images_per_class"] for r in rows}))
    fig.update_yaxes(range=[0, 1.02])
    return styled(fig, title, "Training images per class", "Test accuracy")
