"""What several lessons compute with: the data set, its exact field, the noise, and the result panel.

Every lesson module (``l1_ode_view`` ... ``l7_continuity``) is pure: the same arguments give the same
result, as plain arrays and frozen dataclasses, so a page can wrap it in ``st.cache_data`` and a
test can call it directly. Sizes are chosen so that each lesson's first run takes seconds on a
laptop CPU: the exact field of a ``DATA_POINTS`` sample costs O(n m) per evaluation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from explorer.core.flows import EXACT_BANDWIDTH
from fmcore import datasets, metrics

__all__ = [
    "DATA_POINTS",
    "REFERENCE_POINTS",
    "SAMPLES",
    "Case",
    "blurred",
    "exact_field",
    "flow_model",
    "lesson_data",
    "lesson_noise",
    "measured_case",
    "reference_sample",
]

DATA_POINTS = 500
"""Size of the empirical data set whose exact marginal field the lessons integrate."""
REFERENCE_POINTS = 1000
"""A second, independent sample of the preset: what generated samples are compared with."""
SAMPLES = 600
"""Samples per measurement in lessons 3 and 6: against ``REFERENCE_POINTS`` fresh points, the energy
distance's noise floor (RMS, ``quality.reference_floor``) is ~0.003 at this size."""


@dataclass(frozen=True)
class Case:
    """One case a lesson shows as a small scatter: a title, its (n, 2) points, a measured note.

    Attributes:
        wrong: drawn in the error colour (a pitfall's result).  paths: (K+1, p, 2) states at the
        solver's nodes, drawn as polylines with a dot per node.
    """

    title: str
    points: np.ndarray
    note: str
    wrong: bool = False
    paths: np.ndarray | None = None


def lesson_noise(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 2) draws of z_0 ~ N(0, I), fixed by ``seed``."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def lesson_data(preset: str, seed: int = 0) -> torch.Tensor:
    """(DATA_POINTS, 2): the preset's data set behind the exact field, the sample the Playground draws."""
    return datasets.sample(preset, DATA_POINTS, seed=seed)


def exact_field(data: torch.Tensor, schedule):
    """``v(z, t)``: the exact marginal velocity of the path ``schedule`` towards ``data`` (m, 2)."""
    return lambda z, t: fmcore.exact_velocity(z, t, data, schedule)


def blurred(schedule: str = "linear") -> fmcore.Blurred:
    """The Playground's exact field: the data blurred by ``EXACT_BANDWIDTH`` (finite at t = 1)."""
    return fmcore.Blurred(schedule, EXACT_BANDWIDTH)


def reference_sample(preset: str) -> np.ndarray:
    """(REFERENCE_POINTS, 2) fresh points of the preset, independent of the lesson's data set."""
    return datasets.sample(preset, REFERENCE_POINTS, seed=1).numpy()


def measured_case(
    title: str, points: torch.Tensor, reference: np.ndarray, what: str, wrong: bool = False
) -> Case:
    """A ``Case`` of (n, 2) ``points`` whose note is their energy distance to ``reference`` (``what``)."""
    note = f"energy distance to {what}: {metrics.energy_distance(points, reference):.3f}"
    return Case(title, points.numpy(), note, wrong=wrong)


@functools.lru_cache(maxsize=4)
def flow_model(preset: str, train_steps: int, seed: int):
    """A flow matching model (linear path, velocity) on 2,000 points of the preset.

    Shared by lessons 3 and 6 (kept, not retrained); callers must not train it further.
    """
    from fmcore.trainer import Trainer

    flow = Trainer(datasets.sample(preset, 2000, seed=0), schedule="linear", seed=seed)
    flow.step(train_steps)
    return flow
