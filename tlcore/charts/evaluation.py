"""Plotly figures of evaluations: plain data in, `go.Figure` out (no Streamlit, no TF).

They share the dashboard's template and palette (`tlcore.charts.theme.styled`); class
and run names go in through `tlcore.charts.theme.chart_text`, so they show as typed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tlcore.charts.theme import COLORWAY, MUTED_COLOR, chart_text, empty_figure, styled
from tlcore.entities import COMPLETED

PRETRAINED_COLOR = COLORWAY[0]
BASELINE_COLOR = MUTED_COLOR
METRIC_COLORS = {"precision": COLORWAY[0], "recall": COLORWAY[1], "f1": COLORWAY[2]}
GAIN_COLOR, LOSS_COLOR = COLORWAY[2], COLORWAY[3]  # a better or worse F1 per class
CONFUSION_HEIGHT = 420
# Tick labels longer than this are shortened in the middle ("a_very_…indeed"); the
# full name is in the hover text. More classes than SLANT_AFTER slant the x labels.
TICK_CHARS = 14
SLANT_AFTER = 4
# The study's two lines: different marker shapes and dashes, so that both stay visible
# where they coincide; a hollow marker is a run whose partner has not finished.
# (marker, dash, marker size, line width): the wider solid line shows under the dashed one.
STUDY_STYLE = {"pretrained": ("circle", "solid", 12, 4), "scratch": ("diamond", "dash", 8, 2)}


def _shortened(name: str, limit: int) -> str:
    if len(name) <= limit:
        return chart_text(name)
    head = limit // 2
    return chart_text(name[:head] + "…" + name[len(name) - (limit - 1 - head):])


def tick_labels(names: Sequence[str], limit: int = TICK_CHARS) -> list[str]:
    """Class names short enough for an axis, each as typed up to `limit` characters.

    Longer names keep their start and end around an ellipsis; names whose short
    forms would coincide ("ankle_boot_left", "ankle_boot_right") are shortened
    less, so that every tick stays distinct.
    """
    out = [_shortened(n, limit) for n in names]
    while len(set(out)) < len(out):
        limit += 4
        same = {t for t in out if out.count(t) > 1}
        out = [_shortened(n, limit) if t in same else t for n, t in zip(names, out, strict=True)]
    return out


def _class_ticks(fig: go.Figure, axis: str, names: Sequence[str]) -> None:
    """Every class gets its tick, labelled as `tick_labels`; the margin grows to fit them."""
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(tickmode="array", tickvals=[chart_text(n) for n in names],
           ticktext=tick_labels(names), automargin=True)
    if axis == "x" and len(names) > SLANT_AFTER:
        fig.update_xaxes(tickangle=-45)


def confusion_figure(counts: Sequence[Sequence[int]], labels: Sequence[str],
                     normalized: Sequence[Sequence[float | None]] | None = None,
                     title: str = "Confusion matrix",
                     height: int = CONFUSION_HEIGHT) -> go.Figure:
    """Heatmap of a confusion matrix: rows true class, columns predicted class.

    Colour is the row-normalised share (so small classes are as readable as
    big ones) and each cell shows its count. A transparent marker sits on
    every cell so that clicking it selects the cell (Plotly heatmaps do not
    report single-cell clicks as selections); its `customdata` is
    `[true index, predicted index]`. Every class has its tick: long names are
    shortened on the axes (`tick_labels`) and shown in full on hover.

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
    names, labels = list(labels), [chart_text(label) for label in labels]
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
    _class_ticks(fig, "x", names)
    _class_ticks(fig, "y", names)
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
    _class_ticks(fig, "x", list(df["class"]))
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

    Between neighbouring sizes where both runs finished, the area between the
    lines is green where the pretrained line is above (positive transfer) and
    red where it is below. The lines differ in marker shape and dash, so both
    show where they coincide; a run whose partner has not finished is a hollow
    marker, and a note above the plot says how many runs are still to come.

    Args:
        rows: `transferstudy.rows`: setting, images_per_class, status,
            test_accuracy.
        title: Figure title.
    """
    from tlcore.results import transfer_study as transferstudy

    scored = [r for r in rows if r["test_accuracy"] is not None and r["status"] == COMPLETED]
    if not scored:
        state = transferstudy.progress_text(rows) if rows else "no runs yet"
        return empty_figure(title, f"No run of the study has finished yet ({state}).")
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
        if not points:
            continue
        symbol, dash, size, width = STUDY_STYLE[setting]
        paired = [p[0] in both for p in points]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
            name=label, line={"color": colors[setting], "width": width, "dash": dash},
            marker={"symbol": [symbol if ok else f"{symbol}-open" for ok in paired],
                    "size": size, "color": colors[setting],
                    "line": {"width": 2, "color": colors[setting]}},
            customdata=["" if ok else "<br>the other run of this size has not finished"
                        for ok in paired],
            hovertemplate="%{x} images per class<br>test accuracy %{y:.3f}%{customdata}<extra>"
                          + label + "</extra>"))
    state = transferstudy.progress(rows)
    if state["active"] or state["ended"]:
        note = transferstudy.progress_text(rows)
        if state["pending_sizes"]:
            note += "; waiting at " + ", ".join(map(str, state["pending_sizes"])) + \
                " images per class"
        fig.add_annotation(text=chart_text(note), showarrow=False, xref="paper", yref="paper",
                           x=1.0, y=1.0, xanchor="right", yanchor="bottom",
                           font={"size": 12, "color": MUTED_COLOR})
    sizes = sorted({r["images_per_class"] for r in rows})
    # Sizes still waiting for both runs keep their place on the axis.
    fig.update_xaxes(type="log", tickvals=sizes,
                     range=[math.log10(sizes[0]) - 0.1, math.log10(sizes[-1]) + 0.1])
    fig.update_yaxes(range=[0, 1.02])
    return styled(fig, title, "Training images per class", "Test accuracy")
