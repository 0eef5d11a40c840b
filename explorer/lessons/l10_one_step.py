"""Lesson 10's numbers: instantaneous vs average velocity, and why one Euler step gives the data mean.

On the linear path z_t = t z_1 + (1 - t) z_0 from noise, the marginal field is
v(z, t) = (E[z_1 | z_t = z] - z) / (1 - t) (Lipman et al. 2022; the Flow Matching Guide and Code,
arXiv 2412.06264). At t = 0, z_t = z_0 says nothing about z_1, so v(z, 0) = E[z_1] - z: one Euler
step of size 1 lands every sample on the data mean. More generally the last Euler step, from t_k to
1, returns the posterior mean E[z_1 | z_{t_k}].

The average velocity of MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling",
arXiv 2505.13447) is u(z_r, r, t) = (1 / (t - r)) * integral_r^t v(z_s, s) ds along the ODE path,
so z_t = z_r + (t - r) u(z_r, r, t) holds exactly for any step. Here u(z_0, 0, 1) is computed from
the exact field by integrating the ODE (the oracle a MeanFlow network is trained to match).
Pure functions of their arguments, no Streamlit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from explorer.core import quality
from explorer.core.flows import EXACT_BANDWIDTH
from fmcore import datasets, metrics
from fmcore.solvers import integrate

from .shared import DATA_POINTS, Case, lesson_noise, reference_sample

__all__ = [
    "EULER_STEPS",
    "ORACLE_STEPS",
    "FewStepRace",
    "FewStepRow",
    "OneStep",
    "euler_cases",
    "few_step_race",
    "one_step",
    "trained",
]

PARTICLES, ARROWS = 600, 24
ORACLE_STEPS = 100
"""RK4 steps of the reference ODE solve behind the average velocity (400 NFE)."""
EULER_STEPS = (1, 2, 4, 100)


def _field(preset: str):
    data = datasets.sample(preset, DATA_POINTS, seed=0)
    schedule = fmcore.Blurred("linear", EXACT_BANDWIDTH)
    return data, (lambda z, t: fmcore.exact_velocity(z, t, data, schedule)), schedule


@dataclass(frozen=True)
class OneStep:
    """One step from t = 0 to t = 1, taken with each velocity, from the same noise.

    Attributes:
        z0: (PARTICLES, 2) noise.  instantaneous: (PARTICLES, 2) v(z_0, 0).  average: (PARTICLES, 2)
        u(z_0, 0, 1) = z_1 - z_0 with z_1 the ODE's end point.  euler: z_0 + v(z_0, 0), one Euler
        step (1 NFE).  ode: z_0 + u(z_0, 0, 1), the ODE's samples.  data_mean: (2,) of the field's data.
        energy_euler, energy_ode: energy distance of each to fresh data.  oracle_nfe: what u cost here.
    """

    z0: np.ndarray
    instantaneous: np.ndarray
    average: np.ndarray
    euler: np.ndarray
    ode: np.ndarray
    data_mean: np.ndarray
    energy_euler: float
    energy_ode: float
    oracle_nfe: int

    @property
    def euler_spread(self) -> float:
        """Largest distance of a one-step Euler sample from the data mean."""
        return float(np.linalg.norm(self.euler - self.data_mean, axis=1).max())


def one_step(preset: str, seed: int = 0) -> OneStep:
    """v(z_0, 0) and u(z_0, 0, 1) of the exact field at ``PARTICLES`` noise points, and the step each takes."""
    data, velocity, schedule = _field(preset)
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = lesson_noise(PARTICLES, seed)
    euler = integrate(velocity, z0, "euler", 1, schedule=schedule)
    ode = integrate(velocity, z0, "rk4", ORACLE_STEPS, schedule=schedule)
    return OneStep(
        z0=z0.numpy(),
        instantaneous=velocity(z0, torch.tensor(0.0)).numpy(),
        average=(ode.z_end - z0).numpy(),
        euler=euler.z_end.numpy(),
        ode=ode.z_end.numpy(),
        data_mean=data.mean(0).numpy(),
        energy_euler=metrics.energy_distance(euler.z_end, fresh),
        energy_ode=metrics.energy_distance(ode.z_end, fresh),
        oracle_nfe=ode.nfe,
    )


def euler_cases(preset: str, seed: int = 0) -> list[Case]:
    """Euler with each of ``EULER_STEPS`` steps on the exact field, from the same noise, measured.

    With K steps the last one returns E[z_1 | z_t] at t = 1 - 1/K: few steps give posterior means.
    """
    _, velocity, schedule = _field(preset)
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = lesson_noise(PARTICLES, seed)
    panels = []
    for steps in EULER_STEPS:
        end = integrate(velocity, z0, "euler", steps, schedule=schedule).z_end
        panels.append(
            Case(
                f"Euler, {steps} step{'s' * (steps > 1)} = {steps} NFE",
                end.numpy(),
                f"energy distance to data: {metrics.energy_distance(end, fresh):.3f}",
                wrong=steps <= 2,
            )
        )
    return panels


# -- MeanFlow: a network of the average velocity --------------------------------------------------

MEANFLOW_PRESET = "moons"
TRAIN_STEPS = 2000
"""Steps each model of the race trains (a fixed count, so every machine gets the same models)."""
MEANFLOW_STEPS = (1, 2, 4)
FLOW_STEPS = (1, 2, 4, 100)


@functools.lru_cache(maxsize=2)
def trained(objective: str, seed: int = 0):
    """A ``Trainer`` on 2,000 points of moons with ``objective`` ("flow" or "meanflow"), ``TRAIN_STEPS`` steps.

    Cached and shared: callers sample from it and never train it further.
    """
    from fmcore import Trainer

    trainer = Trainer(datasets.sample(MEANFLOW_PRESET, 2000, seed=0), objective=objective, seed=seed)
    trainer.step(TRAIN_STEPS)
    return trainer


@dataclass(frozen=True)
class FewStepRow:
    """One model sampled one way: its samples and how far they are from the data."""

    model: str
    sampler: str
    steps: int
    nfe: int
    energy: float
    points: np.ndarray

    @property
    def title(self) -> str:
        """E.g. "Mean flow: 1 step = 1 NFE", "Flow: 100 Euler steps = 100 NFE"."""
        kind = "Euler " if self.sampler == "Euler" else ""
        return f"{self.model.capitalize()}: {self.steps} {kind}step{'s' * (self.steps > 1)} = {self.nfe} NFE"


@dataclass(frozen=True)
class FewStepRace:
    """The mean-flow model in 1, 2, 4 steps against the flow model's Euler at 1, 2, 4 and 100.

    Attributes:
        rows: one per (model, steps).  floor: the noise floor, the root mean square energy distance
            between ``PARTICLES`` points of the data and the fresh sample (``quality.reference_floor``).
        train_seconds: model -> seconds its ``TRAIN_STEPS`` took on this machine.
    """

    rows: tuple[FewStepRow, ...]
    floor: float
    train_seconds: dict


def few_step_race(seed: int = 0) -> FewStepRace:
    """Both models from the same noise, measured against fresh data."""
    fresh = torch.from_numpy(reference_sample(MEANFLOW_PRESET))
    z0 = lesson_noise(PARTICLES, seed + 5)
    mean_flow, flow = trained("meanflow", seed), trained("flow", seed)
    rows = []
    for steps in MEANFLOW_STEPS:
        run = fmcore.sample_mean_flow(mean_flow, z0, steps)
        rows.append(
            FewStepRow(
                "mean flow",
                "z + (t − r) u",
                steps,
                run.nfe,
                metrics.energy_distance(run.z_end, fresh),
                run.z_end.numpy(),
            )
        )
    for steps in FLOW_STEPS:
        run = integrate(flow.velocity, z0, "euler", steps)
        rows.append(
            FewStepRow(
                "flow", "Euler", steps, run.nfe, metrics.energy_distance(run.z_end, fresh), run.z_end.numpy()
            )
        )
    return FewStepRace(
        rows=tuple(rows),
        floor=quality.reference_floor(fresh.numpy(), PARTICLES),
        train_seconds={"mean flow": mean_flow.elapsed, "flow": flow.elapsed},
    )
