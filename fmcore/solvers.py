"""ODE solvers for ``dz/dt = v(z, t)``: one step function per method, one loop that runs them.

Sampling integrates forward from noise (t=0) to data (t=1); encoding data into noise, and the
likelihood, integrate backward (t0 > t1). Every method is a *step function*

    step(v, z, t, t_next, state) -> z_next

registered in ``SOLVERS`` under the name the UI shows. ``integrate`` owns everything else: the time
grid (a ``TIME_GRIDS`` entry), counting the velocity evaluations ("NFE": every call of ``v``,
counted, never computed by formula) and keeping the states. ``state`` is a small per-integration
``SolverState``: the schedule, the tolerances and a ``memory`` dict in which a multistep method keeps
its previous prediction and an adaptive one its step size, so no method needs the loop to know it.

DPM-Solver++ (Lu et al., 2022) is an exponential integrator in the log-SNR
``lambda_t = log(alpha_t / sigma_t)``. Written for the endpoint one is travelling towards (data
``z_1`` going forward, noise ``z_0`` going backward), the first-order step from s to t is

    z_t = (b_t / b_s) z_s + a_t (1 - e^{-h}) P(z_s, s),     h = lambda'_t - lambda'_s > 0,

with ``(a, b, lambda') = (alpha, sigma, lambda)`` and ``P`` the data prediction going forward, and
``(sigma, alpha, -lambda)`` with the noise prediction going backward (the same formula with the
roles of data and noise swapped). The 2M variant replaces ``P`` by a linear extrapolation through
the previous step's prediction.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .paths import to_endpoints
from .schedules import Schedule, get_schedule

__all__ = [
    "SOLVERS",
    "TIME_GRIDS",
    "GridInfo",
    "SolverInfo",
    "SolverState",
    "Trajectory",
    "integrate",
    "nfe_for",
    "time_grid",
]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Trajectory:
    """The states of one integration.

    Attributes:
        ts: (K+1,) the grid times, from t0 to t1.  zs: (K+1, n, d) the states at those times.
        nfe: velocity evaluations made (counted).  solver: the ``SOLVERS`` key used.
        steps: solver steps taken: K for fixed-step methods, accepted internal steps for adaptive ones.
    """

    ts: torch.Tensor
    zs: torch.Tensor
    nfe: int
    solver: str
    steps: int

    @property
    def z_end(self) -> torch.Tensor:
        """(n, d) the final state, at ``ts[-1]``."""
        return self.zs[-1]


@dataclass
class SolverState:
    """What a step function may need besides ``(v, z, t, t_next)``; one per integration.

    Attributes:
        schedule: the path's schedule, or None.  rtol, atol: tolerances of adaptive methods.
        memory: free for a method to carry values from one step to the next (multistep history,
            adaptive step size).  steps: internal steps taken, kept by adaptive methods.
    """

    schedule: Schedule | None = None
    rtol: float = 1e-5
    atol: float = 1e-5
    memory: dict = field(default_factory=dict)
    steps: int = 0


StepFunction = Callable[[Velocity, torch.Tensor, torch.Tensor, torch.Tensor, SolverState], torch.Tensor]


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver: its step function and what the UI shows about it."""

    fn: StepFunction
    order: int
    nfe_per_step: int | None
    label: str
    needs_schedule: bool = False
    adaptive: bool = False


SOLVERS: dict[str, SolverInfo] = {}


def register(name: str, *, order: int, nfe_per_step: int | None, label: str, **flags):
    """Add a step function to ``SOLVERS`` under ``name`` (flags: ``needs_schedule``, ``adaptive``)."""

    def decorate(fn: StepFunction) -> StepFunction:
        SOLVERS[name] = SolverInfo(fn, order, nfe_per_step, label, **flags)
        return fn

    return decorate


# ---------------------------------------------------------------------------------------------
# Runge-Kutta methods with a fixed step h = t_next - t (negative when integrating backward).


@register("euler", order=1, nfe_per_step=1, label="Euler (order 1, 1 NFE/step)")
def euler(v, z, t, t_next, state):
    return z + (t_next - t) * v(z, t)


@register("midpoint", order=2, nfe_per_step=2, label="Midpoint (order 2, 2 NFE/step)")
def midpoint(v, z, t, t_next, state):
    h = t_next - t
    return z + h * v(z + 0.5 * h * v(z, t), t + 0.5 * h)


@register("heun", order=2, nfe_per_step=2, label="Heun (order 2, 2 NFE/step)")
def heun(v, z, t, t_next, state):
    h = t_next - t
    k1 = v(z, t)
    k2 = v(z + h * k1, t_next)
    return z + 0.5 * h * (k1 + k2)


@register("rk4", order=4, nfe_per_step=4, label="Runge-Kutta 4 (order 4, 4 NFE/step)")
def rk4(v, z, t, t_next, state):
    h = t_next - t
    k1 = v(z, t)
    k2 = v(z + 0.5 * h * k1, t + 0.5 * h)
    k3 = v(z + 0.5 * h * k2, t + 0.5 * h)
    k4 = v(z + h * k3, t_next)
    return z + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


# ---------------------------------------------------------------------------------------------
# DPM-Solver++(2M): exponential integrator in log-SNR, multistep on the endpoint prediction.

_VANISHES = 1e-12  # alpha or sigma below this is an exact 0 that rounding missed (cos(pi/2) = 6e-17)


def _towards(schedule: Schedule, t: float, forward: bool):
    """``(a, b, lambda')`` at t for the endpoint we travel towards, in float64, ends snapped to 0/inf."""
    s = schedule(torch.tensor(t, dtype=torch.float64))
    alpha, sigma = float(s.alpha), float(s.sigma)
    a, b = (alpha, sigma) if forward else (sigma, alpha)
    a, b = (0.0 if a < _VANISHES else a), (0.0 if b < _VANISHES else b)
    if a == 0.0:
        return a, b, -math.inf
    if b == 0.0:
        return a, b, math.inf
    lam = float(schedule.log_snr(torch.tensor(t, dtype=torch.float64)))
    return a, b, (lam if forward else -lam)


_SINGULAR_INSET = 1e-3


def _endpoint_prediction(v, z, t: float, schedule: Schedule, forward: bool) -> torch.Tensor:
    """Data prediction E[z_1 | z_t] (forward) or noise prediction E[z_0 | z_t] (backward) from v."""
    t_eval = min(t, schedule.t_max)
    s = schedule(torch.tensor(t_eval, dtype=torch.float64))
    if s.d_alpha * s.sigma - s.d_sigma * s.alpha <= 0:
        # v = d_alpha z_1 + d_sigma z_0 carries no information where both derivatives vanish
        # (polynomial schedules at t=0): read the prediction just inside, where it is defined.
        t_eval = _SINGULAR_INSET
        s = schedule(torch.tensor(t_eval, dtype=torch.float64))
    z1, z0 = to_endpoints(v(z, torch.tensor(t_eval, dtype=z.dtype, device=z.device)), "velocity", z, s)
    return z1 if forward else z0


@register(
    "dpm++2m",
    order=2,
    nfe_per_step=1,
    label="DPM-Solver++ 2M (order 2, 1 NFE/step, log-SNR)",
    needs_schedule=True,
)
def dpm_solver_pp_2m(v, z, t, t_next, state):
    schedule = state.schedule
    t, t_next = float(t), float(t_next)
    if t_next == t:  # float32 grids can round two times near t=1 onto one
        return z
    forward = t_next > t
    _, b_s, lam_s = _towards(schedule, t, forward)
    a_t, b_t, lam_t = _towards(schedule, t_next, forward)
    if b_s == 0.0:
        raise ValueError(f"dpm++2m cannot start at t={t}: the path is already at its end point there")
    prediction = _endpoint_prediction(v, z, t, schedule, forward)
    h = lam_t - lam_s  # +inf when starting where a=0 (pure noise) or arriving where b=0 (t=1)
    previous = state.memory.get("dpm++2m")
    state.memory["dpm++2m"] = (lam_s, prediction)
    extrapolated = prediction
    # Second order needs the previous step and two finite log-SNR steps; at an infinite step
    # (the first from pure noise, the last onto the data) the first-order update is the exact limit.
    if previous is not None and math.isfinite(h) and math.isfinite(lam_s - previous[0]):
        half_over_r = 0.5 * h / (lam_s - previous[0])
        extrapolated = (1.0 + half_over_r) * prediction - half_over_r * previous[1]
    one_minus_exp = 1.0 if math.isinf(h) else -math.expm1(-h)
    return (b_t / b_s) * z + (a_t * one_minus_exp) * extrapolated


# ---------------------------------------------------------------------------------------------
# Dormand-Prince 5(4), adaptive: error-controlled internal steps that land on every grid time.

_DOPRI_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_DOPRI_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_DOPRI_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)  # 5th order, also row 7
# 5th minus embedded 4th order weights; the 7th stage (FSAL: v at the new point) enters the error.
_DOPRI_E = (
    35 / 384 - 5179 / 57600,
    0.0,
    500 / 1113 - 7571 / 16695,
    125 / 192 - 393 / 640,
    -2187 / 6784 + 92097 / 339200,
    11 / 84 - 187 / 2100,
    -1 / 40,
)
_MAX_INTERNAL_STEPS = 100_000


def _scaled_max(x: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor, state: SolverState) -> float:
    """max |x| / (atol + rtol max(|y|, |y_new|)): every component must meet the tolerance."""
    scale = state.atol + state.rtol * torch.maximum(y.abs(), y_new.abs())
    return float((x.abs() / scale).max())


def _initial_step(v, z, t: float, k1, span: float, state: SolverState) -> float:
    """Hairer, Norsett & Wanner's starting step (II.4): one extra evaluation; signed like span."""
    d0, d1 = _scaled_max(z, z, z, state), _scaled_max(k1, z, z, state)
    h0 = 1e-6 if min(d0, d1) < 1e-5 else 0.01 * d0 / d1
    h0 = math.copysign(min(h0, abs(span)), span)
    k1_probe = v(z + h0 * k1, torch.tensor(t + h0, dtype=z.dtype, device=z.device))
    d2 = _scaled_max(k1_probe - k1, z, z, state) / abs(h0)
    h1 = max(1e-6, abs(h0) * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    return math.copysign(min(100.0 * abs(h0), h1), span)


@register("dopri5", order=5, nfe_per_step=None, label="Dormand-Prince 5(4) (adaptive)", adaptive=True)
def dopri5(v, z, t, t_next, state):
    t, t_end = float(t), float(t_next)
    span = t_end - t
    if span == 0.0:
        return z

    def as_time(s: float) -> torch.Tensor:
        return torch.tensor(s, dtype=z.dtype, device=z.device)

    memory = state.memory
    if "dopri5_k1" not in memory:  # first interval: the first-same-as-last stage and a first step
        memory["dopri5_k1"] = v(z, as_time(t))
        memory["dopri5_h"] = _initial_step(v, z, t, memory["dopri5_k1"], span, state)
    h = math.copysign(abs(memory["dopri5_h"]), span)
    k1 = memory["dopri5_k1"]
    while (t_end - t) * span > 0.0:
        if state.steps >= _MAX_INTERNAL_STEPS:
            raise RuntimeError(f"dopri5 took {_MAX_INTERNAL_STEPS} steps without finishing: loosen rtol/atol")
        lands = abs(h) >= abs(t_end - t)
        h_try = t_end - t if lands else h
        ks = [k1]
        for c, row in zip(_DOPRI_C[1:], _DOPRI_A[1:], strict=True):
            z_stage = z + h_try * sum(a * k for a, k in zip(row, ks, strict=True))
            ks.append(v(z_stage, as_time(t + c * h_try)))
        z_new = z + h_try * sum(b * k for b, k in zip(_DOPRI_B, ks, strict=True) if b != 0.0)
        k_new = v(z_new, as_time(t + h_try))
        error_terms = zip(_DOPRI_E, [*ks, k_new], strict=True)
        error = _scaled_max(h_try * sum(e * k for e, k in error_terms if e != 0.0), z, z_new, state)
        if not math.isfinite(error):
            error = math.inf
        factor = 10.0 if error == 0.0 else min(10.0, max(0.2, 0.9 * error**-0.2))
        if error <= 1.0:
            t, z, k1 = (t_end if lands else t + h_try), z_new, k_new
            state.steps += 1
            # A step cut short to land on the grid says little about the step the field allows.
            h = h if lands and factor >= 1.0 and factor * abs(h_try) < abs(h) else h_try * factor
        else:
            h = h_try * factor
            if abs(h) < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"dopri5 step size underflow at t={t}: the field is not finite there?")
    memory["dopri5_k1"], memory["dopri5_h"] = k1, h
    return z


# ---------------------------------------------------------------------------------------------
# Time grids: where the K steps go. Each maps (steps, t_lo, t_hi, schedule) -> increasing (K+1,).

GridFunction = Callable[[int, float, float, Schedule | None], torch.Tensor]


@dataclass(frozen=True)
class GridInfo:
    """A registered time grid: its function and what the UI shows about it."""

    fn: GridFunction
    label: str
    needs_schedule: bool = False


TIME_GRIDS: dict[str, GridInfo] = {}


def register_grid(name: str, *, label: str, needs_schedule: bool = False):
    """Add a grid function ``(steps, t_lo, t_hi, schedule) -> (steps+1,) float64`` to ``TIME_GRIDS``."""

    def decorate(fn: GridFunction) -> GridFunction:
        TIME_GRIDS[name] = GridInfo(fn, label, needs_schedule)
        return fn

    return decorate


LOG_SNR_EDGE = 1e-3
"""The log-SNR is infinite at t=0 (linear, cosine) and at t=1, and the exact field is stiffest near
t=1: grids in log-SNR span ``[LOG_SNR_EDGE, 1 - LOG_SNR_EDGE]`` (intervals inside that band span
themselves), then put the exact end points back as the first and last time."""


def _log_snr_range(t_lo: float, t_hi: float, schedule: Schedule) -> tuple[float, float]:
    middle = 0.5 * (t_lo + t_hi)
    lo = min(max(t_lo, LOG_SNR_EDGE), middle)
    hi = max(min(t_hi, 1.0 - LOG_SNR_EDGE), middle)
    lam = schedule.log_snr(torch.tensor([lo, hi], dtype=torch.float64))
    return float(lam[0]), float(lam[1])


def _times_of_log_snr(lams: torch.Tensor, t_lo: float, t_hi: float, schedule: Schedule) -> torch.Tensor:
    ts = schedule.t_of_log_snr(lams).to(torch.float64).clamp(t_lo, t_hi)
    ts[0], ts[-1] = t_lo, t_hi
    return ts


@register_grid("uniform", label="Uniform in t")
def uniform_grid(steps, t_lo, t_hi, schedule):
    return torch.linspace(t_lo, t_hi, steps + 1, dtype=torch.float64)


@register_grid("logsnr", label="Uniform in log-SNR", needs_schedule=True)
def log_snr_grid(steps, t_lo, t_hi, schedule):
    lam_lo, lam_hi = _log_snr_range(t_lo, t_hi, schedule)
    return _times_of_log_snr(
        torch.linspace(lam_lo, lam_hi, steps + 1, dtype=torch.float64), t_lo, t_hi, schedule
    )


POWER = 3.0


@register_grid("power", label="Power, dense near data (t = 1 - (1-u)^3)")
def power_grid(steps, t_lo, t_hi, schedule):
    # The exact field of a finite data set stiffens like 1/(1-t) as the posterior collapses onto
    # single points; steps of size (1-u)^(POWER-1) du follow it. Measured in bench/solvers.py:
    # midpoint with 10 steps (20 NFE) on this grid beats Euler with 100 uniform steps.
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    ts = t_lo + (t_hi - t_lo) * (1.0 - (1.0 - u) ** POWER)
    ts[-1] = t_hi
    return ts


KARRAS_RHO = 7.0
KARRAS_SIGMA_RANGE = (0.002, 80.0)
"""EDM's (Karras et al., 2022) noise levels, in their ``sigma = sigma_t / alpha_t = e^{-lambda}``."""


@register_grid("karras", label="Karras/EDM (rho=7 in sigma/alpha)", needs_schedule=True)
def karras_grid(steps, t_lo, t_hi, schedule):
    lam_lo, lam_hi = _log_snr_range(t_lo, t_hi, schedule)
    s_max = min(math.exp(-lam_lo), KARRAS_SIGMA_RANGE[1])
    s_min = max(math.exp(-lam_hi), KARRAS_SIGMA_RANGE[0])
    if s_min >= s_max:  # an interval outside EDM's range: span the interval's own
        s_min, s_max = math.exp(-lam_hi), math.exp(-lam_lo)
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    inv_rho = 1.0 / KARRAS_RHO
    sigmas = (s_max**inv_rho + u * (s_min**inv_rho - s_max**inv_rho)) ** KARRAS_RHO
    return _times_of_log_snr(-torch.log(sigmas), t_lo, t_hi, schedule)


def time_grid(grid: str, steps: int, t0: float, t1: float, schedule=None) -> torch.Tensor:
    """The (steps+1,) float64 times of a ``TIME_GRIDS`` grid from t0 to t1 (either direction).

    A backward grid (t0 > t1) is the forward grid on [t1, t0] reversed, so steps stay where the
    field needs them whichever way one integrates.
    """
    info = TIME_GRIDS.get(grid)
    if info is None:
        raise ValueError(f"unknown time grid {grid!r}; choose one of {', '.join(TIME_GRIDS)}")
    if info.needs_schedule and schedule is None:
        raise ValueError(f"time grid {grid!r} is defined by a schedule: pass schedule=...")
    schedule = None if schedule is None else get_schedule(schedule)
    ts = info.fn(steps, min(t0, t1), max(t0, t1), schedule)
    return ts if t0 < t1 else ts.flip(0)


# ---------------------------------------------------------------------------------------------
# The loop.


class _Counted:
    """Wraps the velocity: counts every call, and never evaluates past the schedule's ``t_max``."""

    def __init__(self, velocity: Velocity, t_max: float):
        self.velocity, self.t_max, self.calls = velocity, t_max, 0

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.velocity(z, t.clamp(max=self.t_max) if self.t_max < 1.0 else t)
        if out.shape != z.shape:
            raise ValueError(
                f"the velocity returned shape {tuple(out.shape)} for z of shape {tuple(z.shape)}"
            )
        return out


def nfe_for(solver: str, steps: int) -> int | None:
    """Velocity evaluations a fixed-step solver makes in ``steps`` steps; None for adaptive ones."""
    info = _solver_info(solver)
    return None if info.nfe_per_step is None else info.nfe_per_step * steps


def _solver_info(solver: str) -> SolverInfo:
    info = SOLVERS.get(solver)
    if info is None:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    return info


def integrate(
    velocity: Velocity,
    z0: torch.Tensor,
    solver: str = "rk4",
    steps: int = 20,
    t0: float = 0.0,
    t1: float = 1.0,
    schedule: str | Schedule | None = None,
    grid: str = "uniform",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    *,
    track_grad: bool = False,
) -> Trajectory:
    """Solve ``dz/dt = v(z, t)`` from t0 to t1 (t1 < t0 integrates backward, data -> noise).

    Args:
        velocity: ``v(z, t)`` with z (n, d) and t a 0-d tensor, returning (n, d).
        z0: (n, d) the state at t0 (noise when sampling).  solver: a ``SOLVERS`` key.
        steps: grid intervals K >= 1 (for adaptive solvers: output times; they step as they need).
        t0, t1: start and end times.  schedule: a ``Schedule`` or its name; needed by ``dpm++2m`` and
            the log-SNR grids. When given, the velocity is never evaluated past ``schedule.t_max``.
        grid: a ``TIME_GRIDS`` key.  rtol, atol: tolerances of adaptive solvers.
        track_grad: keep autograd on (e.g. to differentiate through the solve); off by default.
    Returns:
        ``Trajectory`` with ts (K+1,), zs (K+1, n, d) and the counted NFE.
    Raises:
        ValueError: unknown solver or grid, bad steps, non-finite z0, t0 == t1, missing schedule.
    """
    info = _solver_info(solver)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not torch.is_tensor(z0) or not z0.is_floating_point():
        raise ValueError("z0 must be a floating point tensor of shape (n, d)")
    if not bool(torch.isfinite(z0).all()):
        raise ValueError("z0 contains NaN or infinite values: the integration would only carry them along")
    t0, t1 = float(t0), float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 == t1:
        raise ValueError(f"need finite t0 != t1, got t0={t0}, t1={t1}")
    if info.needs_schedule and schedule is None:
        raise ValueError(f"solver {solver!r} works in the schedule's log-SNR: pass schedule=...")
    schedule = None if schedule is None else get_schedule(schedule)
    if schedule is not None and (min(t0, t1) < 0.0 or max(t0, t1) > 1.0):
        raise ValueError(f"times must lie in [0, 1] on a schedule's path, got t0={t0}, t1={t1}")

    ts = time_grid(grid, int(steps), t0, t1, schedule).to(dtype=z0.dtype, device=z0.device)
    counted = _Counted(velocity, 1.0 if schedule is None else schedule.t_max)
    state = SolverState(schedule=schedule, rtol=float(rtol), atol=float(atol))
    zs = [z0]
    with torch.set_grad_enabled(track_grad):
        for t, t_next in itertools.pairwise(ts):
            zs.append(info.fn(counted, zs[-1], t, t_next, state))
    return Trajectory(
        ts=ts,
        zs=torch.stack(zs),
        nfe=counted.calls,
        solver=solver,
        steps=state.steps if info.adaptive else int(steps),
    )
