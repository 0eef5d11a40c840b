"""Line figures: error against NFE, where a time grid puts its steps, and named curves on shared axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.figures import theme

from ..l4_solvers import GOOD_ERROR, ErrorCurve
from .base import SOLVER_COLORS, f32, hline, log_ticks, style

__all__ = ["curves_figure", "error_nfe_figure", "grid_figure"]


def error_nfe_figure(curves: Sequence[ErrorCurve], labels: Mapping[str, str], height: int = 430) -> go.Figure:
    """Endpoint error against NFE on log-log axes, one line per solver, slopes in the legend.

    A line of slope -p is a method of order p (error ~ h^p ~ NFE^-p). The dashed line marks
    ``GOOD_ERROR``, below which the error is invisible in the figures.
    """
    fig = go.Figure()
    for curve in curves:
        name = labels.get(curve.solver, curve.solver)
        if curve.solver == "dopri5":
            name += " · adaptive (one point per tolerance)"
        elif np.isfinite(curve.slope):
            name += f" · slope {curve.slope:+.1f}"
        shown = curve.error > 0
        fig.add_trace(
            go.Scatter(
                x=f32(curve.nfe[shown]),
                y=f32(curve.error[shown]),
                mode="lines+markers",
                name=name,
                line=dict(color=SOLVER_COLORS.get(curve.solver, theme.MUTED), width=2),
                marker=dict(size=7),
            )
        )
    hline(fig, GOOD_ERROR, f"error {GOOD_ERROR}: invisible at this scale", theme.MUTED, log_y=True)
    style(fig, height)
    fig.update_layout(
        legend=dict(orientation="v", x=1.01, y=1.0, xanchor="left", yanchor="top"),
        margin=dict(l=60, r=10, t=20, b=50),
    )
    fig.update_xaxes(type="log", title="NFE (velocity evaluations)")
    fig.update_yaxes(type="log", title="endpoint error  mean |z₁ − z₁*|", exponentformat="power")
    return fig


def grid_figure(grids: Mapping[str, np.ndarray], height: int | None = None) -> go.Figure:
    """Where the steps go: one row of ticks per time grid on t in [0, 1]."""
    fig = go.Figure()
    names = list(grids)
    for row, name in enumerate(names):
        ts = f32(grids[name])
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=np.full(len(ts), row, dtype=np.float32),
                mode="markers+lines",
                line=dict(color=theme.GRID_LINE, width=1),
                marker=dict(symbol="line-ns-open", size=16, color=theme.DATA, line=dict(width=2)),
                name=name,
            )
        )
    style(fig, height or 70 + 44 * len(names), legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=40))
    fig.update_xaxes(range=[-0.02, 1.02], title="t   (0 = noise → 1 = data)")
    fig.update_yaxes(
        tickvals=list(range(len(names))), ticktext=names, range=[-0.6, len(names) - 0.4], autorange="reversed"
    )
    return fig


def curves_figure(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    x_title: str,
    y_title: str,
    colors: Mapping[str, str] | None = None,
    log_y: bool = False,
    floor: float | None = None,
    height: int = 320,
    log_x: bool = False,
    markers: bool = False,
    floor_label: str = "irreducible floor",
) -> go.Figure:
    """Several named curves on shared axes (loss curves, field errors, schedules), an optional floor."""
    fig = go.Figure()
    for name, (x, y) in series.items():
        fig.add_trace(
            go.Scatter(
                x=f32(x),
                y=f32(y),
                mode="lines+markers" if markers else "lines",
                name=name,
                line=dict(width=2, color=(colors or {}).get(name)),
            )
        )
    if floor is not None and np.isfinite(floor):
        hline(fig, floor, f"{floor_label} {floor:.3g}", theme.EXACT, log_y)
    style(fig, height)
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=45))
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    if log_y:
        values = np.concatenate(
            [np.asarray(y, dtype=float) for _, y in series.values()] + [[floor or np.nan]]
        )
        fig.update_yaxes(type="log", **log_ticks(values))
    fig.update_yaxes(title=y_title)
    return fig
