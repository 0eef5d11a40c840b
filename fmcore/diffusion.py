"""The diffusion baseline: noise prediction on the VP path, sampled by the reverse SDE or the ODE.

Training is flow matching's loop with another output: the network predicts the noise
``eps_theta(z_t, t) ~ z_0`` and regresses on it (denoising score matching with DDPM's "simple"
weighting), on the ``vp`` schedule. ``diffusion_trainer`` is therefore a ``Trainer`` with
``schedule="vp", prediction="noise"``: same ``step(n)``, stats, state and saving.

Sampling, in flow-matching time (t: 0 noise -> 1 data). With ``beta(t)`` the VP noise rate at
diffusion time ``s = 1 - t``, the forward SDE ``dz = -1/2 beta z ds + sqrt(beta) dW_s`` reversed and
written in t is

    dz = [1/2 beta z + beta score(z, t)] dt + sqrt(beta) dW_t,      score = -eps_theta / sigma_t,

and dropping the noise while halving the score term gives the probability-flow ODE
``dz/dt = 1/2 beta z + 1/2 beta score``, which is exactly the velocity ``d_alpha E[z_1|z] +
d_sigma E[z_0|z]`` of the path (``fmcore.paths.convert`` from "noise" to "velocity").
``sample_reverse_vp`` runs Euler-Maruyama on the first (the general family, any flow, any noise
scale, is ``fmcore.sample_sde``); ``sample_ode`` hands the second to
``fmcore.integrate``. Both accept any model trained on ``vp`` (a velocity model too: the score is
converted from whatever the network predicts).
"""

from __future__ import annotations

import numbers

import torch

from .models import FlowModel
from .schedules import VariancePreserving
from .solvers import Trajectory, integrate
from .trainer import Trainer

__all__ = ["diffusion_trainer", "sample_ode", "sample_reverse_vp"]


def diffusion_trainer(data, **kwargs) -> Trainer:
    """A ``Trainer`` for the noise-prediction model on the VP path (all other arguments as Trainer's)."""
    for fixed in ("schedule", "prediction"):
        if fixed in kwargs:
            raise ValueError(f"the diffusion baseline fixes {fixed}; drop {fixed}={kwargs[fixed]!r}")
    return Trainer(data, schedule="vp", prediction="noise", **kwargs)


def _flow(model) -> FlowModel:
    flow = getattr(model, "flow", model)
    if not isinstance(flow, FlowModel):
        raise ValueError(f"need a Trainer or FlowModel; got {type(model).__name__}")
    return flow


def _noise(z0, n: int, d: int, seed: int) -> torch.Tensor:
    if z0 is not None:
        return torch.as_tensor(z0, dtype=torch.float32)
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample_reverse_vp(model, n: int = 1000, steps: int = 100, seed: int = 0, z0=None) -> Trajectory:
    """Sample with the reverse VP SDE by Euler-Maruyama, t from 0 to the schedule's t_max.

    Args:
        model: a ``Trainer`` or ``FlowModel`` trained on the ``vp`` schedule.  n: samples (ignored
            when ``z0`` is given).  steps: K Euler-Maruyama steps.  seed: fixes the start noise and
            the Brownian increments.  z0: optional (n, d) start points.
    Returns:
        ``Trajectory`` with ts (K+1,), zs (K+1, n, d) on the CPU, nfe = K, solver "euler-maruyama".
        The last step adds no noise (its noise would be left in the samples undenoised).
    """
    flow = _flow(model)
    schedule = flow.schedule
    if not isinstance(schedule, VariancePreserving):
        raise ValueError(f"the reverse SDE here is the VP one; the model was trained on {schedule.name!r}")
    if not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    generator = torch.Generator().manual_seed(seed)
    z = _noise(z0, n, flow.config.dim, seed)
    ts = torch.linspace(0.0, schedule.t_max, steps + 1, dtype=torch.float64)
    zs = [z]
    for k in range(steps):
        t, h = ts[k].float(), float(ts[k + 1] - ts[k])
        beta = float(schedule.beta(t))
        drift = 0.5 * beta * z + beta * flow.predict(z, t, "score")
        z = z + h * drift
        if k < steps - 1:
            z = z + (beta * h) ** 0.5 * torch.randn(z.shape, generator=generator)
        zs.append(z)
    return Trajectory(ts=ts.float(), zs=torch.stack(zs), nfe=steps, solver="euler-maruyama", steps=steps)


def sample_ode(
    model, n: int = 1000, solver: str = "rk4", steps: int = 20, seed: int = 0, z0=None, **integrate_options
) -> Trajectory:
    """Sample with the probability-flow ODE: ``fmcore.integrate`` on the model's velocity.

    Args as ``sample_reverse_vp``, plus ``solver`` (a ``SOLVERS`` key) and any ``integrate`` option.
    """
    flow = _flow(model)
    z = _noise(z0, n, flow.config.dim, seed)
    return integrate(flow.velocity, z, solver, steps, schedule=flow.schedule, **integrate_options)
