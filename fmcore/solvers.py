"""ODE solvers for ``dz/dt = v(z, t)``: one step function per method, one loop that runs them.

Sampling integrates forward from noise (t=0) to data (t=1); encoding data into noise, and the
likelihood, integrate backward (t0 > t1). Every method is a *step function*

    step(v, z, t, t_next, state) -> z_next

registered in ``SOLVERS`` under the name the UI shows. ``integrate`` owns everything else: the time
grid (a ``TIME_GRIDS`` entry), counting the velocity evaluations ("NFE": every call of ``v``,
counted, never computed by formula) and keeping the states. ``state`` is a small per-integration
``SolverState``: the schedule, the tolerances, the last time, and a ``carry`` slot for the method's
own typed state (a multistep method's previous prediction, ``Dopri5State`` for the adaptive one), so
no method needs the loop to know it.

dopri5 follows diffrax's split: its Butcher tableau is data (``DOPRI5``), its step-size control a
small object (``StepSizeController``), its state a dataclass. It steps as its tolerance requires and
reads every output time off the accepted step that spans it, with Dormand-Prince's 4th-order dense
output, as torchdiffeq and diffrax do: its NFE follows rtol/atol, not the number of output times.

A velocity that returns NaN or inf stops every solver with ``SolverError``, at the time it happened.

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
from dataclasses import dataclass

import torch

from .paths import to_endpoints
from .schedules import Schedule, get_schedule

__all__ = [
    "DOPRI5",
    "SOLVERS",
    "TIME_GRIDS",
    "ButcherTableau",
    "DenseStep",
    "Dopri5State",
    "GridInfo",
    "SolverError",
    "SolverInfo",
    "SolverState",
    "StepSizeController",
    "Trajectory",
    "bracket",
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

    def at(self, times) -> torch.Tensor:
        """(F, n, d) states at (F,) ``times``, linear between the nodes: what a step does between them.

        A time at a node is that node's state exactly; times outside ``[ts[0], ts[-1]]`` take the
        end states. Same dtype as ``zs``.
        """
        return self.between(*bracket(self.ts, times))

    def between(self, lower: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(F, n, d) states a fraction ``a`` (F,) of the way from node ``lower`` (F,) to the next:
        ``at`` for a ``bracket`` already at hand."""
        w = a[:, None, None].to(self.zs.dtype)
        return (1 - w) * self.zs[lower] + w * self.zs[lower + 1]


def bracket(ts: torch.Tensor, times) -> tuple[torch.Tensor, torch.Tensor]:
    """The step of the (K+1,) increasing node times ``ts`` that each of the (F,) ``times`` falls in.

    Returns:
        lower: (F,) int64, the node at or before each time (0 .. K-1).  a: (F,) float64, how far
        along that step, in [0, 1] (clamped outside ``[ts[0], ts[-1]]``).
    """
    ts = ts.double()
    times = torch.as_tensor(times, dtype=torch.float64, device=ts.device)
    upper = torch.searchsorted(ts, times, right=True).clamp(1, len(ts) - 1)
    lower = upper - 1
    a = ((times - ts[lower]) / (ts[upper] - ts[lower]).clamp(min=1e-12)).clamp(0.0, 1.0)
    return lower, a


class SolverError(RuntimeError):
    """A solve that cannot go on: the velocity returned NaN or inf, or an adaptive step collapsed."""


@dataclass
class SolverState:
    """What a step function may need besides ``(v, z, t, t_next)``; one per integration.

    Attributes:
        schedule: the path's schedule, or None.  rtol, atol: tolerances of adaptive methods.
        t_end: the integration's last time (an adaptive method never steps past it).
        carry: the method's own state from one grid interval to the next (None at the start).
        steps: internal steps taken, kept by adaptive methods.
    """

    schedule: Schedule | None = None
    rtol: float = 1e-5
    atol: float = 1e-5
    t_end: float = 1.0
    carry: object = None
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


@dataclass(frozen=True)
class _Prediction:
    """DPM-Solver++ 2M's memory: the endpoint prediction (n, d) made at log-SNR ``lam``."""

    lam: float
    value: torch.Tensor


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
    previous = state.carry
    state.carry = _Prediction(lam_s, prediction)
    extrapolated = prediction
    # Second order needs the previous step and two finite log-SNR steps; at an infinite step
    # (the first from pure noise, the last onto the data) the first-order update is the exact limit.
    if previous is not None and math.isfinite(h) and math.isfinite(lam_s - previous.lam):
        half_over_r = 0.5 * h / (lam_s - previous.lam)
        extrapolated = (1.0 + half_over_r) * prediction - half_over_r * previous.value
    one_minus_exp = 1.0 if math.isinf(h) else -math.expm1(-h)
    return (b_t / b_s) * z + (a_t * one_minus_exp) * extrapolated


# ---------------------------------------------------------------------------------------------
# Dormand-Prince 5(4), adaptive: error-controlled internal steps; the output times are read off
# each accepted step's dense output, so the cost follows the tolerance, not the number of outputs.


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta pair with an embedded error estimate and a dense output.

    Attributes:
        c: (s,) stage times as fractions of the step.  a: s rows; row i holds stage i's weights on
            the i stages before it.  b: (s,) weights of the solution.
        b_error: (s+1,) solution minus embedded weights; the last one weighs the first-same-as-last
            stage v(z_new, t + h).  b_dense: (s+1,) weights, on the same stages, of the dense
            output's quartic term.  order: of the solution (the embedded one is order - 1).
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...]
    b_dense: tuple[float, ...]
    order: int


DOPRI5 = ButcherTableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    # Against Shampine's (1986) embedded 4th-order weights, as torchdiffeq's and diffrax's dopri5:
    # Dormand and Prince's own pair (5179/57600, ...) rates the same steps ~1.5x larger.
    b_error=(
        35 / 384 - 1951 / 21600,
        0.0,
        500 / 1113 - 22642 / 50085,
        125 / 192 - 451 / 720,
        -2187 / 6784 + 12231 / 42400,
        11 / 84 - 649 / 6300,
        -1 / 60,
    ),
    # The continuous extension of order 4 in Hairer, Norsett & Wanner's code DOPRI5 (CONTD5).
    b_dense=(
        -12715105075 / 11282082432,
        0.0,
        87487479700 / 32700410799,
        -10690763975 / 1880347072,
        701980252875 / 199316789632,
        -1453857185 / 822651844,
        69997945 / 29380423,
    ),
    order=5,
)


@dataclass(frozen=True)
class StepSizeController:
    """Integral (I) control of the step: ``h_next = h * clamp(safety * error^(-1/order))``.

    ``error`` is a step's error scaled by the tolerances (accepted when <= 1). After an accepted step
    the next one never shrinks, after a rejected one it never grows (as in Hairer's DOPRI5 and
    torchdiffeq, so the NFE of the two compare).

    Attributes:
        safety: aim a little below the largest step the error estimate allows.
        min_factor, max_factor: the most the step may shrink or grow at once.
    """

    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0

    def next_step(self, h: float, error: float, order: int) -> float:
        """The (signed) step to try after a step h whose scaled error was ``error``."""
        if error == 0.0:
            return h * self.max_factor
        factor = self.safety * error ** (-1.0 / order)
        low, high = (1.0, self.max_factor) if error <= 1.0 else (self.min_factor, 1.0)
        return h * min(high, max(low, factor))


CONTROLLER = StepSizeController()
MAX_INTERNAL_STEPS = 100_000
_SMALLEST_STEP = 1e-14  # relative to |t|: below it t + h rounds to t, and the solve cannot advance


@dataclass(frozen=True)
class DenseStep:
    """An accepted step from (t, z) to (t + h, z_new), with what its dense output needs.

    Attributes:
        t: start.  h: signed size.  z, z_new: (n, d) the states at both ends.
        k_start, k_end: (n, d) the velocity at both ends.  quartic: (n, d) ``h sum_i b_dense_i k_i``.
    """

    t: float
    h: float
    z: torch.Tensor
    z_new: torch.Tensor
    k_start: torch.Tensor
    k_end: torch.Tensor
    quartic: torch.Tensor

    def at(self, s: float) -> torch.Tensor:
        """(n, d) the state at time s inside the step, to 4th order.

        The Hermite cubic through both ends and their slopes, plus ``theta^2 (1-theta)^2 quartic``
        with ``theta = (s - t) / h``: exact at both ends, slopes ``k_start`` and ``k_end`` there.
        """
        theta = (s - self.t) / self.h
        change = self.z_new - self.z
        start_gap = self.h * self.k_start - change
        end_gap = change - self.h * self.k_end - start_gap
        inner = start_gap + theta * (end_gap + (1.0 - theta) * self.quartic)
        return self.z + theta * (change + (1.0 - theta) * inner)


@dataclass
class Dopri5State:
    """Where dopri5 stands between output times (kept in ``SolverState.carry``).

    Attributes:
        t: the time reached.  z: (n, d) the state there.  k: (n, d) v(z, t), the first stage of the
            next step (first same as last).  h: the signed step to try next.
        last: the last accepted step (None before the first); its dense output gives the output
            times it spans.
    """

    t: float
    z: torch.Tensor
    k: torch.Tensor
    h: float
    last: DenseStep | None = None


def _at_time(s: float, z: torch.Tensor) -> torch.Tensor:
    return torch.tensor(s, dtype=z.dtype, device=z.device)


def _combine(weights: tuple[float, ...], ks: list[torch.Tensor]) -> torch.Tensor:
    return sum(w * k for w, k in zip(weights, ks, strict=True) if w != 0.0)


def _scaled_max(x: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor, state: SolverState) -> float:
    """max |x| / (atol + rtol max(|y|, |y_new|)): every component must meet the tolerance."""
    scale = state.atol + state.rtol * torch.maximum(y.abs(), y_new.abs())
    return float((x.abs() / scale).max())


def _initial_step(v, z, t: float, k1, span: float, state: SolverState) -> float:
    """Hairer, Norsett & Wanner's starting step (II.4): one extra evaluation; signed like span."""
    d0, d1 = _scaled_max(z, z, z, state), _scaled_max(k1, z, z, state)
    h0 = 1e-6 if min(d0, d1) < 1e-5 else 0.01 * d0 / d1
    h0 = math.copysign(min(max(h0, 1e-12 * abs(span)), abs(span)), span)
    k1_probe = v(z + h0 * k1, _at_time(t + h0, z))
    d2 = _scaled_max(k1_probe - k1, z, z, state) / abs(h0)
    h1 = max(1e-6, abs(h0) * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
    return math.copysign(min(100.0 * abs(h0), h1, abs(span)), span)


def _advance(v, carry: Dopri5State, state: SolverState, tableau=DOPRI5, controller=CONTROLLER) -> None:
    """Take one accepted step from ``carry`` (retrying rejected ones), never past ``state.t_end``."""
    while True:
        if state.steps >= MAX_INTERNAL_STEPS:
            raise SolverError(
                f"dopri5 took {MAX_INTERNAL_STEPS} steps and reached only t={carry.t:.6g}: "
                "loosen rtol/atol or use a fixed-step solver"
            )
        t, z, ks = carry.t, carry.z, [carry.k]
        remaining = state.t_end - t
        lands = abs(carry.h) >= abs(remaining)
        h = remaining if lands else carry.h
        if not lands and abs(h) < _SMALLEST_STEP * max(1.0, abs(t)):
            raise SolverError(
                f"dopri5 cannot meet rtol={state.rtol:g}, atol={state.atol:g} at t={t:.6g}: its step fell "
                f"to {abs(h):.1e}. The velocity field changes too fast there; loosen the tolerances or "
                "use a fixed-step solver"
            )
        for c, row in zip(tableau.c[1:], tableau.a[1:], strict=True):
            ks.append(v(z + h * _combine(row, ks), _at_time(t + c * h, z)))
        z_new = z + h * _combine(tableau.b, ks)
        ks.append(v(z_new, _at_time(t + h, z)))
        error = _scaled_max(h * _combine(tableau.b_error, ks), z, z_new, state)
        error = error if math.isfinite(error) else math.inf
        if error <= 1.0:
            quartic = h * _combine(tableau.b_dense, ks)
            carry.last = DenseStep(t, h, z, z_new, ks[0], ks[-1], quartic)
            carry.t, carry.z, carry.k = (state.t_end if lands else t + h), z_new, ks[-1]
            carry.h = controller.next_step(h, error, tableau.order)
            state.steps += 1
            return
        carry.h = controller.next_step(h, error, tableau.order)


@register("dopri5", order=5, nfe_per_step=None, label="Dormand-Prince 5(4) (adaptive)", adaptive=True)
def dopri5(v, z, t, t_next, state):
    # The first call starts from (z, t); later ones go on from the solver's own last accepted step
    # (the z the loop passes is that step's dense output), stepping only when t_next lies beyond it.
    carry = state.carry
    if carry is None:
        t_start = float(t)
        k = v(z, _at_time(t_start, z))
        h = _initial_step(v, z, t_start, k, state.t_end - t_start, state)
        carry = state.carry = Dopri5State(t=t_start, z=z, k=k, h=h)
    t_out = float(t_next)
    while (t_out - carry.t) * carry.h > 0.0:
        _advance(v, carry, state)
    if t_out == carry.t or carry.last is None:
        return carry.z
    return carry.last.at(t_out)


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


class CountedVelocity:
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
        if not bool(torch.isfinite(out).all()):
            where = "" if bool(torch.isfinite(z).all()) else " (the state was already non-finite)"
            raise SolverError(
                f"the velocity field returned non-finite values (NaN or inf) at t={float(t):.4g}{where}: "
                "its outputs overflow there, so no solver can follow it. Check the model or the data."
            )
        return out


def check_start(steps, z0: torch.Tensor) -> None:
    """What every sampler checks first: ``steps`` an integer >= 1, ``z0`` a finite (n, d) float tensor.

    Raises:
        ValueError: saying which of the two is wrong.
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not torch.is_tensor(z0) or not z0.is_floating_point() or z0.dim() != 2:
        raise ValueError("z0 must be a floating point tensor of shape (n, d)")
    if not bool(torch.isfinite(z0).all()):
        raise ValueError("z0 contains NaN or infinite values: the integration would only carry them along")


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
        steps: grid intervals K >= 1 (for adaptive solvers: output times, read off their dense
            output; they step as their tolerance needs).
        t0, t1: start and end times.  schedule: a ``Schedule`` or its name; needed by ``dpm++2m`` and
            the log-SNR grids. When given, the velocity is never evaluated past ``schedule.t_max``.
        grid: a ``TIME_GRIDS`` key.  rtol, atol: tolerances of adaptive solvers.
        track_grad: keep autograd on (e.g. to differentiate through the solve); off by default.
    Returns:
        ``Trajectory`` with ts (K+1,), zs (K+1, n, d) and the counted NFE.
    Raises:
        ValueError: unknown solver or grid, bad steps or tolerances, non-finite z0, t0 == t1,
            missing schedule.
        SolverError: the velocity returned NaN or inf, or dopri5 could not meet its tolerances.
    """
    info = _solver_info(solver)
    check_start(steps, z0)
    t0, t1 = float(t0), float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 == t1:
        raise ValueError(f"need finite t0 != t1, got t0={t0}, t1={t1}")
    if info.needs_schedule and schedule is None:
        raise ValueError(f"solver {solver!r} works in the schedule's log-SNR: pass schedule=...")
    rtol, atol = float(rtol), float(atol)
    if info.adaptive and not (rtol >= 0.0 and atol >= 0.0 and 0.0 < rtol + atol < math.inf):
        raise ValueError(f"need finite rtol, atol >= 0, not both 0; got rtol={rtol}, atol={atol}")
    schedule = None if schedule is None else get_schedule(schedule)
    if schedule is not None and (min(t0, t1) < 0.0 or max(t0, t1) > 1.0):
        raise ValueError(f"times must lie in [0, 1] on a schedule's path, got t0={t0}, t1={t1}")

    ts = time_grid(grid, int(steps), t0, t1, schedule).to(dtype=z0.dtype, device=z0.device)
    counted = CountedVelocity(velocity, 1.0 if schedule is None else schedule.t_max)
    state = SolverState(schedule=schedule, rtol=rtol, atol=atol, t_end=float(ts[-1]))
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
