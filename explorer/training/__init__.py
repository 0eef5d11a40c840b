"""Live training for the app's sessions: a runner per session and the backends that step it."""

from .runner import (
    ACTIVE_WINDOW_S,
    BACKENDS,
    CURVE_POINTS,
    REDRAW_INTERVALS_S,
    REDRAWS_PER_S,
    SESSION_KEY,
    TrainingRunner,
    active_sessions,
    default_backend,
    redraw_interval,
    session_runner,
)

__all__ = [
    "ACTIVE_WINDOW_S",
    "BACKENDS",
    "CURVE_POINTS",
    "REDRAWS_PER_S",
    "REDRAW_INTERVALS_S",
    "SESSION_KEY",
    "TrainingRunner",
    "active_sessions",
    "default_backend",
    "redraw_interval",
    "session_runner",
]
