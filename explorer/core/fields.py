"""The velocity field drawn as arrows, the noise grid bent by the flow, and one followed particle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .flows import VIEW_BOX, Source, compute_flow, frame_times, integrate_source

__all__ = [
    "ARROW_GRID",
    "WARP_LINES",
    "WARP_RESOLUTION",
    "SinglePath",
    "arrow_grid",
    "field_frames",
    "single_path",
    "velocities_at",
    "warp_frames",
    "warp_start",
]

ARROW_GRID = 15
"""Arrows per side of the square grid the field is drawn on."""
WARP_LINES, WARP_RESOLUTION = 13, 41


def arrow_grid(size: int = ARROW_GRID) -> np.ndarray:
    """(size^2, 2) arrow positions covering the view."""
    axis = np.linspace(-VIEW_BOX * 0.92, VIEW_BOX * 0.92, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    return np.stack([x.ravel(), y.ravel()], axis=1)


def velocities_at(source: Source, points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(F, G, 2) float32 velocities at the (G, 2) ``points`` for each of the (F,) ``times``."""
    z = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    with torch.no_grad():
        if source.batch is not None:
            zz = z.repeat(len(times), 1)
            tt = torch.from_numpy(np.repeat(times.astype(np.float32), len(z)))
            return source.batch(zz, tt).reshape(len(times), len(z), 2).numpy().astype(np.float32)
        velocities = [source.velocity(z, torch.tensor(float(t), dtype=z.dtype)).numpy() for t in times]
        return np.stack(velocities).astype(np.float32)


def field_frames(source: Source) -> np.ndarray:
    """(F, G, 2) velocity on ``arrow_grid()`` at every frame time."""
    return velocities_at(source, arrow_grid(), frame_times())


def warp_start(lines: int = WARP_LINES, resolution: int = WARP_RESOLUTION) -> np.ndarray:
    """(2 * lines, resolution, 2) straight grid lines in noise space at t = 0."""
    ticks = np.linspace(-2.4, 2.4, lines, dtype=np.float32)
    along = np.linspace(-2.4, 2.4, resolution, dtype=np.float32)
    horizontal = np.stack(np.broadcast_arrays(along[None, :], ticks[:, None]), axis=-1)
    vertical = np.stack(np.broadcast_arrays(ticks[:, None], along[None, :]), axis=-1)
    return np.concatenate([horizontal, vertical]).astype(np.float32)


def warp_frames(source: Source, solver: str, steps: int, grid: str) -> np.ndarray:
    """(F, L, R, 2): the noise-space grid lines carried by the flow, at every frame time."""
    start = warp_start()
    moved = compute_flow(source, start.reshape(-1, 2), solver, steps, grid).particles
    return moved.reshape(len(moved), *start.shape)


@dataclass(frozen=True)
class SinglePath:
    """One particle: the solver's nodes and the ODE's own (finely solved) path.

    Attributes:
        start: (2,).  nodes: (K+1, 2) where the solver puts it.  exact: (R, 2) a fine RK4 solve.
        particle: (F, 2) its position at the frame times (solver, linear between nodes).
    """

    start: np.ndarray
    nodes: np.ndarray
    exact: np.ndarray
    particle: np.ndarray


def single_path(
    source: Source, start: tuple[float, float], solver: str, steps: int, grid: str, noise: float = 0.0
) -> SinglePath:
    """The trajectory of one particle that starts at ``start`` (noise space, t = 0).

    With ``EULER_MARUYAMA`` its nodes are one SDE path (Brownian seed 0) against the ODE's path.
    """
    z0 = np.asarray([start], dtype=np.float32)
    coarse = compute_flow(source, z0, solver, steps, grid, noise)
    fine = integrate_source(source, z0, "rk4", 100, "uniform")
    return SinglePath(
        start=z0[0],
        nodes=coarse.paths[:, 0],
        exact=fine.zs[:, 0].numpy().astype(np.float32),
        particle=coarse.particles[:, 0],
    )
