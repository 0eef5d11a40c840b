"""What lesson 7 (continuity and likelihood) computes, as numpy arrays and frozen dataclasses.

The field is the Playground's exact field (the data blurred by ``EXACT_BANDWIDTH``, linear path),
whose marginal density p_t is a Gaussian mixture known in closed form (``fmcore.exact_log_density``).
That makes both of the lesson's claims checkable: the instantaneous change of variables
``d/dt log p_t(z_t) = -div v(z_t, t)`` along a path, and ``fmcore.log_likelihood`` against the
closed-form ``log p_1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from explorer.core.flows import VIEW_BOX
from fmcore.solvers import integrate

from .shared import blurred, exact_field, lesson_data, lesson_noise

__all__ = ["DensityAlongPaths", "LikelihoodMaps", "density_along_paths", "likelihood_maps"]


@dataclass(frozen=True)
class LikelihoodMaps:
    """log p_1 on a square grid, three ways.

    Attributes:
        xs, ys: (g,) grid coordinates.  exact: (g, g) closed-form log p_1 (rows are y).
        flow: (g, g) ``fmcore.log_likelihood`` of the exact field, ``steps`` RK4 steps.
        prior_only: (g, g) log N(z_0; 0, I) of the backward-solved z_0, the divergence term dropped.
        flow_error, prior_only_error: mean |. - exact| over the grid points where p_1 is not negligible.
        steps, nfe: the backward solve's RK4 steps and its velocity evaluations (4 per step).
    """

    xs: np.ndarray
    ys: np.ndarray
    exact: np.ndarray
    flow: np.ndarray
    prior_only: np.ndarray
    flow_error: float
    prior_only_error: float
    steps: int
    nfe: int


def likelihood_maps(preset: str, steps: int = 20, grid: int = 36) -> LikelihoodMaps:
    """The exact field's log-likelihood by the change of variables, against the closed form."""
    data, schedule = lesson_data(preset), blurred()
    velocity = exact_field(data, schedule)
    axis = torch.linspace(-VIEW_BOX, VIEW_BOX, grid)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    x = torch.stack([xx.ravel(), yy.ravel()], dim=1)
    exact = fmcore.exact_log_density(x, 1.0, data, schedule)
    flow = fmcore.log_likelihood(velocity, x, steps=steps, solver="rk4")
    z0 = integrate(velocity, x, "rk4", steps, t0=1.0, t1=0.0).z_end
    prior_only = -0.5 * (z0.square().sum(1) + 2 * math.log(2 * math.pi))
    # Where p_1 is tiny (far from the data) the log-density is huge and negative and nobody samples
    # there: judge the error where the data actually is.
    where = exact > exact.max() - 8.0
    return LikelihoodMaps(
        xs=axis.numpy(),
        ys=axis.numpy(),
        exact=exact.reshape(grid, grid).numpy(),
        flow=flow.reshape(grid, grid).numpy(),
        prior_only=prior_only.reshape(grid, grid).numpy(),
        flow_error=float((flow - exact)[where].abs().mean()),
        prior_only_error=float((prior_only - exact)[where].abs().mean()),
        steps=steps,
        nfe=4 * steps,
    )


@dataclass(frozen=True)
class DensityAlongPaths:
    """log p_t(z_t) along a few particles' paths, read off the closed form and integrated from -div v.

    Attributes:
        ts: (K+1,) times.  closed: (K+1, n) closed-form log p_t(z_t).  integrated: (K+1, n)
        log p_0(z_0) - int_0^t div v(z_s, s) ds by the trapezoid rule on the nodes.
        divergence: (K+1, n) div v at the nodes.  paths: (K+1, n, 2) the particles.
    """

    ts: np.ndarray
    closed: np.ndarray
    integrated: np.ndarray
    divergence: np.ndarray
    paths: np.ndarray


def density_along_paths(preset: str, n: int = 6, steps: int = 200, seed: int = 4) -> DensityAlongPaths:
    """Particles from the noise to the data, and their log-density two ways (they must agree)."""
    data, schedule = lesson_data(preset), blurred()
    velocity = exact_field(data, schedule)
    trajectory = integrate(velocity, lesson_noise(n, seed).double(), "rk4", steps)
    ts, zs = trajectory.ts.double(), trajectory.zs
    closed = torch.stack(
        [fmcore.exact_log_density(z, float(t), data.double(), schedule) for t, z in zip(ts, zs, strict=True)]
    )
    div = torch.stack([fmcore.divergence(velocity, z, float(t)) for t, z in zip(ts, zs, strict=True)])
    h = (ts[1:] - ts[:-1])[:, None]
    integral = torch.cat(
        [torch.zeros(1, n, dtype=div.dtype), torch.cumsum(0.5 * h * (div[1:] + div[:-1]), 0)]
    )
    return DensityAlongPaths(
        ts=ts.numpy(),
        closed=closed.numpy(),
        integrated=(closed[0] - integral).numpy(),
        divergence=div.numpy(),
        paths=zs.float().numpy(),
    )
