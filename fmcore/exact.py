"""The exact marginal field and density of the Gaussian path towards an empirical data set.

With data ``{x_j}_{j=1..m}`` (uniform weights), the marginal path is the Gaussian mixture

    p_t(z) = 1/m sum_j N(z; alpha_t x_j, sigma_t^2 I),

and the marginal velocity is the posterior average of the conditional velocities,

    u_t(z) = sum_j w_j(z) u_t(z | x_j),     w_j(z) = softmax_j( -|z - alpha_t x_j|^2 / (2 sigma_t^2) ).

Since u_t(z | x_j) is affine in x_j for fixed z, this equals the velocity whose data prediction is
the posterior mean ``E[z_1 | z_t = z] = sum_j w_j x_j``. Flow matching's regression target has
this field as its minimiser; here it is in closed form, the ground truth the app draws.

The schedule is evaluated once per call; the log weights come from one matrix product in float64
(``_LogWeights``), and the softmax (stable for t near 0 and near 1) runs in chunks of query
points, so each (chunk, m) temporary stays near ``CHUNK_BYTES`` whatever the sizes. Small chunks are
also the fast ones: temporaries of a megabyte are reused by the allocator, where larger ones are
returned to the system and page-faulted back on every call (measured 5x slower at 1,000 x 500).
For float32 queries whose logits float32 can hold to ``FLOAT32_LOGIT_ERROR`` (every time of the
Playground's view), the posterior mean skips float64 altogether (``_Float32Logits``): 1.8x faster at 1,000 x 500.
A top-k truncation of the posterior was measured and is no help on a CPU: ``torch.topk`` of 32 of
500 costs 20x the whole softmax, so choosing what to drop costs more than keeping it.
"""

from __future__ import annotations

import math

import torch

from .paths import _col, from_endpoints
from .schedules import Schedule, ScheduleValue, get_schedule

__all__ = ["T_EXACT_MAX", "exact_log_density", "exact_posterior_mean", "exact_score", "exact_velocity"]

CHUNK_BYTES = 2**20  # per (chunk, m) float64 temporary; a few of them live at once.
FLOAT32_LOG_WEIGHT_RANGE = 104.0
"""For float32 z, the softmax and the weighted sum run in float32 on log weights made in float64.
Weights below e^-104 are 0 in float32 (its smallest number is 1.4e-45) as good as in float64, so a
weight that counts has a log weight within 104 of its row's largest, and that largest is >= -104
(else the row is shifted to 0 in float64 before rounding). Each such log weight, |l| <= 208, is
rounded to float32 with an error of at most 208 * 2^-24 = 1.24e-5: the weights move by at most
2.5e-5 in total variation, so the posterior mean by that times the data's radius, plus float32's
own rounding of the exp and of the sums over m points (within m 2^-24 relative; 2.4e-4 measured at
20,000 points, as before). float64 z keeps float64 throughout. Tested against float64."""
FLOAT32_LOGIT_ERROR = 1e-3
"""The rounding error allowed in the float32 logits ``(2 alpha z.x - alpha^2 |x|^2) / (2 sigma^2)``
(the log weights less their row constant ``|z|^2 / (2 sigma^2)``, which the softmax ignores). A dot
product of d+1 float32 terms is within (d + 1) 2^-24 of the sum of the terms' sizes,
``S = (2 alpha |z| R + alpha^2 R^2) / (2 sigma^2)`` with R = max |x_j|; rounding its factors (alpha
and sigma from a float32 schedule, 1 / (2 sigma^2), the products) adds at most 7 2^-24 S. When
(d + 8) 2^-24 S <= FLOAT32_LOGIT_ERROR for every query, the weights move by at most twice that in
total variation, the posterior mean by that times the data's radius (at most 2e-3 R; rounding errors
do not all align, and on the Playground's presets the samples move by ~1e-3 of RK4-20's own step
error: tests/explorer/test_fields.py). Else float64, as for bare points near t = 1, where S is
huge. On the Playground's blurred data every time of a view takes the float32 logits."""
T_EXACT_MAX = 1.0 - 1e-4  # at t=1 the mixture collapses onto the data points (sigma = 0)


def _clamped_times(t, z: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    return t.clamp(0.0, min(T_EXACT_MAX, schedule.t_max))


class _LogWeights:
    """The (n, m) log weights ``-|z_i - alpha_i x_j|^2 / (2 sigma_i^2)`` of one call, by row chunks.

    That is log N(z; alpha x_j, sigma^2 I) up to a constant, expanded as ``(2 alpha z.x - alpha^2
    |x|^2 - |z|^2) / (2 sigma^2)``: one matrix product, in float64, of the (n, d+2) coefficients of
    the queries (made once per call) with the data's rows ``x_j``, ``|x_j|^2`` and 1. A chunk's
    (c, m) result is written once, with no pass over it to add norms or divide, whether t is one
    time or one per row. Its cancellation error (about 2^-52 (|z|^2 + alpha^2 |x|^2) / (2 sigma^2)
    per term) stays far below 1 down to ``T_EXACT_MAX``; float32 would not. MPS has no float64:
    explicit differences there, in z's dtype.

    Args:
        z: (n, d).  s: the schedule at the clamped times (0-d or (n,) values).  data: (m, d).
    """

    def __init__(self, z: torch.Tensor, s: ScheduleValue, data: torch.Tensor):
        self.data, self.z, self.s = data.to(z), z, s
        self.explicit = z.device.type == "mps"
        if self.explicit:
            return
        x64, z64 = self.data.double(), z.double()
        self.terms = torch.cat([x64, (x64 * x64).sum(1, keepdim=True), torch.ones_like(x64[:, :1])], 1).T
        alpha, inv = s.alpha.double().reshape(-1, 1), 0.5 / s.sigma.double().reshape(-1, 1) ** 2
        self.coefficients = torch.cat(
            [
                z64 * (2.0 * alpha * inv),
                (-alpha * alpha * inv).expand(len(z), 1),
                -(z64 * z64).sum(1, keepdim=True) * inv,
            ],
            1,
        )

    def __call__(self, rows: slice) -> torch.Tensor:
        """(c, m) the log weights of ``rows``: float64, or z's dtype on MPS."""
        if self.explicit:
            alpha, sigma, z = _rows(self.s.alpha, rows), _rows(self.s.sigma, rows), self.z[rows]
            a = alpha.reshape(-1, 1, 1) if alpha.dim() else alpha
            return -(z[:, None, :] - a * self.data[None, :, :]).square().sum(-1) / (2.0 * _col(sigma, z) ** 2)
        return self.coefficients[rows] @ self.terms


class _Float32Logits:
    """The (n, m) float32 logits ``(2 alpha_i z_i.x_j - alpha_i^2 |x_j|^2) / (2 sigma_i^2)`` by row chunks.

    The log weights up to each row's constant, from one float32 product of (n, d+1) coefficients
    with the data's rows ``x_j`` and ``|x_j|^2``. ``make`` returns None unless the rounding stays
    within ``FLOAT32_LOGIT_ERROR`` for every query (see there).
    """

    def __init__(self, coefficients: torch.Tensor, terms: torch.Tensor):
        self.coefficients, self.terms = coefficients, terms

    @classmethod
    def make(cls, z: torch.Tensor, s: ScheduleValue, data: torch.Tensor) -> _Float32Logits | None:
        if z.dtype != torch.float32 or z.device.type == "mps":
            return None
        x = data.to(z)
        radius = float(x.norm(dim=1).max())
        alpha, inv = s.alpha.reshape(-1, 1), 0.5 / s.sigma.reshape(-1, 1) ** 2
        size = (2.0 * alpha * z.detach().norm(dim=1, keepdim=True) * radius + alpha * alpha * radius**2) * inv
        if (z.shape[1] + 8) * 2.0**-24 * float(size.max()) > FLOAT32_LOGIT_ERROR:
            return None
        terms = torch.cat([x, (x * x).sum(1, keepdim=True)], 1).T
        return cls(torch.cat([z * (2.0 * alpha * inv), (-alpha * alpha * inv).expand(len(z), 1)], 1), terms)

    def __call__(self, rows: slice) -> torch.Tensor:
        """(c, m) float32 logits of ``rows``."""
        return self.coefficients[rows] @ self.terms


def _chunks(n: int, m: int, itemsize: int = 8):
    """Row slices of about CHUNK_BYTES per (chunk, m) temporary of ``itemsize`` bytes a number."""
    size = max(1, CHUNK_BYTES // (m * itemsize))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _rows(x: torch.Tensor, rows: slice) -> torch.Tensor:
    return x if x.dim() == 0 else x[rows]


def _validate(z: torch.Tensor, data: torch.Tensor):
    if z.dim() != 2 or data.dim() != 2 or z.shape[1] != data.shape[1]:
        raise ValueError(
            f"need z (n, d) and data (m, d) with the same d; got {tuple(z.shape)} and {tuple(data.shape)}"
        )
    if data.shape[0] == 0:
        raise ValueError("the data set is empty: the marginal field needs at least one data point")


def _evaluated(z: torch.Tensor, t, data: torch.Tensor, schedule) -> ScheduleValue:
    """Check the shapes, and evaluate the schedule once at the clamped times (per call, not per chunk)."""
    _validate(z, data)
    schedule = get_schedule(schedule)
    return schedule(_clamped_times(t, z, schedule))


def _posterior_mean(z: torch.Tensor, s: ScheduleValue, data: torch.Tensor) -> torch.Tensor:
    """(n, d) ``sum_j w_j(z) x_j`` at the evaluated schedule ``s`` (0-d or (n,) values).

    For float32 z the logits are made in float32 when that rounding is within
    ``FLOAT32_LOGIT_ERROR`` (``_Float32Logits``). Otherwise the log weights come in float64
    (``_LogWeights``); for float32 z they are shifted by their row maximum in float64 and only then
    rounded, so the softmax and the weighted sum run in float32 (half the memory traffic, a faster
    exp) with a bounded error: see ``FLOAT32_LOG_WEIGHT_RANGE``.
    """
    columns = data.to(z).T.contiguous().T  # (m, d) stored by columns: weights @ it is ~4x faster
    out = torch.empty_like(z)
    logits = _Float32Logits.make(z, s, data)
    if logits is not None:
        for rows in _chunks(z.shape[0], data.shape[0], itemsize=4):
            out[rows] = torch.softmax(logits(rows), dim=1) @ columns
        return out
    log_weights = _LogWeights(z, s, data)
    for rows in _chunks(z.shape[0], data.shape[0]):
        log_w = log_weights(rows)
        if log_w.dtype != z.dtype:
            peak = log_w.amax(1, keepdim=True)  # <= 0: log weights are -|z - alpha x|^2 / (2 sigma^2)
            if float(peak.detach().min()) < -FLOAT32_LOG_WEIGHT_RANGE:  # a query far from every alpha x_j
                log_w = log_w - peak  # not in place: z may need its gradient (divergence)
            log_w = log_w.to(z.dtype)
        weights = torch.softmax(log_w, dim=1)
        out[rows] = weights @ columns
    return out


def exact_posterior_mean(z: torch.Tensor, t, data: torch.Tensor, schedule="linear") -> torch.Tensor:
    """Denoiser ``E[z_1 | z_t = z]`` of the Gaussian path towards an empirical data set.

    Args:
        z: (n, d) query points.  t: float, 0-d or (n,) times in [0, 1], 0 = noise; clamped to
            ``T_EXACT_MAX``.  data: (m, d).  schedule: a ``Schedule`` or its name.
    Returns:
        (n, d) posterior means ``sum_j w_j(z) x_j``.
    """
    s = _evaluated(z, t, data, schedule)
    return _posterior_mean(z, s, data)


def exact_velocity(z: torch.Tensor, t, data: torch.Tensor, schedule="linear") -> torch.Tensor:
    """Marginal velocity u_t(z) of the Gaussian path towards an empirical data set.

    Args:
        z: (n, d) query points.  t: float, 0-d or (n,) times in [0, 1), 0 = noise.  data: (m, d).
        schedule: a ``Schedule`` or its name.
    Returns:
        (n, d) posterior-weighted average of the conditional velocities u_t(z | x_j).
    """
    s = _evaluated(z, t, data, schedule)
    z1 = _posterior_mean(z, s, data)
    z0 = (z - _col(s.alpha, z) * z1) / _col(s.sigma, z)
    return from_endpoints(z1, z0, "velocity", s)


def exact_score(z: torch.Tensor, t, data: torch.Tensor, schedule="linear") -> torch.Tensor:
    """Score ``grad_z log p_t(z)`` of the marginal mixture; (n, d), same arguments as ``exact_velocity``."""
    s = _evaluated(z, t, data, schedule)
    z1 = _posterior_mean(z, s, data)
    return (_col(s.alpha, z) * z1 - z) / _col(s.sigma, z) ** 2


def exact_log_density(z: torch.Tensor, t, data: torch.Tensor, schedule="linear") -> torch.Tensor:
    """Log density of the marginal mixture ``p_t = 1/m sum_j N(alpha_t x_j, sigma_t^2 I)``.

    Args:
        z: (n, d) query points.  t: float, 0-d or (n,) in [0, 1), 0 = noise.  data: (m, d).
    Returns:
        (n,) ``log p_t(z)``.
    """
    s = _evaluated(z, t, data, schedule)
    m, d = data.shape
    log_weights = _LogWeights(z, s, data)
    log_norm = -0.5 * d * torch.log(2.0 * math.pi * s.sigma**2) - math.log(m)
    out = torch.empty(z.shape[0], dtype=z.dtype, device=z.device)
    for rows in _chunks(z.shape[0], m):
        log_w = log_weights(rows)
        out[rows] = (torch.logsumexp(log_w, dim=1) + _rows(log_norm, rows)).to(z.dtype)
    return out
