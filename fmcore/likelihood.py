"""Exact log-likelihood of a flow by the instantaneous change of variables.

Along a solution of ``dz/dt = v(z, t)`` the density changes as ``d/dt log p_t(z_t) = -div v(z_t, t)``
(the continuity equation, Chen et al. 2018). Integrating from the data (t=1) back to the noise
(t=0), where ``p_0 = N(0, I)``,

    log p_1(x) = log N(z_0; 0, I) - int_0^1 div v(z_t, t) dt,     z_1 = x,

so one backward solve of the augmented state ``(z, l)`` with ``dl/dt = div v`` and ``l(1) = 0`` gives
``log p_1(x) = log N(z_0; 0, I) + l(0)``. The divergence is the exact trace of the Jacobian (one
backward pass per dimension: cheap in 2D, no Hutchinson noise).
"""

from __future__ import annotations

import math

import torch

from .solvers import SOLVERS, Velocity, integrate

__all__ = ["divergence", "log_likelihood"]


def _velocity_and_divergence(velocity: Velocity, z: torch.Tensor, t: torch.Tensor):
    """``v(z, t)`` (n, d) and its divergence (n,), both detached.

    Takes d backward passes: row i of the output depends on row i of the input only, so the
    gradient of the column sum ``sum_i v_k(z_i)`` is the k-th Jacobian row of every point at once.
    """
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        v = velocity(z, t)
        div = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for k in range(z.shape[1]):
            (grad_k,) = torch.autograd.grad(v[:, k].sum(), z, retain_graph=k + 1 < z.shape[1])
            div = div + grad_k[:, k]
    return v.detach(), div


def divergence(velocity: Velocity, z: torch.Tensor, t) -> torch.Tensor:
    """Exact divergence ``sum_k d v_k / d z_k`` of a velocity field.

    Args:
        velocity: ``v(z, t)``, z (n, d), t 0-d; each output row must depend on its own input row only.
        z: (n, d) points.  t: float or 0-d tensor.
    Returns:
        (n,) the trace of the Jacobian at each point.
    """
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    return _velocity_and_divergence(velocity, z, t)[1]


def log_likelihood(
    velocity: Velocity,
    x: torch.Tensor,
    *,
    steps: int = 50,
    solver: str = "rk4",
    t1: float = 1.0,
    t0: float = 0.0,
    schedule=None,
    grid: str = "uniform",
) -> torch.Tensor:
    """Exact ``log p_{t1}(x)`` of the flow that carries ``N(0, I)`` at t0 along ``v`` to t1.

    Args:
        velocity: ``v(z, t)``, z (n, d), t 0-d, as for ``integrate``.
        x: (n, d) points at time t1 (data).  steps, solver, grid: passed to ``integrate`` (any
            ``SOLVERS`` key; the solve runs backward, t1 -> t0).
        t1, t0: the data and the noise ends. For the VP schedule the field is only finite up to
            ``schedule.t_max``; pass ``schedule`` (the field is then never evaluated past it) or
            ``t1=schedule.t_max``.
        schedule: optional ``Schedule`` or name, as for ``integrate``.
    Returns:
        (n,) log-densities, in nats.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (n, d) points, got shape {tuple(x.shape)}")
    info = SOLVERS.get(solver)
    if info is not None and info.needs_schedule:
        raise ValueError(
            f"solver {solver!r} steps along the schedule's path; the augmented (z, log-det) state is"
            " not on it: choose a Runge-Kutta solver"
        )
    d = x.shape[1]

    def augmented(state: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v, div = _velocity_and_divergence(velocity, state[:, :d], t)
        return torch.cat([v, div[:, None]], dim=1)

    start = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    end = integrate(augmented, start, solver, steps, t0=t1, t1=t0, schedule=schedule, grid=grid).z_end
    z_0, log_det = end[:, :d], end[:, d]
    log_prior = -0.5 * (z_0.square().sum(1) + d * math.log(2.0 * math.pi))
    return log_prior + log_det
