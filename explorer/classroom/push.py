"""What a teacher may push to the room, and how a student is told: choices from fmcore's registries.

A pushed field left at ``KEEP`` (or steps at 0) leaves each student's own choice alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import fmcore
from explorer.rooms import PushedSettings
from fmcore import datasets, trainer

KEEP = "(keep)"
MAX_STEPS = 200
"""The most solver steps a teacher can push (the Playground's own slider stops there too)."""

CHOICES: dict[str, tuple[str, ...]] = {
    "data": tuple(datasets.NAMES),
    "schedule": tuple(fmcore.SCHEDULES),
    "solver": tuple(fmcore.SOLVERS),
    "grid": tuple(fmcore.TIME_GRIDS),
    "target": tuple(trainer.TARGETS),
    "coupling": tuple(fmcore.COUPLINGS),
}
"""Pushable text settings -> their choices (the keys are ``PushedSettings`` field names)."""

LABELS = {
    "data": "Data preset",
    "schedule": "Schedule",
    "solver": "Solver",
    "grid": "Time grid",
    "steps": "Solver steps",
    "target": "Training target",
    "coupling": "Coupling",
}


def settings_from(choices: Mapping[str, str], steps: int) -> PushedSettings:
    """The push a form describes: ``KEEP`` and ``steps == 0`` mean "leave it".

    Raises:
        ValueError: a choice outside its registry, or steps outside [0, MAX_STEPS].
    """
    kept = {}
    for name, value in choices.items():
        if name not in CHOICES:
            raise ValueError(f"{name!r} cannot be pushed; pushable settings: {', '.join(CHOICES)}")
        if value == KEEP:
            continue
        if value not in CHOICES[name]:
            raise ValueError(
                f"{value!r} is not a {LABELS[name].lower()}; choose one of {', '.join(CHOICES[name])}"
            )
        kept[name] = value
    if not 0 <= int(steps) <= MAX_STEPS:
        raise ValueError(f"solver steps must be between 1 and {MAX_STEPS} (0 keeps them); got {steps}")
    return PushedSettings(**kept, steps=int(steps) or None)


def describe(settings: PushedSettings) -> str:
    """``"solver heun, steps 8"``: what a push sets, in words (plain text, for notices and captions)."""
    return (
        ", ".join(f"{LABELS[name].lower()} {value}" for name, value in settings.changed().items())
        or "nothing"
    )


def notice(settings: PushedSettings) -> str:
    """The student's notice: ``"Your teacher changed solver heun, solver steps 8."``."""
    return f"Your teacher changed {describe(settings)}."
