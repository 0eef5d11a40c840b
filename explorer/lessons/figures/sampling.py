"""Figures for lessons 8 to 10 (SDE sampling, guidance, one step): arrays in, ``go.Figure`` out.

They compose ``figures.panels_figure`` (the lessons' small multiples) and add only what those
lessons need: the SDE family's two rows of clouds, and off-support samples drawn in the error colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.figures import theme

from ..l8_sdes import STEPS, SdeFamily
from ..l9_guidance import GuidedSamples
from ..l10_one_step import ARROWS, OneStep
from ..shared import Case
from .panels import panels_figure

__all__ = ["guidance_figure", "level_title", "one_step_figure", "sde_family_figure"]


LIM = 2.6
"""Half-width of the SDE panels: the standardised presets lie within it, and the clouds read larger."""


def level_title(noise: float) -> str:
    """A panel title for one member of the SDE family."""
    name = {0.0: " · the ODE", 1.0: " · reverse diffusion"}.get(noise, "")
    return f"noise = {noise:g}{name}"


def sde_family_figure(family: SdeFamily, background: np.ndarray, revealed: bool) -> go.Figure:
    """The family side by side, one column per noise level, from the same noise.

    Before the reveal: a few paths up to t = 0.5 only, no numbers. After: the clouds at t = 0.5
    (top) and at t = 1 with the full paths (bottom), each with its energy distance to the ODE's
    cloud ("vs the ODE's cloud").
    """
    half = STEPS // 2
    if not revealed:
        panels = [
            Case(
                level_title(run.noise),
                run.paths[half],
                f"{len(run.paths[0])} paths, t = 0 → 0.5",
                paths=run.paths[: half + 1],
            )
            for run in family.runs
        ]
        return panels_figure(panels, background=background, columns=len(panels), height=360, lim=LIM)
    top = [
        Case(
            f"{level_title(run.noise)} · t = 0.5",
            run.half,
            f"vs the ODE's cloud: {run.distance_half:.4f}",
        )
        for run in family.runs
    ]
    bottom = [
        Case(
            f"t = 1 · {run.steps} steps = {run.nfe} NFE",
            run.end,
            f"vs the ODE's cloud: {run.distance_end:.4f}",
            paths=run.paths,
        )
        for run in family.runs
    ]
    return panels_figure(top + bottom, background=background, columns=len(top), height=680, lim=LIM)


def guidance_figure(
    samples: Sequence[GuidedSamples],
    background: np.ndarray,
    measured: bool = True,
    target: tuple[float, float] | None = None,
    columns: int | None = None,
    lim: float = LIM,
    height: int = 400,
) -> go.Figure:
    """One panel per guidance weight: samples on the data's support in violet, off it in pink (x).

    With ``measured=False`` the notes leave the numbers out (before a prediction is revealed) and
    every sample is drawn alike. ``target``, when given, is marked by a star in every panel (the
    chosen class's centroid). ``columns`` fixes the panel width (default: one column per panel); ``lim`` is the frames' half-width.
    """
    panels = [
        Case(
            f"w = {s.guidance:g}{s.meaning}",
            s.points[~s.off_support] if measured else s.points,
            s.note if measured else "",
        )
        for s in samples
    ]
    fig = panels_figure(panels, background=background, columns=columns or len(panels), height=height, lim=lim)
    fig.update_traces(marker=dict(color=theme.MODEL), selector=dict(marker_color=theme.DATA))
    for i, s in enumerate(samples):
        off = s.points[s.off_support] if measured else s.points[:0]
        fig.add_trace(
            go.Scatter(
                x=off[:, 0].astype(np.float32),
                y=off[:, 1].astype(np.float32),
                mode="markers",
                marker=dict(color=theme.ERROR, size=6, symbol="x"),
            ),
            row=1,
            col=i + 1,
        )
        if target is not None:
            fig.add_trace(
                go.Scatter(
                    x=[target[0]],
                    y=[target[1]],
                    mode="markers",
                    marker=dict(symbol="star-open", size=15, color=theme.HIGHLIGHT, line=dict(width=2)),
                ),
                row=1,
                col=i + 1,
            )
    return fig


PREVIEW_LENGTH = 0.3
"""Before the reveal, velocity arrows are drawn at this fraction of a full step (direction, not landing)."""


def _star(fig: go.Figure, point: np.ndarray, col: int) -> None:
    fig.add_trace(
        go.Scatter(
            x=[float(point[0])],
            y=[float(point[1])],
            mode="markers",
            marker=dict(symbol="star-open", size=16, color=theme.HIGHLIGHT, line=dict(width=2)),
        ),
        row=1,
        col=col,
    )


def one_step_figure(step: OneStep, background: np.ndarray, revealed: bool) -> go.Figure:
    """Instantaneous v(z_0, 0) and average u(z_0, 0, 1) as arrows from the same noise points.

    Before the reveal both are drawn at ``PREVIEW_LENGTH`` of a full step. After it, at full length,
    with two more panels: where one step with each lands (the Euler step in pink).
    """
    scale = 1.0 if revealed else PREVIEW_LENGTH
    z0 = step.z0[:ARROWS]
    length = "" if revealed else f", drawn at {PREVIEW_LENGTH:.0%} length"

    def arrows(title: str, velocity: np.ndarray, note: str) -> Case:
        tips = z0 + scale * velocity[:ARROWS]
        return Case(title, tips, note, paths=np.stack([z0, tips]))

    panels = [
        arrows("Instantaneous: v(z₀, 0)", step.instantaneous, f"the tangent at t = 0{length}"),
        arrows("Average: u(z₀, 0, 1)", step.average, f"the chord of the ODE's path{length}"),
    ]
    if revealed:
        panels += [
            Case(
                "One Euler step: z₀ + v(z₀, 0)",
                step.euler,
                f"every sample within {step.euler_spread:.0e} of the mean ☆",
                wrong=True,
            ),
            Case("One step with u: z₀ + u(z₀, 0, 1)", step.ode, "the ODE's samples"),
        ]
    fig = panels_figure(panels, background=background, columns=len(panels), height=400, lim=LIM)
    _star(fig, step.data_mean, 1)
    if revealed:
        _star(fig, step.data_mean, 3)
    return fig
