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
    "MAX_CLASSES",
    "REFERENCE_POINTS",
    "TRAIN_POINTS",
    "Dataset",
    "check_labels",
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
MAX_CLASSES = 8
"""Classes the Playground tells apart (one colour each): 8gaussians and checkerboard have 8."""


@dataclass(frozen=True)
class Dataset:
    """The data z_1 the figure and the trainer use, in model coordinates (unit spread).

    Attributes:
        key: identity for caches (preset name and seed, or a fingerprint of the points).
        label: what the UI calls it.  shown: (m, 2) float32, the points behind the exact field
            (a subsample of at most ``EXACT_POINTS``).  train: (M, 2) float32 for the trainer.
        reference: (r, 2) float32 independent points to measure samples against.
        shown_labels, train_labels, reference_labels: (m,), (M,), (r,) int64 class of each point
            (0 .. classes - 1), or None for unlabelled data.
    """

    key: str
    label: str
    shown: np.ndarray = field(repr=False)
    train: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)
    shown_labels: np.ndarray | None = field(default=None, repr=False)
    train_labels: np.ndarray | None = field(default=None, repr=False)
    reference_labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def classes(self) -> int:
        """How many labels the data uses, K = largest + 1 (0: unlabelled)."""
        return 0 if self.train_labels is None else int(self.train_labels.max()) + 1

    @property
    def present(self) -> tuple[int, ...]:
        """The classes with points behind the exact field: the ones a person can pick."""
        return () if self.shown_labels is None else tuple(int(k) for k in np.unique(self.shown_labels))

    def of_class(self, k: int) -> Dataset:
        """Only the points of class ``k``: the data whose exact field is the exact conditional field.

        Raises:
            ValueError: the data has no class ``k``.
        """
        if k not in self.present:
            raise ValueError(
                f"{self.label} has no class {k}; its classes are {', '.join(map(str, self.present))}"
            )

        def keep(points, labels):
            return points[labels == k], labels[labels == k]

        shown, shown_labels = keep(self.shown, self.shown_labels)
        train, train_labels = keep(self.train, self.train_labels)
        reference, reference_labels = keep(self.reference, self.reference_labels)
        return Dataset(
            f"{self.key}|class={k}",
            f"{self.label}, class {k}",
            shown,
            train,
            reference,
            shown_labels,
            train_labels,
            reference_labels,
        )


def preset_dataset(name: str, seed: int) -> Dataset:
    """Three independent samples of the preset ``name``: shown, for training, for reference; with
    their classes for a preset that has natural ones (``datasets.CLASSES``)."""
    labelled = name in datasets.CLASSES

    def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        if not labelled:
            return datasets.sample(name, n, seed).numpy(), None
        points, labels = datasets.sample(name, n, seed, labels=True)
        return points.numpy(), labels.numpy()

    (shown, shown_labels), (train, train_labels), (reference, reference_labels) = (
        draw(EXACT_POINTS, seed),
        draw(TRAIN_POINTS, seed + 1),
        draw(REFERENCE_POINTS, seed + 2),
    )
    return Dataset(
        key=f"{name}:{seed}",
        label=datasets.DESCRIPTIONS.get(name, name),
        shown=shown,
        train=train,
        reference=reference,
        shown_labels=shown_labels,
        train_labels=train_labels,
        reference_labels=reference_labels,
    )


def check_labels(labels, n: int) -> np.ndarray | None:
    """The classes of n user points, checked: (n,) int64 in 0 .. ``MAX_CLASSES`` - 1; None when
    every point has the same class (that is unlabelled data). A class may have no points (a drawing
    in the first and third brush colours): it is simply never picked.

    Raises:
        ValueError: in words, when the labels cannot be classes of these points.
    """
    array = np.asarray(labels)
    if array.shape != (n,):
        raise ValueError(f"There must be one label per point: {n:,} points, {array.size:,} labels.")
    if array.dtype.kind not in "iu" or (array < 0).any():
        raise ValueError("Labels must be whole numbers 0, 1, 2, ... (one class each).")
    if n == 0 or array.min() == array.max():
        return None
    if array.max() >= MAX_CLASSES:
        raise ValueError(
            f"Label {int(array.max())} is too large: the Playground tells apart at most {MAX_CLASSES} "
            f"classes, labelled 0 to {MAX_CLASSES - 1}."
        )
    return array.astype(np.int64)


def custom_dataset(points: np.ndarray, key: str, labels: np.ndarray | None = None) -> Dataset:
    """The user's (n, 2) points normalised by ``datasets.from_points``; ``key`` fingerprints them
    (and their labels). ``labels``: optional (n,) classes, checked by ``check_labels``.

    Raises:
        ValueError: the points cannot describe a distribution, or the labels cannot be their
            classes (message for a person).
    """
    normalized = datasets.from_points(points).data.numpy()
    labels = None if labels is None else check_labels(labels, len(normalized))
    # Row indices rather than rows: the labels follow the points they belong to.
    rows = datasets.subsample(np.arange(len(normalized)), EXACT_POINTS, seed=0).astype(np.int64)
    # Shuffled: drawn points come stroke by stroke, and measures take prefixes of the reference.
    reference = np.random.default_rng(1).permutation(
        datasets.subsample(np.arange(len(normalized)), REFERENCE_POINTS, seed=1).astype(np.int64)
    )

    def labels_of(index: np.ndarray) -> np.ndarray | None:
        return None if labels is None else labels[index]

    return Dataset(
        key=f"custom:{key}",
        label="Your points",
        shown=normalized[rows].astype(np.float32),
        train=normalized,
        reference=normalized[reference].astype(np.float32),
        shown_labels=labels_of(rows),
        train_labels=labels,
        reference_labels=labels_of(reference),
    )


def noise_particles(n: int, seed: int) -> np.ndarray:
    """(n, 2) float32 z_0 ~ N(0, I), the particles' start; the same seed gives the same particles."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, 2, generator=generator).numpy()
