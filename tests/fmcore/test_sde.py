"""Stochastic sampling of a flow: the SDE family keeps the ODE's marginals, noise=0 is Euler."""

import math

import pytest
import torch

import fmcore
from fmcore import SCHEDULES, datasets, metrics, sample_sde
from fmcore.sde import MAX_STEP_VARIANCE, bridge, diffusion_coefficient, renoise_decay
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


def test_the_score_term_is_what_keeps_the_marginals(data, reference):
    # The same noise without the drift correction (g^2/2) score drifts far off p_t: the check above
    # has the power to see a wrong SDE.
    ode, floors = reference
    wrong = sample_sde(
        exact(data), _noise(1000, seed=2), SCHEDULE, noise=1.0, steps=STEPS, seed=3, score_drift=False
    )
    assert metrics.energy_distance(wrong.zs[-1], ode.zs[-1]) > 20 * floors[STEPS]


def test_roughness_grows_with_noise_as_the_renoised_share_predicts(data):
    z0 = _noise(500, seed=5)
    roughness = []
    for noise in (0.0, 0.5, 1.0, 2.0):
        sde = sample_sde(exact(data), z0, SCHEDULE, noise=noise, steps=STEPS, seed=6)
        roughness.append(float(sde.zs.diff(dim=0).square().sum(-1).sum(0).mean()))
        if noise:
            # Quadratic variation, d per coordinate pair: a step takes the noise direction (spread
            # sigma') to keep times itself plus fresh noise of variance 1 - keep^2, so it moves it by
            # sigma'^2 ((1 - keep)^2 + 1 - keep^2) on average (the drift adds O(h) more); for small
            # steps that is g^2 h, Euler-Maruyama's Brownian increment.
            ts = sde.ts.double()[:-1]  # the last step adds no noise
            keep = renoise_decay(SCHEDULE, ts[:-1], ts[1:], noise)
            spread = SCHEDULE(ts[1:]).sigma ** 2
            expected = 2 * float((spread * ((1 - keep) ** 2 + 1 - keep**2)).sum())
            assert 1.0 <= roughness[-1] / expected < 1.2, (noise, roughness[-1] / expected)
    assert roughness == sorted(roughness) and roughness[1] > 10 * roughness[0]


def test_the_renoised_share_is_the_integral_of_the_scores_pull():
    """keep = exp(-int lambda dt), lambda = g^2 / (2 sigma^2): the closed form against quadrature on
    every schedule, and on the linear path (t (1 - s) / ((1 - t) s))^(noise^2)."""
    t, s = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.42, dtype=torch.float64)
    for name in SCHEDULES:
        schedule = SCHEDULES[name]
        u = torch.linspace(float(t), float(s), 20001, dtype=torch.float64)
        rate = diffusion_coefficient(schedule, u) / (2 * schedule(u).sigma ** 2)
        integral = float(torch.trapezoid(rate, u))
        for noise in (0.5, 1.0, 2.0):
            expected = math.exp(-(noise**2) * integral)
            assert float(renoise_decay(schedule, t, s, noise)) == pytest.approx(expected, rel=1e-6), name
    linear = float(renoise_decay(SCHEDULES["linear"], t, s, 1.5))
    assert linear == pytest.approx((0.3 * 0.58 / (0.7 * 0.42)) ** 2.25, rel=1e-12)
    assert float(renoise_decay("linear", torch.tensor(0.0), torch.tensor(0.1), 1.0)) == 0.0
    assert float(renoise_decay("linear", t, s, 0.0)) == 1.0


def test_on_gaussian_data_the_marginals_error_is_first_order_in_the_step():
    """Data N(m, s^2 I) has p_t = N(alpha m, (alpha^2 s^2 + sigma^2) I) and its exact field in closed
    form. The mean is kept at any step; the spread at t = 0.5 is off by O(h) (the data prediction is
    held over a step while it follows z): each halving of the step halves the error, a measured order
    of 1, Euler-Maruyama's weak order. Same noise and Brownian seed at every step count."""
    m, s2 = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.25
    schedule = fmcore.get_schedule("linear")

    def velocity(z, t):  # E[alpha' z1 + sigma' z0 | z_t = z] for Gaussian z1
        v = schedule(t)
        z1 = m + v.alpha * s2 / (v.alpha**2 * s2 + v.sigma**2) * (z - v.alpha * m)
        return v.d_alpha * z1 + v.d_sigma * (z - v.alpha * z1) / v.sigma

    z0 = torch.randn(400_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = []
    for steps in (20, 40, 80):
        sde = sample_sde(velocity, z0, schedule, noise=1.0, steps=steps, seed=1)
        v = schedule(sde.ts[steps // 2])
        errors.append(float(sde.zs[steps // 2].var(0).mean() / (v.alpha**2 * s2 + v.sigma**2) - 1))
        torch.testing.assert_close(sde.zs[-1].mean(0), m, atol=5e-3, rtol=0)
    orders = [math.log2(errors[k] / errors[k + 1]) for k in range(2)]
    assert all(0.7 < order < 1.4 for order in orders), (errors, orders)
    assert abs(errors[-1]) < 0.02


def test_the_bridge_meets_the_nodes_and_keeps_the_spread_between_them(data):
    z0 = _noise(20_000, seed=8)
    sde = sample_sde(exact(data), z0, SCHEDULE, noise=1.0, steps=10, seed=2)
    assert torch.equal(bridge(sde, sde.ts, SCHEDULE, 1.0, seed=3), sde.zs)
    # between t = 0 and 0.1 the first step renoised fully: a line from z0 to z_0.1 would hold
    # (1 - a)^2 + a^2 of the spread (0.52 at a = 0.4); the bridge holds the marginal's
    times = torch.tensor([0.04], dtype=torch.float64)
    ode = integrate(exact(data), _noise(20_000, seed=9), "euler", 100, schedule=SCHEDULE)
    between = bridge(sde, times, SCHEDULE, 1.0, seed=3)[0]
    assert abs(between.var(0).sum() / ode.zs[4].var(0).sum() - 1) < 0.03
    line = bridge(sde, times[:1], SCHEDULE, 0.0, seed=3)[0]
    assert abs(line.var(0).sum() / ode.zs[4].var(0).sum() - 0.52) < 0.05
    torch.testing.assert_close(line, 0.6 * sde.zs[0] + 0.4 * sde.zs[1])


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


def test_the_first_step_from_pure_noise_renoises_in_closed_form(data):
    """At t = 0 (alpha = 0) the marginal is N(0, I) and beta is infinite: the whole noise direction is
    drawn afresh, so after one step z = alpha_h E[z_1] + sigma_h xi, xi the step's Brownian draw (the
    exact field's data prediction at t = 0 is the data mean). The teaching sampler without the score
    term takes plain Euler-Maruyama's capped increment on the same draw instead."""
    z0 = _noise(500, seed=4)
    right, wrong = (
        sample_sde(exact(data), z0, SCHEDULE, noise=1.0, steps=10, seed=7, score_drift=drift).zs
        for drift in (True, False)
    )
    xi = torch.randn(z0.shape, generator=torch.Generator().manual_seed(7))
    s = SCHEDULE(torch.tensor(0.1))
    torch.testing.assert_close(right[1], s.alpha * data.mean(0) + s.sigma * xi, rtol=0, atol=1e-5)
    v = exact(data)(z0, torch.tensor(0.0))
    torch.testing.assert_close(wrong[1], z0 + 0.1 * v + MAX_STEP_VARIANCE**0.5 * xi, rtol=0, atol=1e-5)
    # Without its score term the noise is never taken back: the cloud ends wider than the ODE's.
    ode = sample_sde(exact(data), z0, SCHEDULE, noise=0.0, steps=10).zs[-1]
    assert wrong[-1].var() > 1.1 * ode.var() and abs(right[-1].var() / ode.var() - 1) < 0.1
