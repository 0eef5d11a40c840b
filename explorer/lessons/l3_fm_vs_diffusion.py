"""Lesson 3 (flow matching vs diffusion): three models, each sampled by two members of one SDE family.

A diffusion model (VP, noise prediction), a velocity model on the same VP path, and a flow matching
model (linear path, velocity) learn from the same data with the same network and seed. For any of
them, ``fmcore.sample_sde`` with noise scale g integrates

    dz = [v(z, t) + (g_t^2 / 2) grad log p_t(z)] dt + g_t dW_t,

a family of SDEs that all share the marginals p_t: noise 1 is the schedule's reverse diffusion SDE,
noise 0 its ODE (for the diffusion model, the probability-flow ODE). So each model is sampled both
ways by the same code, and neighbouring panels change one thing only: the sampler (SDE vs ODE, same
model), the parametrisation with its loss weighting (noise vs velocity, same VP path), the schedule
(VP vs linear, both velocity models).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from explorer.core import quality
from fmcore import datasets, metrics
from fmcore.solvers import Trajectory, integrate

from .shared import REFERENCE_POINTS, SAMPLES, Case, flow_model, lesson_noise, measured_case, reference_sample

__all__ = [
    "MEMBERS",
    "SAMPLERS",
    "SAMPLER_STEPS",
    "Comparison",
    "fm_vs_diffusion",
    "parametrisation_pitfall",
    "sample",
]

SAMPLER_STEPS = (2, 5, 10, 20, 50, 100)
SAMPLERS = {
    "sde": "VP · noise model · reverse SDE",
    "vp_sde": "VP · velocity model · reverse SDE",
    "fm_sde": "Linear · velocity model · reverse SDE",
    "pf_ode": "VP · noise model · probability-flow ODE",
    "vp_ode": "VP · velocity model · ODE",
    "fm_ode": "Linear · velocity model · ODE",
}
"""Six samplers, in the order drawn (SDEs above, ODEs below, one model per column)."""
MEMBERS = {
    "sde": ("diffusion", 1.0),
    "vp_sde": ("vp velocity", 1.0),
    "fm_sde": ("flow matching", 1.0),
    "pf_ode": ("diffusion", 0.0),
    "vp_ode": ("vp velocity", 0.0),
    "fm_ode": ("flow matching", 0.0),
}
"""sampler -> (model, noise): ``fmcore.sample_sde`` of that model with that noise scale (1: the
schedule's reverse diffusion SDE by Euler-Maruyama, 0: its ODE by Euler, bit for bit)."""


@dataclass(frozen=True)
class Comparison:
    """Three models trained on the same data, each sampled by its SDE and its ODE, measured here.

    Attributes:
        steps: the step counts tried (each sampler makes exactly one network evaluation per step).
        energy: sampler -> (len(steps),) energy distance of ``SAMPLES`` samples to fresh data.
        paths: sampler -> (K+1, p, 2) paths of p particles at 100 steps.
        train_seconds: model ("diffusion", "vp velocity", "flow matching") -> training seconds.
        train_steps: steps each model trained.  floor: the noise floor, the root mean square energy
            distance between ``SAMPLES`` points of the data and the fresh sample (``quality.reference_floor``).
    """

    steps: tuple[int, ...]
    energy: dict
    paths: dict
    train_seconds: dict
    train_steps: int
    floor: float

    def fewest_steps(self, sampler: str, good: float) -> int | None:
        """The fewest steps tried whose energy distance is at most ``good``; None if none is."""
        return next((k for k, e in zip(self.steps, self.energy[sampler], strict=True) if e <= good), None)

    def table(self, good: float) -> list[dict]:
        """One display row per sampler: its training seconds, energy at every step count, steps to ``good``."""
        return [
            {
                "sampler": label,
                "training s": f"{self.train_seconds[MEMBERS[key][0]]:.2f}",
                **{f"{k} steps": f"{e:.4f}" for k, e in zip(self.steps, self.energy[key], strict=True)},
                f"steps to ≤ {good}": str(self.fewest_steps(key, good) or f"> {self.steps[-1]}"),
            }
            for key, label in SAMPLERS.items()
        ]


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


def sample(model, z0: torch.Tensor, noise: float, steps: int, seed: int) -> Trajectory:
    """``fmcore.sample_sde`` of a trained model on its own schedule: noise 1 the reverse diffusion SDE,
    noise 0 the ODE; z0 (n, 2), ``steps`` steps = ``steps`` NFE."""
    return fmcore.sample_sde(model.velocity, z0, model.flow.schedule, noise=noise, steps=steps, seed=seed)


def fm_vs_diffusion(preset: str, train_steps: int = 600, seed: int = 0) -> Comparison:
    """Train the three models, then sample each by every ``MEMBERS`` entry at each of ``SAMPLER_STEPS``."""
    flow, diffusion = _trained_pair(preset, train_steps, seed)
    models = {
        "diffusion": diffusion,
        "vp velocity": _vp_velocity_model(preset, train_steps, seed),
        "flow matching": flow,
    }
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = lesson_noise(SAMPLES, seed + 5)
    energy, paths = {}, {}
    for name, (model, noise) in MEMBERS.items():
        energy[name] = np.asarray(
            [
                metrics.energy_distance(sample(models[model], z0, noise, k, seed).z_end, fresh)
                for k in SAMPLER_STEPS
            ]
        )
        paths[name] = sample(models[model], z0, noise, 100, seed).zs[:, :40].numpy()
    return Comparison(
        steps=SAMPLER_STEPS,
        energy=energy,
        paths=paths,
        train_seconds={name: model.elapsed for name, model in models.items()},
        train_steps=train_steps,
        floor=quality.reference_floor(fresh.numpy(), SAMPLES),
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
