"""The runner's states and the events that move it between them."""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "Phase"]


class Phase(enum.Enum):
    EMPTY = "empty"  # nothing configured or loaded
    PAUSED = "paused"  # a model that can train, not training
    TRAINING = "training"  # ticks train
    STOPPED = "stopped"  # training stopped itself (diverged, done, error): set_lr, reset or start
    LOADED = "loaded"  # a model file: drawn and saved, not trained


_ALL = tuple(Phase)
TRANSITIONS: dict[str, dict[Phase, Phase]] = {
    "configure": dict.fromkeys(_ALL, Phase.PAUSED),
    "load": dict.fromkeys(_ALL, Phase.LOADED),
    "reset": dict.fromkeys((Phase.PAUSED, Phase.TRAINING, Phase.STOPPED, Phase.LOADED), Phase.PAUSED),
    "start": {Phase.PAUSED: Phase.TRAINING, Phase.STOPPED: Phase.TRAINING, Phase.TRAINING: Phase.TRAINING},
    "pause": {Phase.TRAINING: Phase.PAUSED},
    "set_lr": {Phase.PAUSED: Phase.PAUSED, Phase.TRAINING: Phase.TRAINING, Phase.STOPPED: Phase.PAUSED},
    "stop": {Phase.TRAINING: Phase.STOPPED},  # a slice ended diverged, done or in error
    "refuse": {Phase.TRAINING: Phase.PAUSED},  # the engine is full
}
"""event -> {phase it may happen in: the phase after}. An event in a phase not listed does nothing
(``start`` before ``configure``, ``pause`` when paused); ``reset`` from a loaded model needs the
configuration it had before."""
