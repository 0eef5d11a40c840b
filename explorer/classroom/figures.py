"""Plotly figures of the dashboard: a tile's samples (small, or large for projecting) and a poll's counts.

Pure: data in, ``go.Figure`` out. Plotly reads a few HTML tags (``<a>``, ``<b>``, ``<br>``) in its
strings, so every student-supplied string that reaches a figure goes through ``html.escape``
(plotly shows the entities as the characters they stand for).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import plotly.graph_objects as go

from explorer.classroom.tiles import Tile
from explorer.figures import theme

LIMIT = 2.7
"""Half-width of a tile's square view: the presets are scaled into about [-2.5, 2.5]^2."""


def _frame(fig: go.Figure, height: int) -> go.Figure:
    axis = dict(range=[-LIMIT, LIMIT], visible=False, fixedrange=True)
    fig.update_layout(
        height=height,
        margin=dict(l=4, r=4, t=4, b=4),
        paper_bgcolor=theme.BACKGROUND,
        plot_bgcolor=theme.BACKGROUND,
        showlegend=False,
        xaxis=axis,
        yaxis=dict(axis, scaleanchor="x", scaleratio=1),
    )
    return fig


def tile_figure(t: Tile, height: int = 180) -> go.Figure:
    """The student's current samples as amber dots on the dark square (empty before a report)."""
    size = 4 if height < 300 else 7
    marker = dict(color=theme.DATA, size=size, opacity=0.85, line=dict(width=0))
    pts = t.points
    fig = go.Figure(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", marker=marker, hoverinfo="skip"))
    return _frame(fig, height)


def poll_figure(counts: Mapping[str, int], height: int = 240) -> go.Figure:
    """Answer -> count as horizontal bars, most given first; answers are students' text, escaped."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    labels = [html.escape(a) for a, _ in ordered]
    values = [n for _, n in ordered]
    fig = go.Figure(
        go.Bar(
            x=values, y=labels, orientation="h", marker_color=theme.MODEL, text=values, textposition="auto"
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=8, r=8, t=8, b=8),
        paper_bgcolor=theme.PAPER,
        plot_bgcolor=theme.PAPER,
        font=dict(color=theme.TEXT),
        yaxis=dict(autorange="reversed"),
        xaxis=dict(dtick=1, gridcolor=theme.GRID_LINE),
    )
    return fig
