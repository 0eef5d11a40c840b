"""Every ``FME_*`` environment variable, read once into one frozen dataclass.

    from explorer.settings import settings
    settings().training          # "inline", "engine" or None (the runner's own choice)

``settings()`` reads the process environment the first time it is called and keeps the result;
``read(environ)`` parses any mapping (tests pass their own). A malformed value is a ``ValueError``
that names the variable and says what it must be, raised when the app first needs it.

``configure_torch()`` sets torch's intra-op threads once per process from ``FME_TORCH_THREADS``
(default 1): sessions already run in parallel threads, and this project's tensors are small. With
torch's default of one thread per core every op waits for all its threads to be scheduled: on a
busy 2-core machine an RK4 pass over 1,000 particles took 1.7 s instead of 80 ms, and 100 training
steps 11 s instead of 0.9 s. ``torch.set_num_threads`` is process-wide, hence once, here.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TRAINING_BACKENDS", "Settings", "configure_torch", "read", "settings"]

TRAINING_BACKENDS = ("inline", "engine")


@dataclass(frozen=True)
class Settings:
    """The app's environment settings.

    Attributes:
        training: ``FME_TRAINING``, where training steps run (one of ``TRAINING_BACKENDS``), or
            None: ``engine`` inside a Streamlit server, ``inline`` elsewhere (tests, notebooks).
        engine_slots: ``FME_ENGINE_SLOTS``, the most models one training engine trains at once
            (default 200); a session beyond it is told so and stays paused.
        train_device: ``FME_TRAIN_DEVICE`` (e.g. "cpu" on a GPU node), or None: cuda, mps, cpu.
        train_nice: ``FME_TRAIN_NICE``, the niceness added to the training engine (default 10: a
            page's rerun comes before a training step when cores are short; 0 treats them alike).
        ray_address: ``FME_RAY_ADDRESS``: the training engine runs as a Ray actor on that cluster
            (``auto``, ``ray://host:10001``, or ``local`` for a Ray started in this process); None:
            a local engine process.
        torch_threads: ``FME_TORCH_THREADS``, torch's intra-op threads in the app (default 1).
        rooms_url: ``FME_ROOMS_URL``, the classroom store (``sqlite:///path`` or
            ``redis://host:port/db``); None: SQLite under ``data_dir``.
        data_dir: ``FME_DATA_DIR``, where the app keeps files (default ``data``, from the cwd).
        room_idle_hours: ``FME_ROOM_IDLE_HOURS``, how long a classroom room lives untouched before
            it expires with its students' data (default 12; ``explorer.rooms.Limits.idle_seconds``).
    """

    training: str | None = None
    engine_slots: int = 200
    train_device: str | None = None
    train_nice: int = 10
    ray_address: str | None = None
    torch_threads: int = 1
    rooms_url: str | None = None
    data_dir: Path = Path("data")
    room_idle_hours: float = 12.0


def _text(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _whole(environ: Mapping[str, str], name: str, default: int | None, lo: int) -> int | None:
    value = _text(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {value[:40]!r}") from None
    if number < lo:
        raise ValueError(f"{name} must be at least {lo}; got {number}")
    return number


def _hours(environ: Mapping[str, str], name: str, default: float) -> float:
    value = _text(environ, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of hours; got {value[:40]!r}") from None
    if not 0 < number < math.inf:
        raise ValueError(f"{name} must be a positive, finite number of hours; got {value[:40]!r}")
    return number


def read(environ: Mapping[str, str]) -> Settings:
    """Parse the ``FME_*`` variables of ``environ``.

    Raises:
        ValueError: a variable is malformed; the message names it.
    """
    training = _text(environ, "FME_TRAINING")
    if training is not None:
        training = training.lower()
        if training not in TRAINING_BACKENDS:
            raise ValueError(
                f"FME_TRAINING must be one of {', '.join(TRAINING_BACKENDS)}; got {training[:40]!r}"
            )
    return Settings(
        training=training,
        engine_slots=_whole(environ, "FME_ENGINE_SLOTS", 200, 1),
        train_device=_text(environ, "FME_TRAIN_DEVICE"),
        train_nice=_whole(environ, "FME_TRAIN_NICE", 10, -20),
        ray_address=_text(environ, "FME_RAY_ADDRESS"),
        torch_threads=_whole(environ, "FME_TORCH_THREADS", 1, 1),
        rooms_url=_text(environ, "FME_ROOMS_URL"),
        data_dir=Path(_text(environ, "FME_DATA_DIR") or "data"),
        room_idle_hours=_hours(environ, "FME_ROOM_IDLE_HOURS", 12.0),
    )


@functools.cache
def settings() -> Settings:
    """This process's settings, read from ``os.environ`` on first use."""
    return read(os.environ)


@functools.cache
def configure_torch() -> None:
    """Set torch's intra-op threads to ``FME_TORCH_THREADS``, once per process."""
    import torch

    torch.set_num_threads(settings().torch_threads)
