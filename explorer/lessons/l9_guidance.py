"""Lesson 9's numbers: a label-conditioned flow on 8gaussians and classifier-free guidance.

Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", arXiv
2207.12598) trains one network on (z_t, t, c) with the label replaced by a null label a fraction of
the time (label dropout), so the same network gives the conditional field v(z,t|c) and the
unconditional one v(z,t|null). Sampling uses

    v_w = v(z,t|null) + w (v(z,t|c) - v(z,t|null)),

here with w = 1 the conditional field and w = 0 the unconditional one (``fmcore``'s convention; the
paper writes (1 + w) eps_c - w eps_null, so its w is ours minus 1). For velocities the same linear
combination is the guided field of the Flow Matching Guide and Code (Lipman et al. 2024, arXiv
2412.06264, Sec. on guidance). w > 1 is not the field of any distribution the model learned: it
sharpens p(c|z)^(w-1) on top of p(z|c) and pushes samples past the class, some off the data.
Pure functions of their arguments, no Streamlit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from fmcore import Trainer, datasets
from fmcore.solvers import integrate

from .shared import lesson_noise

__all__ = [
    "DATA",
    "GUIDANCE",
    "PITFALL_GUIDANCE",
    "GuidedSamples",
    "all_classes",
    "centroid",
    "data_radius",
    "guided_samples",
    "labelled_trainer",
    "off_support",
]

DATA = "8gaussians"
CLASS_COUNT = datasets.CLASSES[DATA]
TRAIN_POINTS, TRAIN_STEPS, LABEL_DROPOUT = 2000, 1500, 0.1
SOLVER, SOLVER_STEPS = "rk4", 20
SAMPLES = 400
GUIDANCE = (0.0, 1.0, 3.0)
PITFALL_GUIDANCE = (1.0, 5.0, 10.0)
SUPPORT_QUANTILE = 0.99
"""A sample is off the support when it is farther from every data point than 99% of fresh data are."""


@functools.lru_cache(maxsize=1)
def labelled_trainer(seed: int = 0) -> Trainer:
    """A label-conditioned flow on ``TRAIN_POINTS`` of 8gaussians, trained ``TRAIN_STEPS`` steps.

    A fixed number of steps (not seconds), so the model is the same on every machine. Cached and
    shared: callers sample from it and never train it further.
    """
    points, labels = datasets.sample(DATA, TRAIN_POINTS, seed=0, labels=True)
    # The plain MLP of z (no Fourier features of z, which the Trainer adds from 1,000 points on):
    # its extrapolation at large w is the pitfall the page shows; with the features the samples
    # at w = 5 stayed on the modes (0% off the data, against 18% without them).
    trainer = Trainer(points, labels=labels, label_dropout=LABEL_DROPOUT, seed=seed, z_freqs=0)
    trainer.step(TRAIN_STEPS)
    return trainer


@functools.lru_cache(maxsize=1)
def _support() -> tuple[torch.Tensor, float, torch.Tensor]:
    """``(reference (4000, 2), radius, centroids (8, 2))``: fresh data, the off-support radius, class means.

    The radius is the ``SUPPORT_QUANTILE`` quantile of the distance from another fresh sample to
    its nearest reference point, so about 1% of real data counts as off the support.
    """
    reference, labels = datasets.sample(DATA, 4000, seed=11, labels=True)
    fresh = datasets.sample(DATA, 2000, seed=12)
    radius = float(torch.quantile(torch.cdist(fresh, reference).min(1).values, SUPPORT_QUANTILE))
    centroids = torch.stack([reference[labels == k].mean(0) for k in range(CLASS_COUNT)])
    return reference, radius, centroids


def off_support(points: torch.Tensor) -> torch.Tensor:
    """(n,) bool: farther from every fresh 8gaussians point than 99% of fresh data are."""
    reference, radius, _ = _support()
    return torch.cdist(points, reference).min(1).values > radius


@dataclass(frozen=True)
class GuidedSamples:
    """Samples of one class at one guidance weight, measured.

    Attributes:
        label: the class (None: every class, an equal share of samples each).  guidance: w.
        points: (n, 2).  off_support: (n,) bool.  in_class: share of samples nearest their class's
        centroid.  spread: RMS distance of one class's samples from their mean, per axis (averaged
        over classes).  radius: mean |z|, the distance from the centre of the ring of Gaussians.
        nfe: velocity evaluations per sample (each runs the network on c and on null for w not 0, 1).
    """

    label: int | None
    guidance: float
    points: np.ndarray
    off_support: np.ndarray
    in_class: float
    spread: float
    radius: float
    nfe: int

    @property
    def meaning(self) -> str:
        return {0.0: " · unconditional", 1.0: " · conditional"}.get(self.guidance, "")

    @property
    def off_share(self) -> float:
        return float(self.off_support.mean())

    @property
    def note(self) -> str:
        return f"in class {self.in_class:.0%} · off the data {self.off_share:.0%} · spread {self.spread:.2f}"


def centroid(label: int) -> tuple[float, float]:
    """The mean of one class's fresh data."""
    _check_label(label)
    x, y = _support()[2][label].tolist()
    return x, y


def data_radius() -> float:
    """Mean |z| of fresh 8gaussians data: where the ring of Gaussians lies."""
    return float(_support()[0].norm(dim=1).mean())


def _sample(label: int, w: float, n: int, seed: int) -> tuple[torch.Tensor, int]:
    trajectory = integrate(
        labelled_trainer().guided_velocity(label, guidance=w), lesson_noise(n, seed + 3), SOLVER, SOLVER_STEPS
    )
    return trajectory.z_end, trajectory.nfe


def _measured(
    label: int | None, w: float, per_class: list[tuple[int, torch.Tensor]], nfe: int
) -> GuidedSamples:
    _, _, centroids = _support()
    z = torch.cat([points for _, points in per_class])
    own = torch.cat([torch.full((len(points),), k) for k, points in per_class])
    spreads = [(p - p.mean(0)).square().sum(1).mean().div(2).sqrt() for _, p in per_class]
    return GuidedSamples(
        label=label,
        guidance=float(w),
        points=z.numpy(),
        off_support=off_support(z).numpy(),
        in_class=float((torch.cdist(z, centroids).argmin(1) == own).float().mean()),
        spread=float(torch.stack(spreads).mean()),
        radius=float(z.norm(dim=1).mean()),
        nfe=nfe,
    )


def _check_label(label) -> None:
    if isinstance(label, bool) or label not in range(CLASS_COUNT):
        raise ValueError(f"label must be a class from 0 to {CLASS_COUNT - 1}, got {label!r}")


def guided_samples(label: int, weights: tuple[float, ...] = GUIDANCE, seed: int = 0) -> list[GuidedSamples]:
    """``SAMPLES`` samples of ``label`` at each w, RK4 with ``SOLVER_STEPS`` steps, the same noise for every w."""
    _check_label(label)
    out = []
    for w in weights:
        z, nfe = _sample(label, w, SAMPLES, seed)
        out.append(_measured(label, w, [(label, z)], nfe))
    return out


def all_classes(weights: tuple[float, ...] = PITFALL_GUIDANCE, seed: int = 0) -> list[GuidedSamples]:
    """``SAMPLES // 8`` samples of every class at each w, pooled: how far guidance pushes on average."""
    out = []
    for w in weights:
        per_class = []
        for k in range(CLASS_COUNT):
            z, nfe = _sample(k, w, SAMPLES // CLASS_COUNT, seed + k)
            per_class.append((k, z))
        out.append(_measured(None, w, per_class, nfe))
    return out
