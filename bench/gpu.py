"""BatchTrainer on a GPU: what does a step of K slots cost, from 1 to 1,000 slots?

For K = 1, 10, 30, 100, 300, 1000 slots (the sweep of ``bench/engine.py``: moons, Trainer
defaults), on cuda: the steps/s each slot gets, the milliseconds one batched step takes, and the
GPU memory it needed (``torch.cuda.max_memory_allocated``). The issue's target: the step of 300
slots costs at most 3x the step of 1.

Needs cuda (nothing else in the project does); ``--device cpu --max-slots 30`` runs the same sweep
on the CPU as a smoke check (``tests/fmcore/test_batch_trainer.py`` runs it, smaller still). The
table is markdown, ready for ``docs/scaling.md``.

    .venv/bin/python bench/gpu.py [--slots 1 10 30 100 300 1000] [--max-slots 1000] [--seconds 2]
    .venv/bin/python bench/gpu.py --device cpu --max-slots 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import CHUNK, batch_trainer, sync_for, timed

SLOTS = [1, 10, 30, 100, 300, 1000]
TARGET = 3.0  # step(300) / step(1)


def measure(k: int, seconds: float, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    rate = timed({"bank": batch_trainer(k, device)}, seconds, time.perf_counter, sync_for(device))["bank"]
    memory = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}" if device.type == "cuda" else "-"
    return {"K": k, "steps/s": rate, "ms/step": 1e3 / rate, "MiB": memory}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=SLOTS)
    parser.add_argument("--max-slots", type=int, default=None, help="leave out the K above this")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per K")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a smoke check")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "bench/gpu.py needs a cuda GPU and torch finds none here (use --device cpu for a smoke check)"
        )
    torch.set_num_threads(1)
    slots = [k for k in args.slots if args.max_slots is None or k <= args.max_slots]
    if not slots:
        sys.exit(f"no K left to measure: --slots {args.slots} with --max-slots {args.max_slots}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu, 1 thread"
    print(f"BatchTrainer on {name}; moons, Trainer defaults, step({CHUNK}) calls, wall clock\n")
    print("| K slots | steps/s per slot | ms per step | model-steps/s | GPU MiB |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for k in slots:
        row = measure(k, args.seconds, device)
        rows.append(row)
        print(
            f"| {k} | {row['steps/s']:.1f} | {row['ms/step']:.2f} | {row['steps/s'] * k:.0f} | {row['MiB']} |",
            flush=True,
        )
    by_k = {r["K"]: r for r in rows}
    if 1 in by_k and 300 in by_k:
        ratio = by_k[300]["ms/step"] / by_k[1]["ms/step"]
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"\nstep(300) / step(1) = {ratio:.2f} (target <= {TARGET:g}): {verdict}")


if __name__ == "__main__":
    main()
