"""Point-cloud figures: the question before the answer, and small multiples of ``Case`` results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.core.flows import VIEW_BOX
from explorer.figures import snapshot_figure, theme

from ..shared import Case
from .base import f32, paths_xy, star, style

__all__ = ["panels_figure", "question_figure"]


def question_figure(
    data: np.ndarray, field: np.ndarray, start: tuple[float, float], height: int = 560
) -> go.Figure:
    """Before the answer: the data, the field at t=0 and the chosen start point as a star."""
    fig = snapshot_figure(np.zeros((0, 2), dtype=np.float32), data, field, height=height, title="t = 0")
    fig.add_trace(star(start, 20, hoverinfo="skip"))
    return fig


def _title(case: Case) -> str:
    """A panel's title in bold (pink when wrong) over its measured note."""
    color = theme.ERROR if case.wrong else theme.TEXT
    return (
        f"<span style='color:{color}'><b>{case.title}</b></span>"
        f"<br><span style='font-size:11px;color:{theme.MUTED}'>{case.note}</span>"
    )


def _case_traces(case: Case, background: np.ndarray | None) -> list[go.Scatter]:
    """One panel's traces: the faint background, the solver's paths (if any), the case's points."""
    traces = []
    if background is not None:
        faint = dict(color=theme.rgba(theme.DATA, 0.16), size=3)
        traces.append(
            go.Scatter(x=f32(background[:, 0]), y=f32(background[:, 1]), mode="markers", marker=faint)
        )
    if case.paths is not None:
        x, y = paths_xy(case.paths)
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers" if len(case.paths) <= 33 else "lines",
                line=dict(color=theme.rgba(theme.FIELD, 0.3), width=1),
                marker=dict(size=3, color=theme.rgba(theme.FIELD, 0.55)),
            )
        )
        start = case.paths[0]
        traces.append(
            go.Scatter(
                x=f32(start[:, 0]), y=f32(start[:, 1]), mode="markers", marker=dict(color=theme.NOISE, size=4)
            )
        )
    color = theme.ERROR if case.wrong else theme.DATA
    traces.append(
        go.Scatter(
            x=f32(case.points[:, 0]),
            y=f32(case.points[:, 1]),
            mode="markers",
            marker=dict(color=color, size=4),
        )
    )
    return traces


def panels_figure(
    panels: Sequence[Case],
    background: np.ndarray | None = None,
    columns: int = 3,
    height: int | None = None,
    lim: float = VIEW_BOX,
) -> go.Figure:
    """Small multiples of point clouds, each with a title and a measured note; wrong ones in pink.

    Args:
        panels: the cases to draw (``Case.paths`` adds the solver's node-to-node polylines).
        background: (m, 2) points drawn faintly behind every panel (the data).
        lim: half-width of every panel's square frame; points outside are simply off-frame.
    """
    rows = -(-len(panels) // columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[_title(case) for case in panels],
        horizontal_spacing=0.03,
        vertical_spacing=0.12,
    )
    for i, case in enumerate(panels):
        where = dict(row=i // columns + 1, col=i % columns + 1)
        for trace in _case_traces(case, background):
            fig.add_trace(trace, **where)
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(range=[-lim, lim], showticklabels=False, **where)
        fig.update_yaxes(
            range=[-lim, lim], showticklabels=False, scaleanchor=f"x{axis}", scaleratio=1, **where
        )
    style(fig, height or 330 * rows, legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=62, b=10))
    fig.update_annotations(font=dict(size=13, color=theme.TEXT))
    return fig
