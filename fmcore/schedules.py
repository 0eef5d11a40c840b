"""Noise schedules of the affine Gaussian path ``z_t = alpha_t z_1 + sigma_t z_0``.

Time runs from t=0 (pure noise, ``z_0 ~ N(0, I)``) to t=1 (data ``z_1``). A schedule is the pair
``(alpha_t, sigma_t)`` with its time derivatives; everything a solver or a trainer needs from it is
derived here, once:

* ``log_snr(t) = lambda_t = log(alpha_t / sigma_t)`` (increasing in t) and its inverse
  ``t_of_log_snr``, used by DPM-Solver's exponential integrator and by the log-SNR time grid;
* ``snr(t) = alpha_t^2 / sigma_t^2``.

Every schedule sits in ``SCHEDULES`` under the name the UI shows; adding one is one class and one
line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "SCHEDULES",
    "Blurred",
    "Cosine",
    "Linear",
    "Polynomial",
    "Schedule",
    "ScheduleValue",
    "VariancePreserving",
    "get_schedule",
]


@dataclass(frozen=True)
class ScheduleValue:
    """``alpha_t, sigma_t`` and their time derivatives, each shaped like the ``t`` they came from."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor


def _as_tensor(t) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t if t.is_floating_point() else t.float()
    return torch.as_tensor(t, dtype=torch.float32)


class Schedule:
    """Base class: a subclass defines ``alpha``, ``sigma`` and their derivatives in closed form.

    ``t_max`` is the largest time at which the conditional velocity is finite; it is 1 except for
    the VP schedule, whose ``d_sigma`` diverges at t=1 (trainers sample t below it, solvers end their
    last evaluation there).
    """

    name: str = ""
    label: str = ""
    t_max: float = 1.0

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, t) -> ScheduleValue:
        """Evaluate the schedule. ``t``: float or tensor of any shape in [0, 1]."""
        t = _as_tensor(t)
        return ScheduleValue(self.alpha(t), self.sigma(t), self.d_alpha(t), self.d_sigma(t))

    def log_snr(self, t) -> torch.Tensor:
        """``lambda_t = log(alpha_t / sigma_t)``: -inf where alpha=0, +inf where sigma=0."""
        t = _as_tensor(t)
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def snr(self, t) -> torch.Tensor:
        """Signal-to-noise ratio ``alpha_t^2 / sigma_t^2``."""
        return torch.exp(2.0 * self.log_snr(t))

    def t_of_log_snr(self, lam) -> torch.Tensor:
        """Inverse of ``log_snr``: the time at which ``log(alpha/sigma) = lam``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Schedule):
    """Rectified-flow / conditional-OT path: ``alpha = t, sigma = 1 - t``; straight conditional paths."""

    name, label = "linear", "Linear (rectified flow / CondOT)"

    def alpha(self, t):
        return t

    def sigma(self, t):
        return 1.0 - t

    def d_alpha(self, t):
        return torch.ones_like(t)

    def d_sigma(self, t):
        return -torch.ones_like(t)

    def t_of_log_snr(self, lam):
        return torch.sigmoid(_as_tensor(lam))


class Cosine(Schedule):
    """Variance preserving trigonometric path: ``alpha = sin(pi t / 2), sigma = cos(pi t / 2)``."""

    name, label = "cosine", "Cosine (variance preserving)"

    def alpha(self, t):
        return torch.sin(0.5 * math.pi * t)

    def sigma(self, t):
        return torch.cos(0.5 * math.pi * t).clamp_min(0.0)  # cos(pi/2) rounds to -4e-8

    def d_alpha(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def d_sigma(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def log_snr(self, t):
        t = _as_tensor(t)
        return torch.log(torch.tan(0.5 * math.pi * t))

    def t_of_log_snr(self, lam):
        return torch.atan(torch.exp(_as_tensor(lam))) * (2.0 / math.pi)


class Polynomial(Schedule):
    """``alpha = t^n, sigma = 1 - t^n``: n=1 is the linear path, larger n lingers longer near noise."""

    name = "polynomial"

    def __init__(self, n: float = 2.0):
        if not n > 0:
            raise ValueError(f"polynomial schedule needs an exponent n > 0, got {n}")
        self.n = float(n)
        self.label = f"Polynomial (t^{self.n:g})"

    def alpha(self, t):
        return t**self.n

    def sigma(self, t):
        return 1.0 - t**self.n

    def d_alpha(self, t):
        return self.n * t ** (self.n - 1.0)

    def d_sigma(self, t):
        return -self.n * t ** (self.n - 1.0)

    def t_of_log_snr(self, lam):
        return torch.sigmoid(_as_tensor(lam)) ** (1.0 / self.n)

    def __repr__(self) -> str:
        return f"Polynomial(n={self.n:g})"


class VariancePreserving(Schedule):
    """The diffusion VP-SDE schedule (DDPM's continuous limit), run in flow-matching time.

    In diffusion time ``s = 1 - t`` (s=0 is data) the noise rate is
    ``beta(s) = beta_min + s (beta_max - beta_min)`` and ``alpha = exp(-1/2 int_0^s beta)``, so
    ``alpha_t = exp(-(beta_min (1-t) + (beta_max - beta_min)(1-t)^2 / 2) / 2)`` with ``alpha_1 = 1``
    and ``sigma_t = sqrt(1 - alpha_t^2)``. At t=0, ``alpha_0 = exp(-5.025) ~ 0.0066``: the path
    starts from almost (not exactly) pure noise, as in diffusion models.
    """

    name, label = "vp", "VP (diffusion, beta 0.1 to 20)"
    t_max = 1.0 - 1e-3  # d_sigma ~ 1/sqrt(1-t) diverges at t=1; diffusion's usual eps=1e-3

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _integral_beta(self, t):
        s = 1.0 - t
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2

    def beta(self, t):
        """Noise rate ``beta(s)`` at diffusion time ``s = 1 - t``."""
        return self.beta_min + (1.0 - t) * (self.beta_max - self.beta_min)

    def alpha(self, t):
        return torch.exp(-0.5 * self._integral_beta(t))

    def sigma(self, t):
        # 1 - alpha^2 = -expm1(-B): accurate where alpha is close to 1.
        return torch.sqrt(-torch.expm1(-self._integral_beta(t)))

    def d_alpha(self, t):
        return 0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        alpha = self.alpha(t)
        return -alpha * self.d_alpha(t) / self.sigma(t)

    def log_snr(self, t):
        t = _as_tensor(t)
        big_b = self._integral_beta(t)
        return -0.5 * big_b - 0.5 * torch.log(-torch.expm1(-big_b))

    def t_of_log_snr(self, lam):
        # lambda = -1/2 log(e^B - 1)  =>  B = log(1 + e^{-2 lambda}); then solve the quadratic in s.
        lam = _as_tensor(lam)
        big_b = torch.nn.functional.softplus(-2.0 * lam)
        a = 0.5 * (self.beta_max - self.beta_min)
        s = (-self.beta_min + torch.sqrt(self.beta_min**2 + 4.0 * a * big_b)) / (2.0 * a)
        return 1.0 - s

    def __repr__(self) -> str:
        return f"VariancePreserving(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


SCHEDULES: dict[str, Schedule] = {
    s.name: s for s in (Linear(), Cosine(), VariancePreserving(), Polynomial(2.0))
}


class Blurred(Schedule):
    """``base`` with the data blurred by N(0, bandwidth^2 I): ``sigma~_t^2 = alpha_t^2 bw^2 + sigma_t^2``.

    With z_1 = x + bw * eps, the path ``alpha_t z_1 + sigma_t z_0`` equals ``alpha_t x + sigma~_t xi``
    with xi ~ N(0, I), and its conditional velocity given (x, xi) is ``alpha'_t x + sigma~'_t xi``.
    So ``exact_velocity(z, t, data, Blurred(base, bw))`` is the exact marginal field of the data
    convolved with N(0, bw^2 I) under ``base``. Unlike the field of the bare points, which snaps every
    particle onto one of them with speed ~ 1 / (1 - t), it stays finite at t = 1.

    Args:
        base: a ``Schedule`` or its name.  bandwidth: the blur's standard deviation, > 0.
    """

    def __init__(self, base: str | Schedule, bandwidth: float):
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")
        self.base, self.bandwidth = get_schedule(base), float(bandwidth)
        self.name, self.label, self.t_max = self.base.name, self.base.label, self.base.t_max

    def alpha(self, t):
        return self.base.alpha(t)

    def sigma(self, t):
        return torch.sqrt(self.base.alpha(t) ** 2 * self.bandwidth**2 + self.base.sigma(t) ** 2)

    def d_alpha(self, t):
        return self.base.d_alpha(t)

    def d_sigma(self, t):
        base = self.base
        numerator = base.alpha(t) * base.d_alpha(t) * self.bandwidth**2 + base.sigma(t) * base.d_sigma(t)
        return numerator / self.sigma(t)

    def t_of_log_snr(self, lam) -> torch.Tensor:
        """Inverse of ``log_snr`` by bisection (60 halvings of [0, 1]): it has no closed form, and it is
        increasing in t wherever the base's is. Values above ``log(1 / bandwidth)``, the largest the
        blur allows, give t = 1."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        lo, hi = torch.zeros_like(lam), torch.ones_like(lam)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.log_snr(mid) < lam
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def __repr__(self) -> str:
        return f"Blurred({self.base!r}, bandwidth={self.bandwidth:g})"


def get_schedule(schedule: str | Schedule) -> Schedule:
    """Look a schedule up by name (or pass one through); unknown names raise a ``ValueError``."""
    if isinstance(schedule, Schedule):
        return schedule
    try:
        return SCHEDULES[schedule]
    except (KeyError, TypeError):
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}") from None
