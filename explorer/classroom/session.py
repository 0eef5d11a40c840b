"""This browser session's place in a class: joined once, kept in ``st.session_state``, used by every page.

The Playground (``explorer.playground.room``) joins, reports and takes pushes through it; the
lessons' predict-then-see questions (``explorer.lessons.kit``) send answers and read reveals. A
session outside any room gets None from ``current()`` and every call here does nothing.

Store errors become one plain sentence (``refusal``): a bad code, a full room or too many wrong
codes never stop the page, and the Playground goes on without a room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import streamlit as st

from explorer.classroom import student
from explorer.classroom.dashboard import idle_text, store
from explorer.core.text import shorten
from explorer.rooms import RoomFull, StoreUnavailable, TooManyAttempts, UnknownRoom
from explorer.rooms.model import clean_name

__all__ = [
    "ROOM_ERRORS",
    "SESSION_KEY",
    "InRoom",
    "answer",
    "current",
    "join",
    "leave",
    "poll_id",
    "refusal",
    "revealed",
    "update",
]

SESSION_KEY = "fme_in_room"
"""``st.session_state`` key of this session's ``InRoom`` (absent: not in a room)."""
ROOM_ERRORS = (UnknownRoom, RoomFull, TooManyAttempts, StoreUnavailable, ValueError)
"""What the store raises at a student: each becomes one plain sentence (``refusal``), never a crash."""


@dataclass(frozen=True)
class InRoom:
    """A joined seat and what this session has already taken from the room.

    Attributes:
        seat: the room's code and this student's id.  name: the display name the store gave.
        seen_version: the last pushed settings' version applied (0: none yet, so a student who
            joins late still gets the teacher's latest push).  seen_training: the room's
            start/pause last followed.  reported_at: ``time.monotonic()`` of the last report.
    """

    seat: student.Membership
    name: str
    seen_version: int = 0
    seen_training: bool = False
    reported_at: float = float("-inf")

    @property
    def code(self) -> str:
        return self.seat.code


def current() -> InRoom | None:
    """This session's room, or None."""
    return st.session_state.get(SESSION_KEY)


def update(**changes) -> InRoom:
    """Keep ``changes`` (fields of ``InRoom``) for this session's room; it must be in one."""
    st.session_state[SESSION_KEY] = replace(st.session_state[SESSION_KEY], **changes)
    return st.session_state[SESSION_KEY]


def join(code: str, name: str | None) -> InRoom:
    """Join room ``code`` as ``name`` (blank: a pseudonym) and keep the seat in this session.

    The rate limit on wrong codes is keyed by the browser's address (the session's id where there
    is none), so guessing from many tabs does not help.

    Raises:
        UnknownRoom, RoomFull, TooManyAttempts, ValueError: see ``explorer.rooms.RoomStore``.
    """
    client = st.context.ip_address or _session_id()
    shown = clean_name(name, store().limits)  # the pseudonym is drawn here, so the badge can say it
    seat = student.join(store(), code, shown, client=client)
    st.session_state[SESSION_KEY] = InRoom(seat, shown)
    return st.session_state[SESSION_KEY]


def leave() -> None:
    """Forget the room in this session (the seat stays in the store until the room expires)."""
    st.session_state.pop(SESSION_KEY, None)


def refusal(error: Exception, code: str) -> str:
    """One plain sentence for a store error on joining or reporting (plain text: show with ``plain``)."""
    if isinstance(error, UnknownRoom):
        return (
            f"No class is open with the code {shorten(code, 24)}: check it with your teacher "
            f"(a class ends after {idle_text()} idle). The Playground works as usual meanwhile."
        )
    if isinstance(error, RoomFull):
        return f"This class cannot take you: {error}. The Playground works as usual."
    if isinstance(error, TooManyAttempts):
        return f"Not joined: {error}. The Playground works as usual meanwhile."
    if isinstance(error, StoreUnavailable):
        return (
            "The class's server cannot reach its store just now: your teacher may not see your run for "
            "a moment. The Playground works as usual, and the page tries again by itself."
        )
    return f"Not joined: {error}"


def poll_id(prompt: str) -> str:
    """A question's id in the room's polls: its prompt as plain words, within the store's 64 characters."""
    return shorten(re.sub(r"[*`$]", "", prompt), 60)


def answer(prompt: str, choice: str) -> bool:
    """Send this student's answer to the room's poll on ``prompt``; False outside a room or once revealed."""
    room = current()
    if room is None:
        return False
    try:
        return student.poll_answer(store(), room.seat, poll_id(prompt), choice)
    except ROOM_ERRORS:  # the room expired: answers stay the learner's own
        return False


def revealed(prompt: str) -> bool:
    """Whether the teacher revealed the question on ``prompt`` to the room (False outside a room)."""
    room = current()
    if room is None:
        return False
    try:
        return store().is_revealed(room.code, poll_id(prompt))
    except ROOM_ERRORS:
        return False


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""
