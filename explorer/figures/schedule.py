"""The schedule of the path z_t = alpha_t z_1 + sigma_t z_0: alpha_t and sigma_t over t."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from . import theme
from .marks import f32

__all__ = ["schedule_figure", "schedule_svg"]


def schedule_figure(ts: np.ndarray, alpha: np.ndarray, sigma: np.ndarray, height: int = 150) -> go.Figure:
    """alpha_t (data weight, amber) and sigma_t (noise weight, blue) over t."""
    traces = [
        dict(
            type="scatter",
            x=f32(ts),
            y=f32(values),
            mode="lines",
            line=dict(color=color, width=2.5),
            name=name,
        )
        for values, color, name in ((alpha, theme.DATA, "α_t"), (sigma, theme.NOISE, "σ_t"))
    ]
    layout = dict(
        height=height,
        margin=dict(l=28, r=6, t=22, b=26),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font=dict(family=theme.FONT, color=theme.MUTED, size=10),
        xaxis=dict(
            range=[0, 1], tickvals=[0, 0.5, 1], gridcolor=theme.GRID_LINE, zeroline=False, fixedrange=True
        ),
        yaxis=dict(
            range=[-0.02, 1.05],
            tickvals=[0, 0.5, 1],
            gridcolor=theme.GRID_LINE,
            zeroline=False,
            fixedrange=True,
        ),
        legend=dict(
            orientation="h",
            x=1.0,
            xanchor="right",
            y=1.0,
            yanchor="bottom",
            font=dict(size=11, color=theme.TEXT),
            bgcolor="rgba(0,0,0,0)",
        ),
        hovermode=False,
    )
    return go.Figure(dict(data=traces, layout=layout))


def schedule_svg(
    ts: np.ndarray, alpha: np.ndarray, sigma: np.ndarray, width: int = 240, height: int = 96
) -> str:
    """alpha_t and sigma_t as a small inline SVG: the sidebar's sketch costs no chart library.

    Returns:
        An ``<svg>`` element: amber alpha_t (data weight), blue sigma_t (noise weight) over t in [0, 1].
    """
    left, right, top, bottom = 22, 6, 14, 16
    w, h = width - left - right, height - top - bottom

    def points(values: np.ndarray) -> str:
        xs = left + np.asarray(ts, dtype=float) * w
        ys = top + (1.0 - np.clip(np.asarray(values, dtype=float), 0.0, 1.0)) * h
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))

    grid = "".join(
        f"<line x1='{left}' x2='{left + w}' y1='{top + f * h:.1f}' y2='{top + f * h:.1f}' stroke='{theme.GRID_LINE}'/>"
        for f in (0.0, 0.5, 1.0)
    )
    text = f"font-size='10' fill='{theme.MUTED}' font-family='sans-serif'"
    labels = (
        f"<text x='{left - 4}' y='{top + 4}' text-anchor='end' {text}>1</text>"
        f"<text x='{left - 4}' y='{top + h + 3}' text-anchor='end' {text}>0</text>"
        f"<text x='{left}' y='{height - 3}' {text}>t = 0</text>"
        f"<text x='{left + w}' y='{height - 3}' text-anchor='end' {text}>1</text>"
        f"<text x='{left + w}' y='10' text-anchor='end' font-size='11' font-family='sans-serif'>"
        f"<tspan fill='{theme.DATA}'>αₜ data</tspan><tspan fill='{theme.MUTED}'>  ·  </tspan>"
        f"<tspan fill='{theme.NOISE}'>σₜ noise</tspan></text>"
    )
    curves = (
        f"<polyline points='{points(alpha)}' fill='none' stroke='{theme.DATA}' stroke-width='2.2'/>"
        f"<polyline points='{points(sigma)}' fill='none' stroke='{theme.NOISE}' stroke-width='2.2'/>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='100%' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='alpha_t and sigma_t of the schedule'>{grid}{curves}{labels}</svg>"
    )
