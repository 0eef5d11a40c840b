"""How close generated samples are to the data: the energy distance and its noise floor."""

from __future__ import annotations

import numpy as np

from fmcore import metrics

from .data import Dataset

__all__ = ["energy_distance", "noise_floor", "reference_floor", "reference_for"]


def energy_distance(samples: np.ndarray, reference: np.ndarray) -> float | None:
    """Energy distance between generated samples and independent data (0 = same distribution).

    None when either holds fewer than 2 points (data of 2 or 3 points leaves a reference of 1):
    the estimate needs pairs within each sample.
    """
    if min(len(samples), len(reference)) < 2:
        return None
    return float(metrics.energy_distance(samples, reference))


def reference_for(dataset: Dataset, n: int) -> np.ndarray:
    """Independent data to measure n samples against: as many points, at most the whole reference."""
    return dataset.reference[: min(n, len(dataset.reference))]


def noise_floor(dataset: Dataset, n: int) -> float | None:
    """How far apart n points of the data and ``reference_for(dataset, n)`` typically measure: the
    best any sampler of n points can show. The root mean square of the energy distance between two
    independent samples of those sizes, in closed form (``fmcore.metrics.energy_distance_floor``),
    so a sampler that draws from the data's own distribution scores 1 on average in square. None
    for data of fewer than 4 points, whose spread cannot be estimated."""
    if len(dataset.reference) < 4 or n < 2:
        return None
    return metrics.energy_distance_floor(dataset.reference, n, len(reference_for(dataset, n)))


def reference_floor(reference: np.ndarray, n: int) -> float:
    """The noise floor of ``energy_distance(samples, reference)`` for n samples against all of the
    (m, d) ``reference``: the RMS between independent samples of n and m points of the reference's
    distribution (``fmcore.metrics.energy_distance_floor``, estimated from the reference itself).
    What a lesson's "× noise floor" divides by.

    Raises:
        ValueError: n < 2, or a reference of fewer than 4 points.
    """
    return metrics.energy_distance_floor(reference, n, len(reference))
