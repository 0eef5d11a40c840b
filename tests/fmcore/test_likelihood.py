"""Exact likelihood: closed-form Gaussian flows, the exact mixture density, finite differences."""

import math

import pytest
import torch

from fmcore import exact_log_density, exact_velocity
from fmcore.likelihood import divergence, log_likelihood

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
S = 0.5


def gaussian_field(z, t):
    """Marginal velocity of the linear path towards data N(mu, s^2 I).

    z_t = t x + (1 - t) z_0 ~ N(t mu, c_t I) with c_t = t^2 s^2 + (1 - t)^2, and
    u_t(z) = E[x - z_0 | z_t = z] = mu + Cov(x - z_0, z_t) / c_t (z - t mu), Cov = c_t' / 2.
    """
    c = t**2 * S**2 + (1 - t) ** 2
    dc = 2 * t * S**2 - 2 * (1 - t)
    return MU + (0.5 * dc / c) * (z - t * MU)


def gaussian_log_density(x, t):
    c = t**2 * S**2 + (1 - t) ** 2
    d = x.shape[1]
    return -0.5 * ((x - t * MU).square().sum(1) / c + d * math.log(2 * math.pi * c))


@pytest.fixture(scope="module")
def points():
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8 + MU


@pytest.mark.parametrize("t1", [1.0, 0.5])
def test_log_likelihood_of_a_gaussian_flow_is_the_gaussian_log_density(points, t1):
    estimate = log_likelihood(gaussian_field, points, steps=20, t1=t1)
    # RK4 with 20 steps on this smooth field: error ~ (1/20)^4 times O(1) derivatives.
    torch.testing.assert_close(estimate, gaussian_log_density(points, t1), rtol=0.0, atol=1e-5)


def test_log_likelihood_converges_at_the_solvers_order(points):
    exact = gaussian_log_density(points, 1.0)
    errors = [
        (log_likelihood(gaussian_field, points, steps=k, solver="heun") - exact).abs().max().item()
        for k in (10, 20, 40)
    ]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(2.0, abs=0.3)
    assert math.log2(errors[1] / errors[2]) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_log_likelihood_of_the_exact_field_is_the_mixture_density(schedule):
    # The exact field carries N(0, I) onto the mixture p_t = 1/m sum_j N(alpha_t x_j, sigma_t^2 I)
    # for every t, so its likelihood must match exact_log_density. Up to t=0.7 the field is smooth.
    g = torch.Generator().manual_seed(1)
    data = torch.randn(8, 2, generator=g, dtype=torch.float64)
    x = torch.randn(32, 2, generator=g, dtype=torch.float64)
    field = lambda z, t: exact_velocity(z, t, data, schedule)  # noqa: E731
    estimate = log_likelihood(field, x, steps=64, t1=0.7)
    torch.testing.assert_close(estimate, exact_log_density(x, 0.7, data, schedule), rtol=0.0, atol=1e-5)


def test_divergence_matches_central_differences():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(8, 2, generator=g, dtype=torch.float64)
    z = torch.randn(20, 2, generator=g, dtype=torch.float64)
    field = lambda z, t: exact_velocity(z, t, data, "cosine")  # noqa: E731
    t, eps = 0.6, 1e-5
    by_differences = sum(
        (field(z + eps * e, t)[:, k] - field(z - eps * e, t)[:, k]) / (2 * eps)
        for k, e in enumerate(torch.eye(2, dtype=torch.float64))
    )
    # Central differences: truncation ~ eps^2 |v'''|, round-off ~ 1e-16 / eps.
    torch.testing.assert_close(divergence(field, z, t), by_differences, rtol=0.0, atol=1e-8)


def test_divergence_of_the_gaussian_field_is_d_times_its_rate():
    z = torch.randn(5, 2, dtype=torch.float64)
    t = 0.3
    c, dc = t**2 * S**2 + (1 - t) ** 2, 2 * t * S**2 - 2 * (1 - t)
    torch.testing.assert_close(
        divergence(gaussian_field, z, t), torch.full((5,), dc / c, dtype=torch.float64)
    )


def test_likelihood_refuses_a_solver_that_needs_the_path():
    with pytest.raises(ValueError, match="Runge-Kutta"):
        log_likelihood(gaussian_field, torch.zeros(2, 2, dtype=torch.float64), solver="dpm++2m")


def test_likelihood_leaves_no_graph_behind(points):
    assert not log_likelihood(gaussian_field, points, steps=4).requires_grad
