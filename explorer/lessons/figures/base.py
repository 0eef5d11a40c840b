"""What every lesson figure shares: the solver colours, the layout style, float32 casts, polylines,
labelled lines and log ticks. Pure helpers (arrays and figures in, arrays and figures out)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.core.flows import VIEW_BOX
from explorer.figures import theme

__all__ = ["SOLVER_COLORS", "f32", "hline", "log_ticks", "paths_xy", "square_view", "star", "style"]

SOLVER_COLORS = {
    "euler": theme.ERROR,
    "midpoint": "#f2d16b",
    "heun": "#ff9f5a",
    "rk4": theme.MODEL,
    "dpm++2m": theme.EXACT,
    "dopri5": theme.NOISE,
}
"""One colour per solver, the same in every lesson figure; unknown solvers fall back to MUTED."""


def f32(x) -> np.ndarray:
    """``x`` as a float32 array: half the payload of float64 in a plotly figure."""
    return np.asarray(x, dtype=np.float32)


def style(fig: go.Figure, height: int, legend: bool = True) -> go.Figure:
    """The lessons' look on ``fig`` (the Playground's palette and font, no hover); returns ``fig``."""
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        paper_bgcolor=theme.PAPER,
        plot_bgcolor=theme.BACKGROUND,
        font=dict(family=theme.FONT, color=theme.TEXT, size=13),
        showlegend=legend,
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0, bgcolor="rgba(0,0,0,0)"),
        hovermode=False,
    )
    fig.update_xaxes(gridcolor=theme.GRID_LINE, zerolinecolor=theme.GRID_LINE)
    fig.update_yaxes(gridcolor=theme.GRID_LINE, zerolinecolor=theme.GRID_LINE)
    return fig


def paths_xy(zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K+1, p, 2) states -> x, y of p polylines separated by NaN."""
    gap = np.full((1, zs.shape[1]), np.nan, dtype=np.float32)
    xs = np.concatenate([f32(zs[:, :, 0]), gap]).T.ravel()
    ys = np.concatenate([f32(zs[:, :, 1]), gap]).T.ravel()
    return xs, ys


def hline(fig: go.Figure, y: float, text: str, color: str, log_y: bool) -> None:
    """A dashed horizontal line with its label at the right end, just below it."""
    fig.add_hline(y=y, line=dict(color=color, dash="dash", width=1.5))
    # On a log axis an annotation's y is log10 of the value (add_hline's own annotation gets this wrong).
    fig.add_annotation(
        text=text,
        xref="paper",
        x=1.0,
        y=float(np.log10(y)) if log_y else y,
        xanchor="right",
        yanchor="top",
        showarrow=False,
        font=dict(color=color, size=12),
    )


def log_ticks(values: np.ndarray) -> dict:
    """1-2-5 tick values spanning ``values`` on a log axis, with a range that hugs the data."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return {}
    lo, hi = float(positive.min()), float(positive.max())
    decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    ticks = [m * 10.0**d for d in decades for m in (1, 2, 5)]
    ticks = [v for v in ticks if lo / 1.5 <= v <= hi * 1.5]
    return dict(
        tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], range=[np.log10(lo) - 0.05, np.log10(hi) + 0.05]
    )


def square_view(fig: go.Figure) -> go.Figure:
    """One square panel showing the Playground's view box, without tick labels; returns ``fig``."""
    fig.update_xaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False)
    fig.update_yaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False, scaleanchor="x", scaleratio=1)
    return fig


def star(point, size: int, **options) -> go.Scatter:
    """A start point (x, y) drawn as a highlighted star; ``options`` go to ``go.Scatter``."""
    marker = dict(symbol="star", size=size, color=theme.HIGHLIGHT, line=dict(color=theme.NOISE, width=2))
    return go.Scatter(x=[point[0]], y=[point[1]], mode="markers", marker=marker, **options)
