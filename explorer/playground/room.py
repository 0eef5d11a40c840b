"""The Playground in a class: join from ``/?room=CODE``, the badge, reports, pushed settings, start/pause.

One run of the page, in a room:

1. ``take_push`` (before the widgets): settings the teacher pushed and this session has not
   applied go onto the widgets and the view; the notice "Your teacher changed …" follows.
2. ``badge``: the join form (a name, optional), or the badge that says which room and that the
   teacher sees this run; its fragment looks at the room every ``WATCH_EVERY_S`` and reruns the
   page when a push or a start/pause arrived.
3. ``follow_training``: the room's start/pause, applied once per change.
4. ``report`` (from the live fragment): what the fragment already has, at most every
   ``REPORT_EVERY_S``.

Outside a room each of these does nothing; store errors are one plain message and the
Playground goes on without the room.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import streamlit as st

from explorer.classroom import push, session, student
from explorer.classroom.dashboard import store
from explorer.core import quality
from explorer.core.data import Dataset
from explorer.core.state import ViewState
from explorer.core.text import plain
from explorer.rooms import Room, StoreUnavailable

from . import cache, controls, training_panel
from .keys import LAST_PRESET_KEY

__all__ = [
    "CHIPS",
    "REPORT_EVERY_S",
    "ROOM_PARAM",
    "WATCH_EVERY_S",
    "badge",
    "follow_training",
    "link_query",
    "report",
    "take_push",
]

ROOM_PARAM = "room"
"""The join link's query parameter: ``/?room=CODE``."""
REPORT_EVERY_S = 1.5
WATCH_EVERY_S = 2.0
CHIPS = ("data", "schedule", "solver", "steps", "grid", "target", "coupling")
"""The view's settings a tile shows as chips (the ones a teacher can push)."""
SEEN_KEY = "fme_room_seen"
"""The room's (push version, training) as this session's last full run read it."""
NOTICE_KEY = "fme_room_notice"
ERROR_KEY = "fme_room_error"


def link_query() -> dict[str, str]:
    """The room's part of the address: ``{"room": CODE}`` in a room or on a join link not yet used
    (a reload offers the join again); nothing otherwise."""
    room = session.current()
    code = room.code if room is not None else st.query_params.get(ROOM_PARAM)
    return {ROOM_PARAM: code} if code else {}


def take_push(state: ViewState) -> ViewState:
    """``state`` with the teacher's latest push applied, if this session has not applied it yet.

    Call before any widget is drawn: the pushed values become the widgets' values, so a student
    may change them again afterwards. One cheap read of the store per run, which also gives the
    room's start/pause to ``follow_training``.
    """
    room = session.current()
    if room is None:
        return state
    try:
        seen = store().room(room.code)
    except session.ROOM_ERRORS as error:
        _lost(error, room.code)
        return state
    st.session_state[SEEN_KEY] = _signature(seen)
    if seen.push is None or seen.push.version <= room.seen_version:
        return state
    changed = seen.push.changed()
    controls.seed_widgets(changed)
    if "data" in changed:
        st.session_state[LAST_PRESET_KEY] = changed["data"]
    session.update(seen_version=seen.push.version)
    st.session_state[NOTICE_KEY] = push.notice(seen.push)
    return replace(state, **changed, points=None if "data" in changed else state.points)


def _signature(room: Room) -> tuple[int, bool]:
    """What of a room a student's page follows: the push's version and the start/pause."""
    return (room.push.version if room.push is not None else 0), room.training


def badge() -> None:
    """The join form on a join link, else the badge of the room this session is in (nothing outside one)."""
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.warning(plain(error), icon=":material/school:")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.toast(plain(notice), icon=":material/school:")
    room = session.current()
    code = st.query_params.get(ROOM_PARAM)
    if room is None and code:
        _join_form(code)
    elif room is not None:
        _badge(room)


def _join_form(code: str) -> None:
    with st.container(border=True, key="fme_room_join"):
        with st.form("fme_room_join_form", border=False):
            st.markdown(
                f":material/school: **Join the class {plain(code)}**: your teacher will see your run."
            )
            name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
            name = name_col.text_input(
                "Your name (optional)",
                max_chars=store().limits.name_chars,
                placeholder="Leave blank for a pseudonym",
                key="fme_room_name",
            )
            joined = button_col.form_submit_button("Join", type="primary", icon=":material/login:")
        if joined:
            try:
                session.join(code, name)
            except session.ROOM_ERRORS as error:
                st.error(plain(session.refusal(error, code)), icon=":material/school:")
                return
            st.rerun()


def _badge(room: session.InRoom) -> None:
    @st.fragment(run_every=WATCH_EVERY_S)
    def watch():
        current = session.current()
        if current is None:
            return
        st.markdown(
            f":violet-badge[:material/school: In class {plain(current.code)}] as **{plain(current.name)}**: "
            "your teacher sees this run."
        )
        try:
            seen = store().room(current.code)
        except session.ROOM_ERRORS as error:
            if _lost(error, current.code):
                st.rerun()
            st.caption(plain(session.refusal(error, current.code)))  # until the store answers again
            return
        if _signature(seen) != st.session_state.get(SEEN_KEY):
            st.rerun()  # a push or a start/pause since the page's last full run: that run takes it

    with st.container(key="fme_room_badge"):
        watch()


def follow_training(runner, dataset: Dataset, state: ViewState) -> None:
    """Start or pause this run when the teacher did so for the room (once per change)."""
    room = session.current()
    if room is None or SEEN_KEY not in st.session_state:
        return
    training = st.session_state[SEEN_KEY][1]  # as ``take_push`` read it at the start of this run
    if training == room.seen_training:
        return
    session.update(seen_training=training)
    if training and not runner.running:
        training_panel.start_training(runner, dataset, state)
        st.toast("Your teacher started training.", icon=":material/play_arrow:")
    elif not training and runner.running:
        runner.pause()
        st.toast("Your teacher paused training.", icon=":material/pause:")


def report(runner, dataset: Dataset, state: ViewState, samples: np.ndarray | None) -> None:
    """Send the run's samples (n, 2), step, loss, floor, quality and chips, at most every REPORT_EVERY_S.

    ``samples`` are the live snapshot's (None before a network): nothing is sampled for the room.
    """
    room = session.current()
    now = time.monotonic()
    if room is None or now - room.reported_at < REPORT_EVERY_S:
        return
    session.update(reported_at=now)
    points = np.zeros((0, 2), np.float32) if samples is None else samples
    stats = runner.stats
    loss = stats.loss if stats is not None else math.nan
    floor = runner.loss_floor
    try:
        store().report(
            room.code,
            room.seat.student_id,
            student.report_from(
                points,
                runner.step,
                loss,
                math.nan if floor is None else floor,
                _quality(points, dataset),
                {name: getattr(state, name) for name in CHIPS},
                store().limits,
            ),
        )
    except session.ROOM_ERRORS as error:
        _lost(error, room.code)


def _quality(samples: np.ndarray, dataset: Dataset) -> float:
    """Energy distance to the data over its noise floor (1: as close as two data samples); NaN if unmeasurable."""
    if len(samples) < 2:
        return math.nan
    energy = cache.energy_distance(samples, quality.reference_for(dataset, len(samples)))
    floor = cache.noise_floor(dataset, len(samples))
    if energy is None or not floor:
        return math.nan
    return max(energy, 0.0) / floor


def _lost(error: Exception, code: str) -> bool:
    """The room is gone (expired) or refused this seat: leave it, say so once, keep the Playground.
    A store that did not answer (``StoreUnavailable``) is no verdict on the room: the seat stays and
    the next run tries again. Returns whether the seat was left."""
    st.session_state[ERROR_KEY] = session.refusal(error, code)
    if isinstance(error, StoreUnavailable):
        return False
    session.leave()
    return True
