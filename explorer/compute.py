"""The numbers behind the Playground's figures, computed with fmcore and cached.

A ``Source`` is a velocity field with a hashable identity: the exact marginal field of a data set
(closed form, ``fmcore.exact_velocity``) or a learned model seen under some schedule (through
``fmcore.change_schedule``, so a new view schedule never needs retraining). Everything a figure
needs is a pure function of a source and a few settings, cached with ``st.cache_data`` under the
source's key: the particles' flow, the field on an arrow grid, the density p_t, a warped grid,
one particle's path. Arrays come out as float32 numpy, ready for plotly.

The exact field is that of the data blurred by a Gaussian of width ``EXACT_BANDWIDTH`` (``fmcore.Blurred``):
the field of bare points is singular at t = 1 and throws higher-order solvers off there.

Times follow fmcore: t=0 is noise, t=1 is data, sampling integrates forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

import fmcore
from fmcore import datasets, likelihood, metrics
from fmcore.solvers import SOLVERS, integrate, nfe_for

__all__ = [
    "ARROW_GRID",
    "DENSITY_GRID",
    "EXACT_POINTS",
    "N_FRAMES",
    "VIEW_BOX",
    "Dataset",
    "Flow",
    "Source",
    "density_frames",
    "energy_distance",
    "exact_source",
    "field_frames",
    "flow",
    "frame_times",
    "learned_source",
    "load_dataset",
    "model_density_frames",
    "noise",
    "single_path",
    "warp_frames",
]

VIEW_BOX = 3.5
"""The figures show [-VIEW_BOX, VIEW_BOX]^2: unit-spread data and N(0, I) noise fit with room."""
N_FRAMES = 51
"""Frames of the animation, t = 0, 0.02, ..., 1: smooth playback (NOTES: 100 doubles the payload)."""
ARROW_GRID = 15
DENSITY_GRID = 48
EXACT_POINTS = 500
"""Data points behind the exact field: its cost is O(particles x points) per evaluation."""
TRAIN_POINTS = 2000
"""Points of a preset handed to the trainer (a fresh sample). The trainer's loss floor and its
marginal target cost O(points) per sample: 2,000 keeps the floor under 0.2 s, 10,000 took 1.7 s."""
SHOWN_PATHS = 120
"""Particles whose whole path is drawn when paths are on."""
WARP_LINES, WARP_RESOLUTION = 13, 41


# -- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """The data z_1 the figure and the trainer use, in model coordinates (unit spread).

    Attributes:
        key: identity for caches (preset name and seed, or a fingerprint of the points).
        label: what the UI calls it.  shown: (m, 2) float32, the points behind the exact field
            (a subsample of at most ``EXACT_POINTS``).  train: (M, 2) float32 for the trainer.
        reference: (r, 2) float32 independent points to measure samples against.
    """

    key: str
    label: str
    shown: np.ndarray = field(repr=False)
    train: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)


@st.cache_data(max_entries=64, show_spinner=False)
def _preset(name: str, seed: int) -> Dataset:
    return Dataset(
        key=f"{name}:{seed}",
        label=datasets.DESCRIPTIONS.get(name, name),
        shown=datasets.sample(name, EXACT_POINTS, seed).numpy(),
        train=datasets.sample(name, TRAIN_POINTS, seed + 1).numpy(),
        reference=datasets.sample(name, 2000, seed + 2).numpy(),
    )


@st.cache_data(max_entries=64, show_spinner=False)
def _custom(points: np.ndarray, key: str) -> Dataset:
    normalized = datasets.from_points(points).data.numpy()
    shown = datasets.subsample(normalized, EXACT_POINTS, seed=0).astype(np.float32)
    # Shuffled: drawn points come stroke by stroke, and measures take prefixes of the reference.
    reference = np.random.default_rng(1).permutation(datasets.subsample(normalized, 2000, seed=1))
    return Dataset(
        key=f"custom:{key}",
        label="Your points",
        shown=shown,
        train=normalized,
        reference=reference.astype(np.float32),
    )


def load_dataset(name: str, seed: int, points: np.ndarray | None = None, points_key: str = "") -> Dataset:
    """A preset sample, or the user's points normalised by ``datasets.from_points``.

    Raises:
        ValueError: the user's points cannot describe a distribution (message for a person).
    """
    if points is not None:
        return _custom(points, points_key)
    return _preset(name, seed)


@st.cache_data(max_entries=16, show_spinner=False)
def noise(n: int, seed: int) -> np.ndarray:
    """(n, 2) float32 z_0 ~ N(0, I), the particles' start; the same seed gives the same particles."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, 2, generator=generator).numpy()


# -- sources of velocity -------------------------------------------------------------------------


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


EXACT_BANDWIDTH = 0.08
"""Blur of the data behind the exact field, in unit-spread coordinates (presets' own noise is ~0.05-0.1)."""


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


_HASH = {Source: lambda source: source.key, Dataset: lambda dataset: dataset.key}


def _at(source: Source, z: torch.Tensor, t: float) -> torch.Tensor:
    with torch.no_grad():
        return source.velocity(z, torch.tensor(float(t), dtype=z.dtype))


def _on_times(source: Source, points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(F, G, 2) velocities at every point for every time."""
    z = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    with torch.no_grad():
        if source.batch is not None:
            zz = z.repeat(len(times), 1)
            tt = torch.from_numpy(np.repeat(times.astype(np.float32), len(z)))
            return source.batch(zz, tt).reshape(len(times), len(z), 2).numpy().astype(np.float32)
        return np.stack([_at(source, z, t).numpy() for t in times]).astype(np.float32)


# -- the flow ------------------------------------------------------------------------------------


def frame_times(n_frames: int = N_FRAMES) -> np.ndarray:
    """(F,) float32 frame times from 0 (noise) to 1 (data)."""
    return np.linspace(0.0, 1.0, n_frames, dtype=np.float32)


def _interpolate(ts: np.ndarray, zs: np.ndarray, times: np.ndarray) -> np.ndarray:
    """States at ``times``, linear between the solver's nodes: what a step actually does."""
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


def _integrate(source: Source, z0: np.ndarray, solver: str, steps: int, grid: str):
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
    """Integrate the particles z0 from t=0 to 1 and sample the result at the frame times (uncached)."""
    trajectory = _integrate(source, z0, solver, steps, grid)
    ts = trajectory.ts.double().numpy()
    zs = trajectory.zs.numpy()
    times = frame_times()
    return Flow(
        times=times,
        particles=_interpolate(ts, zs, times.astype(np.float64)),
        nodes=ts.astype(np.float32),
        paths=zs[:, :SHOWN_PATHS].astype(np.float32),
        samples=zs[-1].astype(np.float32),
        nfe=int(trajectory.nfe),
        solver=solver,
        steps=int(steps),
        grid=grid,
        straightness=float(metrics.straightness(trajectory.zs, trajectory.ts.double())),
    )


@st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)
def flow(source: Source, n: int, seed: int, solver: str, steps: int, grid: str) -> Flow:
    """``compute_flow`` of n particles from ``noise(n, seed)``, cached by the source's key."""
    return compute_flow(source, noise(n, seed), solver, steps, grid)


def arrow_grid(size: int = ARROW_GRID) -> np.ndarray:
    """(size^2, 2) arrow positions covering the view."""
    axis = np.linspace(-VIEW_BOX * 0.92, VIEW_BOX * 0.92, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    return np.stack([x.ravel(), y.ravel()], axis=1)


@st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)
def field_frames(source: Source) -> np.ndarray:
    """(F, G, 2) velocity on ``arrow_grid()`` at every frame time."""
    return _on_times(source, arrow_grid(), frame_times())


def density_axis(size: int = DENSITY_GRID) -> np.ndarray:
    return np.linspace(-VIEW_BOX, VIEW_BOX, size, dtype=np.float32)


@st.cache_data(max_entries=24, show_spinner=False, hash_funcs=_HASH)
def density_frames(dataset: Dataset, schedule: str) -> np.ndarray:
    """(F, H, W) exact marginal density p_t on ``density_axis()``, for every frame time."""
    axis = density_axis()
    x, y = np.meshgrid(axis, axis)
    grid = torch.from_numpy(np.stack([x.ravel(), y.ravel()], axis=1))
    times = frame_times()
    data = torch.from_numpy(dataset.shown)
    zz = grid.repeat(len(times), 1)
    tt = torch.from_numpy(np.repeat(times, len(grid)))
    with torch.no_grad():
        log_p = fmcore.exact_log_density(zz, tt, data, fmcore.Blurred(schedule, EXACT_BANDWIDTH))
    return log_p.exp().reshape(len(times), len(axis), len(axis)).numpy().astype(np.float32)


MODEL_DENSITY_GRID = 24
"""The network's density needs one backward ODE solve with divergences per frame: a coarser grid."""


@st.cache_data(
    max_entries=12, show_spinner="Integrating the network's log-likelihood for every frame…", hash_funcs=_HASH
)
def model_density_frames(
    source: Source, size: int = MODEL_DENSITY_GRID, times: tuple[float, ...] | None = None
) -> np.ndarray:
    """(F, size, size) the density p_t of the flow ``source`` on ``density_axis(size)``, at every
    frame time (or at ``times``).

    ``fmcore.likelihood.log_likelihood`` with ``t1`` = the frame time: the change of variables from
    N(0, I) at t = 0. Heun with about 12 steps per unit time is plenty for a picture.
    """
    axis = density_axis(size)
    x, y = np.meshgrid(axis, axis)
    grid = torch.from_numpy(np.stack([x.ravel(), y.ravel()], axis=1))
    frames = []
    for t in frame_times() if times is None else times:
        if t == 0.0:
            log_p = -0.5 * grid.square().sum(1) - np.log(2 * np.pi)
        else:
            steps = max(2, round(12 * float(t)))
            log_p = likelihood.log_likelihood(source.velocity, grid, steps=steps, solver="heun", t1=float(t))
        frames.append(log_p.exp().reshape(size, size).numpy())
    return np.stack(frames).astype(np.float32)


def warp_start(lines: int = WARP_LINES, resolution: int = WARP_RESOLUTION) -> np.ndarray:
    """(2 * lines, resolution, 2) straight grid lines in noise space at t = 0."""
    ticks = np.linspace(-2.4, 2.4, lines, dtype=np.float32)
    along = np.linspace(-2.4, 2.4, resolution, dtype=np.float32)
    horizontal = np.stack(np.broadcast_arrays(along[None, :], ticks[:, None]), axis=-1)
    vertical = np.stack(np.broadcast_arrays(ticks[:, None], along[None, :]), axis=-1)
    return np.concatenate([horizontal, vertical]).astype(np.float32)


@st.cache_data(max_entries=24, show_spinner=False, hash_funcs=_HASH)
def warp_frames(source: Source, solver: str, steps: int, grid: str) -> np.ndarray:
    """(F, L, R, 2): the noise-space grid lines carried by the flow, at every frame time."""
    start = warp_start()
    moved = compute_flow(source, start.reshape(-1, 2), solver, steps, grid).particles
    return moved.reshape(len(moved), *start.shape)


@dataclass(frozen=True)
class SinglePath:
    """One particle: the solver's nodes and the ODE's own (finely solved) path.

    Attributes:
        start: (2,).  nodes: (K+1, 2) where the solver puts it.  exact: (R, 2) a fine RK4 solve.
        particle: (F, 2) its position at the frame times (solver, linear between nodes).
    """

    start: np.ndarray
    nodes: np.ndarray
    exact: np.ndarray
    particle: np.ndarray


@st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)
def single_path(source: Source, start: tuple[float, float], solver: str, steps: int, grid: str) -> SinglePath:
    """The trajectory of one particle that starts at ``start`` (noise space, t = 0)."""
    z0 = np.asarray([start], dtype=np.float32)
    coarse = compute_flow(source, z0, solver, steps, grid)
    fine = _integrate(source, z0, "rk4", 100, "uniform")
    return SinglePath(
        start=z0[0],
        nodes=coarse.paths[:, 0],
        exact=fine.zs[:, 0].numpy().astype(np.float32),
        particle=coarse.particles[:, 0],
    )


@st.cache_data(max_entries=64, show_spinner=False)
def energy_distance(samples: np.ndarray, reference: np.ndarray) -> float | None:
    """Energy distance between generated samples and independent data (0 = same distribution).

    None when either holds fewer than 2 points (data of 2 or 3 points leaves a reference of 1):
    the estimate needs pairs within each sample.
    """
    if min(len(samples), len(reference)) < 2:
        return None
    return float(metrics.energy_distance(samples, reference))


def reference_for(dataset: Dataset, n: int) -> np.ndarray:
    """Independent data to measure n samples against: as many points, at most half the reference."""
    return dataset.reference[: min(n, len(dataset.reference) // 2)]


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=_HASH)
def noise_floor(dataset: Dataset, n: int, splits: int = 4) -> float | None:
    """How far apart two independent data samples of n points typically measure: the best any
    sampler can show. Mean |energy distance| over a few random halvings of the reference (one
    draw of an unbiased estimate can land anywhere near 0, even below it). None for data of
    fewer than 4 points: halves of 1 point cannot be measured."""
    half = min(n, len(dataset.reference) // 2)
    if half < 2:
        return None
    rng = np.random.default_rng(0)
    values = []
    for _ in range(splits):
        order = rng.permutation(len(dataset.reference))
        a, b = dataset.reference[order[:half]], dataset.reference[order[half : 2 * half]]
        values.append(abs(float(metrics.energy_distance(a, b))))
    return float(np.mean(values))


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
