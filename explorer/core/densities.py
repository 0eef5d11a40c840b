"""The density p_t on a grid over the view: exact (closed form) or a network's (log-likelihood)."""

from __future__ import annotations

import numpy as np
import torch

import fmcore
from fmcore import likelihood

from .data import Dataset
from .flows import EXACT_BANDWIDTH, VIEW_BOX, Source, frame_times

__all__ = ["DENSITY_GRID", "MODEL_DENSITY_GRID", "density_axis", "density_frames", "model_density_frames"]

DENSITY_GRID = 48
"""Cells per side of the exact density's grid."""
MODEL_DENSITY_GRID = 24
"""The network's density needs one backward ODE solve with divergences per frame: a coarser grid."""


def density_axis(size: int = DENSITY_GRID) -> np.ndarray:
    """(size,) float32 cell centres along either axis of the view."""
    return np.linspace(-VIEW_BOX, VIEW_BOX, size, dtype=np.float32)


def _grid(size: int) -> torch.Tensor:
    axis = density_axis(size)
    x, y = np.meshgrid(axis, axis)
    return torch.from_numpy(np.stack([x.ravel(), y.ravel()], axis=1))


def density_frames(dataset: Dataset, schedule: str) -> np.ndarray:
    """(F, H, W) exact marginal density p_t on ``density_axis()``, for every frame time."""
    grid = _grid(DENSITY_GRID)
    times = frame_times()
    data = torch.from_numpy(dataset.shown)
    zz = grid.repeat(len(times), 1)
    tt = torch.from_numpy(np.repeat(times, len(grid)))
    with torch.no_grad():
        log_p = fmcore.exact_log_density(zz, tt, data, fmcore.Blurred(schedule, EXACT_BANDWIDTH))
    return log_p.exp().reshape(len(times), DENSITY_GRID, DENSITY_GRID).numpy().astype(np.float32)


def model_density_frames(
    source: Source, size: int = MODEL_DENSITY_GRID, times: tuple[float, ...] | None = None
) -> np.ndarray:
    """(F, size, size) the density p_t of the flow ``source`` on ``density_axis(size)``, at every
    frame time (or at ``times``).

    ``fmcore.likelihood.log_likelihood`` with ``t1`` = the frame time: the change of variables from
    N(0, I) at t = 0. Heun with about 12 steps per unit time is plenty for a picture.
    """
    grid = _grid(size)
    frames = []
    for t in frame_times() if times is None else times:
        if t == 0.0:
            log_p = -0.5 * grid.square().sum(1) - np.log(2 * np.pi)
        else:
            steps = max(2, round(12 * float(t)))
            log_p = likelihood.log_likelihood(source.velocity, grid, steps=steps, solver="heun", t1=float(t))
        frames.append(log_p.exp().reshape(size, size).numpy())
    return np.stack(frames).astype(np.float32)
