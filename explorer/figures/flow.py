"""Figure builders: numbers in, ``go.Figure`` out. Pure and deterministic, no ``st.*`` inside.

The main figure is a plotly animation over t from 0 (noise) to 1 (data) that plays in the browser:
one frame per frame time, a time slider and play/pause buttons, so scrubbing never waits for
Python. Only what moves is in the frames (particles, arrows, density, warped grid, the followed
particle); everything else is drawn once. Figures are assembled from plain dicts (constructing
``go.Scatter`` objects frame by frame costs ~10x more) with float32 arrays, which plotly sends as
binary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from explorer.compute import ARROW_GRID, VIEW_BOX, Flow, SinglePath, arrow_grid, density_axis, steps_label

from . import theme

__all__ = [
    "FRAME_MS",
    "Panel",
    "arrow_segments",
    "flow_figure",
    "loss_figure",
    "schedule_figure",
    "schedule_svg",
    "snapshot_figure",
]

FRAME_MS = 80
"""Frame duration while playing: 60-100 ms is what the browser keeps up with (NOTES)."""
ARROW_CELL = 2 * VIEW_BOX * 0.92 / (ARROW_GRID - 1)
"""Spacing of the arrow grid: the longest arrow."""
ARROW_HEAD = 0.3
"""Arrowhead barbs, as a fraction of the arrow's length."""
PATH_MARKERS_UP_TO = 12
"""Solver steps up to which each step is drawn as a dot on the paths (more dots cost render time)."""


@dataclass(frozen=True)
class Panel:
    """What one square of the animation shows.

    Attributes:
        flow: the particles.  data: (m, 2) data points drawn faintly as the target.
        title: text above the panel.  field: (F, G, 2) velocities on ``arrow_grid()`` or None.
        field_kind: ``exact``, ``learned`` or ``difference`` (colours the arrows).
        density: (F, H, W) p_t on ``density_axis(H)`` or None.  warp: (F, L, R, 2) or None.
        show_paths: draw the solver paths of the first particles.  single: one followed particle.
    """

    flow: Flow
    data: np.ndarray
    title: str = ""
    field: np.ndarray | None = None
    field_kind: str = "exact"
    density: np.ndarray | None = None
    warp: np.ndarray | None = None
    show_paths: bool = True
    single: SinglePath | None = None


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _with_gaps(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, R, 2) polylines -> x, y of one trace with NaN between the lines."""
    lines = _f32(lines)
    gap = np.full((lines.shape[0], 1, 2), np.nan, dtype=np.float32)
    joined = np.concatenate([lines, gap], axis=1).reshape(-1, 2)
    return joined[:, 0], joined[:, 1]


def arrow_segments(points: np.ndarray, vectors: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Arrows centred on ``points`` as one polyline: tail, tip, left barb, tip, right barb, NaN.

    One line trace with NaN gaps draws as a single SVG path: far cheaper per frame than marker
    arrowheads (measured 76 vs 176 ms a frame for 1,000 particles). Length ``cell * tanh(|v| / scale)``:
    proportional for ordinary speeds, capped for fast ones, so no arrow reaches into the next cell.

    Args:
        points: (G, 2).  vectors: (G, 2).  scale: the speed that gets ~0.76 of a cell.
    Returns:
        x, y: (6G,) float32 with a NaN after each arrow.
    """
    points = np.asarray(points, dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    speed = np.linalg.norm(vectors, axis=1, keepdims=True)
    direction = np.divide(vectors, speed, out=np.zeros_like(vectors), where=speed > 1e-12)
    length = ARROW_CELL * np.tanh(speed / max(scale, 1e-9))
    half = 0.5 * length * direction
    tail, tip = points - half, points + half
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    back = tip - ARROW_HEAD * length * direction
    barb = 0.5 * ARROW_HEAD * length * normal
    gap = np.full_like(points, np.nan)
    segments = np.stack([tail, tip, back + barb, tip, back - barb, gap], axis=1)
    return _f32(segments[..., 0].ravel()), _f32(segments[..., 1].ravel())


def _speed_scale(field: np.ndarray) -> float:
    speed = np.linalg.norm(field, axis=-1)
    finite = speed[np.isfinite(speed)]
    return float(np.percentile(finite, 80)) if finite.size else 1.0


_ARROW_COLOR = {"exact": theme.FIELD, "learned": theme.FIELD, "difference": theme.ERROR}


def _axes(suffix: str, domain: tuple[float, float], anchor: str) -> dict:
    ticks = dict(
        range=[-VIEW_BOX, VIEW_BOX],
        showgrid=True,
        gridcolor=theme.GRID_LINE,
        zeroline=False,
        showline=False,
        tickvals=[-3, -2, -1, 0, 1, 2, 3],
        tickfont=dict(size=10, color=theme.MUTED),
        fixedrange=False,
    )
    return {
        f"xaxis{suffix}": dict(ticks, domain=list(domain), anchor=f"y{suffix}", constrain="domain"),
        f"yaxis{suffix}": dict(
            ticks, anchor=f"x{suffix}", scaleanchor=f"x{suffix}", scaleratio=1, constrain="domain"
        ),
    }


class _Traces:
    """Collects a figure's traces and, for the animated ones, their per-frame updates."""

    def __init__(self):
        self.traces: list[dict] = []
        self.animated: list[tuple[int, list[dict]]] = []

    def add(self, trace: dict, frames: list[dict] | None = None) -> None:
        if frames is not None:
            self.animated.append((len(self.traces), frames))
        self.traces.append(trace)


def _panel_traces(out: _Traces, panel: Panel, axis: str, n_frames: int) -> None:
    xa, ya = f"x{axis}", f"y{axis}"
    flow = panel.flow
    times = flow.times
    if panel.density is not None:
        density = _f32(panel.density)
        axis_values = density_axis(density.shape[-1])
        peak = density.reshape(len(density), -1).max(axis=1).clip(min=1e-30)
        shown = np.sqrt(density / peak[:, None, None])  # sqrt: faint mass stays visible
        out.add(
            dict(
                type="heatmap",
                x=axis_values,
                y=axis_values,
                z=shown[0],
                zmin=0.0,
                zmax=1.0,
                colorscale=theme.DENSITY_SCALE,
                showscale=False,
                zsmooth="best",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            ),
            [dict(type="heatmap", z=shown[k]) for k in range(n_frames)],
        )
    out.add(
        dict(
            type="scatter",
            x=_f32(panel.data[:, 0]),
            y=_f32(panel.data[:, 1]),
            mode="markers",
            marker=dict(size=3, color=theme.rgba(theme.DATA, 0.28)),
            name="data z₁",
            hoverinfo="skip",
            xaxis=xa,
            yaxis=ya,
        )
    )
    if panel.show_paths:
        x, y = _with_gaps(np.swapaxes(flow.paths, 0, 1))
        few_steps = len(flow.nodes) <= PATH_MARKERS_UP_TO + 1
        out.add(
            dict(
                type="scatter",
                x=x,
                y=y,
                mode="lines+markers" if few_steps else "lines",
                line=dict(width=1, color=theme.rgba(theme.FIELD, 0.22)),
                marker=dict(size=2.5, color=theme.rgba(theme.FIELD, 0.45)),
                name="paths (solver steps)",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            )
        )
    if panel.warp is not None:
        frames = []
        for k in range(n_frames):
            x, y = _with_gaps(panel.warp[k])
            frames.append(dict(type="scatter", x=x, y=y))
        out.add(
            dict(
                type="scatter",
                x=frames[0]["x"],
                y=frames[0]["y"],
                mode="lines",
                line=dict(width=1, color=theme.rgba(theme.WARP, 0.55)),
                name="warped grid",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            ),
            frames,
        )
    if panel.field is not None:
        points = arrow_grid()
        scale = _speed_scale(panel.field)
        frames = []
        for k in range(n_frames):
            x, y = arrow_segments(points, panel.field[k], scale)
            frames.append(dict(type="scatter", x=x, y=y))
        color = _ARROW_COLOR.get(panel.field_kind, theme.FIELD)
        out.add(
            dict(
                type="scatter",
                x=frames[0]["x"],
                y=frames[0]["y"],
                mode="lines",
                line=dict(width=1.2, color=theme.rgba(color, 0.6)),
                name="learned − exact" if panel.field_kind == "difference" else "velocity v(z, t)",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            ),
            frames,
        )
    particles = _f32(flow.particles)
    out.add(
        dict(
            type="scatter",
            x=particles[0, :, 0],
            y=particles[0, :, 1],
            mode="markers",
            marker=dict(size=4, color=theme.particle_color(float(times[0])), line=dict(width=0)),
            name="particles z_t",
            hovertemplate="click to follow this particle<extra></extra>",
            xaxis=xa,
            yaxis=ya,
        ),
        [
            dict(
                type="scatter",
                x=particles[k, :, 0],
                y=particles[k, :, 1],
                marker=dict(color=theme.particle_color(float(times[k]))),
            )
            for k in range(n_frames)
        ],
    )
    if panel.single is not None:
        single = panel.single
        out.add(
            dict(
                type="scatter",
                x=_f32(single.exact[:, 0]),
                y=_f32(single.exact[:, 1]),
                mode="lines",
                line=dict(width=2, color=theme.rgba(theme.HIGHLIGHT, 0.55), dash="dot"),
                name="its ODE path",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            )
        )
        out.add(
            dict(
                type="scatter",
                x=_f32(single.nodes[:, 0]),
                y=_f32(single.nodes[:, 1]),
                mode="lines+markers",
                line=dict(width=2, color=theme.HIGHLIGHT),
                marker=dict(size=6, color=theme.HIGHLIGHT),
                name="solver steps",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            )
        )
        out.add(
            dict(
                type="scatter",
                x=_f32(single.particle[:1, 0]),
                y=_f32(single.particle[:1, 1]),
                mode="markers",
                marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(width=2.5, color=theme.HIGHLIGHT)),
                name="followed particle",
                hoverinfo="skip",
                xaxis=xa,
                yaxis=ya,
            ),
            [
                dict(
                    type="scatter",
                    x=_f32(single.particle[k : k + 1, 0]),
                    y=_f32(single.particle[k : k + 1, 1]),
                )
                for k in range(n_frames)
            ],
        )


def _tick_label(k: int, count: int, name: str) -> str:
    """The slider shows its current step's label as 't = ...'; the ends say what they are."""
    if k == 0:
        return f"{name} · noise"
    if k == count - 1:
        return f"{name} · data"
    return name


def _controls(times: np.ndarray, redraw: bool) -> dict:
    names = [f"{t:.2f}" for t in times]
    play = dict(
        frame=dict(duration=FRAME_MS, redraw=redraw),
        fromcurrent=True,
        transition=dict(duration=0),
        mode="immediate",
    )
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    return dict(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                showactive=False,
                x=0.0,
                y=0.0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=30, r=4),
                bgcolor=theme.PANEL,
                bordercolor="#2a3350",
                font=dict(color=theme.TEXT, size=13),
                buttons=[
                    dict(label="▶", method="animate", args=[None, play]),
                    dict(label="❚❚", method="animate", args=[[None], pause]),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.14,
                len=0.86,
                y=0.0,
                yanchor="top",
                pad=dict(t=24, b=0),
                bgcolor=theme.PANEL,
                activebgcolor=theme.DATA,
                bordercolor="#2a3350",
                tickcolor=theme.MUTED,
                # 51 tick labels would overlap: they are transparent, the current value says t.
                font=dict(color="rgba(0,0,0,0)", size=1),
                currentvalue=dict(
                    prefix="t = ",
                    visible=True,
                    xanchor="right",
                    font=dict(color=theme.TEXT, size=14),
                ),
                transition=dict(duration=0),
                steps=[
                    dict(
                        label=_tick_label(k, len(names), name),
                        method="animate",
                        args=[
                            [name],
                            dict(
                                mode="immediate",
                                frame=dict(duration=0, redraw=redraw),
                                transition=dict(duration=0),
                            ),
                        ],
                    )
                    for k, name in enumerate(names)
                ],
            )
        ],
    )


def flow_figure(panels: Sequence[Panel], height: int = 640) -> go.Figure:
    """The animated flow: one square panel per entry of ``panels``, all on one time slider.

    Args:
        panels: one or two ``Panel``s with the same frame times.  height: pixels.
    Returns:
        A figure with ``len(times)`` frames named by their time ('0.00' ... '1.00').
    """
    if not panels:
        raise ValueError("flow_figure needs at least one panel")
    times = panels[0].flow.times
    n_frames = len(times)
    gap = 0.04
    width = (1.0 - gap * (len(panels) - 1)) / len(panels)
    layout: dict = {}
    annotations = []
    out = _Traces()
    for i, panel in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        domain = (i * (width + gap), i * (width + gap) + width)
        layout.update(_axes(suffix, domain, suffix))
        _panel_traces(out, panel, suffix, n_frames)
        if panel.title:
            annotations.append(
                dict(
                    text=panel.title,
                    x=(domain[0] + domain[1]) / 2,  # the square plot is centred in its domain
                    y=1.0,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="bottom",
                    showarrow=False,
                    align="center",
                    font=dict(size=13, color=theme.TEXT),
                )
            )
    redraw = any(panel.density is not None for panel in panels)
    indices = [index for index, _ in out.animated]
    frames = [
        dict(name=f"{times[k]:.2f}", data=[updates[k] for _, updates in out.animated], traces=indices)
        for k in range(n_frames)
    ]
    layout.update(
        _controls(times, redraw),
        height=height,
        margin=dict(
            l=10,
            r=10,
            t=(48 if any("<br>" in a["text"] for a in annotations) else 30) if annotations else 8,
            b=72,
        ),
        paper_bgcolor=theme.PAPER,
        plot_bgcolor=theme.BACKGROUND,
        font=dict(family=theme.FONT, color=theme.TEXT),
        showlegend=False,
        annotations=annotations,
        dragmode="pan",
        hovermode="closest",  # clicks need hover events; only the particles answer them
        hoverdistance=8,
        uirevision="flow",
    )
    return go.Figure(dict(data=out.traces, layout=layout, frames=frames))


def panel_title(flow: Flow, label: str = "", energy: float | None = None, two_lines: bool = False) -> str:
    """'A · rk4 · 20 steps · 80 NFE · energy distance to data 0.0040' (the measure on a second line)."""
    head = " · ".join(
        [*([label] if label else []), f"<b>{flow.solver}</b>", steps_label(flow.solver, flow.steps, flow.nfe)]
    )
    if energy is None:
        return head
    measure = f"energy distance to data {max(energy, 0.0):.4f}"
    return (
        f"{head}<br><span style='color:{theme.MUTED}'>{measure}</span>"
        if two_lines
        else f"{head} · {measure}"
    )


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
) -> go.Figure:
    """A still: the model's current samples over the data, with its field (arrows) at one time."""
    traces = [
        dict(
            type="scatter",
            x=_f32(data[:, 0]),
            y=_f32(data[:, 1]),
            mode="markers",
            marker=dict(size=3, color=theme.rgba(theme.DATA, 0.25)),
            hoverinfo="skip",
        )
    ]
    if field is not None:
        x, y = arrow_segments(arrow_grid(), field, _speed_scale(field))
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
            x=_f32(samples[:, 0]),
            y=_f32(samples[:, 1]),
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
        **{k: dict(v, showticklabels=False) for k, v in _axes("", (0.0, 1.0), "").items()},
    )
    return go.Figure(dict(data=traces, layout=layout))


def schedule_figure(ts: np.ndarray, alpha: np.ndarray, sigma: np.ndarray, height: int = 150) -> go.Figure:
    """alpha_t (data weight, amber) and sigma_t (noise weight, blue) over t."""
    traces = [
        dict(
            type="scatter",
            x=_f32(ts),
            y=_f32(alpha),
            mode="lines",
            line=dict(color=theme.DATA, width=2.5),
            name="α_t",
        ),
        dict(
            type="scatter",
            x=_f32(ts),
            y=_f32(sigma),
            mode="lines",
            line=dict(color=theme.NOISE, width=2.5),
            name="σ_t",
        ),
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
