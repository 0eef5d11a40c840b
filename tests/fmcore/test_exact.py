"""The closed-form marginal field and density, checked against Monte Carlo and the continuity equation."""

import math

import pytest
import torch

from fmcore import SCHEDULES, Blurred, exact_log_density, exact_posterior_mean, exact_score, exact_velocity
from fmcore import exact as exact_module

F64 = torch.float64


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 2, generator=g, dtype=F64)


@pytest.mark.parametrize("name", ["linear", "cosine", "vp"])
def test_velocity_is_the_conditional_expectation_monte_carlo(name, data):
    # E[u_t(z|z_1) | z_t = z], estimated by kernel regression on samples of the joint (z_t, u_t).
    schedule, t = SCHEDULES[name], 0.6
    s = schedule(torch.tensor(t, dtype=F64))
    g = torch.Generator().manual_seed(1)
    n, h = 2_000_000, 0.02
    z1 = data[torch.randint(len(data), (n,), generator=g)]
    z0 = torch.randn(n, 2, generator=g, dtype=F64)
    zt, ut = s.alpha * z1 + s.sigma * z0, s.d_alpha * z1 + s.d_sigma * z0
    queries = torch.tensor([[0.3, -0.2], [-0.5, 0.4], [0.0, 0.0]], dtype=F64) * s.alpha
    exact = exact_velocity(queries, t, data, schedule)
    for q, v in zip(queries, exact, strict=True):
        w = torch.exp(-((zt - q) ** 2).sum(1) / (2 * h**2))
        n_eff = w.sum() ** 2 / (w**2).sum()
        mc = (w[:, None] * ut).sum(0) / w.sum()
        spread = torch.sqrt((w[:, None] * (ut - mc) ** 2).sum(0) / w.sum())
        # Monte Carlo error ~ spread / sqrt(n_eff); kernel bias O(h^2 |grad^2 u|) stays below 0.02 here.
        tol = 5 * spread / math.sqrt(n_eff) + 0.02 * (1 + v.abs())
        assert torch.all((mc - v).abs() < tol), (name, q, mc, v, tol)


@pytest.mark.parametrize("name", ["linear", "cosine", "vp", "polynomial"])
def test_continuity_equation(name, data):
    # d/dt p_t + div(p_t u_t) = 0, all derivatives by central differences on a grid.
    schedule = SCHEDULES[name]
    xs = torch.linspace(-2.5, 2.5, 41, dtype=F64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    z = torch.stack([gx.flatten(), gy.flatten()], 1)
    h, dt = 1e-4, 1e-5
    for t in (0.3, 0.7):

        def flux(points, t=t):
            return torch.exp(exact_log_density(points, t, data, schedule))[:, None] * exact_velocity(
                points, t, data, schedule
            )

        dp_dt = (
            torch.exp(exact_log_density(z, t + dt, data, schedule))
            - torch.exp(exact_log_density(z, t - dt, data, schedule))
        ) / (2 * dt)
        ex, ey = torch.tensor([h, 0.0], dtype=F64), torch.tensor([0.0, h], dtype=F64)
        div = (flux(z + ex)[:, 0] - flux(z - ex)[:, 0] + flux(z + ey)[:, 1] - flux(z - ey)[:, 1]) / (2 * h)
        residual = (dp_dt + div).abs().max()
        assert residual < 1e-5 * dp_dt.abs().max().clamp_min(1.0), (t, residual)


def test_density_integrates_to_one_and_matches_the_mixture(data):
    xs = torch.linspace(-6, 6, 241, dtype=F64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    z = torch.stack([gx.flatten(), gy.flatten()], 1)
    p = torch.exp(exact_log_density(z, 0.5, data, "cosine"))
    assert (p.sum() * (xs[1] - xs[0]) ** 2).item() == pytest.approx(1.0, abs=1e-6)
    # At t=0 every path starts from N(0, I).
    logp0 = exact_log_density(z[:50], 0.0, data, "linear")
    torch.testing.assert_close(logp0, -0.5 * (z[:50] ** 2).sum(1) - math.log(2 * math.pi))


def test_score_is_the_gradient_of_the_log_density(data):
    z = torch.randn(30, 2, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(exact_log_density(z, 0.45, data, "vp").sum(), z)
    torch.testing.assert_close(exact_score(z.detach(), 0.45, data, "vp"), grad)


def test_boundaries_are_finite_and_right(data):
    far = torch.tensor([[40.0, -40.0], [0.0, 0.0], [1e3, 1e3]], dtype=F64)
    for name in SCHEDULES:
        for t in (0.0, 1e-7, 0.5, 0.9999, 1.0):
            assert torch.isfinite(exact_velocity(far, t, data, name)).all(), (name, t)
            assert torch.isfinite(exact_log_density(far, t, data, name)).all(), (name, t)
    # t = 0 on the linear path: nothing is known about z_1 yet, so the posterior mean is the data mean.
    torch.testing.assert_close(exact_posterior_mean(far, 0.0, data, "linear"), data.mean(0).expand(3, 2))
    # Near t = 1 the posterior collapses on the nearest data point.
    near = data[:3] + 1e-3
    torch.testing.assert_close(exact_posterior_mean(near, 0.9999, data, "linear"), data[:3])


def test_per_row_times_equal_one_time_at_a_time(data):
    z = torch.randn(6, 2, dtype=F64)
    t = torch.tensor([0.0, 0.1, 0.4, 0.5, 0.9, 1.0], dtype=F64)
    rows = torch.stack([exact_velocity(z[i : i + 1], t[i], data, "cosine")[0] for i in range(6)])
    torch.testing.assert_close(exact_velocity(z, t, data, "cosine"), rows)


def test_chunking_changes_nothing(data, monkeypatch):
    z = torch.randn(500, 2, dtype=F64)
    whole = exact_velocity(z, 0.7, data, "linear")
    monkeypatch.setattr(exact_module, "CHUNK_BYTES", len(data) * 8 * 7)  # 7 rows a chunk
    torch.testing.assert_close(exact_velocity(z, 0.7, data, "linear"), whole)
    torch.testing.assert_close(
        exact_log_density(z, 0.7, data, "linear"), exact_log_density(z, 0.7, data, "linear")
    )


def test_memory_stays_bounded_for_large_problems():
    # 20,000 x 20,000 would need 3.2 GB as one float64 (n, m) temporary; chunks keep it near 1 MB.
    rows = list(exact_module._chunks(20_000, 20_000))
    assert len(rows) > 1 and all((r.stop - r.start) * 20_000 * 8 <= 2**20 for r in rows)


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="same d"):
        exact_velocity(torch.zeros(3, 2), 0.5, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="empty"):
        exact_velocity(torch.zeros(3, 2), 0.5, torch.zeros(0, 2))


def _explicit_posterior_mean(z, t, data, schedule):
    """The definition, term by term in float64: explicit differences over a (n, m, d) temporary."""
    s = SCHEDULES[schedule](torch.as_tensor(t, dtype=F64))
    alpha, sigma = s.alpha.reshape(-1, 1, 1), s.sigma.reshape(-1, 1)
    log_w = -(z[:, None, :] - alpha * data[None]).square().sum(-1) / (2 * sigma**2)
    return torch.softmax(log_w, dim=1) @ data


TIMES = [0.0, 1e-6, 0.3, 0.9, 0.999, exact_module.T_EXACT_MAX]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("t", TIMES)
def test_expanded_float64_weights_match_the_definition(data, schedule, t):
    # The one-product expansion rounds each log weight by about 2^-52 (|z|^2 + alpha^2 |x|^2) /
    # (2 sigma^2) (4 terms summed: 4x that); the weights move by twice that in total variation,
    # the posterior mean by that times the data's radius.
    g = torch.Generator().manual_seed(3)
    z = 2.0 * torch.randn(50, 2, generator=g, dtype=F64)
    s = SCHEDULES[schedule](torch.tensor(t, dtype=F64))
    scale = (z.square().sum(1).max() + s.alpha**2 * data.square().sum(1).max()) / (2 * s.sigma**2)
    bound = 2 * 4 * 2.0**-52 * scale * data.norm(dim=1).max() + 1e-15
    got = exact_posterior_mean(z, t, data, schedule)
    assert (got - _explicit_posterior_mean(z, t, data, schedule)).abs().max() <= bound


@pytest.mark.parametrize("t", TIMES)
@pytest.mark.parametrize("schedule", ["linear", "blurred"])
def test_float32_path_agrees_with_float64_within_its_bound(t, schedule):
    # 20,000 data points; queries near the data and far from it (those take the shifted branch).
    g = torch.Generator().manual_seed(4)
    data = torch.randn(20_000, 2, generator=g).mul_(torch.tensor([1.5, 0.5]))
    z = torch.cat([2.0 * torch.randn(150, 2, generator=g), torch.tensor([[30.0, -30.0], [8.0, 0.0]])])
    path = Blurred("linear", 0.08) if schedule == "blurred" else "linear"
    t32 = float(torch.tensor(t, dtype=torch.float32))  # both paths at the same time
    fast = exact_posterior_mean(z, t32, data, path)
    exact = exact_posterior_mean(z.double(), t32, data.double(), path)
    u, m = 2.0**-24, len(data)
    # The weights' bound in total variation: FLOAT32_LOGIT_ERROR's (twice it) where the logits are
    # made in float32, else FLOAT32_LOG_WEIGHT_RANGE's (2 * 208 u, doubled for the schedule's own
    # float32 rounding of alpha and sigma); times the data's radius about its centre, plus float32's
    # sums of m positive terms (the softmax's and the weighted sum's, each within m u relative;
    # measured 2.4e-4 here at t = 0.3, as before the float64 log weights) and the result.
    tv = max(2 * exact_module.FLOAT32_LOGIT_ERROR, 2 * 2 * 208 * u)
    radius = (data.double() - data.double().mean(0)).norm(dim=1).max()
    bound = tv * radius + (2 * m + 2) * u * data.double().abs().max()
    assert (fast.double() - exact).abs().max() <= bound


@pytest.mark.parametrize("t", [0.0, 0.3, 0.6, 0.8, 0.95, 0.999])
def test_float32_logits_are_used_where_their_bound_holds_and_keep_the_divergence(t):
    # The Playground's case: 500 unit-spread points blurred by 0.08, queries over the view. Where
    # (d + 8) u S stays within FLOAT32_LOGIT_ERROR the float32 logits run, and the velocity and its
    # autograd divergence (the likelihood's) match float64: the velocity to the weights' bound times
    # the data's diameter, scaled by the velocity's factor d_alpha - alpha d_sigma / sigma.
    from fmcore import divergence

    g = torch.Generator().manual_seed(5)
    data = torch.randn(500, 2, generator=g) * torch.tensor([1.0, 0.5])
    z = 2.0 * torch.randn(300, 2, generator=g)
    path = Blurred("linear", 0.08)
    t32 = float(torch.tensor(t, dtype=torch.float32))
    s = path(torch.tensor(t32))
    taken = exact_module._Float32Logits.make(z, s, data) is not None
    size = (
        2 * s.alpha * z.norm(dim=1).max() * data.norm(dim=1).max() + (s.alpha * data.norm(dim=1).max()) ** 2
    )
    assert taken == bool(10 * 2.0**-24 * size / (2 * s.sigma**2) <= exact_module.FLOAT32_LOGIT_ERROR)
    assert taken or t >= 0.95  # only the last times of a view (and bare points) need float64

    def v32(points, time):
        return exact_velocity(points, time, data, path)

    def v64(points, time):
        return exact_velocity(points, time, data.double(), path)

    factor = float(abs(s.d_alpha - s.alpha * s.d_sigma / s.sigma))
    radius = float(data.norm(dim=1).max())
    tv = max(2 * exact_module.FLOAT32_LOGIT_ERROR, 4 * 208 * 2.0**-24) + 2e-5  # + float32's sums over 500
    got, want = v32(z, t32).double(), v64(z.double(), t32)
    assert (got - want).abs().max() <= factor * tv * 2 * radius + 1e-4 * want.abs().max()
    div32 = divergence(v32, z, torch.tensor(t32)).double()
    div64 = divergence(v64, z.double(), torch.tensor(t32, dtype=F64))
    # Autograd through the float32 logits: measured within 1e-5 of the largest divergence.
    assert (div32 - div64).abs().max() <= 1e-4 * div64.abs().max().clamp_min(1.0)
