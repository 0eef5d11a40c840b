"""Lesson 3 (flow matching vs diffusion): the same data trained both ways, sampled several ways."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from fmcore import datasets, metrics
from fmcore.solvers import integrate

from .shared import REFERENCE_POINTS, SAMPLES, Case, flow_model, lesson_noise, measured_case, reference_sample

__all__ = ["SAMPLERS", "SAMPLER_STEPS", "Comparison", "fm_vs_diffusion", "parametrisation_pitfall"]

SAMPLER_STEPS = (2, 5, 10, 20, 50, 100)
SAMPLERS = {
    "sde": "VP · noise model · reverse SDE (Euler–Maruyama)",
    "pf_ode": "VP · noise model · probability-flow ODE (Euler)",
    "vp_ode": "VP · velocity model · ODE (Euler)",
    "fm_ode": "Linear · velocity model · ODE (Euler)",
}
"""Four samplers that change one thing at a time: the sampler (sde -> pf_ode), the parametrisation
and with it the loss weighting (pf_ode -> vp_ode), the schedule (vp_ode -> fm_ode)."""


@dataclass(frozen=True)
class Comparison:
    """The same data trained both ways, sampled three ways, measured on this machine.

    Attributes:
        steps: the step counts tried (each sampler makes exactly one network evaluation per step).
        energy: sampler -> (len(steps),) energy distance of ``SAMPLES`` samples to fresh data.
        paths: sampler -> (K+1, p, 2) paths of p particles at 100 steps.
        train_seconds: model ("diffusion", "vp velocity", "flow matching") -> training seconds.
        train_steps: steps each model trained.  floor: energy distance between two data samples.
    """

    steps: tuple[int, ...]
    energy: dict
    paths: dict
    train_seconds: dict
    train_steps: int
    floor: float

    def steps_to_reach(self, sampler: str, tolerance: float) -> int | None:
        """The fewest steps whose energy distance is within ``tolerance`` of the best this sampler reached."""
        energy = self.energy[sampler]
        good = np.flatnonzero(energy <= energy.min() + tolerance)
        return int(self.steps[good[0]]) if len(good) else None


@functools.lru_cache(maxsize=4)
def _vp_velocity_model(preset: str, train_steps: int, seed: int):
    """A velocity model on the VP schedule: the diffusion model's path, flow matching's target."""
    from fmcore.trainer import Trainer

    model = Trainer(datasets.sample(preset, 2000, seed=0), schedule="vp", seed=seed)
    model.step(train_steps)
    return model


@functools.lru_cache(maxsize=4)
def _trained_pair(preset: str, train_steps: int, seed: int):
    """``flow_model`` and a diffusion model (VP, noise prediction) with the same data, network and seed."""
    from fmcore.diffusion import diffusion_trainer

    diffusion = diffusion_trainer(datasets.sample(preset, 2000, seed=0), seed=seed)
    diffusion.step(train_steps)
    return flow_model(preset, train_steps, seed), diffusion


def fm_vs_diffusion(preset: str, train_steps: int = 600, seed: int = 0) -> Comparison:
    """Train both models, then sample each way at every step count in ``SAMPLER_STEPS``."""
    from fmcore.diffusion import sample_ode, sample_sde

    flow, diffusion = _trained_pair(preset, train_steps, seed)
    vp_velocity = _vp_velocity_model(preset, train_steps, seed)
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = lesson_noise(SAMPLES, seed + 5)
    samplers = {
        "sde": lambda k: sample_sde(diffusion, steps=k, seed=seed, z0=z0),
        "pf_ode": lambda k: sample_ode(diffusion, solver="euler", steps=k, z0=z0),
        "vp_ode": lambda k: sample_ode(vp_velocity, solver="euler", steps=k, z0=z0),
        "fm_ode": lambda k: integrate(flow.velocity, z0, "euler", k, schedule="linear"),
    }
    energy, paths = {}, {}
    for name, sample in samplers.items():
        energy[name] = np.asarray([metrics.energy_distance(sample(k).z_end, fresh) for k in SAMPLER_STEPS])
        paths[name] = sample(100).zs[:, :40].numpy()
    return Comparison(
        steps=SAMPLER_STEPS,
        energy=energy,
        paths=paths,
        train_seconds={
            "diffusion": diffusion.elapsed,
            "vp velocity": vp_velocity.elapsed,
            "flow matching": flow.elapsed,
        },
        train_steps=train_steps,
        floor=metrics.energy_distance(datasets.sample(preset, SAMPLES, seed=2), fresh),
    )


def parametrisation_pitfall(preset: str, train_steps: int = 600, seed: int = 0) -> list[Case]:
    """A noise-prediction network handed to an ODE solver as if it were a velocity, and done right."""
    from fmcore.diffusion import sample_ode

    flow, diffusion = _trained_pair(preset, train_steps, seed)
    fresh = reference_sample(preset)
    z0 = lesson_noise(REFERENCE_POINTS // 2, seed + 5)
    raw = diffusion.flow.net
    with torch.no_grad():
        as_velocity = integrate(lambda z, t: raw(z, t), z0, "euler", 100, schedule="vp").z_end
    converted = sample_ode(diffusion, solver="euler", steps=100, z0=z0).z_end
    fm = integrate(flow.velocity, z0, "euler", 100, schedule="linear").z_end
    return [
        measured_case("Wrong: ε_θ used as the velocity", as_velocity, fresh, "data", wrong=True),
        measured_case("Right: ε_θ converted, the PF-ODE", converted, fresh, "data"),
        measured_case("Flow matching: v_θ is the velocity", fm, fresh, "data"),
    ]
