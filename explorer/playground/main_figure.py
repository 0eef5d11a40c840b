"""The main animated figure: the numbers (cached), one ``Panel`` per sampler, a click to follow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import streamlit as st

from explorer import figures
from explorer.core import flows, quality
from explorer.core.data import Dataset
from explorer.core.state import ViewState, widget_key
from explorer.core.text import plain

from . import cache
from .classes import picked_class, picked_data
from .keys import CHART_KEY, LAST_FIGURE_KEY, PICK_KEY
from .model import Model

__all__ = ["SOLVER_FAILURES", "main_figure"]

SOLVER_FAILURES = (RuntimeError, FloatingPointError, ZeroDivisionError, OverflowError, ValueError)
"""What integrating a field can raise (an adaptive step that underflows, a model that overflows)."""


def _model_source(runner, state: ViewState) -> flows.Source | None:
    """The network's field; with a class picked and a network conditioned on it, its guided field."""
    velocity = runner.velocity
    if velocity is None:
        return None
    model = Model.get()
    key = (model.token, model.generation, runner.step)
    if 0 <= state.class_label < runner.n_classes:
        velocity = runner.guided_velocity(state.class_label, state.guidance)
        key += ("class", state.class_label, "w", state.guidance)
    average = runner.average_velocity  # None for a flow model
    return flows.learned_source(velocity, key, runner.schedule or "linear", state.schedule, average)


def _on_pick() -> None:
    """A click on a particle follows it: its start z_0 becomes the followed point."""
    event = st.session_state.get(CHART_KEY)
    selection = getattr(event, "selection", None) or (
        event.get("selection") if hasattr(event, "get") else None
    )
    points = (selection or {}).get("points") or []
    pick = st.session_state.get(PICK_KEY) or {}
    for point in points:
        curve, index = point.get("curve_number"), point.get("point_index")
        if curve in pick.get("curves", ()) and index is not None and index < len(pick["starts"]):
            x, y = pick["starts"][index]
            st.session_state[widget_key("follow_on")] = True
            st.session_state[widget_key("fx")], st.session_state[widget_key("fy")] = (
                round(float(x), 3),
                round(float(y), 3),
            )
            return


def _panel(
    source: flows.Source,
    exact: flows.Source,
    dataset: Dataset,
    state: ViewState,
    solver: str,
    steps: int,
    grid: str,
    noise: float,
    label: str,
    kind: str,
    density: np.ndarray | None,
) -> tuple[figures.Panel, flows.Flow, float]:
    flow = cache.flow(source, state.n, state.seed, solver, steps, grid, noise)
    field = cache.field_frames(source)
    if kind == "difference":
        field = field - cache.field_frames(exact)
    energy = cache.energy_distance(flow.samples, quality.reference_for(picked_data(dataset, state), state.n))
    panel = figures.Panel(
        flow=flow,
        data=dataset.shown,
        data_labels=dataset.shown_labels,
        picked=picked_class(dataset, state),
        title=figures.panel_title(flow, label, energy, two_lines=state.compare),
        field=field,
        field_kind=kind,
        density=density,
        # The grid is bent by the noiseless map (an SDE's noise would tear it); a followed particle
        # takes the sampler's own path.
        warp=cache.warp_frames(source, solver, steps, grid) if state.warp else None,
        show_paths=state.paths,
        single=cache.single_path(source, state.follow, solver, steps, grid, noise) if state.follow else None,
    )
    return panel, flow, energy


def main_figure(state: ViewState, dataset: Dataset, runner, height: int, stride: int = 1):
    """Compute and draw the animation; ``stride``: draw every ``stride``-th frame only (a session's
    first view, ``compat.first_view``).

    Returns:
        ``(measured, figure, kind, source)``: [(Flow, energy distance)] per panel, the figure (for
        export), the field actually shown and its source.
    """
    exact = flows.exact_source(picked_data(dataset, state), state.schedule)
    learned = _model_source(runner, state)
    kind = state.field
    safe = replace(
        state,
        field="exact",
        sampler="ode",
        solver="rk4",
        steps=20,
        grid="uniform",
        compare=False,
        density=False,
    )

    def fallback():
        if state == safe:
            raise RuntimeError("the exact field's own figure failed")
        return main_figure(safe, dataset, runner, height, stride)

    if kind != "exact" and learned is None:
        st.info(
            "No trained network yet: showing the **exact** field. Press **Train** on the right, "
            "then the learned field appears here.",
            icon=":material/info:",
        )
        kind = "exact"
    if kind == "difference" and learned.average is not None:
        st.info(
            "A mean-flow network learns **average** velocities u(z, r, t) and jumps between times, so its "
            "error against the exact field has no frame-by-frame picture: showing the **learned** field.",
            icon=":material/info:",
        )
        kind = "learned"
    source = exact if kind == "exact" else learned
    model_density = state.density and state.model_density and kind != "exact"
    density = None
    if state.density:
        try:
            density = (
                cache.model_density_frames(source)
                if model_density
                else cache.density_frames(dataset, state.schedule)
            )
        except SOLVER_FAILURES as error:
            return _solver_failed("The density's log-likelihood solve", state, error, fallback)
    settings = [(*flows.main_sampler(state, source), "A" if state.compare else "")]
    if state.compare:
        settings.append((state.solver_b, state.steps_b, state.grid_b, 0.0, "B"))
    panels, measured = [], []
    for solver, steps, grid, noise, label in settings:
        try:
            panel, flow, energy = _panel(
                source, exact, dataset, state, solver, steps, grid, noise, label, kind, density
            )
        except SOLVER_FAILURES as error:
            return _solver_failed(
                f"{flows.sampler_label(solver, noise)} with {steps} steps", state, error, fallback
            )
        panels.append(panel)
        measured.append((flow, energy))
        if not np.isfinite(flow.samples).all():
            st.warning(
                f"{flows.sampler_label(solver, noise)} with {steps} steps on the {source.schedule} path "
                "produced non-finite values "
                "(a step divided by zero or blew up); those particles are not drawn. Try another solver, "
                "more steps or another time grid.",
                icon=":material/warning:",
            )
    figure_key = (
        kind,
        source.key,
        exact.key if kind == "difference" else None,
        dataset.key,
        state.n,
        state.seed,
        tuple(settings),
        state.density,
        model_density,
        state.warp,
        state.paths,
        state.follow,
        state.class_label,
    )
    figure = _cached_figure(figure_key, panels, height)
    starts = cache.noise_particles(state.n, state.seed)
    st.session_state[PICK_KEY] = {"curves": _particle_curves(figure), "starts": starts}
    _show_figure(figure if stride == 1 else _cached_figure(figure_key, panels, height, stride))
    st.session_state[LAST_FIGURE_KEY] = (measured, figure, kind, source)
    return measured, figure, kind, source


def _show_figure(figure) -> None:
    st.plotly_chart(
        figure,
        key=CHART_KEY,
        on_select=_on_pick,
        selection_mode="points",
        config=dict(displayModeBar=False, scrollZoom=False),  # drag pans, double-click resets
    )


def _solver_failed(what: str, state: ViewState, error: Exception, fallback: Callable[[], tuple]):
    """A solve that raised (an overflowing model, an adaptive step that underflowed): say so in
    plain words and keep showing the last figure (the exact field's, when there is none yet)."""
    st.warning(
        plain(
            f"{what} could not integrate this field on the {state.schedule} path ({error}). "
            "The figure shows the last one that worked: try another solver, other steps, or another model."
        ),
        icon=":material/warning:",
    )
    last = st.session_state.get(LAST_FIGURE_KEY)
    if last is None:
        return fallback()
    _show_figure(last[1])
    return last


@st.cache_resource(max_entries=16, show_spinner=False)
def _cached_figure(key: tuple, _panels: list, height: int, stride: int = 1):
    """Build each figure once: ``key`` names everything the panels were computed from.

    Shared across sessions and never mutated after it is built.
    """
    return figures.flow_figure(_panels, height=height, stride=stride)


def _particle_curves(figure) -> tuple[int, ...]:
    return tuple(i for i, trace in enumerate(figure.data) if trace.name == "particles z_t")
