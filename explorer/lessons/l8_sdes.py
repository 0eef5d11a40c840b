"""Lesson 8's numbers: one flow sampled by many SDEs that share its marginals p_t.

The family (Song et al. 2021, "Score-Based Generative Modeling through SDEs", arXiv 2011.13456:
Sec. 3.2 for the reverse-time SDE, after Anderson 1982, "Reverse-time diffusion equation models";
Sec. 4.3 and App. D.1 for its probability-flow ODE; the Flow Matching Guide and Code, Lipman et al.
2024, arXiv 2412.06264, for affine Gaussian paths and their score):

    dz = [v(z, t) + (g_t^2 / 2) grad log p_t(z)] dt + g_t dW_t,   g_t = noise * sqrt(beta_t),

with the score taken from the velocity (``fmcore.convert``; on the linear path ``(t v - z)/(1 - t)``)
and ``noise = 1`` the reverse diffusion SDE (``fmcore.sample_sde``). Every run here uses the
Playground's exact field of the preset (the data blurred by ``EXACT_BANDWIDTH``), so what differs
between panels is the sampler, never the model. Pure functions of their arguments, no Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import fmcore
from explorer.core import quality
from explorer.core.flows import EXACT_BANDWIDTH
from fmcore import datasets, metrics

from .shared import DATA_POINTS, Case, lesson_noise

__all__ = ["NOISE_LEVELS", "SdeFamily", "SdeRun", "no_score_cases", "sde_family"]

NOISE_LEVELS = (0.0, 0.5, 1.0, 2.0)
"""The scales of g_t the lesson compares: 0 the ODE, 1 reverse diffusion."""
STEPS = 100
PARTICLES = 2000
"""Particles each cloud is measured on: two clouds of this size of the same p_t differ by an energy
distance of about 0.0007 (t = 0.5) to 0.0013 (t = 1) in root mean square on the four presets."""
SHOWN_POINTS, SHOWN_PATHS = 800, 25


def _field(preset: str):
    data = datasets.sample(preset, DATA_POINTS, seed=0)
    schedule = fmcore.Blurred("linear", EXACT_BANDWIDTH)
    return (lambda z, t: fmcore.exact_velocity(z, t, data, schedule)), schedule


@dataclass(frozen=True)
class SdeRun:
    """One member of the family, run from the same noise as the others.

    Attributes:
        noise: the scale of g_t.  paths: (STEPS+1, SHOWN_PATHS, 2) states of a few particles.
        half, end: (SHOWN_POINTS, 2) of the clouds at t = 0.5 and t = 1.  distance_half, distance_end: energy
        distance of those clouds to the ODE's at the same t.  nfe, steps: counted by ``sample_sde``.
    """

    noise: float
    paths: np.ndarray
    half: np.ndarray
    end: np.ndarray
    distance_half: float
    distance_end: float
    nfe: int
    steps: int

    @property
    def roughness(self) -> float:
        """Mean over particles of the sum of squared step lengths (quadratic variation, 0 -> ~d sum g^2 h)."""
        return float(np.square(np.diff(self.paths, axis=0)).sum(-1).sum(0).mean())


@dataclass(frozen=True)
class SdeFamily:
    """Every level of ``NOISE_LEVELS`` on one preset, and the noise floor of the comparison.

    Attributes:
        runs: one ``SdeRun`` per noise level, noise 0 (the ODE, Euler) first.
        floor_half, floor_end: the noise floor at t = 0.5 and t = 1: the root mean square energy
            distance between two independent clouds of ``PARTICLES`` points of the same p_t, what
            sampling noise alone gives (``quality.reference_floor``, exact, from the ODE's cloud).
    """

    runs: tuple[SdeRun, ...]
    floor_half: float
    floor_end: float

    @property
    def excess_end(self) -> float:
        """The largest |energy distance| at t = 1 of a cloud to the ODE's, in noise floors."""
        return max(abs(run.distance_end) for run in self.runs) / self.floor_end


def sde_family(preset: str, noise_levels: tuple[float, ...] = NOISE_LEVELS, seed: int = 0) -> SdeFamily:
    """Euler-Maruyama with ``STEPS`` steps at each noise level, from the same ``PARTICLES`` draws."""
    velocity, schedule = _field(preset)
    z0 = lesson_noise(PARTICLES, seed)
    half = STEPS // 2
    ode = fmcore.sample_sde(velocity, z0, schedule, noise=0.0, steps=STEPS)
    runs = []
    for level in noise_levels:
        # noise 0 is the ODE itself (bit for bit): its distances are 0, not the U-statistic's
        # slightly negative estimate between a cloud and itself.
        sde = (
            ode
            if level == 0
            else fmcore.sample_sde(velocity, z0, schedule, noise=level, steps=STEPS, seed=seed + 100)
        )
        runs.append(
            SdeRun(
                noise=float(level),
                paths=sde.zs[:, :SHOWN_PATHS].numpy(),
                half=sde.zs[half, :SHOWN_POINTS].numpy(),
                end=sde.zs[-1, :SHOWN_POINTS].numpy(),
                distance_half=0.0 if sde is ode else metrics.energy_distance(sde.zs[half], ode.zs[half]),
                distance_end=0.0 if sde is ode else metrics.energy_distance(sde.zs[-1], ode.zs[-1]),
                nfe=sde.nfe,
                steps=sde.steps,
            )
        )
    return SdeFamily(
        runs=tuple(runs),
        floor_half=quality.reference_floor(ode.zs[half].numpy(), PARTICLES),
        floor_end=quality.reference_floor(ode.zs[-1].numpy(), PARTICLES),
    )


def no_score_cases(preset: str, seed: int = 0) -> list[Case]:
    """The ODE, the right SDE (noise 1) and the SDE without its score term, at t = 1, measured."""
    velocity, schedule = _field(preset)
    z0 = lesson_noise(PARTICLES, seed)
    ode = fmcore.sample_sde(velocity, z0, schedule, noise=0.0, steps=STEPS).z_end
    right = fmcore.sample_sde(velocity, z0, schedule, noise=1.0, steps=STEPS, seed=seed + 100).z_end
    wrong = fmcore.sample_sde(
        velocity, z0, schedule, noise=1.0, steps=STEPS, seed=seed + 100, score_drift=False
    ).z_end

    def note(z):
        return f"energy distance to the ODE's cloud: {metrics.energy_distance(z, ode):.4f}"

    return [
        Case("ODE: dz = v dt", ode[:SHOWN_POINTS].numpy(), f"{STEPS} Euler steps = {STEPS} NFE"),
        Case("Right: v + (g²/2)·score, plus g dW", right[:SHOWN_POINTS].numpy(), note(right)),
        Case("Wrong: v only, plus g dW", wrong[:SHOWN_POINTS].numpy(), note(wrong), wrong=True),
    ]
