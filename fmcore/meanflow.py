"""MeanFlow (Geng, Deng, Bai, Kolter, He, 2025): an average velocity, sampled in one or a few steps.

The average velocity of the flow dz/dt = v(z, t) over [r, t], r <= t, starting from z at time r:

    u(z_r, r, t) = 1/(t - r) int_r^t v(z_s, s) ds,     so that   z_t = z_r + (t - r) u(z_r, r, t)

exactly: one network evaluation jumps from r to t. At r = t it is the instantaneous velocity,
u(z, t, t) = v(z, t).

The identity, in this project's convention (t = 0 noise, t = 1 data, sampling forward). The paper
runs time the other way (its t = 1 is noise) and evaluates u at the later, noisier time; here the
state sits at the start r of the interval, since that is where a forward sampler stands. Multiply
the definition by (t - r) and differentiate in r along a trajectory, i.e. with z_r moving at
dz_r/dr = v(z_r, r) and t fixed:

    d/dr [(t - r) u(z_r, r, t)] = -v(z_r, r)          (the lower limit of the integral moves)
    -u(z_r, r, t) + (t - r) d/dr u(z_r, r, t) = -v(z_r, r)

    u(z_r, r, t) = v(z_r, r) + (t - r) d/dr u(z_r, r, t),
    d/dr u = v(z_r, r) . grad_z u + d_r u,

a Jacobian-vector product of u along the tangent (v, 1, 0) in (z, r, t). (Substituting the paper's
time 1 - t, its u = -ours and v = -ours turns its u = v - (t - r) d/dt u into this one: the sign of
the correction flips with the direction of time, and the derivative moves from t to r.)

Training regresses u_theta(z_r, r, t) on the stop-gradient target ``v + (t - r) jvp``, with v a
velocity at z_r = alpha_r z_1 + sigma_r z_0 of the trainer's target: the conditional velocity
d_alpha z_1 + d_sigma z_0, or the posterior mean of it over the batch or the data (the Trainer's
default for this objective: far less noise). Each has the marginal velocity as its expectation given
z_r and the target is linear in v, so the minimiser is the true average velocity. The loss is the paper's adaptive weighting with p = 1,
``|e|^2 / (|e|^2 + c)`` with the weight detached, which bounds every pair's pull. A fraction of the
pairs has r = t, where the target is plain flow matching.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .solvers import Trajectory, check_start

__all__ = ["MeanFlowConfig", "meanflow_loss", "meanflow_target", "sample_mean_flow", "sample_times"]

AverageVelocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MeanFlowConfig:
    """How MeanFlow draws its time pairs and weights its loss.

    Attributes:
        equal_fraction: the share of pairs with r = t (plain flow matching on those).
        time_mean, time_std: the logit-normal law of the two times, drawn independently and sorted
            (r = the smaller): logit(s) ~ N(time_mean, time_std^2). A wide law puts many pairs near
            (0, 1), the interval that one-step sampling needs. Measured once each on moons after
            15-20 CPU-seconds (1-NFE energy distance over the noise floor): uniform times with half
            r = t 31x, with a quarter 11x; std 2 with half 15x, with a quarter 6.5x.
        adaptive_eps: c in the adaptive weight 1 / (|e|^2 + c)^p.  adaptive_power: p (0: plain MSE).
    """

    equal_fraction: float = 0.25
    time_mean: float = 0.0
    time_std: float = 2.0
    adaptive_eps: float = 1e-3
    adaptive_power: float = 1.0


def sample_times(
    normals: torch.Tensor,
    uniform: torch.Tensor,
    t_max: float = 1.0,
    config: MeanFlowConfig = MeanFlowConfig(),
):
    """(r, t), each (n,), with 0 <= r <= t <= t_max and ``config.equal_fraction`` of them r = t, from
    a batch's draws: normals (2, n) standard normals (the two logit-normal times) and uniform (n,)
    in [0, 1) (which rows get r = t)."""
    logits = config.time_mean + config.time_std * normals
    times = torch.sigmoid(logits) * t_max
    r, t = times.min(0).values, times.max(0).values
    equal = uniform < config.equal_fraction
    return torch.where(equal, t, r), t


def meanflow_target(average_velocity: AverageVelocity, z_r, r, t, v):
    """The network's value and the MeanFlow identity's right-hand side at (z_r, r, t).

    Args:
        average_velocity: u(z, r, t) with z (n, d), r and t (n,), returning (n, d); differentiable.
        z_r: (n, d) states at times r.  r, t: (n,) with r <= t.  v: (n, d) the velocity at (z_r, r).
    Returns:
        (u, target): (n, d) u(z_r, r, t), and (n, d) ``v + (t - r) (v . grad_z u + d_r u)``, the
        Jacobian-vector product taken by ``torch.func.jvp`` along (v, 1, 0). The target is not
        detached here: ``meanflow_loss`` stops its gradient.
    """
    u, du_dr = torch.func.jvp(average_velocity, (z_r, r, t), (v, torch.ones_like(r), torch.zeros_like(t)))
    return u, v + (t - r)[:, None] * du_dr


def meanflow_loss(net, z_r, r, t, v, config: MeanFlowConfig = MeanFlowConfig()):
    """The adaptively weighted MeanFlow loss of an ``AverageVelocityMLP`` on one batch.

    Args:
        net: the network, called as ``net(z, t, r=r)``.  z_r, r, t, v: as for ``meanflow_target``.
    Returns:
        (loss, error): the scalar to differentiate, ``mean |e|^2 / (|e|^2 + c)^p`` with the weight
        detached, and the detached plain mean squared error ``mean |e|^2`` (what the trainer reports).
    """
    u, target = meanflow_target(lambda z, r_, t_: net(z, t_, r=r_), z_r, r, t, v)
    error = (u - target.detach()).square().sum(1)
    weight = (error.detach() + config.adaptive_eps).pow(-config.adaptive_power)
    return (weight * error).mean(), error.detach().mean()


@torch.no_grad()
def sample_mean_flow(model, z0, steps: int = 1, t_max: float | None = None) -> Trajectory:
    """Sample a mean-flow model in ``steps`` jumps z_t = z_r + (t - r) u(z_r, r, t), from t = 0.

    Args:
        model: a ``Trainer`` or ``FlowModel`` trained with ``objective="meanflow"``, or any callable
            ``u(z, r, t)`` (z (n, d), r and t 0-d tensors) returning (n, d).
        z0: (n, d) noise at t = 0.  steps: the number of jumps on a uniform grid, >= 1.
        t_max: the last time; default the model's ``schedule.t_max`` (1 for a plain callable).
    Returns:
        ``Trajectory`` with ts (steps+1,), zs (steps+1, n, d), solver "meanflow" and nfe = the
        counted network evaluations (one per step).
    Raises:
        ValueError: steps not an integer >= 1, z0 not a finite (n, d) float tensor, or a flow model.
    """
    check_start(steps, z0)
    flow = getattr(model, "flow", model)
    average_velocity = getattr(flow, "average_velocity", flow)
    if t_max is None:
        schedule = getattr(flow, "schedule", None)
        t_max = 1.0 if schedule is None else schedule.t_max
    ts = torch.linspace(0.0, float(t_max), int(steps) + 1, dtype=z0.dtype)
    zs, nfe = [z0], 0
    for r, t in itertools.pairwise(ts):
        u = torch.as_tensor(average_velocity(zs[-1], r, t)).to(z0)
        nfe += 1
        zs.append(zs[-1] + (t - r) * u)
    return Trajectory(ts=ts, zs=torch.stack(zs), nfe=nfe, solver="meanflow", steps=int(steps))
