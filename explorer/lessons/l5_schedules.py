"""Lesson 5 (training and schedules): one training step in slow motion, the schedules' paths and
log-SNR, what a wrongly named schedule breaks, and what a schedule does not change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from fmcore import datasets
from fmcore.solvers import integrate

from .shared import (
    REFERENCE_POINTS,
    Case,
    blurred,
    exact_field,
    lesson_data,
    lesson_noise,
    measured_case,
    reference_sample,
)

__all__ = [
    "EULER_CHECK",
    "REFERENCE_STEPS",
    "Batch",
    "ScheduleFacts",
    "one_batch",
    "schedule_curves",
    "schedule_facts",
    "schedule_paths",
    "schedule_pitfall",
]


@dataclass(frozen=True)
class Batch:
    """One training batch, every quantity of one step of the algorithm.

    Attributes:
        z1, z0: (n, 2) data and noise.  t: (n,) times.  z_t: (n, 2) interpolated points.
        u_t: (n, 2) conditional targets.  v: (n, 2) the network's predictions at (z_t, t) (a network
        trained for ``trained_steps``).  loss: mean |v - u_t|^2 over the batch.
    """

    z1: np.ndarray
    z0: np.ndarray
    t: np.ndarray
    z_t: np.ndarray
    u_t: np.ndarray
    v: np.ndarray
    loss: float
    trained_steps: int


def one_batch(
    preset: str, schedule: str = "linear", n: int = 12, trained_steps: int = 300, seed: int = 0
) -> Batch:
    """Draw one small batch and run one step of conditional flow matching on it, in slow motion."""
    from fmcore.trainer import Trainer

    data = lesson_data(preset)
    g = torch.Generator().manual_seed(seed + 11)
    z1 = data[torch.randint(len(data), (n,), generator=g)]
    z0 = torch.randn(n, 2, generator=g)
    t = torch.rand(n, generator=g) * fmcore.get_schedule(schedule).t_max
    path = fmcore.sample_path(schedule, z0, z1, t)
    trainer = Trainer(data, schedule=schedule, seed=seed)
    trainer.step(trained_steps)
    v = trainer.velocity(path.z_t, t)
    return Batch(
        z1=z1.numpy(),
        z0=z0.numpy(),
        t=t.numpy(),
        z_t=path.z_t.numpy(),
        u_t=path.u_t.numpy(),
        v=v.numpy(),
        loss=float((v - path.u_t).square().sum(1).mean()),
        trained_steps=trained_steps,
    )


def schedule_curves(points: int = 101) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (t, alpha_t, sigma_t) for every schedule in ``fmcore.SCHEDULES``."""
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    return {
        name: (t.numpy(), schedule.alpha(t).numpy(), schedule.sigma(t).numpy())
        for name, schedule in fmcore.SCHEDULES.items()
    }


def schedule_paths(preset: str, n: int = 30, nodes: int = 41, seed: int = 3) -> dict[str, np.ndarray]:
    """name -> (nodes, n, 2) conditional paths ``alpha_t z_1 + sigma_t z_0`` of the same pairs."""
    data = lesson_data(preset)
    z0 = lesson_noise(n, seed)
    z1 = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]]
    t = torch.linspace(0.0, 1.0, nodes)
    out = {}
    for name, schedule in fmcore.SCHEDULES.items():
        s = schedule(t.clamp(max=schedule.t_max))
        out[name] = (s.alpha[:, None, None] * z1 + s.sigma[:, None, None] * z0).numpy()
    return out


def schedule_pitfall(preset: str, steps: int = 300, seed: int = 0) -> list[Case]:
    """What naming the wrong schedule breaks, and what ``fmcore.change_schedule`` fixes.

    Top row: a noise-prediction network trained on VP, converted to a velocity with the wrong
    schedule (linear) and with its own; and a cosine velocity model moved to the linear path with
    ``change_schedule``. Bottom row: particles at t = 0.5 of a cosine model used as if it were a
    linear-path field, the same model through ``change_schedule``, and the linear path's true p_0.5.
    """
    from fmcore.models import FlowModel
    from fmcore.trainer import Trainer

    data = datasets.sample(preset, 2000, seed=0)
    fresh = reference_sample(preset)
    z0 = lesson_noise(REFERENCE_POINTS // 2, seed + 5)
    eps_net = Trainer(data, schedule="vp", prediction="noise", seed=seed)
    eps_net.step(steps)
    cosine = Trainer(data, schedule="cosine", seed=seed)
    cosine.step(steps)
    moved = fmcore.change_schedule(cosine.velocity, "cosine", "linear")

    def sample(velocity, schedule, t0=0.0, t1=1.0, steps=20):
        return integrate(velocity, z0, "rk4", steps, t0=t0, t1=t1, schedule=schedule).z_end

    # Read as linear, a VP noise prediction divides by alpha_0 = 0: start just after it.
    as_linear = sample(FlowModel(eps_net.flow.net, "linear", "noise").velocity, "linear", t0=0.02)
    as_vp = sample(eps_net.velocity, "vp")
    on_linear = sample(moved, "linear")
    half_naive = sample(cosine.velocity, "cosine", t1=0.5, steps=10)
    half_moved = sample(moved, "linear", t1=0.5, steps=10)
    half_true = fmcore.sample_path("linear", z0, data[: len(z0)], 0.5).z_t
    return [
        measured_case("Wrong: VP noise model read as linear", as_linear, fresh, "data", wrong=True),
        measured_case("Right: read with its own schedule (VP)", as_vp, fresh, "data"),
        measured_case("Right: cosine model via change_schedule", on_linear, fresh, "data"),
        measured_case(
            "Wrong: cosine model as a linear field, t = 0.5",
            half_naive,
            half_true.numpy(),
            "linear p₀.₅",
            wrong=True,
        ),
        measured_case("Right: via change_schedule, t = 0.5", half_moved, half_true.numpy(), "linear p₀.₅"),
        Case(
            "The linear path's p₀.₅ (0.5 z₁ + 0.5 z₀)",
            half_true.numpy(),
            "what t = 0.5 means on the linear path",
        ),
    ]


@dataclass(frozen=True)
class ScheduleFacts:
    """What a schedule changes and what it does not, on the exact field of one data set.

    Attributes:
        endpoint_gap: schedule -> mean |Phi_s(z_0) - Phi_linear(z_0)|, the exact endpoint maps compared
        (RK4, ``REFERENCE_STEPS`` steps, same noise).  euler_error: schedule -> endpoint error of
        Euler with ``EULER_CHECK`` steps against that schedule's own reference (how hard its ODE is).
        log_snr: (b,) bin centres of lambda_t = log(alpha_t / sigma_t).  density: schedule -> (b,)
        how often training sees each log-SNR when t ~ U[0, 1] (a histogram, normalised).
        ends: schedule -> (n, 2) the exact end points.
    """

    endpoint_gap: dict
    euler_error: dict
    log_snr: np.ndarray
    density: dict
    ends: dict


REFERENCE_STEPS, EULER_CHECK = 100, 10


def schedule_facts(preset: str, n: int = 200, seed: int = 0) -> ScheduleFacts:
    """The exact endpoint map on every schedule, how hard each ODE is, and each log-SNR histogram."""
    data, z0 = lesson_data(preset), lesson_noise(n, seed)
    ends, euler_error = {}, {}
    for name in fmcore.SCHEDULES:
        schedule = blurred(name)
        velocity = exact_field(data, schedule)
        ends[name] = integrate(velocity, z0, "rk4", REFERENCE_STEPS, schedule=schedule).z_end
        coarse = integrate(velocity, z0, "euler", EULER_CHECK, schedule=schedule).z_end
        euler_error[name] = float((coarse - ends[name]).norm(dim=1).mean())
    gap = {name: float((end - ends["linear"]).norm(dim=1).mean()) for name, end in ends.items()}
    t = torch.linspace(0.0, 1.0, 20001, dtype=torch.float64)[1:-1]
    edges = np.linspace(-8.0, 8.0, 65)
    density = {
        name: np.histogram(s.log_snr(t).numpy(), bins=edges, density=True)[0]
        for name, s in fmcore.SCHEDULES.items()
    }
    ends = {name: end.numpy() for name, end in ends.items()}
    return ScheduleFacts(gap, euler_error, 0.5 * (edges[1:] + edges[:-1]), density, ends)
