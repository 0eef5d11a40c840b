"""Live training for the app's sessions: a runner per session and the backends that step it."""

from .backends import TrainingBackend
from .engine import Engine, get_engine
from .runner import (
    BACKENDS,
    CURVE_POINTS,
    SESSION_KEY,
    TrainingRunner,
    default_backend,
    session_runner,
)
from .sessions import ACTIVE_WINDOW_S, REDRAW_INTERVALS_S, REDRAWS_PER_S, active_sessions, redraw_interval
from .states import TRANSITIONS, Phase

__all__ = [
    "ACTIVE_WINDOW_S",
    "BACKENDS",
    "CURVE_POINTS",
    "REDRAWS_PER_S",
    "REDRAW_INTERVALS_S",
    "SESSION_KEY",
    "TRANSITIONS",
    "Engine",
    "Phase",
    "TrainingBackend",
    "TrainingRunner",
    "active_sessions",
    "default_backend",
    "get_engine",
    "redraw_interval",
    "session_runner",
]
