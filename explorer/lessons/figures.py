"""Pure figure builders the lessons need beyond the Playground's (``explorer.figures``).

Arrays in, ``go.Figure`` out, no Streamlit. They use the Playground's palette (``explorer.figures.theme``:
noise blue, data amber, the model violet, the exact field teal, errors pink) and its view box, so a
lesson's picture reads like the Playground's. Arrays are cast to float32 (half the payload).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.core.flows import VIEW_BOX
from explorer.figures import snapshot_figure, theme

from .compute import GOOD_ERROR, Batch, ErrorCurve, Panel, Posterior

__all__ = [
    "SOLVER_COLORS",
    "TRAINING_STAGES",
    "curves_figure",
    "density_paths_figure",
    "error_nfe_figure",
    "grid_figure",
    "log_density_figure",
    "panels_figure",
    "posterior_figure",
    "question_figure",
    "training_step_figure",
]

SOLVER_COLORS = {
    "euler": theme.ERROR,
    "midpoint": "#f2d16b",
    "heun": "#ff9f5a",
    "rk4": theme.MODEL,
    "dpm++2m": theme.EXACT,
    "dopri5": theme.NOISE,
}
"""One colour per solver, the same in every lesson figure; unknown solvers fall back to MUTED."""


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _style(fig: go.Figure, height: int, legend: bool = True) -> go.Figure:
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


def question_figure(
    data: np.ndarray, field: np.ndarray, start: tuple[float, float], height: int = 560
) -> go.Figure:
    """Before the answer: the data, the field at t=0 and the chosen start point as a star."""
    fig = snapshot_figure(np.zeros((0, 2), dtype=np.float32), data, field, height=height, title="t = 0")
    fig.add_trace(
        go.Scatter(
            x=[start[0]],
            y=[start[1]],
            mode="markers",
            marker=dict(symbol="star", size=20, color=theme.HIGHLIGHT, line=dict(color=theme.NOISE, width=2)),
            hoverinfo="skip",
        )
    )
    return fig


def _paths_xy(zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K+1, p, 2) states -> x, y of p polylines separated by NaN."""
    gap = np.full((1, zs.shape[1]), np.nan, dtype=np.float32)
    xs = np.concatenate([_f32(zs[:, :, 0]), gap]).T.ravel()
    ys = np.concatenate([_f32(zs[:, :, 1]), gap]).T.ravel()
    return xs, ys


def panels_figure(
    panels: Sequence[Panel],
    background: np.ndarray | None = None,
    columns: int = 3,
    height: int | None = None,
    lim: float = VIEW_BOX,
) -> go.Figure:
    """Small multiples of point clouds, each with a title and a measured note; wrong ones in pink.

    Args:
        panels: what to draw (``Panel.paths`` adds the solver's node-to-node polylines).
        background: (m, 2) points drawn faintly behind every panel (the data).
        lim: half-width of every panel's square frame; points outside are simply off-frame.
    """
    rows = -(-len(panels) // columns)
    titles = []
    for p in panels:
        color = theme.ERROR if p.wrong else theme.TEXT
        titles.append(
            f"<span style='color:{color}'><b>{p.title}</b></span>"
            f"<br><span style='font-size:11px;color:{theme.MUTED}'>{p.note}</span>"
        )
    fig = make_subplots(
        rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.12
    )
    for i, panel in enumerate(panels):
        where = dict(row=i // columns + 1, col=i % columns + 1)
        if background is not None:
            fig.add_trace(
                go.Scatter(
                    x=_f32(background[:, 0]),
                    y=_f32(background[:, 1]),
                    mode="markers",
                    marker=dict(color=theme.rgba(theme.DATA, 0.16), size=3),
                ),
                **where,
            )
        if panel.paths is not None:
            x, y = _paths_xy(panel.paths)
            few = len(panel.paths) <= 33
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers" if few else "lines",
                    line=dict(color=theme.rgba(theme.FIELD, 0.3), width=1),
                    marker=dict(size=3, color=theme.rgba(theme.FIELD, 0.55)),
                ),
                **where,
            )
            fig.add_trace(
                go.Scatter(
                    x=_f32(panel.paths[0, :, 0]),
                    y=_f32(panel.paths[0, :, 1]),
                    mode="markers",
                    marker=dict(color=theme.NOISE, size=4),
                ),
                **where,
            )
        fig.add_trace(
            go.Scatter(
                x=_f32(panel.points[:, 0]),
                y=_f32(panel.points[:, 1]),
                mode="markers",
                marker=dict(color=theme.ERROR if panel.wrong else theme.DATA, size=4),
            ),
            **where,
        )
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(range=[-lim, lim], showticklabels=False, **where)
        fig.update_yaxes(
            range=[-lim, lim], showticklabels=False, scaleanchor=f"x{axis}", scaleratio=1, **where
        )
    _style(fig, height or 330 * rows, legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=62, b=10))
    fig.update_annotations(font=dict(size=13, color=theme.TEXT))
    return fig


def _hline(fig: go.Figure, y: float, text: str, color: str, log_y: bool) -> None:
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
                x=_f32(curve.nfe[shown]),
                y=_f32(curve.error[shown]),
                mode="lines+markers",
                name=name,
                line=dict(color=SOLVER_COLORS.get(curve.solver, theme.MUTED), width=2),
                marker=dict(size=7),
            )
        )
    _hline(fig, GOOD_ERROR, f"error {GOOD_ERROR}: invisible at this scale", theme.MUTED, log_y=True)
    _style(fig, height)
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
        ts = _f32(grids[name])
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
    _style(fig, height or 70 + 44 * len(names), legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=40))
    fig.update_xaxes(range=[-0.02, 1.02], title="t   (0 = noise → 1 = data)")
    fig.update_yaxes(
        tickvals=list(range(len(names))), ticktext=names, range=[-0.6, len(names) - 0.4], autorange="reversed"
    )
    return fig


def _log_ticks(values: np.ndarray) -> dict:
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
                x=_f32(x),
                y=_f32(y),
                mode="lines+markers" if markers else "lines",
                name=name,
                line=dict(width=2, color=(colors or {}).get(name)),
            )
        )
    if floor is not None and np.isfinite(floor):
        _hline(fig, floor, f"{floor_label} {floor:.3g}", theme.EXACT, log_y)
    _style(fig, height)
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=45))
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    if log_y:
        values = np.concatenate(
            [np.asarray(y, dtype=float) for _, y in series.values()] + [[floor or np.nan]]
        )
        fig.update_yaxes(type="log", **_log_ticks(values))
    fig.update_yaxes(title=y_title)
    return fig


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
    x, y = _paths_xy(np.stack([np.broadcast_to(start, ends[strong].shape), ends[strong]]))
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
            x=_f32(post.data[order, 0]),
            y=_f32(post.data[order, 1]),
            mode="markers",
            marker=dict(
                size=3 + 7 * shade[order],
                color=_f32(shade[order]),
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
    fig.add_trace(
        go.Scatter(
            x=[start[0]],
            y=[start[1]],
            mode="markers",
            marker=dict(symbol="star", size=18, color=theme.HIGHLIGHT, line=dict(color=theme.NOISE, width=2)),
            name=f"z at t = {t:.2f}",
        )
    )
    _style(fig, height)
    fig.update_layout(
        legend=dict(orientation="v", x=0.01, y=0.99, yanchor="top", bgcolor="rgba(11,16,32,0.7)")
    )
    fig.update_xaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False)
    fig.update_yaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False, scaleanchor="x", scaleratio=1)
    return fig


TRAINING_STAGES = (
    "1 · data z₁",
    "2 · noise z₀",
    "3 · times t",
    "4 · interpolate z_t",
    "5 · target u_t",
    "6 · predict, loss",
)


def training_step_figure(batch: Batch, stage: int, data: np.ndarray, height: int = 540) -> go.Figure:
    """One step of conditional flow matching on a small batch, built up stage by stage.

    Stages (cumulative): 0 data points, 1 noise points, 2 their pairing and times, 3 the
    interpolated z_t, 4 target arrows u_t, 5 the network's arrows v_theta and the error between.
    Arrows are drawn for a time 0.25 so that they stay readable.
    """
    fig = go.Figure()
    scale = 0.25

    def arrows(vectors: np.ndarray, color: str, name: str, width: float = 3) -> None:
        tips = batch.z_t + scale * vectors
        x, y = _paths_xy(np.stack([batch.z_t, tips]))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, width=width), name=name))
        fig.add_trace(
            go.Scatter(
                x=_f32(tips[:, 0]),
                y=_f32(tips[:, 1]),
                mode="markers",
                marker=dict(size=7, color=color, symbol="circle"),
                showlegend=False,
            )
        )

    fig.add_trace(
        go.Scatter(
            x=_f32(data[:, 0]),
            y=_f32(data[:, 1]),
            mode="markers",
            marker=dict(color=theme.rgba(theme.DATA, 0.15), size=3),
            name="the data set",
        )
    )
    if stage >= 2:
        x, y = _paths_xy(np.stack([batch.z0, batch.z1]))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                line=dict(color=theme.MUTED, width=1, dash="dot"),
                name="pairs (z₀, z₁)",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=_f32(batch.z1[:, 0]),
            y=_f32(batch.z1[:, 1]),
            mode="markers",
            marker=dict(color=theme.DATA, size=11, line=dict(color=theme.PAPER, width=1)),
            name="z₁ ~ data",
        )
    )
    if stage >= 1:
        fig.add_trace(
            go.Scatter(
                x=_f32(batch.z0[:, 0]),
                y=_f32(batch.z0[:, 1]),
                mode="markers+text" if stage == 2 else "markers",
                text=[f"t={t:.2f}" for t in batch.t],
                textposition="top center",
                textfont=dict(color=theme.TEXT, size=11),
                marker=dict(color=theme.NOISE, size=11, line=dict(color=theme.PAPER, width=1)),
                name="z₀ ~ N(0, I)",
            )
        )
    if stage >= 3:
        fig.add_trace(
            go.Scatter(
                x=_f32(batch.z_t[:, 0]),
                y=_f32(batch.z_t[:, 1]),
                mode="markers",
                marker=dict(color=theme.HIGHLIGHT, size=10, symbol="diamond"),
                name="z_t = α_t z₁ + σ_t z₀",
            )
        )
    if stage >= 4:
        arrows(batch.u_t, theme.EXACT, "target u_t(z_t | z₁)")
    if stage >= 5:
        arrows(batch.v, theme.MODEL, f"network v_θ(z_t, t) ({batch.trained_steps} steps trained)")
        ends = np.stack([batch.z_t + scale * batch.u_t, batch.z_t + scale * batch.v])
        x, y = _paths_xy(ends)
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", line=dict(color=theme.ERROR, width=2), name="error v_θ − u_t")
        )
    _style(fig, height)
    fig.update_layout(
        legend=dict(orientation="h", x=0.0, y=-0.02, yanchor="top", font=dict(size=11)),
        margin=dict(l=10, r=10, t=40, b=80),
        title=dict(
            text=f"loss on this batch: mean |v_θ − u_t|² = {batch.loss:.3f}" if stage >= 5 else "",
            font=dict(size=14),
            x=0.5,
        ),
    )
    fig.update_xaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False)
    fig.update_yaxes(range=[-VIEW_BOX, VIEW_BOX], showticklabels=False, scaleanchor="x", scaleratio=1)
    return fig


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
                x=_f32(xs),
                y=_f32(ys),
                z=_f32(np.clip(values, top - depth, top)),
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
                x=_f32(data[:, 0]),
                y=_f32(data[:, 1]),
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
    _style(fig, height, legend=False)
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
                x=_f32(ts),
                y=_f32(closed[:, j]),
                mode="lines",
                line=dict(color=color, width=2),
                name="closed-form log pₜ(zₜ)" if j == 0 else None,
                showlegend=j == 0,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=_f32(ts[::every]),
                y=_f32(integrated[::every, j]),
                mode="markers",
                marker=dict(color=color, size=7, symbol="circle-open", line=dict(width=2)),
                name="log p₀(z₀) − ∫₀ᵗ div v ds" if j == 0 else None,
                showlegend=j == 0,
            )
        )
    _style(fig, height)
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=45))
    fig.update_xaxes(title="t   (0 = noise → 1 = data)")
    fig.update_yaxes(title="log-density along the path")
    return fig
