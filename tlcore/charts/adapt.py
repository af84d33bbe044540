"""Charts of the domain adaptation lab: methods by unsupervised score and target accuracy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tlcore.charts.theme import COLORWAY, MUTED_COLOR, chart_text, styled

SCORE_COLOR = COLORWAY[0]
GAIN_COLORS = {True: COLORWAY[2], False: COLORWAY[3]}  # positive, negative transfer
CHOSEN_LINE = "#000000"


def methods_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per method: label, unsupervised score, target accuracy, gain, chosen."""
    return pd.DataFrame([{
        "method": m["name"], "label": m["label"], "score": m["score"],
        "target_accuracy": m["target_accuracy"], "gain": m["gain"],
        "chosen": m["name"] == report["chosen"]} for m in report["methods"]])


def methods_figure(report: dict[str, Any]) -> go.Figure:
    """Each method's unsupervised score and, when the target has labels, its gain.

    The chosen method's bars are outlined. Gains are in accuracy points over no
    adaptation: green where adaptation helped (positive transfer), red where it hurt.
    """
    frame = methods_frame(report)
    labels = [chart_text(label) for label in frame["label"]]
    outline = [2.5 if chosen else 0 for chosen in frame["chosen"]]
    labeled = bool(report.get("labeled"))
    fig = make_subplots(rows=1, cols=2 if labeled else 1, horizontal_spacing=0.12,
                        subplot_titles=[f"Unsupervised score ({report['scorer']})"]
                        + (["Gain over no adaptation (points)"] if labeled else []))
    fig.add_trace(go.Bar(
        x=labels, y=frame["score"], marker={"color": SCORE_COLOR,
                                            "line": {"width": outline, "color": CHOSEN_LINE}},
        name="score", hovertemplate="%{x}<br>score %{y:.3f}<extra></extra>"), row=1, col=1)
    if labeled:
        gains = frame["gain"].astype(float) * 100
        fig.add_trace(go.Bar(
            x=labels, y=gains, name="gain",
            marker={"color": [GAIN_COLORS[g >= 0] for g in gains],
                    "line": {"width": outline, "color": CHOSEN_LINE}},
            customdata=frame["target_accuracy"].astype(float) * 100,
            hovertemplate="%{x}<br>target accuracy %{customdata:.1f}%<br>gain %{y:+.1f} points"
                          "<extra></extra>"), row=1, col=2)
        fig.add_hline(y=0, line={"color": MUTED_COLOR, "width": 1}, row=1, col=2)
    fig.update_layout(showlegend=False)
    chosen = frame.loc[frame["chosen"], "label"]
    title = f"Methods on {report['target']}; chosen: {chosen.iloc[0] if len(chosen) else '-'}"
    return styled(fig, title)
