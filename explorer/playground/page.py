"""The Playground page: composed from the view state, the controls and one module per panel.

Order of work in one run (what the browser sees first comes first):
1. the view state: from the URL on a new link, else from the session; widgets seeded from it
   (``url``);
2. the controls (sidebar, toolbar), read back into a new ``ViewState`` (``state.from_widgets``);
3. the main animated figure (``main_figure``: cached numbers, a deterministic figure: an
   unchanged figure is not re-sent and keeps its animation position), its caption;
4. following a particle, share and export, the training panel and its live fragment, the data
   panel; the schedule sketch last.

In a class (``/?room=CODE``, ``room``): the teacher's pushed settings are taken before step 1's
widgets, the join form or badge sits under the header, and the room's start/pause is followed
before the training panel.

Inputs that change the data (preset, drawing, upload, paste) and the training buttons act in
widget callbacks, which run before the script: the figure of the same run already shows them.
"""

from __future__ import annotations

import streamlit as st

from explorer import training
from explorer.core import flows
from explorer.core.state import ViewState, from_widgets
from explorer.core.text import plain
from explorer.figures import theme
from explorer.settings import configure_torch

from . import captions, controls, room, url
from .classes import class_caption, class_controls
from .data_panel import DATA_TABS, MAX_UPLOAD_MB, data_panel, resolve_dataset
from .export_panel import export_panel
from .main_figure import main_figure
from .training_panel import training_panel

__all__ = ["DATA_TABS", "MAX_UPLOAD_MB", "main"]


def _start(state: ViewState, notices: list[str], from_url: bool) -> None:
    """Page config and theme, the widgets seeded from the state, and what the link got wrong."""
    st.set_page_config(
        page_title="Flow Matching Explorer",
        page_icon=":material/waves:",
        layout="wide",
        initial_sidebar_state="collapsed" if state.classroom else "expanded",
    )
    st.html(theme.CSS + (theme.CLASSROOM_CSS if state.classroom else ""))
    url.seed(state, from_url)
    for notice in notices[:3]:
        st.toast(plain(notice), icon=":material/link_off:")
    if notices:
        st.warning(
            plain("Some link parameters were ignored: " + " ".join(notices)), icon=":material/link_off:"
        )


def _sidebar(state: ViewState, runner):
    """The sidebar's controls; returns the view read from them and the schedule and NFE slots."""
    with st.sidebar:
        controls.path_controls()
        schedule_slot = st.empty()
        controls.sampler_controls()
        nfe_slot = st.empty()
        if (
            from_widgets(state, st.session_state).objective == "meanflow"
            or runner.average_velocity is not None
        ):
            controls.mean_flow_controls()
        controls.particle_controls()
        controls.compare_controls()
        controls.training_controls()
    state = from_widgets(state, st.session_state)
    nfe_slot.markdown(controls.nfe_caption(_ode_or_sde(state), state.steps), unsafe_allow_html=True)
    return state, schedule_slot, nfe_slot


def _ode_or_sde(state: ViewState) -> str:
    """The main panel's solver, before the figure says whether a mean flow took its place."""
    return flows.EULER_MARUYAMA if state.sampler == "sde" else state.solver


def _columns(state: ViewState):
    """(figure column, side column or None): the side holds training (and data) beside the figure."""
    if state.classroom:  # the figure, large, and only the training buttons beside it
        return st.columns([0.68, 0.32], gap="medium")
    if state.compare:  # two panels take the whole width
        return st.container(), None
    return st.columns([0.62, 0.38], gap="medium")


def main() -> None:
    """The whole Playground page."""
    configure_torch()
    state, notices, from_url = url.load_state()
    state = room.take_push(state)  # before the widgets: the teacher's settings become their values
    _start(state, notices, from_url)
    captions.header()
    room.badge()
    schedule_slot = nfe_slot = None
    runner = training.session_runner(st.session_state)
    if not state.classroom:
        state, schedule_slot, nfe_slot = _sidebar(state, runner)
    figure_col, side_col = _columns(state)
    with figure_col:
        if not state.classroom:
            controls.layer_controls()
            state = from_widgets(state, st.session_state)
        dataset, state = resolve_dataset(state)
        if not state.classroom:
            state = class_controls(state, dataset)
        height = 720 if state.classroom else (600 if state.compare else 630)
        measured, figure, kind, source = main_figure(state, dataset, runner, height)
        captions.caption(state, kind, measured, dataset)
        class_caption(state, dataset, runner)
        if not state.classroom:
            controls.follow_controls()
            export_panel(state, measured, figure, dataset, source, runner)
    train_col, data_col = (side_col, side_col) if side_col is not None else st.columns(2, gap="large")
    room.follow_training(runner, dataset, state)
    with train_col:
        st.markdown("##### :material/model_training: Train a network")
        training_panel(runner, dataset, state)
    if not state.classroom:
        with data_col:
            st.markdown("##### :material/scatter_plot: Data")
            data_panel(state)
    if schedule_slot is not None:
        captions.schedule_sketch(schedule_slot, state.schedule)
        flow, previewed = measured[0][0], _ode_or_sde(state)
        # adaptive, or a mean flow's jumps: say what it actually took
        if (flow.solver, flow.nfe) != (previewed, flows.steps_nfe(previewed, state.steps)):
            nfe_slot.markdown(controls.nfe_caption(flow.solver, flow.steps, flow.nfe), unsafe_allow_html=True)
    url.write_url(state, room.link_query())
