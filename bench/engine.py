"""Training many sessions' models at once: the app's engine against one Trainer per session.

Side by side, in one run, on one torch thread: for K = 1, 10, 30, 100 sessions (moons, 2,000 points,
each its own seed, Trainer defaults: 3 x 64 SiLU MLP, batch 256, Adam 1e-2, EMA), the steps/s
each session gets and the model-steps/s in all, against one ``Trainer`` stepping alone (measured in
turns with each engine, so that a change in machine load hits all alike), and their ratio:

* ``Trainers in turn``: the old way, one Trainer per session stepped in turn in one process (what
  the per-slice pool's worker did; without its pickling, so this is its best case);
* ``BatchTrainer``: ``fmcore.BatchTrainer`` alone;
* ``vmap (torch.func)``: the other library route (``vmap_models``), without the per-slot lr,
  step counts and divergence checks, for comparison;
* ``app engine``: the app's ``EngineWorker`` (the loop of ``explorer.training.engine``'s process)
  with its batched calls, and every session polled after each CHUNK steps, the reply pickled as it
  travels (pages poll every 0.35 to 3 s, far less often: this is its worst case).

The issue's target: 30 slots give at least 2x the model-steps/s of one Trainer alone (aim: 3x).
``--converge`` adds, for 30 sessions, the training time until every session's model is within 2x
of the noise floor (the quality of ``bench/train_speed.py``, on 1,000 samples), the old way
against the engine.

Each engine is a function in ``ENGINES``: ``(K slots, device) -> Engine``; one added there gets
its own columns.

    .venv/bin/python bench/engine.py [--slots 1 10 30 100] [--seconds 1.5] [--clock cpu] [--device cpu]
    .venv/bin/python bench/engine.py --slots 1 10 30 100 --converge --clock cpu
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.training.engine import EngineWorker
from explorer.training.wire import trimmed_state
from fmcore import BatchTrainer, Trainer, datasets
from fmcore.metrics import energy_distance, energy_distance_floor
from fmcore.solvers import integrate

N = 2000
CHUNK = 50  # steps per call: the Trainer's check_every, so each call ends with one check
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``--clock cpu`` counts this process's CPU time, which stays meaningful on a shared machine."""


Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Engine(NamedTuple):
    """``advance()`` moves every slot about ``CHUNK`` steps on and returns how many (each slot the
    same); ``velocities()`` the slots' sampling fields."""

    advance: Callable[[], int]
    velocities: Callable[[], list[Velocity]]


def trainers(k: int, device: torch.device) -> list[Trainer]:
    return [Trainer(datasets.sample("moons", N, seed=seed), seed=seed, device=device) for seed in range(k)]


def trainer_alone(k: int, device: torch.device) -> Engine:
    """One ``Trainer`` stepping by itself (``k`` is ignored)."""
    (trainer,) = trainers(1, device)

    def advance():
        trainer.step(CHUNK)
        return CHUNK

    return Engine(advance, lambda: [trainer.velocity])


def trainers_in_turn(k: int, device: torch.device) -> Engine:
    """The old way: ``k`` Trainers, each stepped ``CHUNK`` in turn in this one process."""
    every = trainers(k, device)

    def advance():
        for trainer in every:
            trainer.step(CHUNK)
        return CHUNK

    return Engine(advance, lambda: [t.velocity for t in every])


def batch_trainer(k: int, device: torch.device) -> Engine:
    """``k`` slots in one ``BatchTrainer``."""
    bank = BatchTrainer(device=device)
    slots = [bank.add(datasets.sample("moons", N, seed=seed), seed=seed) for seed in range(k)]

    def advance():
        bank.step(CHUNK)
        return CHUNK

    return Engine(advance, lambda: [bank.trainer(s).velocity for s in slots])


def app_engine(k: int, device: torch.device) -> Engine:
    """The app's engine loop with ``k`` sessions: batched calls until each slot took ``CHUNK`` more
    steps, then one poll per session, its reply pickled as the pipe does."""
    worker = EngineWorker(device, cap=k, drop_s=math.inf, sync_s=2.0)
    handles = [f"session-{seed}" for seed in range(k)]
    for handle, trainer in zip(handles, trainers(k, "cpu"), strict=True):
        worker.op_add(handle, trimmed_state(trainer))
    first = worker.bank.trainer(worker.entries[handles[0]].slot)

    def advance():
        start = first.step_count
        while first.step_count < start + CHUNK:
            worker.train()
        for handle in handles:  # the answer as the pipe carries it: states as arrays (``to_wire``)
            pickle.dumps(worker.handle("poll", handle), protocol=pickle.HIGHEST_PROTOCOL)
        return first.step_count - start

    return Engine(advance, lambda: [worker.bank.trainer(e.slot).velocity for e in worker.entries.values()])


def vmap_models(k: int, device: torch.device) -> Engine:
    """The other library route: the ``k`` Trainers' networks stacked by ``torch.func``
    (``stack_module_state``, ``functional_call``, ``vmap`` of ``grad``), one foreach Adam over the
    stacked parameters and a foreach-lerp EMA, each slot's batch drawn by its Trainer. No
    divergence checks, one lr and step count for all: its best case. Speed only (not in
    ``--converge``: it lists no sampling fields)."""
    every = trainers(k, device)
    params, buffers = torch.func.stack_module_state([t.model for t in every])
    net = copy.deepcopy(every[0].model).to("meta")
    ema = [p.detach().clone() for p in params.values()]
    optimizer = torch.optim.Adam(params.values(), lr=every[0].lr, foreach=True)

    def loss(p, b, z_t, t, target):
        return (torch.func.functional_call(net, (p, b), (z_t, t)) - target).square().sum(1).mean()

    grads = torch.func.vmap(torch.func.grad(loss))

    def step():
        draws = [t.draw() for t in every]
        t, z1, z0 = (torch.stack(x) for x in zip(*((b.t, b.z_1, b.z_0) for b in draws), strict=True))
        with torch.no_grad():
            z_t, target = every[0].regression(t.reshape(-1), z1.flatten(0, 1), z0.flatten(0, 1))
        for p, g in zip(
            params.values(),
            grads(params, buffers, z_t.view_as(z1), t, target.view_as(z1)).values(),
            strict=True,
        ):
            p.grad = g
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(params.values()), 1 - every[0].options["ema"])

    def advance():
        for _ in range(CHUNK):
            step()
        return CHUNK

    return Engine(advance, lambda: [])


REFERENCE = "Trainer alone"
ENGINES: dict[str, Callable[[int, torch.device], Engine]] = {
    "Trainers in turn": trainers_in_turn,
    "BatchTrainer": batch_trainer,
    "app engine": app_engine,
    "vmap (torch.func)": vmap_models,
}
"""Each engine: (K slots, device) -> its ``Engine``."""


def timed(engines: dict[str, Engine], seconds: float, clock, sync) -> dict[str, float]:
    """Steps/s per slot of each call, measured in turns: the call with the least time so far runs
    next, until each has had about ``seconds``, so that a change in the machine's load hits all alike."""
    calls = {name: engine.advance for name, engine in engines.items()}
    spent = dict.fromkeys(calls, 0.0)
    steps = dict.fromkeys(calls, 0)
    for call in calls.values():  # warm-up
        call()
    sync()
    while min(spent.values()) < seconds:
        name = min(spent, key=spent.get)
        start = clock()
        taken = calls[name]()
        sync()
        spent[name] += clock() - start
        steps[name] += taken
    return {name: steps[name] / spent[name] for name in calls}


def sync_for(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def sweep(slots: list[int], seconds: float, clock, device: torch.device) -> list[dict]:
    """One row per K: the Trainer-alone reference and every engine's steps/s per slot."""
    rows = []
    for k in slots:
        calls = {REFERENCE: trainer_alone(k, device)} | {
            name: make(k, device) for name, make in ENGINES.items()
        }
        rows.append({"K": k, **timed(calls, seconds, clock, sync_for(device))})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'K':>5s} {'Trainer alone':>14s}", end="")
    for name in ENGINES:
        print(f" | {name + ' per slot':>22s} {'in all':>9s} {'ratio':>6s}", end="")
    print(
        "\n" + " " * 6 + f"{'steps/s':>14s}" + f" | {'steps/s':>22s} {'steps/s':>9s} {'':>6s}" * len(ENGINES)
    )
    for row in rows:
        print(f"{row['K']:5d} {row[REFERENCE]:14.0f}", end="")
        for name in ENGINES:
            total = row[name] * row["K"]
            print(f" | {row[name]:22.1f} {total:9.0f} {total / row[REFERENCE]:5.2f}x", end="")
        print()


QUALITY_N = 1000
"""Samples per quality check: cheaper than train_speed.py's 2,000, with its own noise floor."""
CONVERGED = 2.0
"""A model counts as trained when its energy distance to the data is within this many noise floors."""


FLOOR_POINTS = 5000
"""Fresh data the noise floor's distance variance is estimated from (as in train_speed.py)."""


def noise_floor() -> float:
    """RMS energy distance between two independent data sets of ``QUALITY_N`` points (what
    ``quality`` compares), in closed form: ``energy_distance_floor``, as train_speed.py and the
    app's quality number use it."""
    return energy_distance_floor(datasets.sample("moons", FLOOR_POINTS, 10_000), QUALITY_N)


def quality(velocity: Velocity, seed: int, floor: float) -> float:
    """Energy distance of rk4 (20 steps) samples to fresh data, in noise floors."""
    z0 = torch.randn(QUALITY_N, 2, generator=torch.Generator().manual_seed(30_000 + seed))
    samples = integrate(velocity, z0, "rk4", 20).z_end
    return energy_distance(samples, datasets.sample("moons", QUALITY_N, 40_000 + seed)) / floor


def time_to_converge(engine: Engine, k: int, floor: float, clock, limit_s: float = 300.0) -> float:
    """Training time (checks excluded) until every one of the ``k`` slots is within ``CONVERGED``
    floors, checked every ~1 s of training; inf past ``limit_s``."""
    spent, pending = 0.0, set(range(k))
    while pending and spent < limit_s:
        goal = spent + 1.0
        while spent < goal:
            start = clock()
            engine.advance()
            spent += clock() - start
        fields = engine.velocities()
        pending = {i for i in pending if quality(fields[i], i, floor) > CONVERGED}
    return spent if not pending else math.inf


def print_convergence(k: int, device: torch.device, clock) -> None:
    floor = noise_floor()
    print(f"\n{k} sessions: training time until every model is within {CONVERGED:g}x the noise floor")
    for name in ("Trainers in turn", "app engine"):
        seconds = time_to_converge(ENGINES[name](k, device), k, floor, clock)
        print(f"  {name:>18s}: {seconds:6.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 10, 30, 100])
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per engine and K")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    parser.add_argument(
        "--converge", action="store_true", help="time until 30 sessions are within 2x the floor"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # process-wide; what the app's training workers use
    device = torch.device(args.device)
    load = os.getloadavg()[0]
    print(
        f"moons, {N} points a slot, Trainer defaults, step({CHUNK}) calls, 1 torch thread, {device}, "
        f"{args.clock} clock; load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print("ratio = model-steps/s in all / one Trainer alone's steps/s (measured in turns, same run)\n")
    rows = sweep(args.slots, args.seconds, CLOCKS[args.clock], device)
    print_table(rows)
    at_30 = [r for r in rows if r["K"] == 30]
    for name in ("BatchTrainer", "app engine") if at_30 else ():
        ratio = at_30[0][name] * 30 / at_30[0][REFERENCE]
        print(
            f"target: {name}, 30 slots >= 2x one Trainer alone (aim 3x): {ratio:.2f}x "
            f"{'PASS' if ratio >= 2 else 'FAIL'}"
        )
    if args.converge:
        print_convergence(30, device, CLOCKS[args.clock])


if __name__ == "__main__":
    main()
