"""The data z_1 behind the Playground's figures: a preset's sample or the user's points.

Pure: no caching here (``explorer.playground.cache`` keeps shared results). Arrays are float32
numpy in model coordinates (unit spread), ready for plotly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fmcore import datasets

__all__ = [
    "EXACT_POINTS",
    "REFERENCE_POINTS",
    "TRAIN_POINTS",
    "Dataset",
    "custom_dataset",
    "noise_particles",
    "preset_dataset",
]

EXACT_POINTS = 500
"""Data points behind the exact field: its cost is O(particles x points) per evaluation."""
TRAIN_POINTS = 2000
"""Points of a preset handed to the trainer (a fresh sample). The trainer's loss floor and its
marginal target cost O(points) per sample: 2,000 keeps the floor under 0.2 s, 10,000 took 1.7 s."""
REFERENCE_POINTS = 2000
"""Independent data points that samples are measured against."""


@dataclass(frozen=True)
class Dataset:
    """The data z_1 the figure and the trainer use, in model coordinates (unit spread).

    Attributes:
        key: identity for caches (preset name and seed, or a fingerprint of the points).
        label: what the UI calls it.  shown: (m, 2) float32, the points behind the exact field
            (a subsample of at most ``EXACT_POINTS``).  train: (M, 2) float32 for the trainer.
        reference: (r, 2) float32 independent points to measure samples against.
    """

    key: str
    label: str
    shown: np.ndarray = field(repr=False)
    train: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)


def preset_dataset(name: str, seed: int) -> Dataset:
    """Three independent samples of the preset ``name``: shown, for training, for reference."""
    return Dataset(
        key=f"{name}:{seed}",
        label=datasets.DESCRIPTIONS.get(name, name),
        shown=datasets.sample(name, EXACT_POINTS, seed).numpy(),
        train=datasets.sample(name, TRAIN_POINTS, seed + 1).numpy(),
        reference=datasets.sample(name, REFERENCE_POINTS, seed + 2).numpy(),
    )


def custom_dataset(points: np.ndarray, key: str) -> Dataset:
    """The user's (n, 2) points normalised by ``datasets.from_points``; ``key`` fingerprints them.

    Raises:
        ValueError: the points cannot describe a distribution (message for a person).
    """
    normalized = datasets.from_points(points).data.numpy()
    shown = datasets.subsample(normalized, EXACT_POINTS, seed=0).astype(np.float32)
    # Shuffled: drawn points come stroke by stroke, and measures take prefixes of the reference.
    reference = np.random.default_rng(1).permutation(datasets.subsample(normalized, REFERENCE_POINTS, seed=1))
    return Dataset(
        key=f"custom:{key}",
        label="Your points",
        shown=shown,
        train=normalized,
        reference=reference.astype(np.float32),
    )


def noise_particles(n: int, seed: int) -> np.ndarray:
    """(n, 2) float32 z_0 ~ N(0, I), the particles' start; the same seed gives the same particles."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, 2, generator=generator).numpy()
