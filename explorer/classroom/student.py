"""What a student's Playground does in a room, without Streamlit: join, report, take pushes, answer polls.

    seat = student.join(store, "abc-23k", "Ada", client=session_id)
    store.report(seat.code, seat.student_id, student.report_from(samples, step, loss, floor, quality, chips))
    update = student.pending_push(store, seat.code, seen_version)   # on every redraw
    if update: apply(update.settings); st.toast(plain(update.notice)); seen_version = update.version

Nothing is kept per student between calls (no thread, no connection): a student who leaves costs
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from explorer.classroom.push import notice
from explorer.rooms import Limits, PushedSettings, RoomStore, StudentReport


@dataclass(frozen=True)
class Membership:
    """A student's place in a room: the code as stored and their id (kept in their session)."""

    code: str
    student_id: str


@dataclass(frozen=True)
class Update:
    """Settings the teacher pushed that this student has not applied yet, and the notice to show."""

    settings: PushedSettings
    notice: str  # "Your teacher changed solver heun." (plain text; show with explorer.core.text.plain)

    @property
    def version(self) -> int:
        return self.settings.version


def join(store: RoomStore, code: str, name: str | None = None, *, client: str = "") -> Membership:
    """Join room ``code`` (any case, dashes allowed) as ``name`` (None or blank: a pseudonym).

    Raises:
        UnknownRoom, RoomFull, TooManyAttempts, ValueError: see ``explorer.rooms.RoomStore``.
    """
    student_id = store.join(code, name, client=client)
    return Membership(store.room(code).code, student_id)


def report_from(
    samples: np.ndarray,
    step: int,
    loss: float,
    loss_floor: float,
    quality: float,
    chips: Mapping[str, object],
    limits: Limits = Limits(),
) -> StudentReport:
    """A report within the store's caps from what the Playground has in hand.

    Args:
        samples: (n, 2) current samples of the model; n may be large: an evenly spaced subset of
            at most ``limits.points_per_report`` is kept, and non-finite rows are dropped.
        step: training steps so far.  loss, loss_floor: the latest loss and what it can reach.
        quality: energy distance over its noise floor.  chips: settings to show (values as text;
            only the first ``limits.chips_per_report``, each cut to ``limits.text_chars``).
    """
    points = np.asarray(samples, dtype=np.float32).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) > limits.points_per_report:
        keep = np.linspace(0, len(points) - 1, limits.points_per_report).round().astype(int)
        points = points[keep]
    n = limits.text_chars
    shown = {str(k)[:n]: str(v)[:n] for k, v in list(chips.items())[: limits.chips_per_report]}
    return StudentReport(
        step=int(step),
        loss=float(loss),
        loss_floor=float(loss_floor),
        quality=float(quality),
        chips=shown,
        points=points,
    )


def pending_push(store: RoomStore, code: str, seen_version: int) -> Update | None:
    """The room's latest push if it is newer than ``seen_version``, else None (one cheap read)."""
    latest = store.latest_push(code)
    if latest is None or latest.version <= seen_version:
        return None
    return Update(latest, notice(latest))


def poll_answer(store: RoomStore, seat: Membership, question: str, answer: str) -> bool:
    """Send this student's answer to ``question`` (before the reveal); False once it is revealed."""
    return store.answer_poll(seat.code, seat.student_id, question, answer)
