"""Velocity sources and the particles' flow: one integration, sampled at the frame times.

A ``Source`` is a velocity field with a hashable identity: the exact marginal field of a data set
(closed form, ``fmcore.exact_velocity``) or a learned model seen under some schedule (through
``fmcore.change_schedule``, so a new view schedule never needs retraining).

The exact field is that of the data blurred by a Gaussian of width ``EXACT_BANDWIDTH``
(``fmcore.Blurred``): the field of bare points is singular at t = 1 and throws higher-order
solvers off there. Times follow fmcore: t=0 is noise, t=1 is data, sampling integrates forward.

Besides the ODE solvers of ``fmcore.SOLVERS`` the particles can move by two samplers, named as the
``Trajectory.solver`` fmcore gives them: ``EULER_MARUYAMA`` (``fmcore.sample_sde``: an SDE with the
flow's marginals, one NFE a step) and ``MEAN_FLOW`` (``fmcore.sample_mean_flow``: a mean-flow
network's jumps z_t = z_r + (t - r) u(z_r, r, t) on a uniform grid, one NFE a jump).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

import fmcore
from fmcore import metrics
from fmcore.schedules import get_schedule
from fmcore.solvers import SOLVERS, Trajectory, integrate, nfe_for

from .data import Dataset
from .state import ViewState

__all__ = [
    "EULER_MARUYAMA",
    "EXACT_BANDWIDTH",
    "MEAN_FLOW",
    "N_FRAMES",
    "SHOWN_PATHS",
    "SHOWN_SDE_PATHS",
    "VIEW_BOX",
    "Flow",
    "Source",
    "compute_flow",
    "exact_source",
    "frame_times",
    "integrate_source",
    "learned_source",
    "main_sampler",
    "nfe_per_step",
    "sampler_label",
    "steps_label",
    "steps_nfe",
]

VIEW_BOX = 3.5
"""The figures show [-VIEW_BOX, VIEW_BOX]^2: unit-spread data and N(0, I) noise fit with room."""
N_FRAMES = 51
"""Frames of the animation, t = 0, 0.02, ..., 1: smooth playback (NOTES: 100 doubles the payload)."""
SHOWN_PATHS = 120
"""Particles whose whole path is drawn when paths are on."""
SHOWN_SDE_PATHS = 30
"""As many for the SDE: its jagged paths cross everywhere, and 120 of them hide one another."""
EXACT_BANDWIDTH = 0.08
"""Blur of the data behind the exact field, in unit-spread coordinates (presets' own noise is ~0.05-0.1)."""
EULER_MARUYAMA = "euler-maruyama"
"""The SDE sampler (``fmcore.sample_sde``), in place of a solver name."""
MEAN_FLOW = "meanflow"
"""A mean-flow network's jumps (``fmcore.sample_mean_flow``), in place of a solver name."""
BRIDGE_SEED = 2**31
"""Added to the SDE's Brownian seed for the frames drawn between its nodes (``fmcore.bridge``): a
stream of their own, not the steps' increments again."""


@dataclass(frozen=True)
class Source:
    """A velocity field v(z, t) under ``schedule``, identified by ``key`` for caching.

    Attributes:
        kind: ``exact`` or ``learned``.  key: hashable identity (data or model version, schedule).
        schedule: the schedule the field is expressed in.  velocity: ``(z (n, 2), t 0-d) -> (n, 2)``.
        batch: ``(z (n, 2), t (n,)) -> (n, 2)`` with a time per row, when the field offers one.
        average: a mean-flow network's ``u(z (n, 2), r 0-d, t 0-d) -> (n, 2)``; None for a flow.
    """

    kind: str
    key: tuple
    schedule: str
    velocity: Callable = field(compare=False, hash=False, repr=False)
    batch: Callable | None = field(default=None, compare=False, hash=False, repr=False)
    average: Callable | None = field(default=None, compare=False, hash=False, repr=False)


def exact_source(dataset: Dataset, schedule: str) -> Source:
    """The closed-form marginal field of ``dataset.shown`` (blurred by ``EXACT_BANDWIDTH``) under ``schedule``."""
    data = torch.from_numpy(dataset.shown)
    smoothed = fmcore.Blurred(schedule, EXACT_BANDWIDTH)

    def velocity(z, t):
        return fmcore.exact_velocity(z, t, data, smoothed)

    return Source("exact", ("exact", dataset.key, schedule), schedule, velocity, velocity)


def learned_source(
    velocity: Callable,
    model_key: tuple,
    trained_schedule: str,
    schedule: str,
    average: Callable | None = None,
) -> Source:
    """A learned velocity (trained under ``trained_schedule``) seen under ``schedule``.

    ``fmcore.change_schedule`` re-expresses the same flow for another schedule: no retraining.
    A mean-flow network (``average`` given, its u(z, r, t)) stays on the path it was trained on:
    its jumps span intervals of that path's time, which no pointwise change of schedule re-expresses.
    """
    if average is not None:
        schedule = trained_schedule
    moved = fmcore.change_schedule(velocity, trained_schedule, schedule)
    key = ("learned", *model_key, trained_schedule, schedule, average is not None)
    return Source("learned", key, schedule, moved, average=average)


def frame_times(n_frames: int = N_FRAMES) -> np.ndarray:
    """(F,) float32 frame times from 0 (noise) to 1 (data)."""
    return np.linspace(0.0, 1.0, n_frames, dtype=np.float32)


@dataclass(frozen=True)
class Flow:
    """One integration of the particles, ready to animate.

    Attributes:
        times: (F,) frame times.  particles: (F, n, 2) positions at the frame times.
        nodes: (K+1,) the solver's grid.  paths: (K+1, p, 2) the first p particles at the nodes.
        samples: (n, 2) where the particles end (t = 1).  nfe: counted velocity evaluations.
        solver, steps, grid: the settings (solver may be ``EULER_MARUYAMA`` or ``MEAN_FLOW``).
        straightness: Liu et al.'s S of the paths (0 = straight); NaN for the SDE, whose Brownian
            paths have none (it grows without bound with the steps).  noise: the SDE's scale of
            g_t (0 for every other sampler).
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
    noise: float = 0.0


def integrate_source(
    source: Source, z0: np.ndarray, solver: str, steps: int, grid: str, noise: float = 0.0, seed: int = 0
) -> Trajectory:
    """The (n, 2) particles z0 carried from t=0 to 1 under the source's schedule.

    ``solver``: a key of ``SOLVERS`` (``fmcore.integrate``), ``EULER_MARUYAMA`` (``fmcore.sample_sde``
    with ``noise`` and Brownian ``seed``, on ``grid``) or ``MEAN_FLOW`` (``fmcore.sample_mean_flow``,
    ``steps`` uniform jumps; the source must have an ``average``).

    Raises:
        ValueError: ``MEAN_FLOW`` asked of a source that is not a mean-flow network.
    """
    z0 = torch.from_numpy(np.ascontiguousarray(z0, dtype=np.float32))
    if solver == EULER_MARUYAMA:
        return fmcore.sample_sde(
            source.velocity,
            z0,
            source.schedule,
            noise=float(noise),
            steps=int(steps),
            seed=int(seed),
            grid=grid,
        )
    if solver == MEAN_FLOW:
        if source.average is None:
            raise ValueError("only a mean-flow network samples by jumps; this field is a flow")
        t_max = get_schedule(source.schedule).t_max
        return fmcore.sample_mean_flow(source.average, z0, int(steps), t_max=t_max)
    return integrate(
        source.velocity,
        z0,
        solver=solver,
        steps=int(steps),
        schedule=source.schedule,
        grid=grid,
        rtol=1e-3,
        atol=1e-3,
    )


def compute_flow(
    source: Source, z0: np.ndarray, solver: str, steps: int, grid: str, noise: float = 0.0, seed: int = 0
) -> Flow:
    """Carry the particles z0 from t=0 to 1 (``integrate_source``) and sample them at the frame times:
    linear between the solver's nodes (``Trajectory.at``), or for a noisy SDE its own bridge (``fmcore.bridge``: a line
    between nodes a step renoised would shrink the cloud, most after the first step from pure noise)."""
    trajectory = integrate_source(source, z0, solver, steps, grid, noise, seed)
    ts = trajectory.ts.double().numpy()
    zs = trajectory.zs.numpy()
    times = frame_times()
    if solver == EULER_MARUYAMA and noise > 0:
        bridged = fmcore.bridge(
            trajectory, torch.from_numpy(times), source.schedule, float(noise), seed + BRIDGE_SEED
        )
        particles = bridged.numpy().astype(np.float32)
    else:
        particles = trajectory.at(torch.from_numpy(times)).numpy().astype(np.float32)
    return Flow(
        times=times,
        particles=particles,
        nodes=ts.astype(np.float32),
        paths=zs[:, : SHOWN_SDE_PATHS if solver == EULER_MARUYAMA else SHOWN_PATHS].astype(np.float32),
        samples=zs[-1].astype(np.float32),
        nfe=int(trajectory.nfe),
        solver=solver,
        steps=int(steps),
        grid=grid,
        straightness=math.nan
        if solver == EULER_MARUYAMA
        else float(metrics.straightness(trajectory.zs, trajectory.ts.double())),
        noise=float(noise) if solver == EULER_MARUYAMA else 0.0,
    )


def main_sampler(state: ViewState, source: Source) -> tuple[str, int, str, float]:
    """``(solver, steps, grid, noise)`` of the main panel for the view ``state`` on ``source``.

    A mean-flow network jumps ``state.nfe`` times on a uniform grid, whatever the sampler; else
    ``sampler="sde"`` is Euler-Maruyama on the state's grid and steps (the solver is the ODE's).
    """
    if source.average is not None:
        return MEAN_FLOW, int(state.nfe), "uniform", 0.0
    if state.sampler == "sde":
        return EULER_MARUYAMA, int(state.steps), state.grid, float(state.noise)
    return state.solver, int(state.steps), state.grid, 0.0


def steps_nfe(solver: str, steps: int) -> int | None:
    """The NFE ``steps`` steps take (``fmcore.nfe_for``; one a step for the SDE and the mean flow)."""
    return nfe_for(solver, steps) if solver in SOLVERS else int(steps)


def nfe_per_step(solver: str) -> int | None:
    """Network evaluations per step: one for the SDE and the mean flow; None for an adaptive solver."""
    return SOLVERS[solver].nfe_per_step if solver in SOLVERS else 1


def sampler_label(solver: str, noise: float | None = None) -> str:
    """What moves the particles, in words: 'rk4', 'Euler-Maruyama SDE, noise 1', 'mean flow'."""
    if solver == EULER_MARUYAMA:
        return "Euler-Maruyama SDE" + ("" if noise is None else f", noise {noise:g}")
    if solver == MEAN_FLOW:
        return "mean flow"
    return solver


def steps_label(solver: str, steps: int, nfe: int | None = None) -> str:
    """'20 steps · 80 NFE' (NFE counted when given, else from the solver's cost per step).

    An adaptive solver chooses its own steps; ``steps`` are then only the times it reports at:
    'adaptive, 20 outputs · 134 NFE'.
    """
    nfe = nfe if nfe is not None else steps_nfe(solver, steps)
    count = "adaptive NFE" if nfe is None else f"{nfe} NFE"
    if solver in SOLVERS and SOLVERS[solver].adaptive:
        return f"adaptive, {steps} output{'s' if steps != 1 else ''} · {count}"
    return f"{steps} {'step' if steps == 1 else 'steps'} · {count}"
