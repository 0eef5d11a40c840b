"""The live training figures: the loss curve against its floor, and a still of the network now."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.core.fields import arrow_grid

from . import theme
from .marks import arrow_segments, data_colors, f32, speed_scale, square_axes

__all__ = ["loss_figure", "snapshot_figure"]


def loss_figure(steps: np.ndarray, losses: np.ndarray, floor: float | None, height: int = 220) -> go.Figure:
    """The training loss (log scale) with the irreducible loss floor as a dashed line."""
    steps, losses = np.asarray(steps), np.asarray(losses, dtype=np.float64)
    if len(steps) > 600:  # a few hundred points look the same and send much less
        keep = np.unique(np.linspace(0, len(steps) - 1, 600).round().astype(int))
        steps, losses = steps[keep], losses[keep]
    traces = [
        dict(
            type="scatter",
            x=steps.astype(np.float32),
            y=losses.astype(np.float32),
            mode="lines",
            line=dict(color=theme.MODEL, width=2),
            name="loss",
            hovertemplate="step %{x:,}<br>loss %{y:.4f}<extra></extra>",
        )
    ]
    annotations = []
    if floor is not None and np.isfinite(floor) and floor > 0 and len(steps):
        # A trace, not a shape: shapes on a log axis want log10 coordinates, a trace wants data.
        traces.append(
            dict(
                type="scatter",
                x=np.array([0, max(int(steps[-1]), 1)], dtype=np.float32),
                y=np.array([floor, floor], dtype=np.float32),
                mode="lines",
                line=dict(color=theme.EXACT, dash="dash", width=1.5),
                name="loss floor",
                hovertemplate="loss floor %{y:.4f}<extra></extra>",
            )
        )
        annotations.append(
            dict(
                text=f"floor {floor:.3f}",
                xref="paper",
                x=1.0,
                y=float(np.log10(floor)),
                xanchor="right",
                yanchor="top",
                showarrow=False,
                font=dict(size=11, color=theme.EXACT),
            )
        )
    layout = dict(
        height=height,
        margin=dict(l=48, r=10, t=10, b=34),
        paper_bgcolor=theme.PAPER,
        plot_bgcolor=theme.BACKGROUND,
        font=dict(family=theme.FONT, color=theme.TEXT, size=11),
        xaxis=dict(
            title=dict(text="step", font=dict(size=11)),
            gridcolor=theme.GRID_LINE,
            zeroline=False,
            rangemode="tozero",
        ),
        yaxis=dict(
            type="log", gridcolor=theme.GRID_LINE, zeroline=False, title=dict(text="loss", font=dict(size=11))
        ),
        showlegend=False,
        annotations=annotations,
        uirevision="loss",
    )
    return go.Figure(dict(data=traces, layout=layout))


def snapshot_figure(
    samples: np.ndarray,
    data: np.ndarray,
    field: np.ndarray | None = None,
    height: int = 300,
    title: str = "",
    data_labels: np.ndarray | None = None,
) -> go.Figure:
    """A still: the model's current samples over the data, with its field (arrows) at one time.

    Args:
        samples: (n, 2) the model's samples (violet).  data: (m, 2) the data, coloured like the main
        figure's (``marks.data_colors``: by class with (m,) ``data_labels``, else amber).
        field: (G, 2) velocities on ``fields.arrow_grid()`` or None.
    """
    traces = [
        dict(
            type="scatter",
            x=f32(data[:, 0]),
            y=f32(data[:, 1]),
            mode="markers",
            marker=dict(size=3, color=data_colors(data_labels)),
            hoverinfo="skip",
        )
    ]
    if field is not None:
        x, y = arrow_segments(arrow_grid(), field, speed_scale(field))
        traces.append(
            dict(
                type="scatter",
                x=x,
                y=y,
                mode="lines",
                line=dict(width=1, color=theme.rgba(theme.FIELD, 0.5)),
                hoverinfo="skip",
            )
        )
    traces.append(
        dict(
            type="scatter",
            x=f32(samples[:, 0]),
            y=f32(samples[:, 1]),
            mode="markers",
            marker=dict(size=3.5, color=theme.MODEL),
            hoverinfo="skip",
        )
    )
    layout = dict(
        height=height,
        margin=dict(l=4, r=4, t=24 if title else 4, b=4),
        paper_bgcolor=theme.PAPER,
        plot_bgcolor=theme.BACKGROUND,
        font=dict(family=theme.FONT, color=theme.TEXT, size=11),
        showlegend=False,
        hovermode=False,
        title=dict(text=title, font=dict(size=12), x=0.02, y=0.98) if title else None,
        uirevision="snapshot",
        **{k: dict(v, showticklabels=False) for k, v in square_axes("", (0.0, 1.0), "").items()},
    )
    return go.Figure(dict(data=traces, layout=layout))
