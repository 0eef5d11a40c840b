"""The Playground page: composed from the view state, the controls and one module per panel.

Order of work in one run (the browser draws elements in the order they arrive, and the animated
figure is what a new visitor waits for):
1. the view state: from the URL on a new link, else from the session; widgets seeded from it
   (``url``), then read back from their values in the session (``state.from_widgets``): a
   browser's change is in the session before the run starts, so no widget has to be drawn first;
2. the main animated figure (``main_figure``: cached numbers, a deterministic figure: an
   unchanged figure is not re-sent and keeps its animation position), then its caption. A
   session's first run ends with the figure, of every 5th frame, and the toolbar's room (no
   widgets yet): the browser draws it on its own and then asks for the whole page
   (``compat.first_view``; not on a room's link);
3. the controls that sit above it (the toolbar, the class row: into a container made before the
   figure), following a particle, share and export, the sidebar, the training panel and its live
   fragment, the data panel.

In a class (``/?room=CODE``, ``room``): the teacher's pushed settings are taken before step 1's
widgets, the join form or badge sits under the header, and the room's start/pause is followed
before the training panel.

Inputs that change the data (preset, drawing, upload, paste) and the training buttons act in
widget callbacks, which run before the script: the figure of the same run already shows them.
"""

from __future__ import annotations

import streamlit as st

from explorer import compat, training
from explorer.core import flows
from explorer.core.state import ViewState, from_widgets
from explorer.core.text import plain
from explorer.figures import theme
from explorer.settings import configure_torch

from . import captions, controls, room, url
from .classes import checked_class, class_caption, class_controls
from .data_panel import DATA_TABS, MAX_UPLOAD_MB, data_panel, resolve_dataset
from .export_panel import export_panel
from .keys import CHART_KEY, NOTICES_KEY, TOOLBAR_KEY
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


_TOOLBAR_PX = {False: 32, True: 88}
"""The toolbar's height, measured in Chromium at 1280-1920 px: one row (field and layers), and two
for labelled data (classes and guidance); the first view keeps this much room, so the figure does
not move when the widgets arrive."""


def _notices_after_first_view(notices: list[str], first: bool) -> list[str]:
    """The link's notices, shown by the run after a session's first view: the first view keeps them
    (it saves the view, so the next run does not read the link again)."""
    if first:
        st.session_state[NOTICES_KEY] = notices
        return []
    stashed = st.session_state.pop(NOTICES_KEY, [])
    return notices or stashed


def _sidebar(state: ViewState, runner, flow: flows.Flow) -> None:
    """The sidebar's controls, drawn after the figure: the view was read from their values in the
    session already (``main``). ``flow``: the main panel's, whose NFE the caption says."""
    with st.sidebar:
        controls.path_controls()
        captions.schedule_sketch(state.schedule)
        controls.sampler_controls()
        st.markdown(_nfe_line(state, flow), unsafe_allow_html=True)
        if state.objective == "meanflow" or runner.average_velocity is not None:
            controls.mean_flow_controls()
        controls.particle_controls()
        controls.compare_controls()
        controls.training_controls()


def _nfe_line(state: ViewState, flow: flows.Flow) -> str:
    """The line under the step slider: the steps and NFE the sampler costs, or, when the figure
    took another count (adaptive, or a mean flow's jumps), what it actually took."""
    previewed = _ode_or_sde(state)
    if (flow.solver, flow.nfe) != (previewed, flows.steps_nfe(previewed, state.steps)):
        return controls.nfe_caption(flow.solver, flow.steps, flow.nfe)
    return controls.nfe_caption(previewed, state.steps)


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
    # Not on a room's link: a class opens it together on one server, where a first view is one more
    # run and one more figure per student, and the join form (with its widgets) is what they need first.
    first = compat.first_view(st.session_state) and not room.link_query()
    notices = _notices_after_first_view(notices, first)
    _start(state, notices, from_url)
    captions.header()
    room.badge()
    runner = training.session_runner(st.session_state)
    if not state.classroom:
        # The view from the controls' values in the session (seeded above, or set by the browser
        # before this run): the figure is drawn before its controls and reaches the browser first.
        state = from_widgets(state, st.session_state)
    figure_col, side_col = _columns(state)
    with figure_col:
        # the toolbar: above the figure, filled after it
        toolbar = None if state.classroom else st.container(key=TOOLBAR_KEY)
        dataset, state = resolve_dataset(state)
        if toolbar is not None:
            state = checked_class(state, dataset)
        height = 720 if state.classroom else (600 if state.compare else 630)
        stride = compat.FIRST_VIEW_STRIDE if first else 1
        measured, figure, kind, source = main_figure(state, dataset, runner, height, stride)
        if toolbar is not None:  # drawn after the figure, which reaches the browser first
            with toolbar:
                if first:  # its place only: the widgets' code would delay the figure's first paint
                    st.space(_TOOLBAR_PX[bool(dataset.present)])
                else:
                    controls.layer_controls()
                    class_controls(state, dataset)
        if first:  # a new visitor: figure and toolbar's room; the browser asks for the rest once drawn
            url.write_url(state, room.link_query())
            compat.rerun_when_drawn(CHART_KEY)
            return
        captions.caption(state, kind, measured, dataset)
        class_caption(state, dataset, runner)
        if toolbar is not None:
            controls.follow_controls()
            export_panel(state, measured, figure, dataset, source, runner)
    if not state.classroom:
        _sidebar(state, runner, measured[0][0])
    train_col, data_col = (side_col, side_col) if side_col is not None else st.columns(2, gap="large")
    room.follow_training(runner, dataset, state)
    with train_col:
        st.markdown("##### :material/model_training: Train a network")
        training_panel(runner, dataset, state)
    if not state.classroom:
        with data_col:
            st.markdown("##### :material/scatter_plot: Data")
            data_panel(state)
    url.write_url(state, room.link_query())
