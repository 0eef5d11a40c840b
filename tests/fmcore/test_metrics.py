"""Sample distances and path straightness against closed forms.

Monte Carlo tolerances come from the delta method for two-sample U-statistics: an estimate
D(a, b) with n and m points has standard deviation sqrt(Var g_a(X) / n + Var g_b(Y) / m), where g
is the first-order projection of the statistic, computed here by Gauss-Hermite quadrature. With
X ~ N(0, 1), Y ~ N(mu, 1) the reflection x -> mu - x swaps the samples, so Var g_b = Var g_a.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from fmcore import datasets, metrics

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
WEIGHTS = WEIGHTS / WEIGHTS.sum()
"""E f(X) for X ~ N(0, 1) is sum(WEIGHTS * f(NODES))."""


def standard_deviation_of_statistic(g, n: int, m: int) -> float:
    mean = np.sum(WEIGHTS * g(NODES))
    variance = np.sum(WEIGHTS * (g(NODES) - mean) ** 2)
    return math.sqrt(variance * (1 / n + 1 / m))


def mean_abs_of_unit_normal_shifted_by(c):
    """E|c + W| for W ~ N(0, 1): the folded normal mean."""
    return np.sqrt(2 / np.pi) * np.exp(-(c**2) / 2) + c * (1 - 2 * norm.cdf(-c))


def two_normal_samples(mu: float, n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    y = mu + torch.randn(m, 1, generator=generator, dtype=torch.float64)
    return x, y


def brute_force_energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    def pairwise(x, y):
        return np.linalg.norm(x[:, None] - y[None], axis=-1)

    n, m = len(a), len(b)
    return (
        2 * pairwise(a, b).mean()
        - pairwise(a, a).sum() / (n * (n - 1))
        - pairwise(b, b).sum() / (m * (m - 1))
    )


def test_energy_distance_matches_the_folded_normal_closed_form():
    mu, n, m = 2.0, 4000, 3500
    # X - Y ~ N(-mu, 2) and X - X' ~ N(0, 2), so each E|.| is sqrt(2) times a folded unit normal.
    cross = math.sqrt(2) * mean_abs_of_unit_normal_shifted_by(mu / math.sqrt(2))
    within = math.sqrt(2) * mean_abs_of_unit_normal_shifted_by(0.0)
    expected = 2 * cross - 2 * within
    assert expected == pytest.approx(1.9443, abs=1e-4)

    def projection(x):
        return 2 * mean_abs_of_unit_normal_shifted_by(x - mu) - 2 * mean_abs_of_unit_normal_shifted_by(x)

    tolerance = 4 * standard_deviation_of_statistic(projection, n, m)
    assert tolerance < 0.1 * expected
    estimate = metrics.energy_distance(*two_normal_samples(mu, n, m, seed=0))
    assert estimate == pytest.approx(expected, abs=tolerance)


def test_energy_distance_is_the_u_statistic_for_any_chunking(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(23, 3)), rng.normal(1.0, 2.0, size=(31, 3))
    expected = brute_force_energy_distance(a, b)
    monkeypatch.setattr(metrics, "_PAIRS_PER_CHUNK", 7)
    assert metrics.energy_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert metrics.energy_distance(torch.tensor(b).float(), b) == pytest.approx(
        brute_force_energy_distance(b.astype(np.float32).astype(np.float64), b), rel=1e-6
    )


def test_energy_distance_is_symmetric_and_vanishes_for_identical_samples():
    a = datasets.sample("moons", 1000, seed=0)
    b = datasets.sample("circles", 800, seed=0)
    assert metrics.energy_distance(a, b) == pytest.approx(metrics.energy_distance(b, a), rel=1e-12)
    assert metrics.energy_distance(a, b) > 0.05
    # With a = b the cross term keeps the n zero self-distances that the U-statistics drop:
    # 2 S / n^2 - 2 S / (n (n - 1)) = -2 S / (n^2 (n - 1)), S the sum of all distances.
    a64 = a.double()
    total = torch.cdist(a64, a64).sum().item()
    # That is -2 E|X - X'| / n: zero up to O(1 / n).
    assert metrics.energy_distance(a, a) == pytest.approx(-2 * total / (1000**2 * 999), rel=1e-9)


NORMAL_DISTANCE_VARIANCE = 4 / math.pi * (1 + math.pi / 3 - math.sqrt(3))
"""dVar^2 of N(0, 1): E|X - X'|^2 + (E|X - X'|)^2 - 2 E|X - X'| |X - X''| = 2 + 4 / pi - 2 (2 / pi)
(sqrt(3) / 2 + pi / 12) (Szekely, Rizzo & Bakirov, 2007, with X - X', X - X'' correlated 1/2)."""


def brute_force_distance_variance(x: np.ndarray) -> float:
    r = len(x)
    a = np.linalg.norm(x[:, None] - x[None], axis=-1)
    centred = a - a.sum(0)[None] / (r - 2) - a.sum(1)[:, None] / (r - 2) + a.sum() / ((r - 1) * (r - 2))
    np.fill_diagonal(centred, 0.0)
    return (centred**2).sum() / (r * (r - 3))


def test_distance_variance_is_the_u_centred_statistic_for_any_chunking(monkeypatch):
    x = np.random.default_rng(0).normal(size=(29, 2))
    expected = brute_force_distance_variance(x)
    monkeypatch.setattr(metrics, "_PAIRS_PER_CHUNK", 7)
    assert metrics.distance_variance(x) == pytest.approx(expected, rel=1e-12)
    # A distance, so the variance of its centred part scales with the square of the units.
    assert metrics.distance_variance(3 * x) == pytest.approx(9 * expected, rel=1e-12)


def test_distance_variance_is_unbiased_for_the_normal_closed_form():
    generator = torch.Generator().manual_seed(1)
    estimates = np.array(
        [
            metrics.distance_variance(torch.randn(40, 1, generator=generator, dtype=torch.float64))
            for _ in range(400)
        ]
    )
    # Unbiased even at 40 points (the plain V-statistic would be about 10% low here).
    assert estimates.mean() == pytest.approx(NORMAL_DISTANCE_VARIANCE, abs=4 * estimates.std() / 20)


def rms_with_tolerance(values: np.ndarray) -> tuple[float, float]:
    """sqrt(mean(values^2)) and 4 standard errors of it, by the delta method on the mean square."""
    squares = values**2
    mean_square = squares.mean()
    return math.sqrt(mean_square), 4 * squares.std() / math.sqrt(len(values)) / (2 * math.sqrt(mean_square))


def test_energy_distance_floor_is_the_rms_between_two_samples_of_one_distribution():
    n, m, pairs = 30, 50, 4000
    generator = torch.Generator().manual_seed(2)
    values = np.array(
        [
            metrics.energy_distance(
                torch.randn(n, 1, generator=generator, dtype=torch.float64),
                torch.randn(m, 1, generator=generator, dtype=torch.float64),
            )
            for _ in range(pairs)
        ]
    )
    closed_form = math.sqrt(NORMAL_DISTANCE_VARIANCE * (2 / (n * (n - 1)) + 2 / (m * (m - 1)) + 4 / (n * m)))
    rms, tolerance = rms_with_tolerance(values)
    assert rms == pytest.approx(closed_form, abs=tolerance)
    assert abs(values.mean()) < 4 * values.std() / math.sqrt(pairs)  # unbiased: mean 0 under P = Q
    reference = torch.randn(20_000, 1, generator=generator, dtype=torch.float64)
    assert metrics.energy_distance_floor(reference, n, m) == pytest.approx(closed_form, rel=0.05)


def test_fresh_preset_data_scores_one_floor_in_root_mean_square():
    """The yardstick of bench/train_speed.py: data against fresh data of one preset gives 1.0."""
    n, m, pairs = 200, 300, 600
    values = np.array(
        [
            metrics.energy_distance(
                datasets.sample("rings", n, seed=k), datasets.sample("rings", m, seed=10_000 + k)
            )
            for k in range(pairs)
        ]
    )
    floor = metrics.energy_distance_floor(datasets.sample("rings", 5000, seed=99), n, m)
    rms, tolerance = rms_with_tolerance(values / floor)
    assert rms == pytest.approx(1.0, abs=tolerance)
    assert tolerance < 0.2


def test_energy_distance_floor_refuses_too_few_points():
    with pytest.raises(ValueError, match="at least 4 points"):
        metrics.energy_distance_floor(torch.zeros(3, 2), 10)
    with pytest.raises(ValueError, match="n must be an integer"):
        metrics.energy_distance_floor(torch.randn(10, 2), 1)
    with pytest.raises(ValueError, match="m must be an integer"):
        metrics.energy_distance_floor(torch.randn(10, 2), 10, 2.5)


def gaussian_kernel_mean(shift, variance, bandwidths):
    """E k(X, Y) for 1-D X - Y ~ N(shift, variance) and k the mean of Gaussian kernels."""
    return np.mean(
        [
            np.sqrt(h**2 / (h**2 + variance)) * np.exp(-(shift**2) / (2 * (h**2 + variance)))
            for h in bandwidths
        ],
        axis=0,
    )


def test_mmd_matches_the_gaussian_closed_form():
    # A bounded kernel saturates, so MMD^2 is small next to its noise unless the shift is large.
    mu, n, m = 3.0, 2000, 1800
    bandwidths = metrics.DEFAULT_BANDWIDTHS
    expected = 2 * gaussian_kernel_mean(0.0, 2.0, bandwidths) - 2 * gaussian_kernel_mean(mu, 2.0, bandwidths)

    def projection(x):
        return 2 * gaussian_kernel_mean(x, 1.0, bandwidths) - 2 * gaussian_kernel_mean(
            x - mu, 1.0, bandwidths
        )

    tolerance = 4 * standard_deviation_of_statistic(projection, n, m)
    assert tolerance < 0.1 * expected
    estimate = metrics.mmd(*two_normal_samples(mu, n, m, seed=1))
    assert estimate == pytest.approx(expected, abs=tolerance)


def test_mmd_is_the_u_statistic_for_any_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(23, 3)), rng.normal(0.5, 1.0, size=(31, 3))
    bandwidths = (0.5, 2.0)

    def kernel_mean(x, y, exclude_diagonal=False):
        squared = ((x[:, None] - y[None]) ** 2).sum(-1)
        k = np.mean([np.exp(-squared / (2 * h**2)) for h in bandwidths], axis=0)
        n = len(x)
        return (k.sum() - n) / (n * (n - 1)) if exclude_diagonal else k.mean()

    expected = kernel_mean(a, a, True) + kernel_mean(b, b, True) - 2 * kernel_mean(a, b)
    monkeypatch.setattr(metrics, "_PAIRS_PER_CHUNK", 7)
    assert metrics.mmd(a, b, bandwidths=bandwidths) == pytest.approx(expected, rel=1e-12)


def test_mmd_separates_different_presets_and_not_two_draws_of_one():
    moons = datasets.sample("moons", 1000, seed=0)
    same = metrics.mmd(moons, datasets.sample("moons", 1000, seed=1))
    different = metrics.mmd(moons, datasets.sample("8gaussians", 1000, seed=1))
    # Under P = Q the unbiased estimate has mean 0 and a standard deviation of order 1 / n.
    assert abs(same) < 10 / 1000
    assert different > 20 * abs(same)
    with pytest.raises(ValueError, match="positive"):
        metrics.mmd(moons, moons, bandwidths=(0.0, 1.0))


def test_sliced_wasserstein_of_a_shift_averages_the_projected_shift():
    # Every projection of a + s is the projection of a moved by s . theta, so the 1-D W_2^2 is
    # (s . theta)^2 = |s|^2 cos^2; E cos^2 = 1/2 in 2-D with variance 3/8 - 1/4 = 1/8.
    a = datasets.sample("pinwheel", 1000, seed=0)
    s = torch.tensor([0.6, -0.8])
    n_projections = 256
    squared = metrics.sliced_wasserstein(a, a + s, n_projections=n_projections) ** 2
    tolerance = 4 * math.sqrt(1 / 8) / math.sqrt(n_projections)
    assert squared == pytest.approx(s.square().sum().item() / 2, abs=tolerance)


def test_sliced_wasserstein_couples_unequal_sizes_along_quantiles():
    a = datasets.sample("spirals", 300, seed=0)
    assert metrics.sliced_wasserstein(a, a.repeat(3, 1)) == pytest.approx(0.0, abs=1e-6)
    s = torch.tensor([1.0, 2.0])
    # The same seed gives the same directions, and a tripled cloud is the same measure.
    assert metrics.sliced_wasserstein(a, a.repeat(3, 1) + s) == pytest.approx(
        metrics.sliced_wasserstein(a, a + s), rel=1e-6
    )


def test_sliced_wasserstein_in_one_dimension_is_the_quantile_integral():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=37), rng.exponential(size=53)
    # In 1-D every direction is +-1, so the sliced distance is W_2 itself:
    # int_0^1 (F_a^-1(u) - F_b^-1(u))^2 du, here on a midpoint grid fine enough to resolve every step.
    u = (np.arange(200_000) + 0.5) / 200_000
    expected = np.mean(
        (np.quantile(a, u, method="inverted_cdf") - np.quantile(b, u, method="inverted_cdf")) ** 2
    )
    computed = metrics.sliced_wasserstein(a[:, None], b[:, None], n_projections=8) ** 2
    assert computed == pytest.approx(expected, rel=1e-3)
    assert metrics.sliced_wasserstein(b[:, None], a[:, None]) == pytest.approx(math.sqrt(computed), rel=1e-12)


def straight_paths(ts: torch.Tensor, speed=lambda t: t) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    z_0, z_1 = torch.randn(2, 50, 3, generator=generator, dtype=torch.float64)
    return z_0 + speed(ts)[:, None, None] * (z_1 - z_0)


def test_straight_constant_speed_paths_have_zero_straightness():
    uniform = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert metrics.straightness(straight_paths(uniform)) == pytest.approx(0.0, abs=1e-24)
    uneven = uniform**2
    assert metrics.straightness(straight_paths(uneven), ts=uneven) == pytest.approx(0.0, abs=1e-24)
    assert metrics.path_length_ratio(straight_paths(uniform)) == pytest.approx(1.0, rel=1e-12)


def test_straight_path_at_varying_speed_is_not_straight_in_liu_et_al_sense():
    # z_t = z_0 + t^2 (z_1 - z_0): v_k = (2k + 1) / K (z_1 - z_0), and the mean over k of
    # ((2k + 1 - K) / K)^2 is (1 - 1 / K^2) / 3.
    K = 8
    ts = torch.linspace(0, 1, K + 1, dtype=torch.float64)
    zs = straight_paths(ts, speed=torch.square)
    squared_displacement = (zs[-1] - zs[0]).square().sum(-1).mean().item()
    assert metrics.straightness(zs) == pytest.approx(squared_displacement * (1 - 1 / K**2) / 3, rel=1e-12)
    assert metrics.path_length_ratio(zs) == pytest.approx(1.0, rel=1e-12)


def quarter_circles(ts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Particles on quarter circles of radius R_i about centres c_i, at angle phi_i + pi t / 2."""
    generator = torch.Generator().manual_seed(0)
    radius = 0.5 + torch.rand(40, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(40, generator=generator, dtype=torch.float64)
    centre = torch.randn(40, 2, generator=generator, dtype=torch.float64)
    angle = phase + math.pi / 2 * ts[:, None]
    zs = centre + radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=-1)
    return zs, radius


def test_quarter_circle_straightness_has_its_closed_form():
    # Each step's velocity is its chord 2 R sin(pi dt / 4) over dt, the velocities average to the
    # displacement (|.|^2 = 2 R^2), so S = sum_k 4 R^2 sin^2(pi dt_k / 4) / dt_k - 2 R^2.
    K = 16
    ts = torch.linspace(0, 1, K + 1, dtype=torch.float64)
    zs, radius = quarter_circles(ts)
    mean_r2 = radius.square().mean().item()
    discrete = mean_r2 * (4 * K**2 * math.sin(math.pi / (4 * K)) ** 2 - 2)
    assert metrics.straightness(zs) == pytest.approx(discrete, rel=1e-12)
    # The continuum value int |dz/dt|^2 dt - |z_1 - z_0|^2 = R^2 (pi^2 / 4 - 2), which the chords
    # approach from below as R^2 pi^4 / (192 K^2).
    continuum = mean_r2 * (math.pi**2 / 4 - 2)
    assert 0 < continuum - metrics.straightness(zs) < 1.01 * mean_r2 * math.pi**4 / (192 * K**2)
    chord_ratio = K * 2 * math.sin(math.pi / (4 * K)) / math.sqrt(2)
    assert metrics.path_length_ratio(zs) == pytest.approx(chord_ratio, rel=1e-12)
    assert chord_ratio == pytest.approx(math.pi / (2 * math.sqrt(2)), rel=1e-3)

    uneven = torch.linspace(0, 1, K + 1, dtype=torch.float64) ** 2
    zs, _ = quarter_circles(uneven)
    dt = uneven.diff()
    discrete = mean_r2 * ((4 * torch.sin(math.pi * dt / 4) ** 2 / dt).sum().item() - 2)
    assert metrics.straightness(zs, ts=uneven) == pytest.approx(discrete, rel=1e-12)


@pytest.mark.parametrize(
    ("zs", "ts", "message"),
    [
        (torch.zeros(5, 2), None, r"shape \(K \+ 1, n, d\)"),
        (torch.zeros(1, 4, 2), None, "K >= 1"),
        (torch.zeros(3, 4, 2), torch.tensor([0.0, 1.0]), r"ts must have shape \(3,\)"),
        (torch.zeros(3, 4, 2), torch.tensor([0.0, 0.5, 0.5]), "strictly increasing"),
    ],
)
def test_straightness_refuses_malformed_trajectories(zs, ts, message):
    with pytest.raises(ValueError, match=message):
        metrics.straightness(zs, ts=ts)


def test_distances_refuse_mismatched_samples():
    with pytest.raises(ValueError, match="same dimension"):
        metrics.energy_distance(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2 points"):
        metrics.mmd(torch.zeros(1, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        metrics.sliced_wasserstein(torch.zeros(4), torch.zeros(4, 1))


def test_near_share_is_the_disc_area_for_uniform_samples_for_any_chunking(monkeypatch):
    # Uniform samples on the unit square fall within r of its centre with probability pi r^2.
    samples = torch.rand(20_000, 2, generator=torch.Generator().manual_seed(0))
    centre, r = torch.tensor([[0.5, 0.5]]), 0.3
    p = math.pi * r**2
    share = metrics.near_share(samples, centre, r)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / len(samples))
    points = torch.cat([centre, torch.tensor([[5.0, 5.0]])])  # a far point changes no nearest distance
    monkeypatch.setattr(metrics, "_PAIRS_PER_CHUNK", 7)
    assert metrics.near_share(samples, points, r) == share


def test_near_share_of_copies_is_one_and_refuses_a_bad_radius():
    points = torch.randn(50, 2)
    assert metrics.near_share(points[torch.randint(50, (200,))], points, 1e-6) == 1.0
    for radius in (0, -1.0, math.inf, math.nan, "0.1"):
        with pytest.raises(ValueError, match="radius"):
            metrics.near_share(points, points, radius)
