"""Classroom storage: rooms, students' live reports, pushed settings and polls (no UI here).

``open_store(settings().rooms_url, data_dir=settings().data_dir)`` gives a ``RoomStore``: SQLite by default, Redis with
``FME_ROOMS_URL=redis://...``. See ``store.RoomStore`` for the calls and who may make them.
"""

from explorer.rooms.model import (
    Limits,
    Poll,
    PushedSettings,
    Room,
    RoomFull,
    Seat,
    StoreUnavailable,
    Student,
    StudentReport,
    TooManyAttempts,
    UnknownRoom,
)
from explorer.rooms.store import RoomStore, open_store

__all__ = [
    "Limits",
    "Poll",
    "PushedSettings",
    "Room",
    "RoomFull",
    "RoomStore",
    "Seat",
    "StoreUnavailable",
    "Student",
    "StudentReport",
    "TooManyAttempts",
    "UnknownRoom",
    "open_store",
]
