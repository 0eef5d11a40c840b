"""The conditional path, the four parametrisations and the schedule change."""

import itertools

import pytest
import torch

from fmcore import PARAMETRISATIONS, SCHEDULES, change_schedule, convert, exact_velocity, sample_path
from fmcore.paths import to_endpoints

F64 = torch.float64
NAMES = sorted(SCHEDULES)


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 2, generator=g, dtype=F64), 2 * torch.rand(64, 2, generator=g, dtype=F64) - 1


@pytest.mark.parametrize("name", ["linear", "cosine", "polynomial"])
def test_path_endpoints(name, pair):
    z0, z1 = pair
    torch.testing.assert_close(sample_path(name, z0, z1, 0.0).z_t, z0)
    torch.testing.assert_close(sample_path(name, z0, z1, 1.0).z_t, z1)


@pytest.mark.parametrize("name", NAMES)
def test_target_is_the_time_derivative_of_the_path(name, pair):
    z0, z1 = pair
    t = torch.linspace(0.05, 0.95, 64, dtype=F64)
    h = 1e-6
    u = sample_path(name, z0, z1, t).u_t
    fd = (sample_path(name, z0, z1, t + h).z_t - sample_path(name, z0, z1, t - h).z_t) / (2 * h)
    torch.testing.assert_close(u, fd, rtol=1e-6, atol=1e-6)
    assert sample_path(name, z0, z1, t).t.shape == (64,)
    assert sample_path(name, z0, z1, 0.3).t.shape == (64,)


@pytest.mark.parametrize("name", NAMES)
def test_velocity_of_the_conditional_path_recovers_its_endpoints(name, pair):
    z0, z1 = pair
    t = torch.linspace(0.05, 0.95, 64, dtype=F64)
    p = sample_path(name, z0, z1, t)
    got1, got0 = to_endpoints(p.u_t, "velocity", p.z_t, SCHEDULES[name](t))
    torch.testing.assert_close(got1, z1)
    torch.testing.assert_close(got0, z0)


@pytest.mark.parametrize(
    ("name", "source", "target"),
    [(n, a, b) for n in NAMES for a, b in itertools.permutations(PARAMETRISATIONS, 2)],
)
def test_conversions_round_trip(name, source, target, pair):
    z, value = pair
    t = torch.linspace(0.05, SCHEDULES[name].t_max - 0.05, 64, dtype=F64)
    there = convert(value, z, t, name, source, target)
    back = convert(there, z, t, name, target, source)
    torch.testing.assert_close(back, value, rtol=1e-10, atol=1e-10)


def test_score_of_the_gaussian_path_is_minus_noise_over_sigma(pair):
    z0, z1 = pair
    p = sample_path("cosine", z0, z1, 0.4)
    sigma = SCHEDULES["cosine"](torch.tensor(0.4, dtype=F64)).sigma
    torch.testing.assert_close(convert(p.u_t, p.z_t, 0.4, "cosine", "velocity", "score"), -z0 / sigma)


def test_unknown_parametrisation():
    z = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="unknown parametrisation 'eps'"):
        convert(z, z, 0.5, "linear", "eps", "velocity")


@pytest.mark.parametrize(
    ("source", "target"),
    [("linear", "cosine"), ("cosine", "linear"), ("linear", "polynomial"), ("vp", "cosine")],
)
def test_schedule_change_maps_marginal_field_to_marginal_field(source, target):
    # The marginal field of the same data under B *is* the reparametrised field under A.
    g = torch.Generator().manual_seed(1)
    data = torch.randn(16, 2, generator=g, dtype=F64)
    z = 1.5 * torch.randn(200, 2, generator=g, dtype=F64)

    def v_a(zz, t):
        return exact_velocity(zz, t, data, source)

    v_b = change_schedule(v_a, source, target)
    # vp never reaches pure noise (lambda_min ~ -5): compare where both paths are defined.
    lo = 0.2 if "vp" in (source, target) else 0.05
    for r in torch.linspace(lo, 0.9, 5, dtype=F64):
        torch.testing.assert_close(v_b(z, r), exact_velocity(z, r, data, target), rtol=1e-6, atol=1e-6)


def test_same_schedule_is_the_identity():
    def v(z, t):
        return z

    assert change_schedule(v, "linear", SCHEDULES["linear"]) is v


@pytest.mark.parametrize("source", NAMES)
@pytest.mark.parametrize("target", NAMES)
def test_schedule_change_keeps_the_samples(source, target):
    # Same noise in, same data out: the flows under A and B are one flow, reparametrised, so
    # z_B(r_end) = s z_A(t_end) where lambda_B(r_end) = lambda_A(t_end), up to solver error.
    from fmcore import integrate

    a, b = SCHEDULES[source], SCHEDULES[target]
    g = torch.Generator().manual_seed(2)
    data = torch.randn(8, 2, generator=g, dtype=F64) * 0.5 + torch.tensor([1.0, -0.5], dtype=F64)
    z0 = torch.randn(200, 2, generator=g, dtype=F64)

    def v_a(z, t):
        return exact_velocity(z, t, data, source)

    t_end = a.t_max  # a VP model knows its field only up to t_max
    r_end = float(b.t_of_log_snr(a.log_snr(torch.tensor(t_end, dtype=F64))))
    sa, sb = a(torch.tensor(t_end, dtype=F64)), b(torch.tensor(r_end, dtype=F64))
    scale = torch.sqrt((sb.alpha**2 + sb.sigma**2) / (sa.alpha**2 + sa.sigma**2))

    def ends(v, t1, steps):
        return integrate(v, z0, solver="rk4", steps=steps, t1=t1).zs[-1]

    v_b = change_schedule(v_a, source, target)
    ends_a, ends_b = ends(v_a, t_end, 50), ends(v_b, r_end, 50)
    # Solver accuracy, measured: the change against a run with twice the steps.
    solver_error = (ends_a - ends(v_a, t_end, 100)).norm(dim=1) + (ends_b - ends(v_b, r_end, 100)).norm(dim=1)
    # vp starts from alpha_0 = 0.0066, not pure noise: flows into or out of it differ by about that.
    start_gap = 0.01 if "vp" in (source, target) and source != target else 0.0
    gap = (ends_b - scale * ends_a).norm(dim=1)
    assert gap.median() < 2 * solver_error.median() + start_gap + 1e-6
