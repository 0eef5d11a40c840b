"""Lesson 4 (ODE solvers): every solver on the same exact field, its error against NFE, the folk
rule of thumb measured, the point cloud's stiffness near t = 1, and where the time grid puts steps."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from fmcore.solvers import TIME_GRIDS, Trajectory, integrate

from .shared import Case, blurred, exact_field, lesson_data, lesson_noise, measured_case, reference_sample

__all__ = [
    "CURVE_STEPS",
    "DOPRI_TOLERANCES",
    "FIELD_KINDS",
    "FLOAT32_FLOOR",
    "GOOD_ERROR",
    "RULE_OF_THUMB",
    "SOLVER_PARTICLES",
    "ErrorCurve",
    "SolverRun",
    "Stiffness",
    "error_curves",
    "few_steps_cases",
    "fitted_slope",
    "grid_errors",
    "nfe_to_reach",
    "rule_of_thumb",
    "rule_of_thumb_table",
    "rule_of_thumb_verdict",
    "solver_runs",
    "stiffness",
]


FIELD_KINDS = {
    "point cloud": "the exact field of the 500 data points themselves (stiff near t = 1)",
    "blurred": "the exact field of the data blurred by N(0, 0.08²) (the Playground's exact field)",
}
CURVE_STEPS = (1, 2, 4, 8, 16, 32, 64)
DOPRI_TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4)
GOOD_ERROR = 0.05
"""An endpoint error below this (5% of the data's spread) is invisible in the figures."""


def _field_velocity(preset: str, field: str):
    if field not in FIELD_KINDS:
        raise ValueError(f"unknown field {field!r}; choose one of {', '.join(FIELD_KINDS)}")
    schedule = "linear" if field == "point cloud" else blurred()
    return exact_field(lesson_data(preset), schedule), schedule


SOLVER_PARTICLES = 160
"""Particles the solver lesson measures on; every measurement uses a prefix of the same draws."""


@functools.lru_cache(maxsize=8)
def _reference(preset: str, field: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z0, z_ref)``: ``SOLVER_PARTICLES`` noise draws and the ODE's own end points for them.

    The end points come from adaptive Dormand-Prince in float64 at rtol = atol = 1e-6, far below
    any error the lesson shows; particles move independently, so a prefix of these is the
    reference for a prefix of the particles.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0 = lesson_noise(SOLVER_PARTICLES, seed)
    end = integrate(velocity, z0.double(), "dopri5", 1, schedule=schedule, rtol=1e-6, atol=1e-6).z_end
    return z0, end.float()


def _endpoint_error(trajectory: Trajectory, reference: torch.Tensor) -> float:
    return float((trajectory.z_end - reference).norm(dim=1).mean())


@dataclass(frozen=True)
class SolverRun:
    """One solver at one step count: where it put the particles, what it cost, how far off it ended.

    Attributes:
        solver: the ``SOLVERS`` key.  ts: (K+1,) grid times (dopri5: read off its dense output).
        zs: (K+1, n, 2) states at them.
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
    preset: str, field: str, steps: int, grid: str, solvers: tuple[str, ...], n: int = 60, seed: int = 0
) -> tuple[np.ndarray, list[SolverRun]]:
    """Every solver in ``solvers`` on the same particles, same field, same step count and grid.

    dopri5 is adaptive (rtol = atol = 1e-3): its error estimate picks its internal steps, and it reads
    the ``steps`` grid times off each accepted step's dense output, so its NFE follows the tolerance
    and the field, not ``steps``.

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
    preset: str, field: str, grid: str, solvers: tuple[str, ...], n: int = 80, seed: int = 0
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
    """The folk rule "Euler ~100 steps, RK4 ~50, DPM-Solver ~20", measured on ``SOLVER_PARTICLES``.

    Returns:
        One row per entry of ``RULE_OF_THUMB``: solver, steps, NFE (counted), the endpoint error
        against the reference solve, and whether it is below ``GOOD_ERROR``.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = _reference(preset, field, seed)
    rows = []
    for solver, steps in RULE_OF_THUMB:
        trajectory = integrate(velocity, z0, solver, steps, schedule=schedule, grid=grid)
        error = _endpoint_error(trajectory, reference)
        rows.append(
            dict(
                solver=solver, steps=steps, nfe=trajectory.nfe, endpoint_error=error, good=error < GOOD_ERROR
            )
        )
    return rows


def few_steps_cases(preset: str, field: str = "blurred", n: int = 400, seed: int = 0) -> list[Case]:
    """Euler with 1, 2 and 50 steps on the same particles (one step from t = 0 lands on E[z_1])."""
    velocity, schedule = _field_velocity(preset, field)
    z0 = lesson_noise(n, seed)
    fresh = reference_sample(preset)
    panels = []
    for steps in (1, 2, 50):
        trajectory = integrate(velocity, z0, "euler", steps, schedule=schedule)
        end = trajectory.z_end
        panels.append(
            measured_case(
                f"Euler, {steps} steps = {trajectory.nfe} NFE", end, fresh, "data", wrong=steps < 50
            )
        )
    return panels


def grid_errors(
    preset: str, field: str, solver: str = "rk4", steps: int = 50, seed: int = 0
) -> dict[str, float]:
    """Endpoint error of one solver at one step count on every registered time grid (``TIME_GRIDS``)."""
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = _reference(preset, field, seed)
    return {
        grid: _endpoint_error(integrate(velocity, z0, solver, steps, schedule=schedule, grid=grid), reference)
        for grid in TIME_GRIDS
    }


@dataclass(frozen=True)
class Stiffness:
    """Speed and stiffness of the point cloud's exact field along its own paths, near t = 1.

    Attributes:
        ts: (k,) times.  speed: (k,) mean |v(z_t, t)| over the particles: stays O(1).
        stiffness: (k,) mean -div v / d, the average eigenvalue of -dv/dz: grows like 1/(1 - t).
    """

    ts: np.ndarray
    speed: np.ndarray
    stiffness: np.ndarray


def stiffness(
    preset: str, ts: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999), n: int = 40, seed: int = 0
) -> Stiffness:
    """Along exact paths (tight float64 dopri5) the speed stays bounded while dv/dz ~ -I/(1 - t).

    Near t = 1 the posterior picks one data point x, so v = (x - z)/(1 - t) and dv/dz = -I/(1 - t),
    while x - z_t shrinks like (1 - t): the field is stiff, not fast.
    """
    velocity, _ = _field_velocity(preset, "point cloud")
    z = lesson_noise(n, seed).double()
    t_prev, speed, stiff = 0.0, [], []
    for t in ts:
        z = integrate(velocity, z, "dopri5", 1, t0=t_prev, t1=t, rtol=1e-8, atol=1e-8).z_end
        speed.append(float(velocity(z, t).norm(dim=1).mean()))
        stiff.append(float(-fmcore.divergence(velocity, z, t).mean() / z.shape[1]))
        t_prev = t
    return Stiffness(np.asarray(ts), np.asarray(speed), np.asarray(stiff))


def rule_of_thumb_table(rows: dict[str, list[dict]], labels: dict[str, str]) -> list[dict]:
    """``rule_of_thumb`` rows of every field as display rows (field, solver, steps, NFE, error, holds?)."""
    return [
        {
            "field": field,
            "solver": labels[row["solver"]],
            "steps": row["steps"],
            "NFE": row["nfe"],
            "endpoint error": f"{row['endpoint_error']:.2g}",
            "holds?": "yes" if row["good"] else "NO",
        }
        for field, field_rows in rows.items()
        for row in field_rows
    ]


def rule_of_thumb_verdict(rows: dict[str, list[dict]], labels: dict[str, str]) -> str:
    """One sentence per field saying where the measured rule held and where not (follows the table)."""
    sentences = []
    for field, field_rows in rows.items():
        failed = [labels[r["solver"]] for r in field_rows if not r["good"]]
        good = [r for r in field_rows if r["good"]]
        cheapest = min(good, key=lambda r: r["nfe"]) if good else None
        sentences.append(
            (
                f"On the {field} field the rule holds for every solver"
                if not failed
                else f"On the {field} field it fails for {', '.join(failed)}"
            )
            + (
                f"; the cheapest good one is {labels[cheapest['solver']]} at {cheapest['nfe']} NFE."
                if cheapest
                else "."
            )
        )
    return (
        " ".join(sentences)
        + " Measured on these fields only: a trained network or another schedule moves the numbers."
    )
