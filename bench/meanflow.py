"""Few-step generation: a mean flow at 1, 2 and 4 NFE against a flow model's Euler, same training time.

Both models train on moons (2,000 points) for the same budget, one torch thread, in one run:

* mean flow: ``Trainer(data, objective="meanflow")`` (its defaults), sampled with
  ``sample_mean_flow`` in 1, 2 and 4 steps (1 NFE each);
* flow: ``Trainer(data)`` (the default objective), sampled with Euler at 1, 2, 4 and 100 NFE.

Quality = energy distance between 2,000 samples and 2,000 fresh data points over the noise floor
(``bench/train_speed.py``: the RMS energy distance between two fresh data sets), so ~1 is "as close
as two data sets". One Euler step of a flow lands on E[z_1 | z_0], about the data mean.

    .venv/bin/python bench/meanflow.py [--seconds 60] [--seeds 1] [--clock cpu|wall]

The training budget is CPU time by default (``time.process_time``): on a shared machine that is the
time actually spent computing, with one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_speed import N, noise_floor

from fmcore import Trainer, datasets, integrate, sample_mean_flow
from fmcore.metrics import energy_distance

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
MEANFLOW_STEPS = (1, 2, 4)
EULER_STEPS = (1, 2, 4, 100)
TARGET, AIM = 8.0, 4.0


def train(objective: str, seed: int, seconds: float, clock) -> Trainer:
    trainer = Trainer(datasets.sample("moons", N, seed=seed), objective=objective, seed=seed)
    spent = 0.0
    while spent < seconds:
        start = clock()
        trainer.step(50)
        spent += clock() - start
    return trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget of each model")
    parser.add_argument("--seeds", type=int, default=1, help="seeds to average over")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="what counts as training time")
    args = parser.parse_args()
    torch.set_num_threads(1)  # process-wide; faster than 2 threads for models this size
    clock = CLOCKS[args.clock]
    floor = noise_floor()
    print(
        f"moons, {N} points, 1 torch thread, {args.seconds:g} {args.clock}-seconds of training each, "
        f"seeds 0..{args.seeds - 1}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"noise floor: RMS energy distance between two fresh {N}-point sets = {floor:.3g}")

    rows: dict[tuple[str, str, int], list[float]] = {}
    steps_taken: dict[str, list[int]] = {"meanflow": [], "flow": []}
    for seed in range(args.seeds):
        z0 = torch.randn(N, 2, generator=torch.Generator().manual_seed(30_000 + seed))
        fresh = datasets.sample("moons", N, 40_000 + seed)

        def quality(samples, fresh=fresh):
            return energy_distance(samples, fresh) / floor

        mean_flow = train("meanflow", seed, args.seconds, clock)
        flow = train("flow", seed, args.seconds, clock)
        for objective, trainer in (("meanflow", mean_flow), ("flow", flow)):
            steps_taken[objective].append(trainer.step_count)
        for k in MEANFLOW_STEPS:
            trajectory = sample_mean_flow(mean_flow, z0, steps=k)
            rows.setdefault(("mean flow", "jumps", trajectory.nfe), []).append(quality(trajectory.z_end))
        for model, trainer in (("flow", flow), ("mean flow", mean_flow)):
            for k in EULER_STEPS if model == "flow" else EULER_STEPS[-1:]:
                trajectory = integrate(trainer.velocity, z0, "euler", k)
                rows.setdefault((model, "euler", trajectory.nfe), []).append(quality(trajectory.z_end))

    print(
        f"\ntraining steps: mean flow {steps_taken['meanflow']}, flow {steps_taken['flow']} "
        "(a mean-flow step costs a jvp)"
    )
    print(f"{'model':10s} {'sampler':28s} {'NFE':>4s} {'quality':>8s}   (energy distance / noise floor)")
    for (model, sampler, nfe), values in rows.items():
        label = "u(z, r, t) jumps" if sampler == "jumps" else "Euler on v(z, t)"
        if model == "mean flow" and sampler == "euler":
            label = "Euler on u(z, t, t) = v(z, t)"
        per_seed = "" if len(values) == 1 else f"   per seed {[round(v, 2) for v in values]}"
        print(f"{model:10s} {label:28s} {nfe:4d} {sum(values) / len(values):8.2f}{per_seed}")
    one_step = sum(rows[("mean flow", "jumps", 1)]) / args.seeds
    euler_one = sum(rows[("flow", "euler", 1)]) / args.seeds
    print(
        f"mean flow at 1 NFE: {one_step:.2f}x the floor (target <= {TARGET:g}x: "
        f"{'PASS' if one_step <= TARGET else 'FAIL'}; aim {AIM:g}x: {'PASS' if one_step <= AIM else 'not yet'}); "
        f"the flow's one Euler step is {euler_one / one_step:.0f}x worse"
    )


if __name__ == "__main__":
    main()
