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

The step. Writing the score through the data prediction, ``grad log p_t = -(z - alpha_t z1_hat) /
sigma_t^2`` with ``z1_hat = E[z_1 | z_t]``, the score term pulls z towards ``alpha_t z1_hat`` at the
rate ``lambda_t = g_t^2 / (2 sigma_t^2) = noise^2 d/dt log(alpha_t / sigma_t)``, which diverges where
alpha_t = 0 (t = 0) and where sigma_t = 0 (t = 1). Plain Euler-Maruyama overshoots once
``lambda h > 1`` and needs its noise capped near t = 0 (it did, and its clouds left p_t in the first
frames). Each step here is Euler on v, then that pull and the noise taken exactly over the step with
z1_hat held (an Ornstein-Uhlenbeck step, the exponential integrator of Lu et al. 2022, DPM-Solver++,
for its SDE; at noise 1 on the linear path it is DDPM's ancestral step): a share
``keep = exp(-int lambda dt)`` (``renoise_decay``) of the noise direction stays and the rest is drawn
afresh, ``z' = m + keep (z + h v - m) + sigma' sqrt(1 - keep^2) xi`` with ``m = alpha' z1_hat``. For
small steps that is Euler-Maruyama's step (drift ``(g^2 h / 2) score``, variance ``g^2 h``); it is
stable at any g, and the first step from pure noise renoises fully, as p_0 = N(0, I) allows. Its error
is first order in h (held z1_hat; measured in the tests): with few steps the clouds are a little
narrower than p_t near t = 1.

Endpoints. The last step is taken without noise (noise added there would be left in the samples,
never denoised; DDPM and ``fmcore.diffusion`` do the same), so the score is never asked for at t = 1.
Like ``integrate``, the grid runs to t = 1 and the velocity is never evaluated past the schedule's
``t_max``. ``bridge`` draws the states between the nodes (the Playground's frames).
"""

from __future__ import annotations

import itertools
import numbers

import torch

from .paths import Velocity, to_endpoints
from .schedules import Schedule, get_schedule
from .solvers import CountedVelocity, SolverState, Trajectory, bracket, check_start, euler, time_grid

__all__ = ["MAX_STEP_VARIANCE", "bridge", "diffusion_coefficient", "renoise_decay", "sample_sde"]

MAX_STEP_VARIANCE = 0.5
"""Largest noise variance ``g_t^2 h`` one step of the teaching sampler without the score term
(``score_drift=False``) adds per coordinate; only its first steps from t = 0 meet it, where
``beta_t`` diverges."""


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


def renoise_decay(
    schedule: str | Schedule, t: torch.Tensor, t_next: torch.Tensor, noise: float
) -> torch.Tensor:
    """``exp(-Lambda)``, the share of the noise direction one step keeps (the rest is drawn afresh).

    Over a step the score's Gaussian part pulls z towards ``alpha z1_hat`` at the rate
    ``lambda_t = g_t^2 / (2 sigma_t^2) = noise^2 d/dt log(alpha_t / sigma_t)``, so
    ``Lambda = noise^2 [log(alpha / sigma)]_t^t_next`` in closed form and

        exp(-Lambda) = (alpha_t sigma_next / (sigma_t alpha_next)) ** noise^2,

    0 where alpha_t = 0 (the first step from pure noise renoises fully) and 1 at noise 0.
    """
    schedule = get_schedule(schedule)
    return _keep(schedule(t), schedule(t_next), noise)


def _keep(s, s_next, noise: float) -> torch.Tensor:
    """``renoise_decay`` from the schedule's values at the step's two ends."""
    ratio = (s.alpha * s_next.sigma) / (s.sigma * s_next.alpha)
    return ratio.clamp(0.0, 1.0) ** (noise**2)


def _data_prediction(v: torch.Tensor, z: torch.Tensor, s) -> torch.Tensor:
    """E[z_1 | z_t = z] (n, d) from the velocity v at z (``to_endpoints``). Where alpha_t and its rate
    are both 0 (t = 0 on the polynomial path) the velocity holds nothing of z_1; 0 is taken, which a
    step weighs by the next alpha, itself O(h^p) there."""
    if float(s.alpha) == 0.0 and float(s.d_alpha) == 0.0:
        return torch.zeros_like(z)
    return to_endpoints(v, "velocity", z, s)[0]


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

    Each step is Euler's on v, then the score's pull and the Brownian noise over the step taken
    exactly with the data prediction held (the module's docstring; ``renoise_decay``); the last step
    adds no noise. ``noise=0`` is ``integrate(velocity, z0, "euler", steps, ...)`` bit for bit.

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
        t_eval, t_next_eval = t.clamp(max=schedule.t_max), t_next.clamp(max=schedule.t_max)
        v = counted(z, t)
        xi = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        if not score_drift:  # dz = v dt + g dW: plain Euler-Maruyama, its variance capped at t = 0
            g2 = noise**2 * float(diffusion_coefficient(schedule, t_eval.double()))
            zs.append(z + h * v + min(g2 * float(h), MAX_STEP_VARIANCE) ** 0.5 * xi)
            continue
        s, s_next = schedule(t_eval), schedule(t_next_eval)
        centre = s_next.alpha * _data_prediction(v, z, s)
        keep = _keep(s, s_next, noise)
        z_flow = z + h * v
        zs.append(centre + keep * (z_flow - centre) + s_next.sigma * (1 - keep**2) ** 0.5 * xi)
    return Trajectory(ts=ts, zs=torch.stack(zs), nfe=counted.calls, solver="euler-maruyama", steps=int(steps))


@torch.no_grad()
def bridge(
    trajectory: Trajectory, times: torch.Tensor, schedule: str | Schedule, noise: float, seed: int = 0
) -> torch.Tensor:
    """States of a ``sample_sde`` trajectory at any ``times``, drawn between its nodes.

    Linear interpolation between two nodes a step apart keeps their mean but not their noise: a
    step that renoises a share ``1 - keep^2`` of the noise direction leaves, at a fraction ``a`` of
    the way, ``((1 - a) + a keep)^2 + a^2 (1 - keep^2)`` of the unit variance. Fresh noise of
    variance ``sigma_s^2 2 a (1 - a) (1 - keep)`` at time s gives the rest back; for a small step
    (keep ~ 1 - Lambda) it is the Brownian bridge's ``a (1 - a) g^2 h``, and at a full renoise
    (keep = 0, the first step from pure noise) the cloud keeps the marginal's spread instead of
    shrinking to ``(1 - a)^2 + a^2`` of it. At noise 0 (and over the last, noiseless step) it is
    linear interpolation.

    Args:
        trajectory: from ``sample_sde(..., schedule, noise=noise)``: ts (K+1,), zs (K+1, n, d).
        times: (F,) times in [0, 1].  seed: the bridges' own noise.
    Returns:
        (F, n, d) states, dtype of ``trajectory.zs``.
    """
    schedule = get_schedule(schedule)
    ts, zs = trajectory.ts.double(), trajectory.zs
    times = torch.as_tensor(times, dtype=torch.float64).clamp(0.0, 1.0)
    lower, a = bracket(ts, times)
    t_max = schedule.t_max
    keep = torch.ones_like(ts[1:])
    if noise > 0 and len(ts) > 2:  # every step but the last renoises
        keep[:-1] = renoise_decay(schedule, ts[:-2].clamp(max=t_max), ts[1:-1].clamp(max=t_max), noise)
    spread = schedule(times.clamp(max=t_max)).sigma * (2 * a * (1 - a) * (1 - keep[lower])).sqrt()
    generator = torch.Generator(device=zs.device).manual_seed(int(seed))
    xi = torch.randn((len(times), *zs.shape[1:]), generator=generator, dtype=zs.dtype, device=zs.device)
    return trajectory.between(lower, a) + spread[:, None, None].to(zs.dtype) * xi
