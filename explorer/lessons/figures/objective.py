"""Lesson 2 and 5 figures: the marginal velocity as a posterior average, one training step by stages."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.figures import theme

from ..l2_objective import Posterior
from ..l5_schedules import Batch
from .base import f32, paths_xy, square_view, star, style

__all__ = ["ARROW_TIME", "TRAINING_STAGES", "posterior_figure", "training_step_figure"]


def posterior_figure(post: Posterior, z: tuple[float, float], t: float, height: int = 520) -> go.Figure:
    """The marginal velocity at (z, t) as the posterior average of the conditional ones.

    Every arrow is drawn for a time (1 - t), so on the linear path the conditional arrow towards
    x_j ends exactly at x_j, and the marginal arrow ends at the posterior mean E[z_1 | z_t = z].
    Data points and their arrows are shaded by their posterior weight w_j.
    """
    shade = post.weights / max(float(post.weights.max()), 1e-12)
    order = np.argsort(shade)
    start = np.asarray(z, dtype=np.float32)
    ends = start + (1.0 - t) * post.conditional[order]
    strong = shade[order] > 0.02
    x, y = paths_xy(np.stack([np.broadcast_to(start, ends[strong].shape), ends[strong]]))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            line=dict(color=theme.rgba(theme.NOISE, 0.18), width=1),
            name="conditional u_t(z | x_j)  (weight > 2%)",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=f32(post.data[order, 0]),
            y=f32(post.data[order, 1]),
            mode="markers",
            marker=dict(
                size=3 + 7 * shade[order],
                color=f32(shade[order]),
                colorscale=[[0, theme.rgba(theme.DATA, 0.12)], [1, theme.DATA]],
                cmin=0,
                cmax=1,
            ),
            name="data x_j, sized by weight w_j(z)",
        )
    )
    tip = start + (1.0 - t) * post.marginal
    fig.add_trace(
        go.Scatter(
            x=[start[0], tip[0]],
            y=[start[1], tip[1]],
            mode="lines+markers",
            line=dict(color=theme.EXACT, width=5),
            marker=dict(size=[0, 18], symbol="arrow", angleref="previous", color=theme.EXACT),
            name="marginal u_t(z) = Σ w_j u_t(z | x_j)",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[tip[0]],
            y=[tip[1]],
            mode="markers",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=theme.EXACT, width=2.5)),
            name="posterior mean E[z₁ | z_t = z]",
        )
    )
    fig.add_trace(star(start, 18, name=f"z at t = {t:.2f}"))
    style(fig, height)
    fig.update_layout(
        legend=dict(orientation="v", x=0.01, y=0.99, yanchor="top", bgcolor="rgba(11,16,32,0.7)")
    )
    return square_view(fig)


TRAINING_STAGES = (
    "1 · data z₁",
    "2 · noise z₀",
    "3 · times t",
    "4 · interpolate z_t",
    "5 · target u_t",
    "6 · predict, loss",
)


ARROW_TIME = 0.25
"""Arrows in the training-step figure are drawn for this time, so that they stay readable."""


def _arrows(start: np.ndarray, vectors: np.ndarray, color: str, name: str) -> list[go.Scatter]:
    """Arrows from ``start`` (n, 2) along ``vectors`` (n, 2) for ``ARROW_TIME``: shafts and tip dots."""
    tips = start + ARROW_TIME * vectors
    x, y = paths_xy(np.stack([start, tips]))
    return [
        go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, width=3), name=name),
        go.Scatter(
            x=f32(tips[:, 0]),
            y=f32(tips[:, 1]),
            mode="markers",
            marker=dict(size=7, color=color, symbol="circle"),
            showlegend=False,
        ),
    ]


def _points(points: np.ndarray, name: str, **options) -> go.Scatter:
    """(n, 2) points as one markers trace."""
    return go.Scatter(x=f32(points[:, 0]), y=f32(points[:, 1]), name=name, **{"mode": "markers", **options})


def _batch_traces(batch: Batch, stage: int, data: np.ndarray) -> list[go.Scatter]:
    """The points of the batch shown at ``stage``: data, pairs with their times, z_t (stages 0-3)."""
    ring = dict(color=theme.PAPER, width=1)
    traces = [_points(data, "the data set", marker=dict(color=theme.rgba(theme.DATA, 0.15), size=3))]
    if stage >= 2:
        x, y = paths_xy(np.stack([batch.z0, batch.z1]))
        line = dict(color=theme.MUTED, width=1, dash="dot")
        traces.append(go.Scatter(x=x, y=y, mode="lines", line=line, name="pairs (z₀, z₁)"))
    traces.append(_points(batch.z1, "z₁ ~ data", marker=dict(color=theme.DATA, size=11, line=ring)))
    if stage >= 1:
        traces.append(
            _points(
                batch.z0,
                "z₀ ~ N(0, I)",
                mode="markers+text" if stage == 2 else "markers",
                text=[f"t={t:.2f}" for t in batch.t],
                textposition="top center",
                textfont=dict(color=theme.TEXT, size=11),
                marker=dict(color=theme.NOISE, size=11, line=ring),
            )
        )
    if stage >= 3:
        marker = dict(color=theme.HIGHLIGHT, size=10, symbol="diamond")
        traces.append(_points(batch.z_t, "z_t = α_t z₁ + σ_t z₀", marker=marker))
    return traces


def training_step_figure(batch: Batch, stage: int, data: np.ndarray, height: int = 540) -> go.Figure:
    """One step of conditional flow matching on a small batch, built up stage by stage.

    Stages (cumulative): 0 data points, 1 noise points, 2 their pairing and times, 3 the
    interpolated z_t, 4 target arrows u_t, 5 the network's arrows v_theta and the error between.
    Arrows are drawn for a time ``ARROW_TIME`` so that they stay readable.
    """
    fig = go.Figure(_batch_traces(batch, stage, data))
    if stage >= 4:
        fig.add_traces(_arrows(batch.z_t, batch.u_t, theme.EXACT, "target u_t(z_t | z₁)"))
    if stage >= 5:
        trained = f"network v_θ(z_t, t) ({batch.trained_steps} steps trained)"
        fig.add_traces(_arrows(batch.z_t, batch.v, theme.MODEL, trained))
        x, y = paths_xy(batch.z_t + ARROW_TIME * np.stack([batch.u_t, batch.v]))
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", line=dict(color=theme.ERROR, width=2), name="error v_θ − u_t")
        )
    style(fig, height)
    fig.update_layout(
        legend=dict(orientation="h", x=0.0, y=-0.02, yanchor="top", font=dict(size=11)),
        margin=dict(l=10, r=10, t=40, b=80),
        title=dict(
            text=f"loss on this batch: mean |v_θ − u_t|² = {batch.loss:.3f}" if stage >= 5 else "",
            font=dict(size=14),
            x=0.5,
        ),
    )
    return square_view(fig)
