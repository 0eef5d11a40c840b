"""The affine Gaussian probability path and the four ways a model can parametrise it.

Conditional on a data point ``z_1`` and a noise draw ``z_0 ~ N(0, I)``, the path is

    z_t = alpha_t z_1 + sigma_t z_0,        u_t(z_t | z_1) = d_alpha_t z_1 + d_sigma_t z_0,

and a network may predict any one of four equivalent quantities at ``(z_t, t)``:

* ``velocity``  u_t = d_alpha z_1 + d_sigma z_0 (flow matching),
* ``data``      z_1 (the denoiser, "x-prediction"; DPM-Solver++ integrates this one),
* ``noise``     z_0 (epsilon-prediction, DDPM),
* ``score``     grad log p_t(z) = -z_0 / sigma_t.

Given ``z_t`` and any one of them, the pair (z_1, z_0) is fixed by the two linear equations above,
so every conversion goes through that pair: ``to_endpoints`` then ``from_endpoints``.
For learned or marginal fields, read z_1 and z_0 as posterior means E[z_1 | z_t], E[z_0 | z_t].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .schedules import Schedule, ScheduleValue, get_schedule

__all__ = [
    "PARAMETRISATIONS",
    "PathSample",
    "change_schedule",
    "convert",
    "from_endpoints",
    "sample_path",
    "to_endpoints",
]

PARAMETRISATIONS = ("velocity", "data", "noise", "score")

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PathSample:
    """A point on the conditional path and its target velocity.

    Attributes:
        t: (n,) times.  z_t: (n, d) points ``alpha_t z_1 + sigma_t z_0``.
        u_t: (n, d) conditional velocity ``d_alpha_t z_1 + d_sigma_t z_0``.
    """

    t: torch.Tensor
    z_t: torch.Tensor
    u_t: torch.Tensor


def _col(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-row (n,) coefficient against (n, d) points."""
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return x.reshape(-1, *([1] * (like.dim() - 1))) if x.dim() >= 1 else x


def sample_path(schedule: str | Schedule, z0: torch.Tensor, z1: torch.Tensor, t) -> PathSample:
    """Interpolate noise and data on the path and give the conditional target.

    Args:
        schedule: a ``Schedule`` or its name.  z0: (n, d) noise.  z1: (n, d) data.
        t: float, 0-d or (n,) times in [0, 1].
    Returns:
        ``PathSample`` with ``z_t = alpha_t z_1 + sigma_t z_0`` and ``u_t = d_alpha_t z_1 + d_sigma_t z_0``.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    s = get_schedule(schedule)(t)
    a, b = _col(s.alpha, z0), _col(s.sigma, z0)
    da, db = _col(s.d_alpha, z0), _col(s.d_sigma, z0)
    t_rows = t.expand(z0.shape[0]) if t.dim() == 0 else t
    return PathSample(t=t_rows, z_t=a * z1 + b * z0, u_t=da * z1 + db * z0)


def to_endpoints(value: torch.Tensor, kind: str, z: torch.Tensor, s: ScheduleValue):
    """Recover ``(z_1, z_0)`` from ``z_t`` and one parametrisation of the field at time t.

    Args:
        value: (n, d) the model output.  kind: one of ``PARAMETRISATIONS``.  z: (n, d) points z_t.
        s: the schedule evaluated at t (scalars or (n,) per row).
    Returns:
        ``(z_1, z_0)``, each (n, d), with ``alpha z_1 + sigma z_0 = z``.
    """
    alpha, sigma = _col(s.alpha, z), _col(s.sigma, z)
    if kind == "velocity":
        d_alpha, d_sigma = _col(s.d_alpha, z), _col(s.d_sigma, z)
        # Solve [alpha sigma; d_alpha d_sigma] (z_1, z_0) = (z, v); det = d_alpha sigma - d_sigma alpha > 0.
        det = d_alpha * sigma - d_sigma * alpha
        return (sigma * value - d_sigma * z) / det, (d_alpha * z - alpha * value) / det
    if kind == "data":
        return value, (z - alpha * value) / sigma
    if kind in ("noise", "score"):
        z0 = value if kind == "noise" else -sigma * value
        return (z - sigma * z0) / alpha, z0
    raise ValueError(f"unknown parametrisation {kind!r}; choose one of {', '.join(PARAMETRISATIONS)}")


def from_endpoints(z1: torch.Tensor, z0: torch.Tensor, kind: str, s: ScheduleValue) -> torch.Tensor:
    """The parametrisation ``kind`` of the field whose endpoint predictions are ``(z_1, z_0)``."""
    if kind == "velocity":
        return _col(s.d_alpha, z1) * z1 + _col(s.d_sigma, z0) * z0
    if kind == "data":
        return z1
    if kind == "noise":
        return z0
    if kind == "score":
        return -z0 / _col(s.sigma, z0)
    raise ValueError(f"unknown parametrisation {kind!r}; choose one of {', '.join(PARAMETRISATIONS)}")


def convert(value, z, t, schedule, source: str, target: str) -> torch.Tensor:
    """Convert a field prediction between parametrisations, e.g. velocity -> data.

    Args:
        value: (n, d) prediction of kind ``source`` at points z (n, d) and time t (float or (n,)).
        schedule: a ``Schedule`` or its name.  source, target: entries of ``PARAMETRISATIONS``.
    Returns:
        (n, d) the same field expressed as ``target``.
    """
    s = get_schedule(schedule)(torch.as_tensor(t, dtype=z.dtype, device=z.device))
    return from_endpoints(*to_endpoints(value, source, z, s), target, s)


_EDGE = 1e-6  # the time maps below are 0/0 at t=0 and t=1; they are smooth limits, taken just inside.


def change_schedule(velocity: Velocity, source, target) -> Velocity:
    """The same generative flow, re-expressed under another schedule, without retraining.

    Two affine Gaussian paths with equal signal-to-noise ratio differ only by a scale: if
    ``lambda_B(r) = lambda_A(t_r)`` then ``z^B_r = s_r z^A_{t_r}`` with
    ``s_r = sigma_B(r) / sigma_A(t_r)``. Differentiating gives the velocity under B:

        v_B(z, r) = (d log s_r / dr) z + s_r (d t_r / dr) v_A(z / s_r, t_r).

    Where B's log-SNR lies outside A's range, no time of A matches: the VP schedule never
    reaches pure noise (its lambda starts at about -5) and is trained only up to its ``t_max``.
    There A's model is asked at its nearest time for the data prediction ``E[z_1 | z]``, and
    B's own path turns that into a velocity:
    ``v_B = d_alpha_B z_1 + d_sigma_B (z - alpha_B z_1) / sigma_B``.

    Args:
        velocity: ``v_A(z, t)`` taking z (n, d) and a 0-d t, returning (n, d).
        source, target: schedules A and B (objects or names).
    Returns:
        ``v_B(z, r)`` with the same signature.
    """
    a, b = get_schedule(source), get_schedule(target)
    if a is b:
        return velocity

    def velocity_b(z: torch.Tensor, r) -> torch.Tensor:
        r64 = torch.tensor(float(r), dtype=torch.float64).clamp(_EDGE, 1.0 - _EDGE)
        t_raw = a.t_of_log_snr(b.log_snr(r64))
        t = t_raw.clamp(_EDGE, min(1.0 - _EDGE, a.t_max))
        sa, sb = a(t), b(r64)
        norm_a, norm_b = sa.alpha**2 + sa.sigma**2, sb.alpha**2 + sb.sigma**2
        scale = torch.sqrt(norm_b / norm_a)  # alpha_B/alpha_A = sigma_B/sigma_A; this form never divides by 0
        t_a = torch.tensor(float(t), dtype=z.dtype, device=z.device)
        if t_raw < 0 or t_raw > a.t_max:  # outside A's range of log-SNR: no matching time
            x = z / float(scale)
            z1, _ = to_endpoints(velocity(x, t_a), "velocity", x, _cast(sa, z))
            sb_z = _cast(sb, z)
            return from_endpoints(z1, (z - sb_z.alpha * z1) / sb_z.sigma, "velocity", sb_z)
        d_lam_a = sa.d_alpha / sa.alpha - sa.d_sigma / sa.sigma
        d_lam_b = sb.d_alpha / sb.alpha - sb.d_sigma / sb.sigma
        dt_dr = d_lam_b / d_lam_a
        d_log_scale = (sb.alpha * sb.d_alpha + sb.sigma * sb.d_sigma) / norm_b - dt_dr * (
            sa.alpha * sa.d_alpha + sa.sigma * sa.d_sigma
        ) / norm_a
        return float(d_log_scale) * z + float(scale * dt_dr) * velocity(z / float(scale), t_a)

    return velocity_b


def _cast(s: ScheduleValue, like: torch.Tensor) -> ScheduleValue:
    """A float64 scalar ``ScheduleValue`` in the dtype and device of ``like``."""
    return ScheduleValue(*(x.to(like) for x in (s.alpha, s.sigma, s.d_alpha, s.d_sigma)))
