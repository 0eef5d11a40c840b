"""Reflow (Liu et al., 2022, "rectified flow"): straighten a trained flow by training on its own pairs.

A trained flow transports noise z_0 to samples z_1 = Phi(z_0) along curved paths. Taking the pairs
(z_0, Phi(z_0)) as a *fixed coupling* and training flow matching on them gives a new flow with the
same end distribution but straighter paths (the pairs no longer cross as much), so few Euler steps
suffice. ``reflow`` does this and measures what it bought: straightness (``fmcore.metrics``) and the
energy distance of one-step Euler samples to the data, before and after.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .metrics import energy_distance, straightness
from .solvers import integrate
from .trainer import Trainer

__all__ = ["ReflowResult", "reflow"]


@dataclass(frozen=True)
class ReflowResult:
    """What one reflow round produced.

    Attributes:
        trainer: the new ``Trainer``, trained on the pairs (its ``velocity`` is the reflowed field).
        z0, z1: (n_pairs, d) the coupling it was trained on.
        straightness_before, straightness_after: S of the sampling paths (0 = straight).
        one_step_before, one_step_after: energy distance between 1-step Euler samples and the data.
    """

    trainer: Trainer
    z0: torch.Tensor
    z1: torch.Tensor
    straightness_before: float
    straightness_after: float
    one_step_before: float
    one_step_after: float


def _measure(velocity, noise: torch.Tensor, data: torch.Tensor, schedule, solver: str, steps: int):
    """(straightness of the solver's paths, energy distance of 1-step Euler samples to data)."""
    path = integrate(velocity, noise, solver, steps, schedule=schedule)
    one_step = integrate(velocity, noise, "euler", 1, schedule=schedule).zs[-1]
    return straightness(path.zs, path.ts), energy_distance(one_step, data)


def reflow(
    source,
    n_pairs: int = 2000,
    *,
    train_steps: int = 2000,
    data=None,
    schedule: str | None = None,
    solver: str = "rk4",
    solver_steps: int = 20,
    n_eval: int = 1000,
    seed: int = 0,
    warm_start: bool = True,
    **options,
) -> ReflowResult:
    """One round of reflow.

    Args:
        source: a ``Trainer`` (its data, schedule and weights are used) or a velocity ``v(z, t)``.
        n_pairs: noise draws integrated into pairs (z_0, z_1).  train_steps: steps of the new model.
        data: (m, d) reference data for the one-step quality; default the source trainer's data.
        schedule: the path of the new model; default the source's (else "linear").
        solver, solver_steps: how the pairs and the measured paths are integrated.
        n_eval: noise draws for the before/after measurements.  seed: fixes all draws.
        warm_start: start the new model from the source trainer's weights (Liu et al. do this; it
            needs the same architecture, so options that change it turn this off).
        **options: ``Trainer`` options of the new model (default: the source trainer's).
    Returns:
        ``ReflowResult``.
    """
    trainer = source if isinstance(source, Trainer) else None
    velocity = trainer.velocity if trainer else source
    if data is None:
        if trainer is None:
            raise ValueError("pass data=... to measure a velocity function's samples against")
        data = trainer.data.cpu()
    data = torch.as_tensor(data, dtype=torch.float32)
    schedule = schedule or (trainer.schedule.name if trainer else "linear")
    generator = torch.Generator().manual_seed(seed)
    d = data.shape[1]
    z0 = torch.randn(n_pairs, d, generator=generator)
    z1 = integrate(velocity, z0, solver, solver_steps, schedule=schedule).zs[-1]

    inherited = {k: v for k, v in trainer.options.items() if k != "max_steps"} if trainer else {}
    new = Trainer(z1, noise=z0, schedule=schedule, seed=seed, **{**inherited, **options})
    if warm_start and trainer is not None and new.model_config == trainer.model_config:
        new.warm_start(trainer)
    while new.step_count < train_steps and new.status == "ok":
        new.step(min(new.options["check_every"], train_steps - new.step_count))
    if new.status == "diverged":
        raise ValueError(f"reflow training failed: {new.message}")

    noise = torch.randn(n_eval, d, generator=generator)
    before = _measure(velocity, noise, data, schedule, solver, solver_steps)
    after = _measure(new.velocity, noise, data, schedule, solver, solver_steps)
    return ReflowResult(new, z0, z1, before[0], after[0], before[1], after[1])
