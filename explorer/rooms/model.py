"""What a classroom stores: rooms, students, their reports, pushed settings and polls.

Small frozen dataclasses, the limits that bound them, and the one place that checks and encodes
what a student sends, so both stores (``sqlite.py``, ``redis_store.py``) share it. Nothing here
touches a store or the UI; strings are kept as data (escaping them is the UI's job).
"""

from __future__ import annotations

import base64
import json
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

# Join codes avoid look-alikes (0/O, 1/I/L) so a class can read them off a projector.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
FLOAT16_MAX = 65504.0  # stored points are clipped to float16's range

ADJECTIVES = (
    "Curious", "Brave", "Calm", "Clever", "Eager", "Gentle", "Happy", "Jolly", "Keen", "Lively",
    "Lucky", "Merry", "Nimble", "Patient", "Quick", "Quiet", "Bold", "Sunny", "Swift", "Witty",
)  # fmt: skip
ANIMALS = (
    "Otter", "Falcon", "Badger", "Dolphin", "Fox", "Heron", "Koala", "Lynx", "Marten", "Narwhal",
    "Owl", "Panda", "Puffin", "Raven", "Seal", "Tiger", "Turtle", "Walrus", "Wombat", "Zebra",
)  # fmt: skip


class UnknownRoom(LookupError):
    """No room has this code (it never existed or it expired), or no such student in it."""


class RoomFull(RuntimeError):
    """A cap on students per room or rooms per server is reached."""


class TooManyAttempts(RuntimeError):
    """A client tried too many wrong join codes within the last minute."""


class StoreUnavailable(ConnectionError):
    """The store did not answer (Redis down or unreachable, the SQLite file locked or unreadable):
    nothing about the room is known to be wrong, so a caller keeps its seat and tries again later."""


@dataclass(frozen=True)
class Limits:
    """Caps and timings of a store; every one is checked with a clear error when reached."""

    idle_seconds: float = 12 * 3600  # a room untouched this long expires, with all its students' data
    students_per_room: int = 100
    rooms_per_server: int = 500
    points_per_report: int = 200  # (n, 2) samples a tile draws
    name_chars: int = 40  # display names, after trimming
    text_chars: int = 64  # every other string a student sends (chip keys/values, poll ids/answers)
    chips_per_report: int = 16
    polls_per_room: int = 100
    failed_joins_per_minute: int = 10  # per client key (an IP or a session id the caller passes)


@dataclass(frozen=True)
class PushedSettings:
    """Settings a teacher sends to the whole room; None leaves a student's own choice alone.

    ``version`` is set by the store (1, 2, ...): a student applies each version once.
    """

    data: str | None = None  # data preset name
    schedule: str | None = None
    solver: str | None = None
    grid: str | None = None  # time grid of the sampler
    steps: int | None = None  # solver steps
    target: str | None = None  # training target (conditional, exact, ...)
    coupling: str | None = None  # independent, minibatch OT, ...
    version: int = 0

    def changed(self) -> dict[str, str | int]:
        """The settings this push sets (name -> value), for a "Your teacher changed ..." notice."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "version" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class Room:
    """What anyone holding the join code may know about a room (no students, no token)."""

    code: str
    created: float  # unix seconds
    last_active: float
    push: PushedSettings | None  # the latest push, or None before the first
    training: bool  # the teacher's start/pause for the whole room
    revealed: frozenset[str]  # poll question ids revealed to everyone


@dataclass(frozen=True)
class Student:
    id: str  # 128-bit random hex: the student's session keeps it and reports with it
    name: str  # display name as given (trimmed, control characters removed): plain text, never markup
    joined: float
    last_seen: float


@dataclass(frozen=True, eq=False)
class StudentReport:
    """One snapshot of a student's run, as the dashboard tile shows it.

    ``points`` is (n, 2) float32 with n <= ``Limits.points_per_report``; stores keep it as float16
    (a tile is ~150 px wide: three significant digits are more than it can show).
    """

    step: int
    loss: float
    loss_floor: float
    quality: float  # e.g. energy distance / its noise floor; lower is better
    chips: Mapping[str, str] = field(default_factory=dict)  # settings shown as chips
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))


@dataclass(frozen=True)
class Seat:
    """A student, their latest report (None before the first) and their poll answers."""

    student: Student
    report: StudentReport | None
    answers: Mapping[str, str]  # question id -> answer


@dataclass(frozen=True)
class Poll:
    question: str
    counts: Mapping[str, int]  # answer -> number of students who gave it
    revealed: bool


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """What a student types ("abc 23k", "ABC-23K") as a stored code; any string is accepted."""
    return "".join(ch for ch in str(code).upper() if ch.isalnum())[: 4 * CODE_LENGTH]


def pseudonym() -> str:
    """A friendly default display name, e.g. "Curious Otter 17"."""
    return f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)} {10 + secrets.randbelow(90)}"


def clean_text(text: str, limit: int, what: str) -> str:
    """``text`` trimmed, without control characters; ValueError if longer than ``limit``.

    Everything else (``<``, ``&``, quotes, emoji) is kept as given: the UI shows it as plain text.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text; got {type(text).__name__}")
    if len(text) > 4 * limit + 64:  # so a megabyte of spaces is not cleaned before being refused
        raise ValueError(f"{what} is {len(text)} characters long; at most {limit} are allowed")
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    if len(kept) > limit:
        raise ValueError(f"{what} is {len(kept)} characters long; at most {limit} are allowed")
    return kept


def clean_name(name: str | None, limits: Limits) -> str:
    """A display name as stored: a pseudonym when none (or only blanks) is given."""
    kept = clean_text(name, limits.name_chars, "a display name") if name is not None else ""
    return kept or pseudonym()


def check_report(report: StudentReport, limits: Limits) -> StudentReport:
    """``report`` with checked types and sizes (points as (n, 2) float32), or a ValueError."""
    points = np.asarray(report.points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be an (n, 2) array; got shape {points.shape}")
    if len(points) > limits.points_per_report:
        raise ValueError(f"a report holds at most {limits.points_per_report} points; got {len(points)}")
    if not np.isfinite(points).all():
        raise ValueError("points must be finite numbers")
    if len(report.chips) > limits.chips_per_report:
        raise ValueError(f"a report holds at most {limits.chips_per_report} chips; got {len(report.chips)}")
    chips = {
        clean_text(k, limits.text_chars, "a chip name"): clean_text(str(v), limits.text_chars, "a chip value")
        for k, v in report.chips.items()
    }
    step = int(report.step)
    if step < 0:
        raise ValueError(f"step must be >= 0; got {step}")
    numbers = {name: float(getattr(report, name)) for name in ("loss", "loss_floor", "quality")}
    return replace(report, step=step, chips=chips, points=points, **numbers)


def report_to_json(report: StudentReport) -> str:
    """A checked report as JSON; points go as base64 of little-endian float16 (4 bytes a point).

    Python's json keeps NaN and inf (a loss before the first step is NaN); only Python reads it.
    """
    raw = np.clip(report.points, -FLOAT16_MAX, FLOAT16_MAX).astype("<f2").tobytes()
    return json.dumps(
        {
            "step": report.step,
            "loss": report.loss,
            "loss_floor": report.loss_floor,
            "quality": report.quality,
            "chips": dict(report.chips),
            "points": base64.b64encode(raw).decode("ascii"),
        }
    )


def report_from_json(text: str) -> StudentReport:
    d = json.loads(text)
    points = np.frombuffer(base64.b64decode(d.pop("points")), dtype="<f2").astype(np.float32)
    return StudentReport(**d, points=points.reshape(-1, 2))


def check_push(settings: PushedSettings, limits: Limits) -> PushedSettings:
    """Text settings trimmed and length-checked, steps a positive int; ValueError otherwise."""
    if settings.steps is not None and (not isinstance(settings.steps, int) or settings.steps < 1):
        raise ValueError(f"steps must be a positive whole number; got {settings.steps!r}")
    texts = {
        name: clean_text(value, limits.text_chars, f"the pushed {name}")
        for name, value in settings.changed().items()
        if name != "steps"
    }
    return replace(settings, **texts)


def push_to_json(settings: PushedSettings) -> str:
    return json.dumps(asdict(settings))


def push_from_json(text: str | None) -> PushedSettings | None:
    return None if text is None else PushedSettings(**json.loads(text))
