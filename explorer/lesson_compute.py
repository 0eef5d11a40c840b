"""What the lessons compute: small deterministic runs of fmcore, returned as numpy arrays.

Every function here is pure (the same arguments give the same result) and returns plain arrays and
frozen dataclasses, so a page can wrap it in ``st.cache_data`` and a test can call it directly.
Sizes are chosen so that each lesson's first run takes seconds on a laptop CPU: the exact field of
a ``DATA_POINTS`` sample costs O(n m) per evaluation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from fmcore import datasets, metrics
from fmcore.solvers import Trajectory, integrate

from .compute import EXACT_BANDWIDTH, Smoothed

__all__ = [
    "DATA_POINTS",
    "FIELDS",
    "Panel",
    "SolverRun",
    "error_curves",
    "few_steps_cases",
    "fitted_slope",
    "nfe_to_reach",
    "noise",
    "reference_sample",
    "rule_of_thumb",
    "solver_runs",
    "time_direction_cases",
]

DATA_POINTS = 500
"""Size of the empirical data set whose exact marginal field the lessons integrate."""
REFERENCE_POINTS = 1000
"""A second, independent sample of the preset: what generated samples are compared with."""


@dataclass(frozen=True)
class Panel:
    """One small scatter: a title, its (n, 2) points, a one-line measured note, optional paths.

    Attributes:
        wrong: drawn in the error colour (a pitfall's result).  paths: (K+1, p, 2) states at the
        solver's nodes, drawn as polylines with a dot per node.
    """

    title: str
    points: np.ndarray
    note: str
    wrong: bool = False
    paths: np.ndarray | None = None


def noise(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 2) draws of z_0 ~ N(0, I), fixed by ``seed``."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _data(preset: str, seed: int = 0) -> torch.Tensor:
    """The preset's data set behind the exact field: the same sample the Playground draws."""
    return datasets.sample(preset, DATA_POINTS, seed=seed)


def _exact_velocity(data: torch.Tensor, schedule):
    return lambda z, t: fmcore.exact_velocity(z, t, data, schedule)


def _blurred(schedule: str = "linear"):
    """The Playground's exact field: the data blurred by ``EXACT_BANDWIDTH`` (finite at t = 1)."""
    return Smoothed(schedule, EXACT_BANDWIDTH)


def reference_sample(preset: str) -> np.ndarray:
    """(REFERENCE_POINTS, 2) fresh points of the preset, independent of the lesson's data set."""
    return datasets.sample(preset, REFERENCE_POINTS, seed=1).numpy()


def _energy_note(points: torch.Tensor, reference: np.ndarray, what: str) -> str:
    return f"energy distance to {what}: {metrics.energy_distance(points, reference):.3f}"


def time_direction_cases(preset: str, n: int = 300, steps: int = 100, seed: int = 0) -> list[Panel]:
    """Right and wrong uses of the time direction, each integrated with Euler and measured.

    The field is the Playground's exact field (``_blurred``), the one lesson 1 animates.

    Returns six panels: the data; sampling forward (right); the data integrated backward to noise
    and forward again (a round trip); and the two confusions: noise integrated from t=1 down to 0,
    and forward sampling with the field's time reversed, ``v(z, 1 - t)``.
    """
    data = _data(preset)
    v = _exact_velocity(data, _blurred())
    reference = reference_sample(preset)
    gaussian = noise(REFERENCE_POINTS, seed=seed + 1).numpy()
    z0 = noise(n, seed)

    def run(velocity, z, t0, t1):
        return integrate(velocity, z, "euler", steps, t0=t0, t1=t1, schedule="linear").z_end

    forward = run(v, z0, 0.0, 1.0)
    encoded = run(v, data[:n], 1.0, 0.0)
    decoded = run(v, encoded, 0.0, 1.0)
    backward_from_noise = run(v, z0, 1.0, 0.0)
    reversed_time = run(lambda z, t: v(z, 1.0 - t), z0, 0.0, 1.0)
    round_trip_error = (decoded - data[:n]).norm(dim=1)
    runaway = float(backward_from_noise.norm(dim=1).max())
    return [
        Panel("The data (t = 1)", data[:n].numpy(), f"{n} of the {DATA_POINTS} points the field is built on"),
        Panel("Sampling: noise, forward t: 0 → 1", forward.numpy(), _energy_note(forward, reference, "data")),
        Panel(
            "Wrong: forward with v(z, 1 − t)",
            reversed_time.numpy(),
            _energy_note(reversed_time, reference, "data"),
            wrong=True,
        ),
        Panel(
            "Encoding: data, backward t: 1 → 0", encoded.numpy(), _energy_note(encoded, gaussian, "N(0, I)")
        ),
        Panel(
            "Round trip: that noise, forward again",
            decoded.numpy(),
            f"mean distance to the starting data point: {float(round_trip_error.mean()):.4f}",
        ),
        Panel(
            "Wrong: noise, backward t: 1 → 0",
            backward_from_noise.numpy(),
            f"farthest particle at |z| = {runaway:.3g}: it flies off",
            wrong=True,
        ),
    ]


# -- lesson 4: ODE solvers -----------------------------------------------------------------------

FIELDS = {
    "point cloud": "the exact field of the 500 data points themselves (stiff near t = 1)",
    "blurred": "the exact field of the data blurred by N(0, 0.08²) (the Playground's exact field)",
}
CURVE_STEPS = (1, 2, 4, 8, 16, 32, 64)
DOPRI_TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4)
GOOD_ERROR = 0.05
"""An endpoint error below this (5% of the data's spread) is invisible in the figures."""


def _field_velocity(preset: str, field: str):
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; choose one of {', '.join(FIELDS)}")
    schedule = "linear" if field == "point cloud" else _blurred()
    return _exact_velocity(_data(preset), schedule), schedule


SOLVER_PARTICLES = 200
"""Particles the solver lesson measures on; every measurement uses a prefix of the same draws."""


@functools.lru_cache(maxsize=8)
def _reference(preset: str, field: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z0, z_ref)``: ``SOLVER_PARTICLES`` noise draws and the ODE's own end points for them.

    The end points come from adaptive Dormand-Prince in float64 at rtol = atol = 1e-7, far below
    any error the lesson shows; particles move independently, so a prefix of these is the
    reference for a prefix of the particles.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0 = noise(SOLVER_PARTICLES, seed)
    end = integrate(velocity, z0.double(), "dopri5", 1, schedule=schedule, rtol=1e-7, atol=1e-7).z_end
    return z0, end.float()


def _endpoint_error(trajectory: Trajectory, reference: torch.Tensor) -> float:
    return float((trajectory.z_end - reference).norm(dim=1).mean())


@dataclass(frozen=True)
class SolverRun:
    """One solver at one step count: where it put the particles, what it cost, how far off it ended.

    Attributes:
        solver: the ``SOLVERS`` key.  ts: (K+1,) grid times.  zs: (K+1, n, 2) states at them.
        steps: solver steps (accepted internal steps for dopri5).  nfe: velocity evaluations (counted).
        error: mean |z_end - z_ref| over particles, against a tight adaptive solve of the same ODE.
    """

    solver: str
    ts: np.ndarray
    zs: np.ndarray
    steps: int
    nfe: int
    error: float


def solver_runs(
    preset: str, field: str, steps: int, grid: str, solvers: tuple[str, ...], n: int = 80, seed: int = 0
) -> tuple[np.ndarray, list[SolverRun]]:
    """Every solver in ``solvers`` on the same particles, same field, same step count and grid.

    dopri5 is adaptive: it lands on the same ``steps`` grid times at rtol = atol = 1e-3 and takes
    the internal steps its error estimate asks for.

    Returns:
        ``(reference_end (n, 2), runs)``.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = (x[:n] for x in _reference(preset, field, seed))
    runs = []
    for solver in solvers:
        trajectory = integrate(
            velocity, z0, solver, steps, schedule=schedule, grid=grid, rtol=1e-3, atol=1e-3
        )
        runs.append(
            SolverRun(
                solver,
                trajectory.ts.double().numpy(),
                trajectory.zs.numpy(),
                trajectory.steps,
                trajectory.nfe,
                _endpoint_error(trajectory, reference),
            )
        )
    return reference.numpy(), runs


@dataclass(frozen=True)
class ErrorCurve:
    """Endpoint error against NFE for one solver, and the fitted log-log slope (−order)."""

    solver: str
    nfe: np.ndarray
    error: np.ndarray
    slope: float


FLOAT32_FLOOR = 2e-5
"""Endpoint errors below this are float32 rounding, not the solver's truncation error."""


def fitted_slope(nfe: np.ndarray, error: np.ndarray, last: int = 4) -> float:
    """Least-squares slope of log(error) on log(NFE) over the last ``last`` points above the float32 floor."""
    keep = error > FLOAT32_FLOOR
    x, y = np.log(nfe[keep][-last:]), np.log(error[keep][-last:])
    return float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 else float("nan")


def error_curves(
    preset: str, field: str, grid: str, solvers: tuple[str, ...], n: int = 100, seed: int = 0
) -> list[ErrorCurve]:
    """Endpoint error vs NFE: fixed-step solvers over ``CURVE_STEPS``, dopri5 over ``DOPRI_TOLERANCES``."""
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = (x[:n] for x in _reference(preset, field, seed))
    curves = []
    for solver in solvers:
        settings = (
            [dict(steps=1, rtol=tol, atol=tol) for tol in DOPRI_TOLERANCES]
            if solver == "dopri5"
            else [dict(steps=k) for k in CURVE_STEPS]
        )
        nfe, error = [], []
        for options in settings:
            trajectory = integrate(velocity, z0, solver, schedule=schedule, grid=grid, **options)
            nfe.append(trajectory.nfe)
            error.append(_endpoint_error(trajectory, reference))
        nfe_a, error_a = np.asarray(nfe, dtype=float), np.asarray(error)
        order = np.argsort(nfe_a, kind="stable")
        nfe_a, error_a = nfe_a[order], error_a[order]
        curves.append(ErrorCurve(solver, nfe_a, error_a, fitted_slope(nfe_a, error_a)))
    return curves


def nfe_to_reach(curve: ErrorCurve, target: float) -> float:
    """NFE at which the curve first drops below ``target``, interpolated in log-log; inf if never."""
    below = np.flatnonzero(curve.error <= target)
    if len(below) == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return float(curve.nfe[0])
    x0, x1 = np.log(curve.nfe[i - 1 : i + 1])
    y0, y1 = np.log(curve.error[i - 1 : i + 1])
    return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))


RULE_OF_THUMB = (("euler", 100), ("rk4", 50), ("dpm++2m", 20))


def rule_of_thumb(preset: str, field: str, grid: str, seed: int = 0) -> list[dict]:
    """The folk rule "Euler ~100 steps, RK4 ~50, DPM-Solver ~20", measured.

    Returns:
        One row per rule entry: solver, steps, NFE (counted), endpoint error and energy distance of
        the samples to an independent data sample (and the same for the reference end points).
    """
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = _reference(preset, field, seed)
    fresh = reference_sample(preset)
    rows = []
    for solver, steps in RULE_OF_THUMB:
        trajectory = integrate(velocity, z0, solver, steps, schedule=schedule, grid=grid)
        error = _endpoint_error(trajectory, reference)
        rows.append(
            dict(
                solver=solver,
                steps=steps,
                nfe=trajectory.nfe,
                endpoint_error=error,
                energy_distance=metrics.energy_distance(trajectory.z_end, fresh),
                good=error < GOOD_ERROR,
            )
        )
    rows.append(
        dict(
            solver="dopri5 (reference)",
            steps=None,
            nfe=None,
            endpoint_error=0.0,
            energy_distance=metrics.energy_distance(reference, fresh),
            good=True,
        )
    )
    return rows


def few_steps_cases(preset: str, field: str = "blurred", n: int = 400, seed: int = 0) -> list[Panel]:
    """Euler with 2 steps against 50, on the same particles."""
    velocity, schedule = _field_velocity(preset, field)
    z0 = noise(n, seed)
    fresh = reference_sample(preset)
    panels = []
    for steps in (2, 50):
        trajectory = integrate(velocity, z0, "euler", steps, schedule=schedule)
        end = trajectory.z_end
        panels.append(
            Panel(
                f"Euler, {steps} steps = {trajectory.nfe} NFE",
                end.numpy(),
                _energy_note(end, fresh, "data"),
                wrong=steps == 2,
            )
        )
    return panels
