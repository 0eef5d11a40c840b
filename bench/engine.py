"""Training many sessions' models at once: ``fmcore.BatchTrainer`` against one ``Trainer`` alone.

Side by side, in one run, on one torch thread: for K = 1, 10, 30, 100 slots (moons, 2,000 points,
each slot its own seed, Trainer defaults: 3 x 64 SiLU MLP, batch 256, Adam 1e-2, EMA), the steps/s
each slot gets and the model-steps/s in all, against one ``Trainer`` stepping alone (measured in
turns with each engine, so that a change in machine load hits all alike), and their ratio. The issue's
target: 30 slots give at least 2x the model-steps/s of one Trainer alone (aim: 3x).

Each engine is a function in ``ENGINES``: ``(K slots, device) -> a call advancing every slot by
CHUNK steps``; an engine added there (the app's training engine, say) gets its own columns.

    .venv/bin/python bench/engine.py [--slots 1 10 30 100] [--seconds 1.5] [--clock cpu] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmcore import BatchTrainer, Trainer, datasets

N = 2000
CHUNK = 50  # steps per call: the Trainer's check_every, so each call ends with one check
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``--clock cpu`` counts this process's CPU time, which stays meaningful on a shared machine."""


def make_bank(k: int, device: torch.device) -> BatchTrainer:
    bank = BatchTrainer(device=device)
    for seed in range(k):
        bank.add(datasets.sample("moons", N, seed=seed), seed=seed)
    return bank


def trainer_alone(k: int, device: torch.device) -> Callable[[], None]:
    """One ``Trainer`` stepping by itself (``k`` is ignored): a call of ``CHUNK`` steps."""
    trainer = Trainer(datasets.sample("moons", N, seed=0), seed=0, device=device)
    return lambda: trainer.step(CHUNK)


def batch_trainer(k: int, device: torch.device) -> Callable[[], None]:
    """``k`` slots in one ``BatchTrainer``: a call of ``CHUNK`` steps of each."""
    bank = make_bank(k, device)
    return lambda: bank.step(CHUNK)


REFERENCE = "Trainer alone"
ENGINES: dict[str, Callable[[int, torch.device], Callable[[], None]]] = {"BatchTrainer": batch_trainer}
"""Each engine: (K slots, device) -> a call that advances every slot by ``CHUNK`` steps."""


def timed(calls: dict[str, Callable[[], None]], seconds: float, clock, sync) -> dict[str, float]:
    """Steps/s per slot of each call, measured in turns: the call with the least time so far runs
    next, until each has had about ``seconds``, so that a change in the machine's load hits all alike."""
    spent = dict.fromkeys(calls, 0.0)
    count = dict.fromkeys(calls, 0)
    for call in calls.values():  # warm-up
        call()
    sync()
    while min(spent.values()) < seconds:
        name = min(spent, key=spent.get)
        start = clock()
        calls[name]()
        sync()
        spent[name] += clock() - start
        count[name] += 1
    return {name: CHUNK * count[name] / spent[name] for name in calls}


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 10, 30, 100])
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per engine and K")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
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
    if at_30:
        ratio = at_30[0]["BatchTrainer"] * 30 / at_30[0][REFERENCE]
        print(
            f"\ntarget: 30 slots >= 2x one Trainer alone (aim 3x): {ratio:.2f}x {'PASS' if ratio >= 2 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
