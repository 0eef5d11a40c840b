"""How close generated samples are to the data: the energy distance and its noise floor."""

from __future__ import annotations

import numpy as np

from fmcore import metrics

from .data import Dataset

__all__ = ["energy_distance", "noise_floor", "reference_for"]


def energy_distance(samples: np.ndarray, reference: np.ndarray) -> float | None:
    """Energy distance between generated samples and independent data (0 = same distribution).

    None when either holds fewer than 2 points (data of 2 or 3 points leaves a reference of 1):
    the estimate needs pairs within each sample.
    """
    if min(len(samples), len(reference)) < 2:
        return None
    return float(metrics.energy_distance(samples, reference))


def reference_for(dataset: Dataset, n: int) -> np.ndarray:
    """Independent data to measure n samples against: as many points, at most half the reference."""
    return dataset.reference[: min(n, len(dataset.reference) // 2)]


def noise_floor(dataset: Dataset, n: int, splits: int = 4) -> float | None:
    """How far apart two independent data samples of n points typically measure: the best any
    sampler can show. Mean |energy distance| over a few random halvings of the reference (one
    draw of an unbiased estimate can land anywhere near 0, even below it). None for data of
    fewer than 4 points: halves of 1 point cannot be measured."""
    half = min(n, len(dataset.reference) // 2)
    if half < 2:
        return None
    rng = np.random.default_rng(0)
    values = []
    for _ in range(splits):
        order = rng.permutation(len(dataset.reference))
        a, b = dataset.reference[order[:half]], dataset.reference[order[half : 2 * half]]
        values.append(abs(float(metrics.energy_distance(a, b))))
    return float(np.mean(values))
