"""Stochastic sampling of a flow: the SDE family keeps the ODE's marginals, noise=0 is Euler."""

import itertools
import math

import pytest
import torch

import fmcore
from fmcore import SCHEDULES, datasets, metrics, sample_sde
from fmcore.sde import MAX_STEP_VARIANCE, diffusion_coefficient
from fmcore.solvers import integrate

STEPS = 100
SCHEDULE = fmcore.Blurred("linear", 0.1)  # a finite exact field at t = 1


@pytest.fixture(scope="module")
def data():
    return datasets.sample("8gaussians", 256, seed=0)


def exact(data, schedule=SCHEDULE):
    return lambda z, t: fmcore.exact_velocity(z, t, data, schedule)


@pytest.fixture(scope="module")
def reference(data):
    """The ODE's cloud at every grid time, 2000 particles, and its noise floor at t = 0.5 and 1:
    mean |energy distance| between random halves (1000 vs 1000 points, the SDE's sample size)."""
    ode = integrate(exact(data), _noise(2000, seed=1), "euler", STEPS, schedule=SCHEDULE)
    generator = torch.Generator().manual_seed(0)
    floors = {}
    for k in (STEPS // 2, STEPS):
        halves = [torch.randperm(2000, generator=generator) for _ in range(4)]
        floors[k] = (
            sum(abs(metrics.energy_distance(ode.zs[k][p[:1000]], ode.zs[k][p[1000:]])) for p in halves) / 4
        )
    return ode, floors


def _noise(n, seed):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_beta_is_the_reverse_diffusion_coefficient_of_each_schedule():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    # The VP schedule is defined by its noise rate: noise=1 is DDPM's reverse SDE there.
    vp = SCHEDULES["vp"]
    assert torch.allclose(diffusion_coefficient(vp, t), vp.beta(t), rtol=1e-10)
    assert torch.allclose(diffusion_coefficient("linear", t), 2 * (1 - t) / t, rtol=1e-12)
    # beta = 2 sigma^2 d/dt log-SNR, checked against a central difference on the cosine path.
    cosine, eps = SCHEDULES["cosine"], 1e-6
    d_log_snr = (cosine.log_snr(t + eps) - cosine.log_snr(t - eps)) / (2 * eps)
    assert torch.allclose(diffusion_coefficient(cosine, t), 2 * cosine.sigma(t) ** 2 * d_log_snr, rtol=1e-7)
    ends = diffusion_coefficient("linear", torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert ends[0] == math.inf and ends[1] == 0.0


def test_noise_zero_is_euler_bit_for_bit(data):
    z0 = _noise(300, seed=4)
    for grid in ("uniform", "power"):
        ode = integrate(exact(data), z0, "euler", 30, schedule=SCHEDULE, grid=grid)
        sde = sample_sde(exact(data), z0, SCHEDULE, noise=0.0, steps=30, seed=9, grid=grid)
        assert torch.equal(sde.zs, ode.zs) and torch.equal(sde.ts, ode.ts)
        assert sde.nfe == ode.nfe == 30 and sde.solver == "euler-maruyama"


@pytest.mark.parametrize("noise", [0.5, 1.0, 2.0])
def test_sde_clouds_match_the_ode_at_half_time_and_at_the_end(data, reference, noise):
    ode, floors = reference
    sde = sample_sde(exact(data), _noise(1000, seed=2), SCHEDULE, noise=noise, steps=STEPS, seed=3)
    assert sde.nfe == STEPS and sde.zs.shape == (STEPS + 1, 1000, 2)
    for k in (STEPS // 2, STEPS):
        assert abs(metrics.energy_distance(sde.zs[k], ode.zs[k])) < 3 * floors[k], (noise, k)


def test_the_score_term_is_what_keeps_the_marginals(data, reference, monkeypatch):
    # The same noise without the drift correction (g^2/2) score drifts far off p_t: the check above
    # has the power to see a wrong SDE.
    ode, floors = reference
    monkeypatch.setattr(fmcore.sde, "_score", lambda v, z, t, schedule: torch.zeros_like(z))
    wrong = sample_sde(exact(data), _noise(1000, seed=2), SCHEDULE, noise=1.0, steps=STEPS, seed=3)
    assert metrics.energy_distance(wrong.zs[-1], ode.zs[-1]) > 20 * floors[STEPS]


def test_roughness_grows_with_noise_as_the_brownian_increments_predict(data):
    z0 = _noise(500, seed=5)
    roughness = []
    for noise in (0.0, 0.5, 1.0, 2.0):
        sde = sample_sde(exact(data), z0, SCHEDULE, noise=noise, steps=STEPS, seed=6)
        roughness.append(float(sde.zs.diff(dim=0).square().sum(-1).sum(0).mean()))
        if noise:
            # Quadratic variation: d * sum_k g^2 h per noisy step (the drift adds O(h) more).
            ts = sde.ts.double()
            steps = itertools.pairwise(ts[:-1])  # the last step adds no noise
            brownian = 2 * sum(
                min(noise**2 * float(diffusion_coefficient(SCHEDULE, t)) * float(s - t), MAX_STEP_VARIANCE)
                for t, s in steps
            )
            assert 1.0 <= roughness[-1] / brownian < 1.2, noise
    assert roughness == sorted(roughness) and roughness[1] > 10 * roughness[0]


def test_seeded_and_finite_on_every_schedule(data):
    z0 = _noise(200, seed=7)
    a, b, c = (sample_sde(exact(data), z0, SCHEDULE, noise=1.0, steps=20, seed=s).zs for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for name in SCHEDULES:
        schedule = fmcore.Blurred(name, 0.1)
        sde = sample_sde(exact(data, schedule), z0, schedule, noise=2.0, steps=40, seed=1)
        assert torch.isfinite(sde.zs).all() and sde.nfe == 40 and sde.ts[-1] == 1.0, name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"noise": -1.0}, "noise must be"),
        ({"noise": float("nan")}, "noise must be"),
        ({"steps": 0}, "steps must be"),
        ({"grid": "magic"}, "unknown time grid"),
    ],
)
def test_bad_arguments_are_refused(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_sde(exact(data), _noise(10, seed=0), "linear", **kwargs)


def test_without_the_score_drift_the_first_step_differs_by_the_closed_form(data):
    """At t = 0 (alpha = 0) the score is exactly -z/sigma^2 = -z0 and beta is infinite, so the capped
    variance is MAX_STEP_VARIANCE: the right and the wrong sampler, on the same Brownian increments,
    differ after one step by (variance/2) * score = -(MAX_STEP_VARIANCE/2) z0."""
    z0 = _noise(500, seed=4)
    right, wrong = (
        sample_sde(exact(data), z0, SCHEDULE, noise=1.0, steps=10, seed=7, score_drift=drift).zs
        for drift in (True, False)
    )
    torch.testing.assert_close(right[1] - wrong[1], -0.5 * MAX_STEP_VARIANCE * z0, rtol=0, atol=1e-5)
    # Without its score term the noise is never taken back: the cloud ends wider than the ODE's.
    ode = sample_sde(exact(data), z0, SCHEDULE, noise=0.0, steps=10).zs[-1]
    assert wrong[-1].var() > 1.1 * ode.var() and abs(right[-1].var() / ode.var() - 1) < 0.1
