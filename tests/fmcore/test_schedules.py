"""Schedules: boundary values, derivatives against finite differences, log-SNR and its inverse."""

import math

import pytest
import torch

from fmcore import SCHEDULES, get_schedule
from fmcore.schedules import Polynomial

NAMES = sorted(SCHEDULES)
F64 = torch.float64


def interior(schedule, n=41):
    return torch.linspace(0.02, min(0.98, schedule.t_max - 0.01), n, dtype=F64)


@pytest.mark.parametrize("name", NAMES)
def test_reaches_data_at_t1(name):
    s = SCHEDULES[name](torch.tensor(1.0, dtype=F64))
    assert s.alpha.item() == pytest.approx(1.0, abs=1e-12)
    assert s.sigma.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["linear", "cosine", "polynomial"])
def test_starts_at_pure_noise(name):
    s = SCHEDULES[name](torch.tensor(0.0, dtype=F64))
    assert s.alpha.item() == 0.0 and s.sigma.item() == 1.0


def test_vp_matches_the_diffusion_vp_sde():
    vp = SCHEDULES["vp"]
    # alpha_0 = exp(-(beta_min + (beta_max - beta_min) / 2) / 2) with beta 0.1 .. 20
    assert vp(torch.tensor(0.0, dtype=F64)).alpha.item() == pytest.approx(math.exp(-0.5 * (0.1 + 9.95)))
    t = torch.linspace(0, 1, 101, dtype=F64)
    s = vp(t)
    torch.testing.assert_close(s.alpha**2 + s.sigma**2, torch.ones_like(t))
    # d alpha / dt = beta(1 - t) alpha / 2: the VP-SDE drift, run in flow-matching time.
    torch.testing.assert_close(s.d_alpha, 0.5 * (0.1 + (1 - t) * 19.9) * s.alpha)


def test_cosine_is_variance_preserving():
    s = SCHEDULES["cosine"](torch.linspace(0, 1, 101, dtype=F64))
    torch.testing.assert_close(s.alpha**2 + s.sigma**2, torch.ones(101, dtype=F64))


@pytest.mark.parametrize("name", NAMES)
def test_derivatives_match_finite_differences(name):
    schedule = SCHEDULES[name]
    t, h = interior(schedule), 1e-6
    s, up, down = schedule(t), schedule(t + h), schedule(t - h)
    # Central differences: error O(h^2 f''') + O(eps / h) ~ 1e-10 here.
    torch.testing.assert_close(s.d_alpha, (up.alpha - down.alpha) / (2 * h), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s.d_sigma, (up.sigma - down.sigma) / (2 * h), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_log_snr_is_increasing_and_inverted(name):
    schedule = SCHEDULES[name]
    t = interior(schedule)
    lam = schedule.log_snr(t)
    assert torch.all(lam.diff() > 0)
    s = schedule(t)
    torch.testing.assert_close(lam, torch.log(s.alpha / s.sigma))
    torch.testing.assert_close(schedule.snr(t), (s.alpha / s.sigma) ** 2)
    torch.testing.assert_close(schedule.t_of_log_snr(lam), t, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_values_keep_the_shape_of_t(name):
    t = torch.rand(3, 4, dtype=F64)
    s = SCHEDULES[name](t)
    assert s.alpha.shape == s.sigma.shape == s.d_alpha.shape == s.d_sigma.shape == (3, 4)
    assert SCHEDULES[name](0.5).alpha.shape == ()


def test_polynomial_n1_is_linear():
    t = torch.linspace(0, 1, 11, dtype=F64)
    a, b = Polynomial(1.0)(t), SCHEDULES["linear"](t)
    torch.testing.assert_close(a.alpha, b.alpha)
    torch.testing.assert_close(a.d_sigma, b.d_sigma)


def test_lookup_errors_are_plain():
    assert get_schedule("cosine") is SCHEDULES["cosine"]
    with pytest.raises(ValueError, match="unknown schedule 'sigmoid'; choose one of linear"):
        get_schedule("sigmoid")
    with pytest.raises(ValueError, match="exponent n > 0"):
        Polynomial(0)


# -- Blurred: the data convolved with N(0, bw^2 I) ---------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_blurred_derivatives_match_finite_differences_and_sigma_adds_the_blur(name):
    from fmcore import Blurred

    base, blurred = get_schedule(name), Blurred(name, 0.1)
    t = torch.linspace(0.02, min(0.98, base.t_max - 0.02), 41, dtype=torch.float64)
    h = 1e-6
    for value, derivative in ((blurred.alpha, blurred.d_alpha), (blurred.sigma, blurred.d_sigma)):
        numeric = (value(t + h) - value(t - h)) / (2 * h)
        torch.testing.assert_close(derivative(t), numeric, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(blurred.sigma(t) ** 2, base.alpha(t) ** 2 * 0.01 + base.sigma(t) ** 2)
    assert float(blurred.sigma(torch.tensor(1.0, dtype=torch.float64))) >= 0.1 * float(
        base.alpha(torch.tensor(1.0))
    )


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_blurred_log_snr_inverts(name):
    from fmcore import Blurred

    blurred = Blurred(name, 0.08)
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    torch.testing.assert_close(blurred.t_of_log_snr(blurred.log_snr(t)), t, rtol=0, atol=1e-9)


def test_blurred_exact_velocity_is_the_blurred_datas_field_by_monte_carlo():
    """E[alpha' z_1 + sigma' z_0 | z_t = z] with z_1 = x_j + bw eps, estimated by self-normalised
    importance weights over many (j, eps) draws, against the closed form through ``Blurred``."""
    from fmcore import Blurred, exact_velocity

    g = torch.Generator().manual_seed(1)
    data = torch.randn(5, 2, generator=g, dtype=torch.float64)
    bw, t = 0.3, 0.9
    base = get_schedule("cosine")
    s = base(torch.tensor(t, dtype=torch.float64))
    z = torch.tensor([[0.4, -0.2], [1.0, 0.5]], dtype=torch.float64)
    draws = 400_000
    z1 = data[torch.randint(0, 5, (draws,), generator=g)] + bw * torch.randn(
        draws, 2, generator=g, dtype=torch.float64
    )
    for point, closed in zip(z, exact_velocity(z, t, data, Blurred("cosine", bw)), strict=True):
        # given z_1, z_t ~ N(alpha z_1, sigma^2 I): weight each z_1 by that likelihood of z_t = point
        log_w = -((point - s.alpha * z1) ** 2).sum(1) / (2 * s.sigma**2)
        w = torch.softmax(log_w, 0)
        z0 = (point - s.alpha * z1) / s.sigma
        mc = (w[:, None] * (s.d_alpha * z1 + s.d_sigma * z0)).sum(0)
        torch.testing.assert_close(closed, mc, rtol=0, atol=0.03)


def test_blurred_needs_a_positive_bandwidth():
    from fmcore import Blurred

    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Blurred("linear", 0.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        Blurred("nope", 0.1)
