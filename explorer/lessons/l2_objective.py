"""Lesson 2 (the objective): the marginal field as a posterior average, the two targets raced, slips
in the target, and memorisation by the exact field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from fmcore import datasets
from fmcore.solvers import integrate

from .shared import Case, exact_field, lesson_data, lesson_noise, measured_case, reference_sample

__all__ = [
    "WRONG_TARGETS",
    "Memorisation",
    "Posterior",
    "TrainingRace",
    "crossing_paths",
    "memorisation",
    "posterior",
    "smoothed_curve",
    "training_race",
    "wrong_target_cases",
]


@dataclass(frozen=True)
class Posterior:
    """Why the marginal field is an average: at one (z, t), every data point's pull and its weight.

    Attributes:
        data: (m, 2).  weights: (m,) posterior weights w_j(z) = p(z_1 = x_j | z_t = z), summing to 1.
        conditional: (m, 2) conditional velocities u_t(z | x_j).  marginal: (2,) their weighted mean.
        posterior_mean: (2,) E[z_1 | z_t = z].
    """

    data: np.ndarray
    weights: np.ndarray
    conditional: np.ndarray
    marginal: np.ndarray
    posterior_mean: np.ndarray


def posterior(preset: str, z: tuple[float, float], t: float) -> Posterior:
    """The conditional velocities towards each data point at (z, t) on the linear path, and their average."""
    data = lesson_data(preset)
    point = torch.tensor([z], dtype=torch.float32)
    s = fmcore.get_schedule("linear")(torch.tensor(t))
    log_w = -(point - s.alpha * data).square().sum(1) / (2 * s.sigma**2)
    weights = torch.softmax(log_w, dim=0)
    # u_t(z | x) = d_alpha x + d_sigma z_0 with z_0 = (z - alpha x) / sigma, the noise that puts x at z.
    conditional = s.d_alpha * data + s.d_sigma * (point - s.alpha * data) / s.sigma
    marginal = fmcore.exact_velocity(point, t, data, "linear")[0]
    return Posterior(
        data=data.numpy(),
        weights=weights.numpy(),
        conditional=conditional.numpy(),
        marginal=marginal.numpy(),
        posterior_mean=(weights @ data).numpy(),
    )


def crossing_paths(preset: str, n: int = 60, nodes: int = 41, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The same noise points moved two ways, as (nodes, n, 2) states each.

    Returns:
        ``(conditional, marginal)``: straight lines ``t z_1 + (1 - t) z_0`` to randomly paired data
        points (what the loss regresses on), and the paths of the exact marginal field (what
        sampling follows), both on the linear path.
    """
    data = lesson_data(preset)
    z0 = lesson_noise(n, seed)
    z1 = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]]
    ts = torch.linspace(0.0, 1.0, nodes)[:, None, None]
    conditional = ts * z1 + (1 - ts) * z0
    marginal = integrate(exact_field(data, "linear"), z0, "euler", 200).zs[::5]
    return conditional.numpy(), marginal.numpy()


@dataclass(frozen=True)
class TrainingRace:
    """Two Trainer runs on the same data, one per target, measured as they go.

    Attributes:
        steps: (k,) steps at which the field error was measured.  field_error: target -> (k,)
        mean |v_theta - u_t|^2 against the exact marginal field at path points with t <= 0.9.
        loss: target -> (steps,) the training loss at every step.  floor: target -> loss floor.
        seconds: target -> training time (inside ``Trainer.step``).  samples: target -> (n, 2).
    """

    steps: np.ndarray
    field_error: dict
    loss: dict
    floor: dict
    seconds: dict
    samples: dict


def _field_probe(
    data: torch.Tensor, n: int = 1000, seed: int = 7
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_t, t, u_t(z_t)): points of the path with t in [0, 0.9] and the exact marginal field there.

    Near t = 1 the empirical field is singular (it snaps onto single points) and no network follows it.
    """
    g = torch.Generator().manual_seed(seed)
    t = 0.9 * torch.rand(n, generator=g)
    z1 = data[torch.randint(len(data), (n,), generator=g)]
    z_t = fmcore.sample_path("linear", torch.randn(n, 2, generator=g), z1, t).z_t
    return z_t, t, fmcore.exact_velocity(z_t, t, data, "linear")


def training_race(preset: str, steps: int = 400, every: int = 20, seed: int = 0) -> TrainingRace:
    """Train with the conditional and with the marginal target; same data, seed, network and schedule."""
    from fmcore.trainer import Trainer

    data = lesson_data(preset)
    z_t, t, exact = _field_probe(data)
    out = {key: {} for key in ("field_error", "loss", "floor", "seconds", "samples")}
    for target in ("conditional", "marginal"):
        trainer = Trainer(data, schedule="linear", target=target, seed=seed)
        errors = []
        for _ in range(steps // every):
            trainer.step(every)
            errors.append(float((trainer.velocity(z_t, t) - exact).square().sum(1).mean()))
        out["field_error"][target] = np.asarray(errors)
        out["loss"][target] = np.asarray(trainer.history)
        out["floor"][target] = trainer.loss_floor
        out["seconds"][target] = trainer.elapsed
        out["samples"][target] = integrate(
            trainer.velocity, lesson_noise(500, seed + 1), "rk4", 25
        ).z_end.numpy()
    return TrainingRace(steps=np.arange(1, steps // every + 1) * every, **out)


WRONG_TARGETS = {
    "u_t = z_1 − z_0 (right)": lambda path, z0, z1: path.u_t,
    "z_1 − z_t (forgot 1/(1 − t))": lambda path, z0, z1: z1 - path.z_t,
    "z_1 (the data point itself)": lambda path, z0, z1: z1,
}
"""Regression targets for a velocity network on the linear path: the right one and two slips."""


def _fit(data: torch.Tensor, target, steps: int, seed: int):
    """A bare flow matching loop, so that a lesson can plug in a deliberately wrong ``target``.

    ``fmcore.Trainer`` only offers right targets; this loop is otherwise the same recipe (linear
    path, t ~ U[0, 1], batch 256, Adam) and returns the trained network's velocity.
    """
    from fmcore.models import VelocityMLP

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VelocityMLP()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        z1 = data[torch.randint(len(data), (256,), generator=g)]
        z0 = torch.randn(256, 2, generator=g)
        t = torch.rand(256, generator=g)
        path = fmcore.sample_path("linear", z0, z1, t)
        loss = (net(path.z_t, t) - target(path, z0, z1)).square().sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.requires_grad_(False)
    return lambda z, t: net(z, t)


def wrong_target_cases(preset: str, steps: int = 300, seed: int = 0) -> list[Case]:
    """Samples of networks trained on each of ``WRONG_TARGETS`` (same loop, same seed, RK4 25 steps)."""
    data = lesson_data(preset)
    fresh = reference_sample(preset)
    panels = []
    for name, target in WRONG_TARGETS.items():
        velocity = _fit(data, target, steps, seed)
        end = integrate(velocity, lesson_noise(500, seed + 1), "rk4", 25).z_end
        panels.append(measured_case(name, end, fresh, "data", wrong="right" not in name))
    return panels


def smoothed_curve(values: np.ndarray, window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, means)``: the mean of each ``window`` consecutive values, at the step ending it (1-based)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return np.arange(1, len(values) + 1), values
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(window, len(values) + 1), means


@dataclass(frozen=True)
class Memorisation:
    """Do samples copy the training set? The exact field against a network, on the same few points.

    Attributes:
        train: (m, 2) the training set.  exact, learned, fresh: (n, 2) samples of the exact field of
        the training set, of a network trained on it, and fresh data from the preset.
        within: "exact" / "learned" / "fresh" -> fraction of those within ``eps`` of a training point.
    """

    train: np.ndarray
    exact: np.ndarray
    learned: np.ndarray
    fresh: np.ndarray
    within: dict
    eps: float
    train_steps: int


def memorisation(
    preset: str, m: int = 100, n: int = 500, eps: float = 0.05, train_steps: int = 1000, seed: int = 0
) -> Memorisation:
    """Sample the exact (unblurred) field of m training points and a network trained on them.

    The exact field minimises both losses on a finite data set, so it can only reproduce the training
    points; Euler's last step returns E[z_1 | z_t], which near t = 1 is one training point.
    """
    from fmcore.trainer import Trainer

    train = datasets.sample(preset, m, seed=seed + 20)
    z0 = lesson_noise(n, seed + 21)
    exact = integrate(exact_field(train, "linear"), z0, "euler", 100).z_end
    trainer = Trainer(train, schedule="linear", seed=seed)
    trainer.step(train_steps)
    learned = integrate(trainer.velocity, z0, "rk4", 20).z_end
    fresh = datasets.sample(preset, n, seed=seed + 22)

    def within(points: torch.Tensor) -> float:
        return float((torch.cdist(points, train).min(dim=1).values < eps).float().mean())

    samples = {"exact": exact, "learned": learned, "fresh": fresh}
    return Memorisation(
        train=train.numpy(),
        **{k: v.numpy() for k, v in samples.items()},
        within={k: within(v) for k, v in samples.items()},
        eps=eps,
        train_steps=train_steps,
    )
