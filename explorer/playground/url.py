"""The view in the link: read once per session (and on back/forward), written after every run."""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from explorer import compat
from explorer.core.state import CUSTOM, FOLLOW_DEFAULT, SETTINGS, ViewState, widget_key, widget_values

from . import canvas, controls
from .keys import QUERY_KEY, STATE_KEY

__all__ = ["LINK_ONLY", "current_query", "load_state", "seed", "write_url"]

LINK_ONLY = ("room",)
"""Query parameters that are not part of the view (the class to join: ``explorer.playground.room``)."""


def current_query() -> dict[str, str]:
    """The view's query parameters in the address bar (``LINK_ONLY`` ones left out)."""
    return {k: st.query_params.get(k) for k in st.query_params.keys() if k not in LINK_ONLY}  # noqa: SIM118


def load_state() -> tuple[ViewState, list[str], bool]:
    """The view to start this run from, notices about the link, and whether it came from the URL.

    The URL is read when a session starts (a link was opened) and when the browser's back or
    forward button changed it. Otherwise the session's own view wins: a rerun request carries the
    URL the page had when it was sent, which on a busy server can predate the last change, and
    taking it for a new link would put the controls back (found with 30 browsers at once).
    """
    query = current_query()
    saved = st.session_state.get(STATE_KEY)
    if saved is not None and (query == st.session_state.get(QUERY_KEY) or not compat.history_navigation()):
        return saved, [], False
    state, notices = ViewState.from_query(query)
    return state, notices, True


_LAZY = tuple(name for name, spec in SETTINGS.items() if spec.widget and spec.lazy)
_KEPT = (*_LAZY, "follow_on", "fx", "fy")
"""Widgets that keep their value when the controls are seeded again without a link: the lazy
settings' (drawn only in an open panel or tab, or, for the noise and NFE sliders, only for the SDE
and a mean flow: Streamlit forgets them while hidden) and the followed point's."""


def seed(state: ViewState, everything: bool) -> None:
    """Give the widgets the state's values: all of them after a link, else only missing ones."""
    values = widget_values(state)
    if everything:
        controls.seed_widgets(values)
        if state.data == CUSTOM and state.points is not None:
            canvas.Drawing(st.session_state).replace(state.points, state.point_labels)
        return
    if widget_key("schedule") not in st.session_state:  # e.g. back from another page: its widgets
        # were cleaned up, the view was not
        controls.seed_widgets({name: value for name, value in values.items() if name not in _KEPT})
    fx, fy = state.follow or FOLLOW_DEFAULT
    kept = {name: values[name] for name in _LAZY}
    kept.update(follow_on=state.follow is not None, fx=float(fx), fy=float(fy))
    controls.seed_widgets(kept, overwrite=False)


def write_url(state: ViewState, extra: Mapping[str, str] | None = None) -> None:
    """Put the view in the address bar (only what differs from the defaults) and in the session.

    ``extra``: ``LINK_ONLY`` parameters to keep in the address too (e.g. ``{"room": CODE}``).
    """
    query = state.to_query()
    shown = {**query, **(extra or {})}
    if shown != {k: st.query_params.get(k) for k in st.query_params.keys()}:  # noqa: SIM118
        st.query_params.from_dict(shown)
    st.session_state[QUERY_KEY] = query
    st.session_state[STATE_KEY] = state
