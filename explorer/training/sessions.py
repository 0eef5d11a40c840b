"""How many sessions train in this server, and how often their pages redraw because of it."""

from __future__ import annotations

import threading
import time

__all__ = [
    "ACTIVE_WINDOW_S",
    "REDRAWS_PER_S",
    "REDRAW_INTERVALS_S",
    "active_sessions",
    "note_tick",
    "redraw_interval",
]

REDRAW_INTERVALS_S = (0.35, 0.7, 1.5, 3.0)
"""The live redraw periods a page may use: several a second alone, every 3 s in a big class."""
ACTIVE_WINDOW_S = 2 * REDRAW_INTERVALS_S[-1]
"""A runner counts as training (``active_sessions``) if it ticked while running this recently: two
of the longest redraw periods, so a page redrawing every 3 s is never missed between two ticks."""
REDRAWS_PER_S = 10.0
"""Live redraws per second the server aims to stay under, all training sessions together."""

_TICKS: dict[str, float] = {}  # runner.id (a uuid4) -> time of its last tick while running
_TICKS_LOCK = threading.Lock()


def note_tick(runner) -> None:
    """Record that ``runner`` ticked while training, now."""
    with _TICKS_LOCK:
        _TICKS[runner.id] = time.monotonic()


def active_sessions(window_s: float = ACTIVE_WINDOW_S) -> int:
    """How many runners in this process ticked while training in the last ``window_s`` seconds.

    Only a count: the server's load, never another session's data.
    """
    now = time.monotonic()
    with _TICKS_LOCK:
        for key in [k for k, t in _TICKS.items() if now - t > 10 * window_s]:
            del _TICKS[key]  # pages closed mid-training stop ticking; forget them
        return sum(now - t <= window_s for t in _TICKS.values())


def redraw_interval(active: int) -> float:
    """Seconds between a training page's live redraws when ``active`` sessions train at once.

    Each redraw costs the server a figure build and every browser a re-render, so the period grows
    with the class to keep about ``REDRAWS_PER_S`` redraws a second in all; it is the smallest of
    ``REDRAW_INTERVALS_S`` that does, and the largest when none does (``active`` of 30 or more: 3 s).
    """
    wanted = max(active, 1) / REDRAWS_PER_S
    return next((s for s in REDRAW_INTERVALS_S if s >= wanted), REDRAW_INTERVALS_S[-1])
