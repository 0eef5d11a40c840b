"""Command line: ``python -m fmcore train ...`` and ``python -m fmcore sample ...``.

    python -m fmcore train --data moons --steps 2000 --out model.safetensors
    python -m fmcore train --data points.csv --seconds 5 --schedule cosine --out model.safetensors
    python -m fmcore sample --model model.safetensors --solver rk4 --steps 20 --n 1000 --out samples.csv
    python -m fmcore sample --model model.safetensors --noise 1.0 --steps 200 --n 2000 --out samples.csv
    python -m fmcore train --data 8gaussians --labels --seconds 10 --out c.safetensors
    python -m fmcore sample --model c.safetensors --label 3 --guidance 1.0 --n 1000 --out samples.csv
    python -m fmcore train --data moons --objective meanflow --seconds 60 --out f.safetensors
    python -m fmcore sample --model f.safetensors --steps 1 --n 2000 --out s.csv

A mean-flow model (``--objective meanflow``) samples in ``--steps`` jumps of its average velocity,
one NFE each (``fmcore.sample_mean_flow``); ``--solver`` and ``--grid`` are for flow models.
``sample`` drops no option silently: ``--solver`` with ``--noise`` > 0 or on a mean flow,
``--guidance`` without ``--label``, and ``--noise`` or ``--label`` on a mean flow are refused.

A CSV data set is normalised for training (``datasets.from_points``); the normalisation travels in
the model file and ``sample`` writes points back in the CSV's coordinates. Problems (a bad file, a
bad option) print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import datasets
from .coupling import COUPLINGS
from .io import load
from .meanflow import sample_mean_flow
from .schedules import SCHEDULES
from .sde import sample_sde
from .solvers import SOLVERS, TIME_GRIDS, integrate
from .trainer import DEFAULTS, OBJECTIVES, TARGETS, Trainer

__all__ = ["main"]

EXIT_USAGE = 2
PROGRESS_EVERY_S = 1.0


DEFAULT_SOLVER = "rk4"
"""The ODE solver of ``sample`` when --solver is not given."""


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, except where the default is None ("not given"):
    those options say in their own words what happens without them."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class UsageError(ValueError):
    """A problem the user can fix: reported in one line, exit status 2."""


def _number(kind: type, lo: float, allow_lo: bool):
    """An argparse type: a finite ``kind`` (int or float) above ``lo`` (or equal to it, if allowed)."""
    what = "an integer" if kind is int else "a number"
    bound = f">= {lo:g}" if allow_lo else f"> {lo:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value >= lo if allow_lo else value > lo) or value == float("inf"):
            finite = "a finite number " if kind is float else ""
            raise argparse.ArgumentTypeError(f"must be {finite}{bound}, got {text}")
        return value

    return parse


_positive_int = _number(int, 1, allow_lo=True)
_positive_float = _number(float, 0.0, allow_lo=False)
_non_negative_int = _number(int, 0, allow_lo=True)
_non_negative_float = _number(float, 0.0, allow_lo=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fmcore", description="Train flow matching models on 2-D data and sample them."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,sample}")

    train = commands.add_parser(
        "train",
        help="train a model and save it",
        description="Train a flow matching model and save it.",
        formatter_class=_HelpWithDefaults,
    )
    train.add_argument(
        "--data", required=True, help=f"a preset ({', '.join(datasets.NAMES)}) or a CSV file of x, y points"
    )
    train.add_argument("--n", type=_positive_int, default=2000, help="points drawn from a preset")
    train.add_argument(
        "--labels",
        action="store_true",
        help=f"condition on classes: a labelled preset ({', '.join(datasets.CLASSES)}) or a CSV's label column",
    )
    budget = train.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=_positive_int, help="training steps")
    budget.add_argument("--seconds", type=_positive_float, help="training time in seconds")
    train.add_argument("--schedule", choices=list(SCHEDULES), default="linear")
    train.add_argument(
        "--objective", choices=OBJECTIVES, default="flow", help="a flow, or a few-step mean flow"
    )
    train.add_argument("--target", choices=TARGETS, help="default: the objective's (conditional for flow)")
    train.add_argument("--coupling", choices=list(COUPLINGS), default="independent")
    train.add_argument(
        "--lr",
        type=_positive_float,
        help=f"learning rate (default: the objective's; {DEFAULTS['lr']:g} for flow)",
    )
    train.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"])
    train.add_argument("--hidden", type=_positive_int, default=DEFAULTS["hidden"])
    train.add_argument("--depth", type=_positive_int, default=DEFAULTS["depth"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (1 is fastest for these small models)",
    )
    train.add_argument("--out", required=True, help="output .safetensors file")

    sample = commands.add_parser(
        "sample",
        help="sample a saved model to CSV",
        description="Sample a saved model by solving its ODE, or (--noise > 0) an SDE with the same marginals.",
        formatter_class=_HelpWithDefaults,
    )
    sample.add_argument("--model", required=True, help="a .safetensors file written by 'train'")
    sample.add_argument(
        "--solver",
        choices=list(SOLVERS),
        default=None,
        help=f"ODE solver of a flow model at --noise 0 (default: {DEFAULT_SOLVER})",
    )
    sample.add_argument(
        "--steps", type=_positive_int, default=20, help="solver steps (mean-flow model: jumps, 1 NFE each)"
    )
    sample.add_argument("--grid", choices=list(TIME_GRIDS), default="uniform", help="time grid")
    sample.add_argument(
        "--noise",
        type=_non_negative_float,
        default=0.0,
        help="SDE noise scale: 0 solves the ODE with --solver, 1 is the reverse diffusion SDE (Euler-Maruyama)",
    )
    sample.add_argument(
        "--label",
        type=_non_negative_int,
        default=None,
        help="class to sample (labelled models); default: all",
    )
    sample.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance w: v_null + w (v_c - v_null); 1 conditional, 0 unconditional "
        "(needs --label; default: 1)",
    )
    sample.add_argument("--n", type=_positive_int, default=1000, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="output CSV file (x,y per line)")
    return parser


def _load_data(spec: str, n: int, seed: int, labels: bool):
    """(normalised (m, 2) tensor, (m,) labels or None, normalisation metadata or None) for a preset
    name or a CSV path; labels only when asked for."""
    if spec in datasets.NAMES:
        if labels:
            points, classes = datasets.sample(spec, n, seed, labels=True)
            return points, classes, None
        return datasets.sample(spec, n, seed), None, None
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--data {spec!r} is neither a preset ({', '.join(datasets.NAMES)}) nor a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {spec}: {error}") from None
    points, classes = datasets.parse_csv(text, labels=True)
    if labels and classes is None:
        raise UsageError(f"--labels: {spec} has no label column (x, y, label)")
    cloud = datasets.from_points(points)
    return cloud.data, classes if labels else None, {"center": cloud.center.tolist(), "scale": cloud.scale}


def train(args) -> None:
    torch.set_num_threads(args.threads)
    data, labels, normalisation = _load_data(args.data, args.n, args.seed, args.labels)
    trainer = Trainer(
        data,
        labels=labels,
        schedule=args.schedule,
        target=args.target,
        coupling=args.coupling,
        objective=args.objective,
        seed=args.seed,
        **({} if args.lr is None else {"lr": args.lr}),
        batch_size=args.batch_size,
        hidden=args.hidden,
        depth=args.depth,
    )
    classes = f", {trainer.n_classes} classes" if trainer.n_classes else ""
    print(
        f"training on {len(data)} points ({args.data}{classes}), {args.schedule} schedule, "
        f"{trainer.objective} objective, {trainer.target} target, {args.coupling} coupling, device {trainer.device}"
    )
    last_print = time.perf_counter()
    while True:
        remaining = None if args.steps is None else args.steps - trainer.step_count
        if remaining == 0 or (args.seconds is not None and trainer.elapsed >= args.seconds):
            break
        stats = trainer.step(min(50, remaining or 50))
        if stats.status != "ok":
            raise UsageError(stats.message)
        if time.perf_counter() - last_print >= PROGRESS_EVERY_S:
            last_print = time.perf_counter()
            print(
                f"  step {stats.step:6d}  loss {stats.loss:.4f}  {stats.steps_per_s:6.0f} steps/s", flush=True
            )
    floor = trainer.loss_floor
    # NaN: no exact field is this loss's minimiser (mean flow, OT coupling, fixed noise pairs).
    floor_text = (
        f"irreducible floor {floor:.4f}" if math.isfinite(floor) else "no closed-form loss floor here"
    )
    print(
        f"done: {trainer.step_count} steps in {trainer.elapsed:.1f} s, last loss {np.mean(trainer.history[-50:]):.4f}"
        f" ({floor_text})"
    )
    trainer.save(args.out, {"data": args.data, **({"normalisation": normalisation} if normalisation else {})})
    print(f"saved {args.out}")


def _refuse_unused(args, mean_flow: bool) -> None:
    """An option the chosen sampler would not read is refused, not dropped: --guidance weighs a
    class (--label) against the unconditional field, --solver picks the ODE's solver, and a
    mean-flow model samples by jumps only (no SDE, no class)."""
    if args.guidance is not None and args.label is None:
        raise UsageError(
            f"--guidance {args.guidance:g}: guidance weighs a class against the unconditional field; "
            "add --label, or drop --guidance"
        )
    if args.solver is not None and (mean_flow or args.noise > 0):
        sampler = (
            "a mean-flow model samples by its jumps" if mean_flow else "--noise > 0 samples by Euler-Maruyama"
        )
        raise UsageError(f"--solver {args.solver}: {sampler}, not by an ODE solver; drop --solver")
    if not mean_flow:
        return
    if args.noise > 0:
        raise UsageError(
            f"--noise {args.noise:g}: a mean-flow model samples by jumps of its average velocity, not by "
            "an SDE; drop --noise, or sample a flow model (--objective flow)"
        )
    if args.label is not None:
        raise UsageError(
            f"--label {args.label}: this mean-flow model is unconditional (a mean flow trains without labels); "
            "drop --label"
        )


def sample(args) -> None:
    model = load(args.model)
    _refuse_unused(args, model.objective == "meanflow")
    args.solver = args.solver or DEFAULT_SOLVER
    args.guidance = 1.0 if args.guidance is None else args.guidance
    z0 = torch.randn(args.n, model.config.dim, generator=torch.Generator().manual_seed(args.seed))
    if model.objective == "meanflow":
        trajectory = sample_mean_flow(model, z0, args.steps)
        method = f"{args.steps} mean-flow step{'s' if args.steps != 1 else ''}"
    elif args.noise > 0:
        # seed + 1: the Brownian increments' stream must not repeat z0's draws.
        velocity = model.guided_velocity(args.label, args.guidance)
        trajectory = sample_sde(
            velocity, z0, model.schedule, args.noise, args.steps, seed=args.seed + 1, grid=args.grid
        )
        method = f"Euler-Maruyama (noise {args.noise:g}), {args.steps} steps ({args.grid} grid)"
    else:
        velocity = model.guided_velocity(args.label, args.guidance)
        trajectory = integrate(velocity, z0, args.solver, args.steps, schedule=model.schedule, grid=args.grid)
        method = f"{args.solver}, {args.steps} steps ({args.grid} grid)"
    points = trajectory.zs[-1].double()
    normalisation = model.metadata.get("normalisation")
    if normalisation:
        points = torch.tensor(normalisation["center"], dtype=torch.float64) + normalisation["scale"] * points
    try:
        np.savetxt(args.out, points.numpy(), delimiter=",", header="x,y", comments="", fmt="%.6g")
    except OSError as error:
        raise UsageError(f"cannot write {args.out}: {error.strerror or error}") from None
    conditioned = "" if args.label is None else f" of class {args.label} (guidance w={args.guidance:g})"
    print(f"sampled {args.n} points{conditioned} with {method}: NFE {trajectory.nfe}; wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"train": train, "sample": sample}[args.command](args)
    except (ValueError, OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0
