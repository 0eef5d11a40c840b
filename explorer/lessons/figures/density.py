"""Lesson 7 figures: log-densities side by side on one grid, and log p_t along particles' paths."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures import theme

from .base import f32, style

__all__ = ["density_paths_figure", "log_density_figure"]


def log_density_figure(
    xs: np.ndarray,
    ys: np.ndarray,
    maps: Mapping[str, tuple[np.ndarray, str]],
    data: np.ndarray,
    height: int = 400,
    depth: float = 8.0,
) -> go.Figure:
    """Log-densities on one grid, side by side: title -> ((g, g) values, a one-line note).

    ``data`` (m, 2) is drawn faintly on top, so that the eye can tell where the density should be.

    Every panel shares one colour scale, from the largest value of the first map down by ``depth``
    nats (lower values are clipped: far from the data log p is huge and negative and shows nothing).
    """
    titles = [
        f"<b>{title}</b><br><span style='font-size:11px;color:{theme.MUTED}'>{note}</span>"
        for title, (_, note) in maps.items()
    ]
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.03)
    top = float(np.max(next(iter(maps.values()))[0]))
    for i, (values, _) in enumerate(maps.values()):
        fig.add_trace(
            go.Heatmap(
                x=f32(xs),
                y=f32(ys),
                z=f32(np.clip(values, top - depth, top)),
                zmin=top - depth,
                zmax=top,
                colorscale="Viridis",
                zsmooth="best",
                showscale=i == len(maps) - 1,
                colorbar=dict(title="log p₁", thickness=12),
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=f32(data[:, 0]),
                y=f32(data[:, 1]),
                mode="markers",
                marker=dict(color="rgba(255,255,255,0.3)", size=2),
            ),
            row=1,
            col=i + 1,
        )
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(range=[xs[0], xs[-1]], showticklabels=False, row=1, col=i + 1)
        fig.update_yaxes(
            range=[ys[0], ys[-1]],
            showticklabels=False,
            scaleanchor=f"x{axis}",
            scaleratio=1,
            row=1,
            col=i + 1,
        )
    style(fig, height, legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=62, b=10))
    fig.update_annotations(font=dict(size=13, color=theme.TEXT))
    return fig


def density_paths_figure(
    ts: np.ndarray, closed: np.ndarray, integrated: np.ndarray, height: int = 360
) -> go.Figure:
    """log p_t(z_t) along each particle: the closed form (lines) and log p_0 − ∫ div v (dots)."""
    fig = go.Figure()
    palette = (theme.DATA, theme.EXACT, theme.MODEL, theme.NOISE, theme.ERROR, theme.HIGHLIGHT)
    every = max(1, len(ts) // 20)
    for j in range(closed.shape[1]):
        color = palette[j % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=f32(ts),
                y=f32(closed[:, j]),
                mode="lines",
                line=dict(color=color, width=2),
                name="closed-form log pₜ(zₜ)" if j == 0 else None,
                showlegend=j == 0,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=f32(ts[::every]),
                y=f32(integrated[::every, j]),
                mode="markers",
                marker=dict(color=color, size=7, symbol="circle-open", line=dict(width=2)),
                name="log p₀(z₀) − ∫₀ᵗ div v ds" if j == 0 else None,
                showlegend=j == 0,
            )
        )
    style(fig, height)
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=45))
    fig.update_xaxes(title="t   (0 = noise → 1 = data)")
    fig.update_yaxes(title="log-density along the path")
    return fig
