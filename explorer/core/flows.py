"""Velocity sources and the particles' flow: one integration, sampled at the frame times.

A ``Source`` is a velocity field with a hashable identity: the exact marginal field of a data set
(closed form, ``fmcore.exact_velocity``) or a learned model seen under some schedule (through
``fmcore.change_schedule``, so a new view schedule never needs retraining).

The exact field is that of the data blurred by a Gaussian of width ``EXACT_BANDWIDTH``
(``fmcore.Blurred``): the field of bare points is singular at t = 1 and throws higher-order
solvers off there. Times follow fmcore: t=0 is noise, t=1 is data, sampling integrates forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

import fmcore
from fmcore import metrics
from fmcore.solvers import SOLVERS, Trajectory, integrate, nfe_for

from .data import Dataset

__all__ = [
    "EXACT_BANDWIDTH",
    "N_FRAMES",
    "SHOWN_PATHS",
    "VIEW_BOX",
    "Flow",
    "Source",
    "compute_flow",
    "exact_source",
    "frame_times",
    "integrate_source",
    "interpolate",
    "learned_source",
    "steps_label",
]

VIEW_BOX = 3.5
"""The figures show [-VIEW_BOX, VIEW_BOX]^2: unit-spread data and N(0, I) noise fit with room."""
N_FRAMES = 51
"""Frames of the animation, t = 0, 0.02, ..., 1: smooth playback (NOTES: 100 doubles the payload)."""
SHOWN_PATHS = 120
"""Particles whose whole path is drawn when paths are on."""
EXACT_BANDWIDTH = 0.08
"""Blur of the data behind the exact field, in unit-spread coordinates (presets' own noise is ~0.05-0.1)."""


@dataclass(frozen=True)
class Source:
    """A velocity field v(z, t) under ``schedule``, identified by ``key`` for caching.

    Attributes:
        kind: ``exact`` or ``learned``.  key: hashable identity (data or model version, schedule).
        schedule: the schedule the field is expressed in.  velocity: ``(z (n, 2), t 0-d) -> (n, 2)``.
        batch: ``(z (n, 2), t (n,)) -> (n, 2)`` with a time per row, when the field offers one.
    """

    kind: str
    key: tuple
    schedule: str
    velocity: Callable = field(compare=False, hash=False, repr=False)
    batch: Callable | None = field(default=None, compare=False, hash=False, repr=False)


def exact_source(dataset: Dataset, schedule: str) -> Source:
    """The closed-form marginal field of ``dataset.shown`` (blurred by ``EXACT_BANDWIDTH``) under ``schedule``."""
    data = torch.from_numpy(dataset.shown)
    smoothed = fmcore.Blurred(schedule, EXACT_BANDWIDTH)

    def velocity(z, t):
        return fmcore.exact_velocity(z, t, data, smoothed)

    return Source("exact", ("exact", dataset.key, schedule), schedule, velocity, velocity)


def learned_source(velocity: Callable, model_key: tuple, trained_schedule: str, schedule: str) -> Source:
    """A learned velocity (trained under ``trained_schedule``) seen under ``schedule``.

    ``fmcore.change_schedule`` re-expresses the same flow for another schedule: no retraining.
    """
    moved = fmcore.change_schedule(velocity, trained_schedule, schedule)
    return Source("learned", ("learned", *model_key, trained_schedule, schedule), schedule, moved)


def frame_times(n_frames: int = N_FRAMES) -> np.ndarray:
    """(F,) float32 frame times from 0 (noise) to 1 (data)."""
    return np.linspace(0.0, 1.0, n_frames, dtype=np.float32)


def interpolate(ts: np.ndarray, zs: np.ndarray, times: np.ndarray) -> np.ndarray:
    """States at ``times``, linear between the solver's nodes: what a step actually does.

    Args:
        ts: (K+1,) increasing node times.  zs: (K+1, n, 2) states there.  times: (F,).
    Returns:
        (F, n, 2) float32.
    """
    upper = np.clip(np.searchsorted(ts, times, side="right"), 1, len(ts) - 1)
    lower = upper - 1
    span = np.maximum(ts[upper] - ts[lower], 1e-12)
    w = ((times - ts[lower]) / span).clip(0.0, 1.0)[:, None, None]
    return ((1.0 - w) * zs[lower] + w * zs[upper]).astype(np.float32)


@dataclass(frozen=True)
class Flow:
    """One integration of the particles, ready to animate.

    Attributes:
        times: (F,) frame times.  particles: (F, n, 2) positions at the frame times.
        nodes: (K+1,) the solver's grid.  paths: (K+1, p, 2) the first p particles at the nodes.
        samples: (n, 2) where the particles end (t = 1).  nfe: counted velocity evaluations.
        solver, steps, grid: the settings.  straightness: Liu et al.'s S of the paths (0 = straight).
    """

    times: np.ndarray = field(repr=False)
    particles: np.ndarray = field(repr=False)
    nodes: np.ndarray = field(repr=False)
    paths: np.ndarray = field(repr=False)
    samples: np.ndarray = field(repr=False)
    nfe: int
    solver: str
    steps: int
    grid: str
    straightness: float


def integrate_source(source: Source, z0: np.ndarray, solver: str, steps: int, grid: str) -> Trajectory:
    """``fmcore.integrate`` of the (n, 2) particles z0 from t=0 to 1 under the source's schedule."""
    return integrate(
        source.velocity,
        torch.from_numpy(np.ascontiguousarray(z0, dtype=np.float32)),
        solver=solver,
        steps=int(steps),
        schedule=source.schedule,
        grid=grid,
        rtol=1e-3,
        atol=1e-3,
    )


def compute_flow(source: Source, z0: np.ndarray, solver: str, steps: int, grid: str) -> Flow:
    """Integrate the particles z0 from t=0 to 1 and sample the result at the frame times."""
    trajectory = integrate_source(source, z0, solver, steps, grid)
    ts = trajectory.ts.double().numpy()
    zs = trajectory.zs.numpy()
    times = frame_times()
    return Flow(
        times=times,
        particles=interpolate(ts, zs, times.astype(np.float64)),
        nodes=ts.astype(np.float32),
        paths=zs[:, :SHOWN_PATHS].astype(np.float32),
        samples=zs[-1].astype(np.float32),
        nfe=int(trajectory.nfe),
        solver=solver,
        steps=int(steps),
        grid=grid,
        straightness=float(metrics.straightness(trajectory.zs, trajectory.ts.double())),
    )


def steps_label(solver: str, steps: int, nfe: int | None = None) -> str:
    """'20 steps · 80 NFE' (NFE counted when given, else from the solver's cost per step).

    An adaptive solver chooses its own steps; ``steps`` are then only the times it reports at:
    'adaptive, 20 outputs · 134 NFE'.
    """
    nfe = nfe if nfe is not None else nfe_for(solver, steps)
    count = "adaptive NFE" if nfe is None else f"{nfe} NFE"
    if SOLVERS[solver].adaptive:
        return f"adaptive, {steps} output{'s' if steps != 1 else ''} · {count}"
    return f"{steps} {'step' if steps == 1 else 'steps'} · {count}"
