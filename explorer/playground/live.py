"""The live part of training: a fragment that trains a slice, then redraws only itself."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
import torch

import fmcore
from explorer import figures, training
from explorer.core import flows
from explorer.core.data import Dataset
from explorer.core.fields import arrow_grid
from explorer.core.state import ViewState
from explorer.core.text import plain

from . import cache, room
from .keys import LIVE_FIGURES_KEY, LIVE_KEY
from .model import Model

__all__ = ["LIVE_EVERY_S", "SNAPSHOT_T", "live_part"]

LIVE_EVERY_S = training.REDRAW_INTERVALS_S[0]
TICK_BUDGET_S = 0.2
SNAPSHOT_T = 0.5


def _snapshot(runner, dataset: Dataset, state: ViewState):
    """(figure, (n, 2) samples) of the network's current samples and its field at t = 0.5, or
    (None, None) when its outputs overflow (a few ms: cheap solver, few particles).

    A flow network is sampled by midpoint, 8 steps; a mean flow by the main figure's own sampler
    (``flows.main_sampler``: its jumps z_t = z_r + (t - r) u(z_r, r, t), on its path's times), never by
    integrating u(z, t, t) as a velocity. These samples are also what a class's tile shows.
    """
    trained = runner.schedule or "linear"
    source = flows.learned_source(runner.velocity, ("snapshot",), trained, trained, runner.average_velocity)
    solver, steps, grid, _ = (
        flows.main_sampler(state, source) if source.average is not None else ("midpoint", 8, "uniform", 0.0)
    )
    z0 = cache.noise_particles(state.snapshot_n, state.seed)
    try:
        with torch.no_grad():
            samples = flows.integrate_source(source, z0, solver, steps, grid).zs[-1].numpy()
            field = source.velocity(torch.from_numpy(arrow_grid()), torch.tensor(SNAPSHOT_T)).numpy()
    except fmcore.SolverError:  # a network whose outputs overflow: the main figure says so
        return None, None
    figure = figures.snapshot_figure(
        samples, dataset.shown, field, height=250, data_labels=dataset.shown_labels
    )
    return figure, samples


def live_part(runner, dataset: Dataset, state: ViewState) -> None:
    """Stats, loss curve and the network's samples, in a fragment that trains a slice per run."""
    every = training.redraw_interval(training.active_sessions()) if runner.running else None

    @st.fragment(run_every=every)
    def live():
        was_running = runner.running
        if was_running:
            runner.tick(budget_s=TICK_BUDGET_S)
        # before drawing: no half-drawn redraw
        loss, snapshot, samples = _live_figures(runner, dataset, state)
        room.report(runner, dataset, state, samples)
        # One element per place, in every run: a chart written over an empty slot would vanish and
        # come back at every redraw, and one that moved up or down a place would be drawn anew.
        st.markdown(_stats_line(runner, every), unsafe_allow_html=True)
        if runner.message and runner.status != "ok":
            st.warning(plain(runner.message), icon=":material/warning:")
        elif runner.message:
            st.caption(plain(runner.message))
        else:
            st.empty()
        for figure, key in ((loss, "fme_loss"), (snapshot, "fme_snapshot")):
            if figure is not None:
                st.plotly_chart(figure, key=key, config=dict(displayModeBar=False))
            else:
                st.empty()
        if snapshot is not None:
            st.caption(
                f"The network now: its samples (violet, {state.snapshot_n} particles, {_snapshot_sampler(runner, state)}) "
                f"and its field at t = {SNAPSHOT_T}. Trained on the {runner.schedule} path."
            )
        else:
            st.caption(
                "Press **Train**: the loss falls towards its floor (dashed) while the network's samples take shape."
            )
        if was_running and not runner.running:
            st.rerun()  # it stopped by itself (diverged or failed): every control back at once
        if runner.running and _retime(every, training.active_sessions()):
            st.rerun()  # the class grew or shrank: a new redraw period takes a full run to set

    with st.container(key=LIVE_KEY):
        live()


def _snapshot_sampler(runner, state: ViewState) -> str:
    """How the snapshot sampled: 'midpoint 8 steps = 16 NFE', or a mean flow's 'mean flow, 2 steps = 2 NFE'."""
    if runner.average_velocity is None:
        return "midpoint 8 steps = 16 NFE"
    return f"mean flow, {state.nfe} step{'s' if state.nfe != 1 else ''} = {state.nfe} NFE"


def _stats_line(runner, every: float | None) -> str:
    """step · steps/s · device · loss · state, and the redraw period when a busy server lengthened it."""
    stats = runner.stats
    speed = (
        f"{stats.steps_per_s:,.0f} steps/s" if stats is not None and stats.steps_per_s > 0 else "– steps/s"
    )
    state_word = "training" if runner.running else ("paused" if runner.step else "not started")
    parts = [
        f"<b>step {runner.step:,}</b>",
        speed,
        f"<span class='label'>device</span> <b>{runner.device}</b>",
    ]
    if stats is not None and np.isfinite(stats.loss):
        parts.append(f"loss <b>{stats.loss:.4f}</b>")
    parts.append(f"<span class='label'>{state_word}</span>")
    if every is not None and every > LIVE_EVERY_S:
        parts.append(f"<span class='label'>redrawn every {every:g} s: a busy server</span>")
    return f"<div class='fm-stat' data-testid='fm-train-stats'>{' · '.join(parts)}</div>"


def _retime(every: float | None, active: int) -> bool:
    """Whether the live part's redraw period is off enough to be worth a full run to change.

    Longer at once when the class grows; shorter only once it is well below the threshold (x1.5
    margin), so that sessions near a threshold do not flip back and forth.
    """
    if every is None:
        return False
    return (
        training.redraw_interval(active) > every or training.redraw_interval(math.ceil(active * 1.5)) < every
    )


def _live_figures(runner, dataset: Dataset, state: ViewState):
    """(loss figure or None, snapshot figure or None, its (n, 2) samples or None), rebuilt only
    when the network changed.

    A rerun of the live part with nothing new (no slice finished) then sends the same figures,
    which Streamlit does not re-send and the browser does not redraw.
    """
    steps, losses = runner.history
    floor = runner.loss_floor
    key = (
        Model.get().generation,
        runner.step,
        len(steps),
        floor,
        dataset.key,
        state.seed,
        state.snapshot_n,
        state.nfe,
    )
    cached = st.session_state.get(LIVE_FIGURES_KEY)
    if cached is not None and cached[0] == key:
        return cached[1]
    loss = figures.loss_figure(steps, losses, floor, height=170) if len(steps) else None
    snapshot, samples = _snapshot(runner, dataset, state) if runner.velocity is not None else (None, None)
    st.session_state[LIVE_FIGURES_KEY] = (key, (loss, snapshot, samples))
    return loss, snapshot, samples
