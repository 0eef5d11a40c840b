"""How close generated samples are to the data, and how straight the sampling paths are.

Distances between samples a ~ P and b ~ Q (each a point cloud):
    energy_distance     2 E|X - Y| - E|X - X'| - E|Y - Y'|, zero iff P = Q.
    energy_distance_floor   its noise floor: the RMS of the estimate between two samples of
                        one distribution, in closed form for any two sample sizes.
    mmd                 Gaussian-kernel maximum mean discrepancy, squared.
    sliced_wasserstein  W_2 averaged over random 1-D projections, in data units.
Memorisation of a training set t:
    near_share          the share of samples within a radius of some point of t; compare it with
                        fresh data's share (a model that copies t scores far above it).
Paths z_0 -> z_1 of the sampler (a trajectory of states):
    straightness        Liu et al.'s S(Z) = int_0^1 E |(z_1 - z_0) - dz_t/dt|^2 dt, 0 = straight.
    path_length_ratio   path length / endpoint distance, 1 = straight.

Pairwise sums run over row chunks so that memory stays bounded for clouds of 20k points, in
float64 so that the small differences these statistics are made of survive.
"""

import math
from collections.abc import Callable

import numpy as np
import torch

_PAIRS_PER_CHUNK = 2**22
"""Pairwise values held at once (32 MiB of float64)."""

DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Kernel widths for `mmd`, spanning the scales of unit-scale 2-D data: fine structure (a thin
ring, a narrow mode) up to the whole cloud. A single width is blind to differences far
smaller or far larger than itself."""


def _as_cloud(x, name: str) -> torch.Tensor:
    cloud = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if cloud.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d); got shape {tuple(cloud.shape)}.")
    return cloud


def _as_pair(a, b, min_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_cloud(a, "a"), _as_cloud(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension; got {a.shape[1]} and {b.shape[1]}.")
    if min(len(a), len(b)) < min_points:
        raise ValueError(f"Each sample needs at least {min_points} points; got {len(a)} and {len(b)}.")
    return a, b


def _mean_pairwise(
    x: torch.Tensor,
    y: torch.Tensor,
    f: Callable[[torch.Tensor], torch.Tensor],
    exclude_diagonal: bool = False,
) -> float:
    """Mean of f(|x_i - y_j|) over all pairs, or over i != j (a U-statistic, needs x is y).

    Args:
        x: (n, d).  y: (m, d).  f: elementwise map of a chunk of distances; may overwrite it.
    """
    n, m = len(x), len(y)
    rows = max(1, _PAIRS_PER_CHUNK // m)
    total = 0.0
    for start in range(0, n, rows):
        distance = torch.cdist(x[start : start + rows], y, compute_mode="donot_use_mm_for_euclid_dist")
        values = f(distance)
        if exclude_diagonal:
            i = torch.arange(len(values))
            values[i, start + i] = 0.0
        total += values.sum().item()
    return total / (n * (n - 1) if exclude_diagonal else n * m)


def _identity(distance: torch.Tensor) -> torch.Tensor:
    return distance


def energy_distance(a, b) -> float:
    """Squared energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    The within-sample terms are U-statistics (pairs i != j), so the estimate is unbiased for the
    population value; it can therefore dip slightly below 0 when P = Q.

    Args:
        a: (n, d) sample of P, n >= 2.  b: (m, d) sample of Q, m >= 2.
    Returns:
        The estimate, in data units (0 iff P = Q for the population value).
    """
    a, b = _as_pair(a, b, min_points=2)
    return (
        2 * _mean_pairwise(a, b, _identity)
        - _mean_pairwise(a, a, _identity, exclude_diagonal=True)
        - _mean_pairwise(b, b, _identity, exclude_diagonal=True)
    )


def near_share(samples, points, radius: float) -> float:
    """Share of ``samples`` within ``radius`` (Euclidean) of their nearest neighbour in ``points``.

    A generator that memorised a training set ``points`` puts its samples on them; one that learnt
    the distribution scores about what fresh data from it scores (which grows with the density
    and the number of points).

    Args:
        samples: (n, d), n >= 1.  points: (m, d), m >= 1.  radius: a finite number > 0.
    Returns:
        The share, in [0, 1].
    """
    a, b = _as_pair(samples, points, min_points=1)
    if not (isinstance(radius, int | float) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0; got {radius!r}.")
    rows = max(1, _PAIRS_PER_CHUNK // len(b))
    near = sum(
        int((torch.cdist(a[i : i + rows], b).min(dim=1).values < radius).sum())
        for i in range(0, len(a), rows)
    )
    return near / len(a)


def distance_variance(x) -> float:
    """Unbiased estimate of the squared distance variance dVar^2(P) = E h(X, X')^2 of a sample x ~ P.

    h(x, y) = |x - y| - E|x - Y| - E|X - y| + E|X - X'| is the doubly centred distance, the part of
    |x - y| left after its first-order (Hoeffding) projections. The estimate is the U-centred
    statistic of Szekely & Rizzo (2014), sum over i != j of A_ij^2 / (r (r - 3)) with
    A_ij = a_ij - a_i. / (r - 2) - a_.j / (r - 2) + a_.. / ((r - 1) (r - 2)), a_ij = |x_i - x_j|.
    For X ~ N(0, 1): 4 / pi (1 + pi / 3 - sqrt 3) = 0.4012.

    Args:
        x: (r, d) sample, r >= 4.
    Returns:
        The estimate, in squared data units (>= 0 in population; clipped at 0).
    """
    x = _as_cloud(x, "x")
    r = len(x)
    if r < 4:
        raise ValueError(f"The distance variance needs at least 4 points; got {r}.")
    rows_per_chunk = max(1, _PAIRS_PER_CHUNK // r)
    row_sums = torch.cat(
        [
            torch.cdist(
                x[start : start + rows_per_chunk], x, compute_mode="donot_use_mm_for_euclid_dist"
            ).sum(1)
            for start in range(0, r, rows_per_chunk)
        ]
    )
    total = row_sums.sum()
    centre = row_sums / (r - 2)
    total_squares = 0.0
    for start in range(0, r, rows_per_chunk):
        distance = torch.cdist(
            x[start : start + rows_per_chunk], x, compute_mode="donot_use_mm_for_euclid_dist"
        )
        centred = distance - centre[start : start + rows_per_chunk, None] - centre[None, :]
        centred += total / ((r - 1) * (r - 2))
        i = torch.arange(len(centred))
        centred[i, start + i] = 0.0
        total_squares += centred.square().sum().item()
    return max(0.0, total_squares / (r * (r - 3)))


def energy_distance_floor(reference, n: int, m: int | None = None) -> float:
    """The noise floor of `energy_distance`: its RMS between independent samples of n and m points
    of one distribution P, estimated from a sample ``reference`` of P.

    Under P = Q the estimate has mean 0 and, exactly (any P with finite second moments),

        Var = dVar^2(P) (2 / (n (n - 1)) + 2 / (m (m - 1)) + 4 / (n m)):

    the first-order projections of its three terms cancel, and what is left is one degenerate
    kernel h (see `distance_variance`) in two U-statistics and one V-statistic over disjoint
    index pairs, which are uncorrelated. So "quality = energy distance / floor" is a number whose
    root mean square is 1 for a sampler that draws from P itself, at those sample sizes.

    Args:
        reference: (r, d) sample of P, r >= 4 (its size sets only the estimate's precision).
        n: points in the first sample, >= 2.  m: points in the second (default n), >= 2.
    Returns:
        The RMS, in the units of `energy_distance`.
    """
    m = n if m is None else m
    for name, size in (("n", n), ("m", m)):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
            raise ValueError(f"{name} must be an integer number of points >= 2; got {size!r}.")
    n, m = int(n), int(m)
    return math.sqrt(distance_variance(reference) * (2 / (n * (n - 1)) + 2 / (m * (m - 1)) + 4 / (n * m)))


def mmd(a, b, bandwidths: tuple[float, ...] = DEFAULT_BANDWIDTHS) -> float:
    """Unbiased squared MMD with the kernel k(x, y) = mean_h exp(-|x - y|^2 / (2 h^2)).

    Args:
        a: (n, d) sample of P, n >= 2.  b: (m, d) sample of Q, m >= 2.
        bandwidths: kernel widths h, in data units; the kernel averages over them.
    Returns:
        E k(X, X') + E k(Y, Y') - 2 E k(X, Y), each within term over pairs i != j.

    Costs one exp per pair and bandwidth, several times `energy_distance`: for a live display,
    compare a few thousand points rather than 20k.
    """
    a, b = _as_pair(a, b, min_points=2)
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive numbers; got {bandwidths!r}.")

    def kernel(distance: torch.Tensor) -> torch.Tensor:
        # In place on the chunk: this loop is where MMD spends its time.
        squared = distance.square_()
        total = torch.zeros_like(squared)
        for h in bandwidths:
            total += torch.exp(squared * (-0.5 / h**2))
        return total.div_(len(bandwidths))

    return (
        _mean_pairwise(a, a, kernel, exclude_diagonal=True)
        + _mean_pairwise(b, b, kernel, exclude_diagonal=True)
        - 2 * _mean_pairwise(a, b, kernel)
    )


_PROJECTIONS_PER_CHUNK = 32


def _quantile_indices(n: int, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Couples the sorted values of two empirical 1-D measures along their quantile functions.

    The quantile function of n equal-weight points is a step function with steps at k / n. On the
    union of both sets of steps both functions are constant, so W_2^2 = sum_k w_k (a_(i_k) - b_(j_k))^2
    exactly. Equal fractions k / n = l / m round to the same float, so unique() merges them.
    """
    steps = torch.unique(
        torch.cat(
            [torch.arange(n + 1, dtype=torch.float64) / n, torch.arange(m + 1, dtype=torch.float64) / m]
        )
    )
    weights = steps.diff()
    middle = steps[:-1] + weights / 2
    i = (middle * n).long().clamp(max=n - 1)
    j = (middle * m).long().clamp(max=m - 1)
    return i, j, weights


def sliced_wasserstein(a, b, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance sqrt(E_theta W_2^2(theta . P, theta . Q)).

    theta is uniform on the unit sphere; each 1-D W_2 is exact, from sorted projections (coupled
    along the quantile functions when n != m).

    Args:
        a: (n, d).  b: (m, d).  n_projections: directions theta.  seed: fixes the directions.
    Returns:
        The distance, in data units. A shift of a cloud by a vector s gives |s| / sqrt(d).
    """
    a, b = _as_pair(a, b, min_points=1)
    if n_projections < 1:
        raise ValueError(f"n_projections must be at least 1; got {n_projections}.")
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta /= theta.norm(dim=0, keepdim=True)
    i, j, weights = _quantile_indices(len(a), len(b))
    total = 0.0
    for start in range(0, n_projections, _PROJECTIONS_PER_CHUNK):
        directions = theta[:, start : start + _PROJECTIONS_PER_CHUNK]
        a_sorted = (a @ directions).sort(dim=0).values
        b_sorted = (b @ directions).sort(dim=0).values
        total += (weights[:, None] * (a_sorted[i] - b_sorted[j]).square()).sum().item()
    return math.sqrt(total / n_projections)


def _as_trajectory(zs, ts) -> tuple[torch.Tensor, torch.Tensor]:
    zs = torch.as_tensor(zs).detach().to(device="cpu", dtype=torch.float64)
    if zs.ndim != 3 or len(zs) < 2:
        raise ValueError(f"zs must have shape (K + 1, n, d) with K >= 1; got {tuple(zs.shape)}.")
    if ts is None:
        return zs, torch.linspace(0.0, 1.0, len(zs), dtype=torch.float64)
    ts = torch.as_tensor(ts).detach().to(device="cpu", dtype=torch.float64)
    if ts.shape != (len(zs),):
        raise ValueError(f"ts must have shape ({len(zs)},) to match zs; got {tuple(ts.shape)}.")
    if not bool((ts.diff() > 0).all()):
        raise ValueError("ts must be strictly increasing.")
    return zs, ts


def straightness(zs, ts: torch.Tensor | np.ndarray | None = None) -> float:
    """Straightness S of sampling paths (Liu et al., 2022, rectified flow), 0 = straight.

    S = (1 / T) int |(z_1 - z_0) / T - dz_t/dt|^2 dt, averaged over particles, with the velocity
    taken as the finite difference v_k = (z_{k+1} - z_k) / dt_k on each step and T the time span
    (T = 1 on [0, 1], where this is exactly Liu et al.'s S(Z)). S = 0 iff every particle moves
    along a straight line at constant speed, which is when one Euler step is exact; a straight
    path travelled at varying speed still has S > 0.

    Args:
        zs: (K + 1, n, d) states at times ts, K >= 1.  ts: (K + 1,) increasing times; uniform on
            [0, 1] when None.
    Returns:
        S in squared data units per unit time squared.
    """
    zs, ts = _as_trajectory(zs, ts)
    dt = ts.diff()
    span = ts[-1] - ts[0]
    velocity = zs.diff(dim=0) / dt[:, None, None]
    mean_velocity = (zs[-1] - zs[0]) / span
    deviation = (velocity - mean_velocity).square().sum(-1)
    return ((dt[:, None] * deviation).sum(0) / span).mean().item()


def path_length_ratio(zs) -> float:
    """Mean over particles of path length / distance between the path's ends, 1 = straight.

    Unlike `straightness` it ignores speed: only the shape of the path counts. A particle that
    does not move at all counts as 1; one that moves and returns to its start gives inf.

    Args:
        zs: (K + 1, n, d) states along the paths, K >= 1.
    Returns:
        The mean ratio, >= 1.
    """
    zs, _ = _as_trajectory(zs, None)
    length = zs.diff(dim=0).norm(dim=-1).sum(0)
    distance = (zs[-1] - zs[0]).norm(dim=-1)
    ratio = torch.where(length == 0, torch.ones_like(length), length / distance)
    return ratio.mean().item()
