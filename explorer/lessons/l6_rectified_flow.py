"""Lesson 6 (rectified flow): a flow reflowed once on its own pairs, measured before and after."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fmcore import metrics
from fmcore.solvers import integrate

from .shared import SAMPLES, flow_model, lesson_noise, reference_sample

__all__ = ["EULER_STEPS", "Reflowed", "rectify"]


@dataclass(frozen=True)
class Reflowed:
    """A flow before and after one round of reflow, measured on the same noise.

    Attributes:
        paths_before, paths_after: (K+1, p, 2) RK4 paths of p particles.
        euler: steps -> (before (n, 2), after (n, 2)) Euler samples.  energy: steps -> (before, after)
        energy distances to fresh data.  straightness_before/after: fmcore's S (0 = straight).
        pairs: (z_0, z_1) the coupling reflow trained on, a few of them.  seconds: reflow training time.
    """

    paths_before: np.ndarray
    paths_after: np.ndarray
    euler: dict
    energy: dict
    straightness_before: float
    straightness_after: float
    pairs: tuple[np.ndarray, np.ndarray]
    seconds: float


EULER_STEPS = (1, 2, 4, 8)


def rectify(
    preset: str,
    train_steps: int = 600,
    reflow_steps: int = 500,
    solver: str = "rk4",
    solver_steps: int = 20,
    seed: int = 0,
) -> Reflowed:
    """Train a flow, reflow it once on pairs made by ``solver`` with ``solver_steps``, and measure both."""
    from fmcore.reflow import reflow

    first = flow_model(preset, train_steps, seed)
    result = reflow(
        first,
        n_pairs=2000,
        train_steps=reflow_steps,
        solver=solver,
        solver_steps=solver_steps,
        seed=seed,
        n_eval=500,
    )
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = lesson_noise(SAMPLES, seed + 5)
    euler, energy = {}, {}
    for k in EULER_STEPS:
        ends = [integrate(v, z0, "euler", k).z_end for v in (first.velocity, result.trainer.velocity)]
        euler[k] = tuple(e.numpy() for e in ends)
        energy[k] = tuple(metrics.energy_distance(e, fresh) for e in ends)
    paths = [integrate(v, z0[:40], "rk4", 20).zs.numpy() for v in (first.velocity, result.trainer.velocity)]
    return Reflowed(
        paths_before=paths[0],
        paths_after=paths[1],
        euler=euler,
        energy=energy,
        straightness_before=result.straightness_before,
        straightness_after=result.straightness_after,
        pairs=(result.z0[:40].numpy(), result.z1[:40].numpy()),
        seconds=result.trainer.elapsed,
    )
