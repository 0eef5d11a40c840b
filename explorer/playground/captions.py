"""The words around the figure: the header, the caption under it, the schedule's sketch."""

from __future__ import annotations

import math

import streamlit as st
import torch

import fmcore
from explorer import figures
from explorer.core import flows
from explorer.core.data import Dataset
from explorer.core.state import ViewState
from explorer.figures import theme

from . import cache

__all__ = ["caption", "data_colours", "header", "schedule_sketch"]


def header() -> None:
    st.markdown(
        "<div class='fm-header'><h1 class='fm-title'>Flow Matching <span class='noise'>Explorer</span></h1>"
        "<div class='fm-chips'><span class='fm-chip noise'><b>t = 0</b> noise z₀</span>"
        "<span class='fm-chip data'><b>t = 1</b> data z₁</span>"
        "<span class='fm-chip'>sampling integrates <b>forward</b> in t</span>"
        "<span class='fm-chip'><b>NFE</b> = network evaluations</span></div></div>",
        unsafe_allow_html=True,
    )


def caption(state: ViewState, kind: str, measured, dataset: Dataset) -> None:
    arrows = {
        "exact": (
            "the <b>exact</b> marginal velocity v(z, t) of the data (closed form over "
            f"{len(dataset.shown)} points, each blurred by {flows.EXACT_BANDWIDTH:g} so it stays finite at t = 1)"
        ),
        "learned": "the velocity the <b>network</b> learned",
        "difference": "the network's <b>error</b>, learned − exact (particles follow the network)",
    }[kind]
    floor = cache.noise_floor(dataset, state.n)
    lines = [
        f"<b>{state.n:,} particles</b> start as noise z₀ ~ N(0, I) at t = 0 (blue) and ride {arrows} "
        f"until they reach the data ({data_colours(dataset)}) at t = 1. Press <b>▶</b> or drag the time slider.",
    ]
    lines.extend(_sampler_lines(measured[0][0]))
    if state.paths:
        lines.append(
            f"Faint lines trace {measured[0][0].paths.shape[1]} particles; their dots are the solver's steps."
        )
    if state.density and state.model_density and kind != "exact":
        lines.append(
            "Shading: the <b>network's</b> density pₜ, by the change of variables from N(0, I) "
            "(log-likelihood, one backward solve per frame), normalised per frame."
        )
    elif state.density:
        lines.append("Shading: the exact density pₜ, normalised per frame.")
    if state.warp:
        lines.append("Grid lines: a square grid of noise, bent by the flow.")
    if state.follow:
        lines.append("White: one particle — the solver's steps (solid) against its ODE path (dotted).")
    else:
        lines.append("Click a particle to follow it.")
    metric = " · ".join(
        f"<b>{flows.sampler_label(flow.solver, flow.noise)}</b> {flows.steps_label(flow.solver, flow.steps, flow.nfe)} · "
        + (f"energy distance <b>{max(energy, 0.0):.4f}</b> · " if energy is not None else "")
        + (f"straightness {flow.straightness:.2f}" if math.isfinite(flow.straightness) else "Brownian paths")
        for flow, energy in measured
    )
    spread = (
        f"(two samples of the data differ by ≈ {floor:.4f})"
        if floor is not None
        else "(too few data points to measure an energy distance)"
    )
    st.markdown(
        f"<div class='fm-caption' data-testid='fm-caption'>{' '.join(lines)}<br>"
        f"<span data-testid='fm-metrics'>{metric}</span> "
        f"<span class='label'>{spread}</span></div>",
        unsafe_allow_html=True,
    )


def data_colours(dataset: Dataset) -> str:
    """How the figure colours the data, in words: amber points, or one colour per class (each class's
    number written in its own colour, ``theme.class_color``, as the figure draws it)."""
    if not dataset.present:
        return "amber points"
    swatches = " ".join(f"<b style='color:{theme.class_color(k)}'>● {k}</b>" for k in dataset.present)
    return f"faint points coloured by class: {swatches}"


def _sampler_lines(flow: flows.Flow) -> list[str]:
    """What the SDE or the mean flow does differently from the ODE, when the main panel uses one."""
    if flow.solver == flows.EULER_MARUYAMA:
        return [
            "They follow an <b>SDE</b> with the same marginals pₜ: dz = [v + (g²/2)·∇log pₜ] dt + g dW, "
            f"g = {flow.noise:g}·√βₜ (1 = reverse diffusion), the score taken from v, by Euler-Maruyama "
            f"on the time grid: {flow.steps} steps, one NFE each. Jagged paths, the ODE's cloud at every t."
        ]
    if flow.solver == flows.MEAN_FLOW:
        jumps = f"{flow.steps} jump{'s' if flow.steps != 1 else ''}"
        return [
            "A <b>mean-flow</b> network moves them by z_t = z_r + (t − r)·u(z_r, r, t): "
            f"{jumps} on a uniform grid, one NFE each (frames in between lie on the straight jump), on "
            "the path it was trained on. Its arrows are u(z, t, t), the instantaneous velocity."
        ]
    return []


def schedule_sketch(schedule: str) -> None:
    """alpha_t and sigma_t of the view's schedule, under its picker (an inline SVG: no chart to load)."""
    ts = torch.linspace(0.0, 1.0, 81, dtype=torch.float64)
    value = fmcore.get_schedule(schedule)(ts)
    st.markdown(
        figures.schedule_svg(ts.numpy(), value.alpha.numpy(), value.sigma.numpy()), unsafe_allow_html=True
    )
