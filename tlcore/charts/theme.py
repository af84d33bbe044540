"""The dashboard's look, shared by every chart builder: one Plotly template, one palette.

Every figure of the dashboard (`tlcore.charts.runs`, `tlcore.charts.evaluation`,
`tlcore.charts.sweeps`) carries one Plotly template, `TEMPLATE` (`plotly_white`
with the `COLORWAY` colour sequence, fonts, title, margins and legend). Importing
this module makes it Plotly's default template, so every figure starts with it:
Plotly applies its default without validating it again, where setting a template
on each figure validates all of it each time (about 10 ms a figure, most of a
small chart's cost). `styled` adds titles, height and legend where the figure is
built; pages draw figures as they are (`st.plotly_chart(fig, theme=None)`).

Plotly renders a few HTML tags (`<a href>`, `<b>`, `<span style>`) and entities
in titles, tick labels, legends and hover text. Names of classes and runs go in
through `chart_text`, and `styled` escapes titles, so every name shows as typed.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
import plotly.io as pio

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
TEMPLATE_NAME = "tlcore"
pio.templates[TEMPLATE_NAME] = TEMPLATE
pio.templates.default = TEMPLATE_NAME


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
    """`fig` in the project's look: a title, axis titles, a height (`TEMPLATE` it has already).

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
    fig.update_layout(style_layout(title, height, legend_entries(fig)))
    # Axis titles on every axis of a figure (subplots have several).
    if x_title is not None:
        fig.update_xaxes(title_text=chart_text(x_title))
    if y_title is not None:
        fig.update_yaxes(title_text=chart_text(y_title))
    return fig


def style_layout(title: str | None, height: int = HEIGHT, entries: int = 0,
                 x_title: str | None = None, y_title: str | None = None) -> dict:
    """What `styled` sets, as a layout: title, height, the legend's place, axis titles.

    A builder that makes its figure in one call passes this as its layout (adding
    to its `xaxis` and `yaxis`), which costs less than changing a figure already built.

    Args:
        title: Figure title; None for none.
        height: Height in pixels.
        entries: How many entries the figure's legend lists (`legend_entries`).
        x_title: X-axis title, as `xaxis`; None leaves `xaxis` out.
        y_title: Y-axis title, as `yaxis`; None leaves `yaxis` out.
    """
    layout = {"height": height, "title": {"text": None if title is None else chart_text(title)},
              **legend_layout(entries)}
    for axis, text in (("xaxis", x_title), ("yaxis", y_title)):
        if text is not None:
            layout[axis] = {"title": {"text": chart_text(text)}}
    return layout


def legend_entries(fig: go.Figure) -> int:
    """How many entries the figure's legend lists (line and bar traces not hidden from it)."""
    return sum(1 for t in fig.data if t.type in ("scatter", "bar") and t.showlegend is not False)


def legend_layout(entries: int) -> dict:
    """Where a legend of `entries` entries covers neither the title nor the plot.

    Up to `LEGEND_BELOW_MAX` entries go in rows under the plot, with the bottom
    margin grown to hold them; more go in a scrolling column at the right.

    Returns:
        The layout's `legend` (and `margin`) for them; nothing for one entry or none.
    """
    if entries > LEGEND_BELOW_MAX:
        return {"legend": LEGEND_RIGHT}
    if entries > 1:
        rows = -(-entries // LEGEND_PER_ROW)
        return {"legend": LEGEND_BELOW, "margin": {"b": MARGIN["b"] + 8 + LEGEND_ROW_PX * rows}}
    return {}


def empty_figure(title: str, message: str) -> go.Figure:
    """A styled figure without axes that says why there is nothing to plot.

    Args:
        title: Figure title.
        message: What is missing, shown in the middle of the plot.

    Returns:
        The figure.
    """
    fig = styled(go.Figure(), title)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": MUTED_COLOR})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
