"""Endpoint error of every solver and time grid at fixed NFE budgets, on the exact field of moons.

For each schedule (linear, cosine, vp) the particles z_0 ~ N(0, I) are carried by the exact
marginal field of a moons sample (``fmcore.exact_velocity``) with every ``SOLVERS`` x
``TIME_GRIDS`` pair, and compared with a tight adaptive reference (dopri5 in float64). The error
is the median over particles of |z_end - z_ref|. A fixed-step solver with NFE budget B takes
floor(B / NFE-per-step) steps (RK4 at budget 5 takes 1 step = 4 NFE).

Then it checks the rule of thumb "Euler ~100 steps, RK4 ~50, DPM-Solver ~20 for the same
quality" against the error of Euler with 100 uniform steps, and lists every solver + grid that
reaches that error at 20 NFE.

Every solve ends at the last time where the exact field is what it says: ``T_EXACT_MAX = 1 - 1e-4``
(beyond it ``exact_velocity`` freezes t, and a solver that jumps to the denoised point, as
DPM-Solver's last step does, and one that integrates the frozen field would differ by ~1e-4 for
reasons that are not accuracy), and the VP schedule's ``t_max = 1 - 1e-3`` (its field diverges at
t=1; diffusion samplers stop there too). The full run uses budget 200 on the uniform grid only,
where RK4's 50 steps need it.

    .venv/bin/python bench/solvers.py              # 1000 particles, 500 data points, ~1 min on 2 cores
    .venv/bin/python bench/solvers.py --quick      # 300 particles, 250 data points
    .venv/bin/python bench/solvers.py --data 2000  # a denser data set: its field stiffens later, ~4 min

Each schedule runs in its own process with one torch thread: the tensors are small, so threads
only add synchronisation, while the schedules are independent.

Last, dopri5 against torchdiffeq's dopri5 (same tableau, controller and max norm) at 50 output
times on the linear path's exact field: counted NFE side by side, and each one's error against a
tight float64 solve at those times. fmcore reads the output times off its dense output, so its
NFE follows the tolerance; the target is within 1.1x of torchdiffeq's.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmcore import datasets, exact_velocity, get_schedule
from fmcore.exact import T_EXACT_MAX
from fmcore.solvers import SOLVERS, TIME_GRIDS, integrate

SCHEDULE_NAMES = ("linear", "cosine", "vp")
BUDGETS = (5, 10, 20, 50, 100, 200)
TARGET = ("euler", "uniform", 100)  # the quality the rule of thumb is measured against
RULE = {"euler": 100, "rk4": 50, "dpm++2m": 20}  # "the same quality" at these numbers of steps


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer particles, data points and budgets")
    parser.add_argument("--data", type=int, default=None, help="moons data points (default 500, quick 250)")
    parser.add_argument("--jobs", type=int, default=2, help="processes, one schedule each")
    return parser.parse_args()


def median_error(z: torch.Tensor, reference: torch.Tensor) -> float:
    return (z.double() - reference).norm(dim=1).median().item()


def run_schedule(name, data, z0, budgets, grids, reference_tol):
    """Errors {(solver, grid, budget): (error, nfe)} and the reference's NFE for one schedule."""
    torch.set_num_threads(1)
    schedule = get_schedule(name)
    t_end = min(T_EXACT_MAX, schedule.t_max)
    data64, data32 = data.double(), data.float()

    def field64(z, t):
        return exact_velocity(z, t, data64, schedule)

    def field32(z, t):
        return exact_velocity(z, t, data32, schedule)

    reference = integrate(
        field64, z0.double(), "dopri5", 1, t1=t_end, schedule=schedule, rtol=reference_tol, atol=reference_tol
    )
    results = {}
    for grid in grids:
        for solver, info in SOLVERS.items():
            if info.adaptive:
                continue
            for budget in budgets:
                if budget > 100 and grid != "uniform":
                    continue
                steps = budget // info.nfe_per_step
                if steps < 1:
                    continue
                run = integrate(field32, z0.float(), solver, steps, t1=t_end, schedule=schedule, grid=grid)
                results[solver, grid, budget] = (median_error(run.z_end, reference.z_end), run.nfe)
    adaptive = {}
    for tol in (1e-2, 1e-3, 1e-4):
        run = integrate(field32, z0.float(), "dopri5", 1, t1=t_end, schedule=schedule, rtol=tol, atol=tol)
        adaptive[tol] = (median_error(run.z_end, reference.z_end), run.nfe)
    return results, adaptive, reference.nfe, t_end


def print_table(name, results, adaptive, reference_nfe, reference_tol, t_end, budgets, grids):
    print(
        f"\n## {name}: t 0 -> {t_end:g}; reference dopri5 rtol=atol={reference_tol:g} (float64), {reference_nfe} NFE"
    )
    print(f"{'grid':<8} {'solver':<9}" + "".join(f"{b:>10}" for b in budgets) + "   <- NFE budget")
    for grid in grids:
        for solver, info in SOLVERS.items():
            if info.adaptive:
                continue
            cells = [results.get((solver, grid, b)) for b in budgets]
            print(f"{grid:<8} {solver:<9}" + "".join(f"{c[0]:>10.2e}" if c else f"{'-':>10}" for c in cells))
    print("dopri5  " + "   ".join(f"rtol={tol:g}: {e:.2e} ({n} NFE)" for tol, (e, n) in adaptive.items()))


def check_rules(name, results, budgets, grids):
    """Print where the rule of thumb holds, and what reaches Euler-100's error at 20 NFE."""
    solver, grid, steps = TARGET
    target = results[solver, grid, steps][0]
    print(f"\n{name}: target = Euler, 100 uniform steps: median error {target:.2e}")
    for solver, steps in RULE.items():
        budget = steps * SOLVERS[solver].nfe_per_step
        if budget not in budgets:
            continue
        for grid in ("uniform", "logsnr") if solver == "dpm++2m" else ("uniform",):
            error = results[solver, grid, budget][0]
            verdict = "holds" if error <= target * 1.0000001 else "does NOT hold"
            print(
                f"  {solver:>8}, {steps:>3} steps ({budget:>3} NFE), {grid:<7}: {error:.2e} "
                f"= {error / target:5.2f} x target -> rule {verdict}"
            )
    for solver in SOLVERS:
        if SOLVERS[solver].adaptive:
            continue
        reach = {
            b: [g for g in grids if (solver, g, b) in results and results[solver, g, b][0] <= target]
            for b in budgets
        }
        first = min((b for b, on in reach.items() if on), default=None)
        where = "never in these budgets" if first is None else f"{first} ({', '.join(reach[first])})"
        print(f"  smallest NFE budget at which {solver:<8} reaches the target: {where}")
    at_20 = sorted(
        (results[s, g, 20][0], s, g) for s, info in SOLVERS.items() if not info.adaptive for g in grids
    )
    winners = [f"{s}/{g} {e:.1e}" for e, s, g in at_20 if e <= target]
    print(f"  at 20 NFE, reaching the target: {', '.join(winners) if winners else 'none'}")
    print(f"  at 20 NFE, best: {at_20[0][1]}/{at_20[0][2]} {at_20[0][0]:.1e}")


class _TorchdiffeqField:
    """``v(z, t)`` as torchdiffeq calls it, ``f(t, y)``, counting every call."""

    def __init__(self, velocity):
        self.velocity, self.calls = velocity, 0

    def __call__(self, t, y):
        self.calls += 1
        return self.velocity(y, t)


def dopri5_against_torchdiffeq(data, z0, outputs=50, tolerances=(1e-3, 1e-4, 1e-5, 1e-6, 1e-7)):
    """Print NFE and max error at ``outputs`` output times of fmcore's and torchdiffeq's dopri5."""
    import torchdiffeq

    torch.set_num_threads(1)
    data64, z64 = data.double(), z0.double()
    t_end = T_EXACT_MAX

    def field(z, t):
        return exact_velocity(z, t, data64, "linear")

    reference = integrate(field, z64, "dopri5", outputs, t1=t_end, rtol=1e-10, atol=1e-10)
    print(f"\n# dopri5 vs torchdiffeq: linear path, t 0 -> {t_end:g}, {outputs} output times, max norm")
    print(
        f"{'rtol=atol':>10} {'fmcore NFE':>11} {'torchdiffeq':>12} {'ratio':>6} {'fmcore err':>11} {'tdq err':>9}"
    )
    for tol in tolerances:
        ours = integrate(field, z64, "dopri5", outputs, t1=t_end, rtol=tol, atol=tol)
        counted = _TorchdiffeqField(field)
        theirs = torchdiffeq.odeint(
            counted,
            z64,
            reference.ts,
            method="dopri5",
            rtol=tol,
            atol=tol,
            options=dict(norm=lambda x: x.abs().max()),
        )
        ours_error = (ours.zs - reference.zs).abs().max().item()
        theirs_error = (theirs - reference.zs).abs().max().item()
        print(
            f"{tol:>10g} {ours.nfe:>11} {counted.calls:>12} {ours.nfe / counted.calls:>6.2f} {ours_error:>11.1e} {theirs_error:>9.1e}"
        )


def main():
    args = parse_args()
    n_particles, n_data = (300, 250) if args.quick else (1000, 500)
    n_data = args.data or n_data
    budgets = (10, 20, 50, 100) if args.quick else BUDGETS
    reference_tol = 1e-6 if args.quick else 1e-7
    grids = tuple(TIME_GRIDS)
    data = datasets.sample("moons", n_data, seed=0)
    z0 = torch.randn(n_particles, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    print(
        f"moons, {n_data} data points; {n_particles} particles; exact field in float32, reference in float64; "
        f"error = median over particles of |z_end - z_ref|"
    )
    start = time.perf_counter()
    all_results = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            name: pool.submit(run_schedule, name, data, z0, budgets, grids, reference_tol)
            for name in SCHEDULE_NAMES
        }
        for name, future in futures.items():
            results, adaptive, reference_nfe, t_end = future.result()
            print_table(name, results, adaptive, reference_nfe, reference_tol, t_end, budgets, grids)
            all_results[name] = results
    print("\n# Rule of thumb: Euler ~100 steps, RK4 ~50, DPM-Solver ~20 for the same quality")
    for name in SCHEDULE_NAMES:
        check_rules(name, all_results[name], budgets, grids)
    dopri5_against_torchdiffeq(data, z0[: 200 if args.quick else 1000])
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
