"""The numbers behind a dashboard tile, the order of the grid, and the words around them.

A ``Tile`` is what one student's square shows: their name, samples, step, loss against its
floor, quality, settings as chips and when they were last seen. Strings in it are the students'
own (plain text: the dashboard never renders them as markdown or HTML).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.rooms import Seat

SORTS = ("step", "quality", "name")
"""How the grid can be ordered: most steps first, best quality (lowest) first, or by name."""


@dataclass(frozen=True, eq=False)
class Tile:
    """One student's square on the dashboard.

    Attributes:
        student_id: the store's id (a widget key, never shown).  name: display name (plain text).
        step: training steps so far (0 before the first report).  loss, loss_floor: NaN before it.
        quality: energy distance over its noise floor (lower is better; NaN before a report).
        chips: setting name -> value.  points: (n, 2) float32 samples.
        seen_s: seconds since the student was last seen.  reported: whether any report arrived.
    """

    student_id: str
    name: str
    step: int
    loss: float
    loss_floor: float
    quality: float
    chips: Mapping[str, str]
    points: np.ndarray = field(repr=False)
    seen_s: float
    reported: bool


def tile(seat: Seat, now: float) -> Tile:
    """The tile of one seat at time ``now`` (unix seconds)."""
    r, s = seat.report, seat.student
    seen = max(0.0, now - s.last_seen)
    if r is None:
        nan = float("nan")
        return Tile(s.id, s.name, 0, nan, nan, nan, {}, np.zeros((0, 2), np.float32), seen, False)
    return Tile(s.id, s.name, r.step, r.loss, r.loss_floor, r.quality, dict(r.chips), r.points, seen, True)


def tiles(seats: Sequence[Seat], now: float, by: str = "step") -> list[Tile]:
    """Every seat's tile, ordered ``by`` one of ``SORTS``."""
    return sort_tiles([tile(s, now) for s in seats], by)


def sort_tiles(items: Sequence[Tile], by: str) -> list[Tile]:
    """``items`` ordered: "step" most first, "quality" best (lowest) first, "name" A-Z (case-blind).

    Students without a number (no report yet, NaN) go last; ties keep joining order.
    """
    if by == "step":
        return sorted(items, key=lambda t: (not t.reported, -t.step))
    if by == "quality":
        return sorted(
            items,
            key=lambda t: (not math.isfinite(t.quality), t.quality if math.isfinite(t.quality) else 0.0),
        )
    if by == "name":
        return sorted(items, key=lambda t: t.name.casefold())
    raise ValueError(f"tiles sort by one of {', '.join(SORTS)}; got {by!r}")


def count_text(n: int) -> str:
    """``"1 student"``, ``"5 students"``: the dashboard's header."""
    return f"{n} student" if n == 1 else f"{n} students"


def seen_text(seconds: float) -> str:
    """``"just now"``, ``"12 s ago"``, ``"3 min ago"``, ``"2 h ago"``."""
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    return f"{int(seconds // 3600)} h ago"


def number(x: float) -> str:
    """A tile's number: 3 significant digits ("1.00", "0.0120", "1,234"), "–" for NaN/inf (no report yet)."""
    if not math.isfinite(x):
        return "–"
    return f"{x:#.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def loss_text(t: Tile) -> str:
    """``"loss 1.52 · floor 1.00"`` (how far the loss is above what it can reach)."""
    return f"loss {number(t.loss)} · floor {number(t.loss_floor)}"


def floor_ratio(t: Tile) -> float:
    """floor / loss in [0, 1]: 1 when the loss has reached its floor, 0 before a report."""
    if not (math.isfinite(t.loss) and math.isfinite(t.loss_floor)) or t.loss <= 0:
        return 0.0
    return min(1.0, max(0.0, t.loss_floor / t.loss))


def status_line(t: Tile) -> str:
    """The tile's caption: step, quality and last seen, in one line."""
    if not t.reported:
        return f"waiting for a first report · seen {seen_text(t.seen_s)}"
    return f"step {t.step:,} · quality {number(t.quality)} · seen {seen_text(t.seen_s)}"


def chip_texts(t: Tile) -> list[str]:
    """The tile's settings as chips, ``"solver: heun"``, in a stable order."""
    return [f"{k}: {v}" for k, v in sorted(t.chips.items())]


def questions(seats: Sequence[Seat]) -> list[str]:
    """Every poll question some student has answered, in first-answered order."""
    seen: dict[str, None] = {}
    for seat in seats:
        seen.update(dict.fromkeys(seat.answers))
    return list(seen)
