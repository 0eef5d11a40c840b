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

from explorer import compat
from explorer.core.densities import density_axis
from explorer.core.fields import SinglePath, arrow_grid
from explorer.core.flows import Flow, sampler_label, steps_label

from . import theme
from .animation import FRAME_MS, animation_controls
from .marks import arrow_segments, data_colors, f32, speed_scale, square_axes, with_gaps

__all__ = ["PATH_MARKERS_UP_TO", "Panel", "flow_figure", "panel_title"]

PATH_MARKERS_UP_TO = 12
"""Solver steps up to which each step is drawn as a dot on the paths (more dots cost render time)."""
MARGIN_LEFT, MARGIN_BOTTOM = 36, 96
"""Pixels that already hold what plotly.js would push the margins out for: the y tick labels (30 px
where the axis meets the left edge) and the time slider with its play button (94 px). A margin that
plotly.js has to widen after drawing makes it draw the whole figure again (``Plots.doAutoMargin``):
~0.2 s of a first paint in the Playground's column, where the square plot leaves the y axis near
the edge."""


@dataclass(frozen=True)
class Panel:
    """What one square of the animation shows.

    Attributes:
        flow: the particles.  data: (m, 2) data points drawn faintly as the target.
        title: text above the panel.  field: (F, G, 2) velocities on ``arrow_grid()`` or None.
        field_kind: ``exact``, ``learned`` or ``difference`` (colours the arrows).
        density: (F, H, W) p_t on ``density_axis(H)`` or None.  warp: (F, L, R, 2) or None.
        show_paths: draw the solver paths of the first particles.  single: one followed particle.
        data_labels: (m,) class of each data point (coloured by ``theme.class_color``) or None.
        picked: the class being sampled (the others drawn fainter), or None.
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
    data_labels: np.ndarray | None = None
    picked: int | None = None


_ARROW_COLOR = {"exact": theme.FIELD, "learned": theme.FIELD, "difference": theme.ERROR}

Animated = tuple[dict, list[dict] | None]
"""A trace and, when it moves, its update for every frame."""


def _density_trace(density: np.ndarray) -> Animated:
    """p_t as a heatmap, normalised per frame (sqrt: faint mass stays visible)."""
    density = f32(density)
    axis_values = density_axis(density.shape[-1])
    peak = density.reshape(len(density), -1).max(axis=1).clip(min=1e-30)
    shown = np.sqrt(density / peak[:, None, None])
    trace = dict(
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
    )
    return trace, [dict(type="heatmap", z=frame) for frame in shown]


def _data_trace(data: np.ndarray, labels: np.ndarray | None = None, picked: int | None = None) -> Animated:
    marker = dict(size=3, color=data_colors(labels, picked))
    trace = dict(type="scatter", x=f32(data[:, 0]), y=f32(data[:, 1]), mode="markers", marker=marker)
    return dict(trace, name="data z₁", hoverinfo="skip"), None


def _paths_trace(flow: Flow) -> Animated:
    """The first particles' solver paths; a dot per step when there are few steps."""
    x, y = with_gaps(np.swapaxes(flow.paths, 0, 1))
    few_steps = len(flow.nodes) <= PATH_MARKERS_UP_TO + 1
    trace = dict(
        type="scatter",
        x=x,
        y=y,
        mode="lines+markers" if few_steps else "lines",
        line=dict(width=1, color=theme.rgba(theme.FIELD, 0.22)),
        marker=dict(size=2.5, color=theme.rgba(theme.FIELD, 0.45)),
        name="paths (solver steps)",
        hoverinfo="skip",
    )
    return trace, None


def _moving_lines(frames: list[dict], line: dict, name: str) -> Animated:
    """A line trace that starts at its first frame."""
    trace = dict(type="scatter", x=frames[0]["x"], y=frames[0]["y"], mode="lines", line=line)
    return dict(trace, name=name, hoverinfo="skip"), frames


def _warp_trace(warp: np.ndarray, n_frames: int) -> Animated:
    frames = []
    for k in range(n_frames):
        x, y = with_gaps(warp[k])
        frames.append(dict(type="scatter", x=x, y=y))
    return _moving_lines(frames, dict(width=1, color=theme.rgba(theme.WARP, 0.55)), "warped grid")


def _field_trace(field: np.ndarray, field_kind: str, n_frames: int) -> Animated:
    """The velocity (or the network's error) as arrows on ``arrow_grid()``, one set per frame."""
    points = arrow_grid()
    scale = speed_scale(field)
    frames = []
    for k in range(n_frames):
        x, y = arrow_segments(points, field[k], scale)
        frames.append(dict(type="scatter", x=x, y=y))
    color = _ARROW_COLOR.get(field_kind, theme.FIELD)
    name = "learned − exact" if field_kind == "difference" else "velocity v(z, t)"
    return _moving_lines(frames, dict(width=1.2, color=theme.rgba(color, 0.6)), name)


def _particles_trace(flow: Flow, n_frames: int) -> Animated:
    """The particles z_t, coloured by time; the one trace that answers clicks."""
    particles, times = f32(flow.particles), flow.times
    trace = dict(
        type="scatter",
        x=particles[0, :, 0],
        y=particles[0, :, 1],
        mode="markers",
        marker=dict(size=4, color=theme.particle_color(float(times[0])), line=dict(width=0)),
        name="particles z_t",
        hovertemplate="click to follow this particle<extra></extra>",
    )
    frames = [
        dict(
            type="scatter",
            x=particles[k, :, 0],
            y=particles[k, :, 1],
            marker=dict(color=theme.particle_color(float(times[k]))),
        )
        for k in range(n_frames)
    ]
    return trace, frames


def _followed_traces(single: SinglePath, n_frames: int) -> list[Animated]:
    """One particle: its ODE path (dotted), the solver's steps (solid) and a ring where it is now."""
    ode_path = dict(
        type="scatter",
        x=f32(single.exact[:, 0]),
        y=f32(single.exact[:, 1]),
        mode="lines",
        line=dict(width=2, color=theme.rgba(theme.HIGHLIGHT, 0.55), dash="dot"),
        name="its ODE path",
        hoverinfo="skip",
    )
    steps = dict(
        type="scatter",
        x=f32(single.nodes[:, 0]),
        y=f32(single.nodes[:, 1]),
        mode="lines+markers",
        line=dict(width=2, color=theme.HIGHLIGHT),
        marker=dict(size=6, color=theme.HIGHLIGHT),
        name="solver steps",
        hoverinfo="skip",
    )
    ring = dict(
        type="scatter",
        x=f32(single.particle[:1, 0]),
        y=f32(single.particle[:1, 1]),
        mode="markers",
        marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(width=2.5, color=theme.HIGHLIGHT)),
        name="followed particle",
        hoverinfo="skip",
    )
    frames = [
        dict(type="scatter", x=f32(single.particle[k : k + 1, 0]), y=f32(single.particle[k : k + 1, 1]))
        for k in range(n_frames)
    ]
    return [(ode_path, None), (steps, None), (ring, frames)]


def _panel_layers(panel: Panel, n_frames: int) -> list[Animated]:
    """The panel's traces, bottom to top."""
    layers = []
    if panel.density is not None:
        layers.append(_density_trace(panel.density))
    layers.append(_data_trace(panel.data, panel.data_labels, panel.picked))
    if panel.show_paths:
        layers.append(_paths_trace(panel.flow))
    if panel.warp is not None:
        layers.append(_warp_trace(panel.warp, n_frames))
    if panel.field is not None:
        layers.append(_field_trace(panel.field, panel.field_kind, n_frames))
    layers.append(_particles_trace(panel.flow, n_frames))
    if panel.single is not None:
        layers += _followed_traces(panel.single, n_frames)
    return layers


class _Traces:
    """Collects a figure's traces and, for the animated ones, their per-frame updates."""

    def __init__(self):
        self.traces: list[dict] = []
        self.animated: list[tuple[int, list[dict]]] = []

    def add_panel(self, panel: Panel, axis: str, n_frames: int) -> None:
        """The panel's layers, drawn on the axes ``x<axis>``, ``y<axis>``."""
        for trace, frames in _panel_layers(panel, n_frames):
            if frames is not None:
                self.animated.append((len(self.traces), frames))
            self.traces.append(dict(trace, xaxis=f"x{axis}", yaxis=f"y{axis}"))


def _title(text: str, domain: tuple[float, float]) -> dict:
    return dict(
        text=text,
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


def flow_figure(panels: Sequence[Panel], height: int = 640, stride: int = 1) -> go.Figure:
    """The animated flow: one square panel per entry of ``panels``, all on one time slider.

    Args:
        panels: one or two ``Panel``s with the same frame times.  height: pixels.
        stride: keep every ``stride``-th frame time (the first and the last always), each shown
            ``stride`` times as long: the same animation in a lighter figure.
    Returns:
        A figure with a frame per kept time, named by it ('0.00' ... '1.00').
    """
    if not panels:
        raise ValueError("flow_figure needs at least one panel")
    if stride < 1:
        raise ValueError(f"stride must be a positive number of frames, got {stride}")
    times = panels[0].flow.times
    n_frames = len(times)
    kept = sorted({*range(0, n_frames, stride), n_frames - 1})
    gap = 0.04
    width = (1.0 - gap * (len(panels) - 1)) / len(panels)
    layout: dict = {}
    annotations = []
    out = _Traces()
    for i, panel in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        domain = (i * (width + gap), i * (width + gap) + width)
        layout.update(square_axes(suffix, domain, suffix))
        out.add_panel(panel, suffix, n_frames)
        if panel.title:
            annotations.append(_title(panel.title, domain))
    redraw = any(panel.density is not None for panel in panels)
    indices = [index for index, _ in out.animated]
    frames = [
        dict(name=f"{times[k]:.2f}", data=[updates[k] for _, updates in out.animated], traces=indices)
        for k in kept
    ]
    layout.update(
        animation_controls(times[kept], redraw, frame_ms=FRAME_MS * stride),
        height=height,
        margin=dict(
            l=MARGIN_LEFT,
            r=10,
            t=(48 if any("<br>" in a["text"] for a in annotations) else 30) if annotations else 8,
            b=MARGIN_BOTTOM,
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
    return compat.ready_figure(dict(data=out.traces, layout=layout, frames=frames))


def panel_title(flow: Flow, label: str = "", energy: float | None = None, two_lines: bool = False) -> str:
    """'A · rk4 · 20 steps · 80 NFE · energy distance to data 0.0040' (the measure on a second line)."""
    head = " · ".join(
        [
            *([label] if label else []),
            f"<b>{sampler_label(flow.solver, flow.noise)}</b>",
            steps_label(flow.solver, flow.steps, flow.nfe),
        ]
    )
    if energy is None:
        return head
    measure = f"energy distance to data {max(energy, 0.0):.4f}"
    return (
        f"{head}<br><span style='color:{theme.MUTED}'>{measure}</span>"
        if two_lines
        else f"{head} · {measure}"
    )
