"""The classroom store: one interface (``RoomStore``), two implementations, one factory.

``open_store(url)`` picks the implementation from ``FME_ROOMS_URL`` (``explorer.settings``):

- unset, or ``sqlite:///path/rooms.db``: SQLite (``sqlite.py``), a file under a data folder; works
  for one server process or several on one machine.
- ``redis://host:port/db``: Redis (``redis_store.py``), for replicas on several machines.

Who may call what: the join code admits students (``join``, ``report``, ``answer_poll`` and the
public ``room``/``latest_push``/``is_revealed``); everything else needs the teacher token and raises
``PermissionError`` without it. The token is random (256 bits), handed out once by
``create_room`` and kept only as its sha256.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import io
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from explorer.rooms.model import Limits, Poll, PushedSettings, Room, Seat, StoreUnavailable, StudentReport

Clock = Callable[[], float]


def unavailable_as(errors: tuple[type[Exception], ...], what: str):
    """A class decorator: each public method of a store raises ``StoreUnavailable`` (naming ``what``)
    where its backend raised one of ``errors``, so callers catch one error for any backend."""

    def wrap(method):
        @functools.wraps(method)
        def reached(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except errors as error:
                raise StoreUnavailable(f"the classroom store ({what}) did not answer: {error}") from error

        return reached

    def decorate(cls):
        for name, method in list(vars(cls).items()):
            if callable(method) and not name.startswith("_"):
                setattr(cls, name, wrap(method))
        return cls

    return decorate


DEFAULT_DB = "rooms.db"


class RoomStore(Protocol):
    """Rooms, their students and what a teacher does with them. Codes are case- and dash-blind.

    Errors: ``UnknownRoom`` (no such live room or student), ``PermissionError`` (wrong teacher
    token), ``RoomFull`` (students per room, rooms per server), ``TooManyAttempts`` (join codes
    guessed too often), ``ValueError`` (a name or report over the limits), ``StoreUnavailable``
    (the backend did not answer: ``unavailable_as``).
    """

    limits: Limits

    def create_room(self) -> tuple[str, str]:
        """A new room: ``(join_code, teacher_token)``. The token is shown once and never stored."""

    def room(self, code: str) -> Room:
        """The public state of a live room (pushed settings, training, revealed polls)."""

    def join(self, code: str, display_name: str | None = None, *, client: str = "") -> str:
        """A new student id. ``client`` (an IP or session id) is the key of the rate limit on
        wrong codes: pass one, or every caller shares one limit. A blank or missing name gets a
        pseudonym such as "Curious Otter 17"."""

    def report(self, code: str, student_id: str, report: StudentReport) -> None:
        """Replace a student's latest report (and mark them seen now)."""

    def check_token(self, code: str, token: str) -> None:
        """Nothing if ``token`` opens the room's dashboard, else PermissionError."""

    def students(self, code: str, token: str) -> list[Seat]:
        """Every student with their latest report and poll answers, in joining order."""

    def push_settings(self, code: str, token: str, settings: PushedSettings) -> PushedSettings:
        """Store ``settings`` as the room's latest push; returns it with its new version (1, 2, ...)."""

    def latest_push(self, code: str) -> PushedSettings | None:
        """The latest push, or None. Cheap: a student calls it on every redraw and applies a
        version it has not applied yet."""

    def set_training(self, code: str, token: str, running: bool) -> None:
        """Start or pause training for the whole room (``room(code).training``)."""

    def answer_poll(self, code: str, student_id: str, question: str, answer: str) -> bool:
        """Record (or change) a student's answer; False, and nothing stored, once revealed."""

    def poll_counts(self, code: str, token: str, question: str) -> Poll:
        """How many students gave each answer to ``question``."""

    def reveal(self, code: str, token: str, question: str) -> None:
        """Reveal ``question`` to everyone in the room; answers are closed from then on."""

    def is_revealed(self, code: str, question: str) -> bool: ...

    def export_csv(self, code: str, token: str) -> bytes:
        """The room's results as UTF-8 CSV (see ``seats_csv``)."""

    def expire(self, now: float | None = None) -> int:
        """Delete rooms idle longer than ``limits.idle_seconds``; returns how many went."""

    def close(self) -> None: ...


def open_store(
    url: str | None,
    *,
    data_dir: str | Path = "data",
    limits: Limits = Limits(),
    clock: Clock = time.time,
) -> RoomStore:
    """The store a URL names: None -> SQLite at ``data_dir/rooms.db``; ``sqlite:///path``
    (``sqlite:////abs/path`` for an absolute one); ``redis://host:port/db``."""
    if url is None:
        from explorer.rooms.sqlite import SQLiteStore

        return SQLiteStore(Path(data_dir) / DEFAULT_DB, limits=limits, clock=clock)
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from explorer.rooms.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path or path == url:
            raise ValueError(f"a SQLite rooms URL looks like sqlite:///data/rooms.db; got {url!r}")
        return SQLiteStore(Path(path), limits=limits, clock=clock)
    if scheme in ("redis", "rediss", "unix"):
        from explorer.rooms.redis_store import RedisStore

        return RedisStore.from_url(url, limits=limits, clock=clock)
    raise ValueError(f"FME_ROOMS_URL must start with sqlite:/// or redis://; got {url!r}")


def new_token() -> tuple[str, str]:
    """A teacher token (256 random bits, URL-safe) and the hash a store keeps instead of it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(str(token).encode()).hexdigest()


def require_token(token: str, stored_hash: str) -> None:
    """PermissionError unless ``token`` hashes to ``stored_hash`` (constant-time comparison)."""
    if not hmac.compare_digest(token_hash(token), stored_hash):
        raise PermissionError(
            "this teacher link is not valid for this room: open the link you got when you started it"
        )


def new_student_id() -> str:
    return secrets.token_hex(16)


# A cell starting with one of these is a formula to a spreadsheet (OWASP's list of CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula, prefixed with a quote; numbers as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def seats_csv(seats: list[Seat]) -> bytes:
    """One row per student: name, joined/last seen (unix s), step, loss, loss floor, quality, one
    ``setting:<chip>`` column per chip name and one ``poll:<question>`` column per question."""
    chips = sorted({k for s in seats if s.report for k in s.report.chips})
    polls = sorted({q for s in seats for q in s.answers})
    header = ["student", "joined", "last_seen", "step", "loss", "loss_floor", "quality"]
    out = io.StringIO()
    writer = csv.writer(out)
    header += [f"setting:{k}" for k in chips] + [f"poll:{q}" for q in polls]
    writer.writerow(header)  # every added column starts "setting:" or "poll:": no formula
    for seat in seats:
        r = seat.report
        numbers = [r.step, r.loss, r.loss_floor, r.quality] if r else ["", "", "", ""]
        settings = [r.chips.get(k, "") if r else "" for k in chips]
        answers = [seat.answers.get(q, "") for q in polls]
        row = [seat.student.name, seat.student.joined, seat.student.last_seen, *numbers, *settings, *answers]
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue().encode("utf-8")
