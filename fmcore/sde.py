"""Stochastic sampling of any flow: a family of SDEs that share the flow's marginals p_t.

For a velocity v(z, t) that carries p_0 = N(0, I) to p_1 along the path, every diffusion level g_t
gives an SDE with the same marginals (the Fokker-Planck equation gains ``+ g^2/2 Laplacian p`` from
the noise and ``- div(g^2/2 p grad log p) = - g^2/2 Laplacian p`` from the extra drift):

    dz = [v(z, t) + (g_t^2 / 2) grad log p_t(z)] dt + g_t dW_t.

The score comes from the velocity itself (``fmcore.convert``, through the endpoint predictions;
on the linear path it is ``(t v - z) / (1 - t)``), so any learned or exact flow can be sampled this
way. ``noise`` scales one documented level, ``g_t = noise * sqrt(beta_t)``, with

    beta_t = 2 sigma_t^2 d/dt log(alpha_t / sigma_t) = 2 sigma_t (sigma_t d_alpha_t / alpha_t - d_sigma_t),

the diffusion coefficient of the forward (noising) SDE whose marginals are this path's
Gaussians, ``g^2 = d sigma^2/ds - 2 sigma^2 d log alpha/ds`` in diffusion time s = 1 - t (Kingma et
al. 2021, "Variational Diffusion Models", appendix; Song et al. 2021, "Score-Based Generative
Modeling through SDEs", for the reverse-time SDE and its probability-flow ODE). So ``noise=1`` is
the reverse diffusion SDE of the schedule (on ``vp`` exactly ``VariancePreserving.beta``) and
``noise=0`` the ODE. The family is that of Albergo, Boffi & Vanden-Eijnden 2023 (stochastic
interpolants, their ``eps_t = g_t^2 / 2``); see also the Flow Matching Guide (Lipman et al. 2024,
arXiv 2412.06264) on affine Gaussian paths and diffusion. On the linear path
``beta_t = 2 (1 - t) / t``.

Endpoints. Where sigma_t = 0 (t = 1) the score is infinite but beta_t is 0 for the linear,
cosine and polynomial paths; the last step is taken without noise in any case (noise added there
would be left in the samples, never denoised; DDPM and ``fmcore.diffusion`` do the same), so the
score is never asked for at t = 1. Where alpha_t = 0 (t = 0 on every path here but ``vp``) beta_t
diverges like 1/t (2/t on the linear path); there the marginal is exactly N(0, sigma_t^2 I), whose score ``-z / sigma_t^2``
needs no network, and each step's noise variance ``g^2 h`` is capped at ``MAX_STEP_VARIANCE``:
Euler-Maruyama's Langevin part moves by ``(g^2 h / 2) score``, which on N(0, I) overshoots the
mode once ``g^2 h`` passes 2 and amplifies the state past 4 (the first step from t = 0 has g = inf). Any g keeps the marginals, so the cap changes the
paths of the first few steps (a span that shrinks with h), not p_t. Like ``integrate``, the grid
runs to t = 1 and the velocity is never evaluated past the schedule's ``t_max``.
"""

from __future__ import annotations

import itertools
import numbers

import torch

from .paths import Velocity, convert
from .schedules import Schedule, get_schedule
from .solvers import CountedVelocity, SolverState, Trajectory, check_start, euler, time_grid

__all__ = ["MAX_STEP_VARIANCE", "diffusion_coefficient", "sample_sde"]

MAX_STEP_VARIANCE = 0.5
"""Largest noise variance ``g_t^2 h`` one Euler-Maruyama step adds (per coordinate); only the first
steps from t = 0 meet it, where ``beta_t`` diverges."""


def diffusion_coefficient(schedule: str | Schedule, t) -> torch.Tensor:
    """``beta_t = 2 sigma_t^2 d/dt log(alpha_t / sigma_t)``: the squared diffusion level at noise=1.

    Args:
        schedule: a ``Schedule`` or its name.  t: float or tensor of times in [0, 1].
    Returns:
        beta_t shaped like t: +inf where alpha_t = 0, 0 where sigma_t = 0 (and d_sigma_t is finite).
    """
    s = get_schedule(schedule)(t)
    drift_ratio = torch.where(s.alpha > 0, s.d_alpha / s.alpha, torch.full_like(s.alpha, torch.inf))
    return torch.where(
        s.sigma > 0, 2.0 * s.sigma * (s.sigma * drift_ratio - s.d_sigma), torch.zeros_like(s.sigma)
    )


def _score(v: torch.Tensor, z: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """grad log p_t(z) from the velocity v at (z, t); exact ``-z / sigma^2`` where alpha_t = 0."""
    s = schedule(t)
    if float(s.alpha) == 0.0:
        return -z / s.sigma**2
    return convert(v, z, t, schedule, "velocity", "score")


def _check(noise, steps, z0):
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < float("inf"):
        raise ValueError(
            f"noise must be a finite number >= 0 (0 is the ODE, 1 reverse diffusion); got {noise!r}"
        )
    check_start(steps, z0)


@torch.no_grad()
def sample_sde(
    velocity: Velocity,
    z0: torch.Tensor,
    schedule: str | Schedule,
    noise: float = 1.0,
    steps: int = 100,
    seed: int = 0,
    grid: str = "uniform",
    score_drift: bool = True,
) -> Trajectory:
    """Sample ``dz = [v + (g_t^2/2) score] dt + g_t dW``, g_t = noise sqrt(beta_t), by Euler-Maruyama.

    Each step is Euler's on the drift plus a Brownian increment ``g_t sqrt(h) xi``, with g_t taken
    at the step's start (Ito), its variance capped at ``MAX_STEP_VARIANCE``; the last step adds no
    noise. ``noise=0`` is ``integrate(velocity, z0, "euler", steps, ...)`` bit for bit.

    Args:
        velocity: ``v(z, t)`` with z (n, d) and t a 0-d tensor, returning (n, d).
        z0: (n, d) noise at t = 0.  schedule: the path the field belongs to (object or name).
        noise: the scale of g_t, >= 0: 0 the ODE, 1 the reverse diffusion SDE of the schedule.
        steps: K >= 1 steps (K NFE).  seed: fixes the Brownian increments.  grid: a ``TIME_GRIDS`` key.
        score_drift: False drops the ``(g_t^2/2) score`` term, leaving ``dz = v dt + g_t dW``: the
            wrong sampler (its marginals are not p_t), kept for teaching; same grid, g_t and noise.
    Returns:
        ``Trajectory`` with ts (K+1,), zs (K+1, n, d), the counted NFE, solver "euler-maruyama".
    Raises:
        ValueError: a negative or non-finite noise, bad steps, a bad z0, an unknown schedule or grid.
    """
    _check(noise, steps, z0)
    schedule = get_schedule(schedule)
    noise = float(noise)
    ts = time_grid(grid, int(steps), 0.0, 1.0, schedule).to(dtype=z0.dtype, device=z0.device)
    counted = CountedVelocity(velocity, schedule.t_max)
    generator = torch.Generator(device=z0.device).manual_seed(int(seed))
    state = SolverState(schedule=schedule)
    zs = [z0]
    for k, (t, t_next) in enumerate(itertools.pairwise(ts)):
        z = zs[-1]
        if noise == 0.0 or k == steps - 1:
            zs.append(euler(counted, z, t, t_next, state))
            continue
        h = t_next - t
        t_eval = t.clamp(max=schedule.t_max)
        g2 = noise**2 * float(diffusion_coefficient(schedule, t_eval.double()))
        variance = min(g2 * float(h), MAX_STEP_VARIANCE)  # g_t^2 h after the cap
        v = counted(z, t)
        drift = v + (0.5 * variance / float(h)) * _score(v, z, t_eval, schedule) if score_drift else v
        xi = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        zs.append(z + h * drift + variance**0.5 * xi)
    return Trajectory(ts=ts, zs=torch.stack(zs), nfe=counted.calls, solver="euler-maruyama", steps=int(steps))
