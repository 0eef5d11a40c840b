"""What the lessons compute: small deterministic runs of fmcore, returned as numpy arrays.

Every function here is pure (the same arguments give the same result) and returns plain arrays and
frozen dataclasses, so a page can wrap it in ``st.cache_data`` and a test can call it directly.
Sizes are chosen so that each lesson's first run takes seconds on a laptop CPU: the exact field of
a ``DATA_POINTS`` sample costs O(n m) per evaluation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

import fmcore
from explorer.core.flows import EXACT_BANDWIDTH
from fmcore import datasets, metrics
from fmcore.solvers import Trajectory, integrate

__all__ = [
    "DATA_POINTS",
    "FIELDS",
    "Memorisation",
    "Panel",
    "ScheduleFacts",
    "SolverRun",
    "Stiffness",
    "error_curves",
    "few_steps_cases",
    "fitted_slope",
    "memorisation",
    "nfe_to_reach",
    "noise",
    "reference_sample",
    "rule_of_thumb",
    "rule_of_thumb_table",
    "rule_of_thumb_verdict",
    "schedule_facts",
    "solver_runs",
    "stiffness",
    "time_direction_cases",
]

DATA_POINTS = 500
"""Size of the empirical data set whose exact marginal field the lessons integrate."""
REFERENCE_POINTS = 1000
"""A second, independent sample of the preset: what generated samples are compared with."""


@dataclass(frozen=True)
class Panel:
    """One small scatter: a title, its (n, 2) points, a one-line measured note, optional paths.

    Attributes:
        wrong: drawn in the error colour (a pitfall's result).  paths: (K+1, p, 2) states at the
        solver's nodes, drawn as polylines with a dot per node.
    """

    title: str
    points: np.ndarray
    note: str
    wrong: bool = False
    paths: np.ndarray | None = None


def noise(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 2) draws of z_0 ~ N(0, I), fixed by ``seed``."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _data(preset: str, seed: int = 0) -> torch.Tensor:
    """The preset's data set behind the exact field: the same sample the Playground draws."""
    return datasets.sample(preset, DATA_POINTS, seed=seed)


def _exact_velocity(data: torch.Tensor, schedule):
    return lambda z, t: fmcore.exact_velocity(z, t, data, schedule)


def _blurred(schedule: str = "linear") -> fmcore.Blurred:
    """The Playground's exact field: the data blurred by ``EXACT_BANDWIDTH`` (finite at t = 1)."""
    return fmcore.Blurred(schedule, EXACT_BANDWIDTH)


def reference_sample(preset: str) -> np.ndarray:
    """(REFERENCE_POINTS, 2) fresh points of the preset, independent of the lesson's data set."""
    return datasets.sample(preset, REFERENCE_POINTS, seed=1).numpy()


def _energy_note(points: torch.Tensor, reference: np.ndarray, what: str) -> str:
    return f"energy distance to {what}: {metrics.energy_distance(points, reference):.3f}"


def time_direction_cases(preset: str, n: int = 300, steps: int = 100, seed: int = 0) -> list[Panel]:
    """Right and wrong uses of the time direction, each integrated with Euler and measured.

    The field is the Playground's exact field (``_blurred``), the one lesson 1 animates.

    Returns six panels: the data; sampling forward (right); the data integrated backward to noise
    and forward again (a round trip); and the two confusions: noise integrated from t=1 down to 0,
    and forward sampling with the field's time reversed, ``v(z, 1 - t)``.
    """
    data = _data(preset)
    v = _exact_velocity(data, _blurred())
    reference = reference_sample(preset)
    gaussian = noise(REFERENCE_POINTS, seed=seed + 1).numpy()
    z0 = noise(n, seed)

    def run(velocity, z, t0, t1):
        return integrate(velocity, z, "euler", steps, t0=t0, t1=t1, schedule="linear").z_end

    forward = run(v, z0, 0.0, 1.0)
    encoded = run(v, data[:n], 1.0, 0.0)
    decoded = run(v, encoded, 0.0, 1.0)
    backward_from_noise = run(v, z0, 1.0, 0.0)
    reversed_time = run(lambda z, t: v(z, 1.0 - t), z0, 0.0, 1.0)
    round_trip_error = (decoded - data[:n]).norm(dim=1)
    runaway = float(backward_from_noise.norm(dim=1).max())
    return [
        Panel("The data (t = 1)", data[:n].numpy(), f"{n} of the {DATA_POINTS} points the field is built on"),
        Panel("Sampling: noise, forward t: 0 → 1", forward.numpy(), _energy_note(forward, reference, "data")),
        Panel(
            "Wrong: forward with v(z, 1 − t)",
            reversed_time.numpy(),
            _energy_note(reversed_time, reference, "data"),
            wrong=True,
        ),
        Panel(
            "Encoding: data, backward t: 1 → 0", encoded.numpy(), _energy_note(encoded, gaussian, "N(0, I)")
        ),
        Panel(
            "Round trip: that noise, forward again",
            decoded.numpy(),
            f"mean distance to the starting data point: {float(round_trip_error.mean()):.4f}",
        ),
        Panel(
            "Wrong: noise, backward t: 1 → 0",
            backward_from_noise.numpy(),
            f"farthest particle at |z| = {runaway:.3g}: it flies off",
            wrong=True,
        ),
    ]


# -- lesson 4: ODE solvers -----------------------------------------------------------------------

FIELDS = {
    "point cloud": "the exact field of the 500 data points themselves (stiff near t = 1)",
    "blurred": "the exact field of the data blurred by N(0, 0.08²) (the Playground's exact field)",
}
CURVE_STEPS = (1, 2, 4, 8, 16, 32, 64)
DOPRI_TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4)
GOOD_ERROR = 0.05
"""An endpoint error below this (5% of the data's spread) is invisible in the figures."""


def _field_velocity(preset: str, field: str):
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; choose one of {', '.join(FIELDS)}")
    schedule = "linear" if field == "point cloud" else _blurred()
    return _exact_velocity(_data(preset), schedule), schedule


SOLVER_PARTICLES = 160
"""Particles the solver lesson measures on; every measurement uses a prefix of the same draws."""


@functools.lru_cache(maxsize=8)
def _reference(preset: str, field: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z0, z_ref)``: ``SOLVER_PARTICLES`` noise draws and the ODE's own end points for them.

    The end points come from adaptive Dormand-Prince in float64 at rtol = atol = 1e-6, far below
    any error the lesson shows; particles move independently, so a prefix of these is the
    reference for a prefix of the particles.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0 = noise(SOLVER_PARTICLES, seed)
    end = integrate(velocity, z0.double(), "dopri5", 1, schedule=schedule, rtol=1e-6, atol=1e-6).z_end
    return z0, end.float()


def _endpoint_error(trajectory: Trajectory, reference: torch.Tensor) -> float:
    return float((trajectory.z_end - reference).norm(dim=1).mean())


@dataclass(frozen=True)
class SolverRun:
    """One solver at one step count: where it put the particles, what it cost, how far off it ended.

    Attributes:
        solver: the ``SOLVERS`` key.  ts: (K+1,) grid times.  zs: (K+1, n, 2) states at them.
        steps: solver steps (accepted internal steps for dopri5).  nfe: velocity evaluations (counted).
        error: mean |z_end - z_ref| over particles, against a tight adaptive solve of the same ODE.
    """

    solver: str
    ts: np.ndarray
    zs: np.ndarray
    steps: int
    nfe: int
    error: float


def solver_runs(
    preset: str, field: str, steps: int, grid: str, solvers: tuple[str, ...], n: int = 60, seed: int = 0
) -> tuple[np.ndarray, list[SolverRun]]:
    """Every solver in ``solvers`` on the same particles, same field, same step count and grid.

    dopri5 is adaptive: it lands on the same ``steps`` grid times at rtol = atol = 1e-3 and takes
    the internal steps its error estimate asks for.

    Returns:
        ``(reference_end (n, 2), runs)``.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = (x[:n] for x in _reference(preset, field, seed))
    runs = []
    for solver in solvers:
        trajectory = integrate(
            velocity, z0, solver, steps, schedule=schedule, grid=grid, rtol=1e-3, atol=1e-3
        )
        runs.append(
            SolverRun(
                solver,
                trajectory.ts.double().numpy(),
                trajectory.zs.numpy(),
                trajectory.steps,
                trajectory.nfe,
                _endpoint_error(trajectory, reference),
            )
        )
    return reference.numpy(), runs


@dataclass(frozen=True)
class ErrorCurve:
    """Endpoint error against NFE for one solver, and the fitted log-log slope (−order)."""

    solver: str
    nfe: np.ndarray
    error: np.ndarray
    slope: float


FLOAT32_FLOOR = 2e-5
"""Endpoint errors below this are float32 rounding, not the solver's truncation error."""


def fitted_slope(nfe: np.ndarray, error: np.ndarray, last: int = 4) -> float:
    """Least-squares slope of log(error) on log(NFE) over the last ``last`` points above the float32 floor."""
    keep = error > FLOAT32_FLOOR
    x, y = np.log(nfe[keep][-last:]), np.log(error[keep][-last:])
    return float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 else float("nan")


def error_curves(
    preset: str, field: str, grid: str, solvers: tuple[str, ...], n: int = 80, seed: int = 0
) -> list[ErrorCurve]:
    """Endpoint error vs NFE: fixed-step solvers over ``CURVE_STEPS``, dopri5 over ``DOPRI_TOLERANCES``."""
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = (x[:n] for x in _reference(preset, field, seed))
    curves = []
    for solver in solvers:
        settings = (
            [dict(steps=1, rtol=tol, atol=tol) for tol in DOPRI_TOLERANCES]
            if solver == "dopri5"
            else [dict(steps=k) for k in CURVE_STEPS]
        )
        nfe, error = [], []
        for options in settings:
            trajectory = integrate(velocity, z0, solver, schedule=schedule, grid=grid, **options)
            nfe.append(trajectory.nfe)
            error.append(_endpoint_error(trajectory, reference))
        nfe_a, error_a = np.asarray(nfe, dtype=float), np.asarray(error)
        order = np.argsort(nfe_a, kind="stable")
        nfe_a, error_a = nfe_a[order], error_a[order]
        curves.append(ErrorCurve(solver, nfe_a, error_a, fitted_slope(nfe_a, error_a)))
    return curves


def nfe_to_reach(curve: ErrorCurve, target: float) -> float:
    """NFE at which the curve first drops below ``target``, interpolated in log-log; inf if never."""
    below = np.flatnonzero(curve.error <= target)
    if len(below) == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return float(curve.nfe[0])
    x0, x1 = np.log(curve.nfe[i - 1 : i + 1])
    y0, y1 = np.log(curve.error[i - 1 : i + 1])
    return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))


RULE_OF_THUMB = (("euler", 100), ("rk4", 50), ("dpm++2m", 20))


def rule_of_thumb(preset: str, field: str, grid: str, seed: int = 0) -> list[dict]:
    """The folk rule "Euler ~100 steps, RK4 ~50, DPM-Solver ~20", measured on ``SOLVER_PARTICLES``.

    Returns:
        One row per entry of ``RULE_OF_THUMB``: solver, steps, NFE (counted), the endpoint error
        against the reference solve, and whether it is below ``GOOD_ERROR``.
    """
    velocity, schedule = _field_velocity(preset, field)
    z0, reference = _reference(preset, field, seed)
    rows = []
    for solver, steps in RULE_OF_THUMB:
        trajectory = integrate(velocity, z0, solver, steps, schedule=schedule, grid=grid)
        error = _endpoint_error(trajectory, reference)
        rows.append(
            dict(
                solver=solver, steps=steps, nfe=trajectory.nfe, endpoint_error=error, good=error < GOOD_ERROR
            )
        )
    return rows


def few_steps_cases(preset: str, field: str = "blurred", n: int = 400, seed: int = 0) -> list[Panel]:
    """Euler with 1, 2 and 50 steps on the same particles (one step from t = 0 lands on E[z_1])."""
    velocity, schedule = _field_velocity(preset, field)
    z0 = noise(n, seed)
    fresh = reference_sample(preset)
    panels = []
    for steps in (1, 2, 50):
        trajectory = integrate(velocity, z0, "euler", steps, schedule=schedule)
        end = trajectory.z_end
        panels.append(
            Panel(
                f"Euler, {steps} steps = {trajectory.nfe} NFE",
                end.numpy(),
                _energy_note(end, fresh, "data"),
                wrong=steps < 50,
            )
        )
    return panels


# -- lesson 2: the objective ---------------------------------------------------------------------


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
    data = _data(preset)
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
    data = _data(preset)
    z0 = noise(n, seed)
    z1 = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]]
    ts = torch.linspace(0.0, 1.0, nodes)[:, None, None]
    conditional = ts * z1 + (1 - ts) * z0
    marginal = integrate(_exact_velocity(data, "linear"), z0, "euler", 200).zs[::5]
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

    data = _data(preset)
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
        out["samples"][target] = integrate(trainer.velocity, noise(500, seed + 1), "rk4", 25).z_end.numpy()
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


def wrong_target_cases(preset: str, steps: int = 300, seed: int = 0) -> list[Panel]:
    """Samples of networks trained on each of ``WRONG_TARGETS`` (same loop, same seed, RK4 25 steps)."""
    data = _data(preset)
    fresh = reference_sample(preset)
    panels = []
    for name, target in WRONG_TARGETS.items():
        velocity = _fit(data, target, steps, seed)
        end = integrate(velocity, noise(500, seed + 1), "rk4", 25).z_end
        panels.append(Panel(name, end.numpy(), _energy_note(end, fresh, "data"), wrong="right" not in name))
    return panels


def smoothed_curve(values: np.ndarray, window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, means)``: the mean of each ``window`` consecutive values, at the step ending it (1-based)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return np.arange(1, len(values) + 1), values
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(window, len(values) + 1), means


# -- lesson 5: training and schedules ------------------------------------------------------------


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

    data = _data(preset)
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
    data = _data(preset)
    z0 = noise(n, seed)
    z1 = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]]
    t = torch.linspace(0.0, 1.0, nodes)
    out = {}
    for name, schedule in fmcore.SCHEDULES.items():
        s = schedule(t.clamp(max=schedule.t_max))
        out[name] = (s.alpha[:, None, None] * z1 + s.sigma[:, None, None] * z0).numpy()
    return out


def schedule_pitfall(preset: str, steps: int = 300, seed: int = 0) -> list[Panel]:
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
    z0 = noise(REFERENCE_POINTS // 2, seed + 5)
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
        Panel(
            "Wrong: VP noise model read as linear",
            as_linear.numpy(),
            _energy_note(as_linear, fresh, "data"),
            wrong=True,
        ),
        Panel("Right: read with its own schedule (VP)", as_vp.numpy(), _energy_note(as_vp, fresh, "data")),
        Panel(
            "Right: cosine model via change_schedule",
            on_linear.numpy(),
            _energy_note(on_linear, fresh, "data"),
        ),
        Panel(
            "Wrong: cosine model as a linear field, t = 0.5",
            half_naive.numpy(),
            _energy_note(half_naive, half_true.numpy(), "linear p₀.₅"),
            wrong=True,
        ),
        Panel(
            "Right: via change_schedule, t = 0.5",
            half_moved.numpy(),
            _energy_note(half_moved, half_true.numpy(), "linear p₀.₅"),
        ),
        Panel(
            "The linear path's p₀.₅ (0.5 z₁ + 0.5 z₀)",
            half_true.numpy(),
            "what t = 0.5 means on the linear path",
        ),
    ]


# -- lesson 3: flow matching vs diffusion --------------------------------------------------------

SAMPLER_STEPS = (2, 5, 10, 20, 50, 100)
SAMPLES = 600
"""Samples per measurement in lessons 3 and 6: the energy distance's noise is ~0.002 at this size."""
SAMPLERS = {
    "sde": "VP · noise model · reverse SDE (Euler–Maruyama)",
    "pf_ode": "VP · noise model · probability-flow ODE (Euler)",
    "vp_ode": "VP · velocity model · ODE (Euler)",
    "fm_ode": "Linear · velocity model · ODE (Euler)",
}
"""Four samplers that change one thing at a time: the sampler (sde -> pf_ode), the parametrisation
and with it the loss weighting (pf_ode -> vp_ode), the schedule (vp_ode -> fm_ode)."""


@dataclass(frozen=True)
class Comparison:
    """The same data trained both ways, sampled three ways, measured on this machine.

    Attributes:
        steps: the step counts tried (each sampler makes exactly one network evaluation per step).
        energy: sampler -> (len(steps),) energy distance of ``SAMPLES`` samples to fresh data.
        paths: sampler -> (K+1, p, 2) paths of p particles at 100 steps.
        train_seconds: model ("diffusion", "vp velocity", "flow matching") -> training seconds.
        train_steps: steps each model trained.  floor: energy distance between two data samples.
    """

    steps: tuple[int, ...]
    energy: dict
    paths: dict
    train_seconds: dict
    train_steps: int
    floor: float

    def steps_to_reach(self, sampler: str, tolerance: float) -> int | None:
        """The fewest steps whose energy distance is within ``tolerance`` of the best this sampler reached."""
        energy = self.energy[sampler]
        good = np.flatnonzero(energy <= energy.min() + tolerance)
        return int(self.steps[good[0]]) if len(good) else None


@functools.lru_cache(maxsize=4)
def _flow_model(preset: str, train_steps: int, seed: int):
    """A flow matching model (linear path, velocity) on 2,000 points of the preset.

    Kept (not retrained) for the other measurements of the same lesson; callers must not train it further.
    """
    from fmcore.trainer import Trainer

    flow = Trainer(datasets.sample(preset, 2000, seed=0), schedule="linear", seed=seed)
    flow.step(train_steps)
    return flow


@functools.lru_cache(maxsize=4)
def _vp_velocity_model(preset: str, train_steps: int, seed: int):
    """A velocity model on the VP schedule: the diffusion model's path, flow matching's target."""
    from fmcore.trainer import Trainer

    model = Trainer(datasets.sample(preset, 2000, seed=0), schedule="vp", seed=seed)
    model.step(train_steps)
    return model


@functools.lru_cache(maxsize=4)
def _trained_pair(preset: str, train_steps: int, seed: int):
    """``_flow_model`` and a diffusion model (VP, noise prediction) with the same data, network and seed."""
    from fmcore.diffusion import diffusion_trainer

    diffusion = diffusion_trainer(datasets.sample(preset, 2000, seed=0), seed=seed)
    diffusion.step(train_steps)
    return _flow_model(preset, train_steps, seed), diffusion


def fm_vs_diffusion(preset: str, train_steps: int = 600, seed: int = 0) -> Comparison:
    """Train both models, then sample each way at every step count in ``SAMPLER_STEPS``."""
    from fmcore.diffusion import sample_ode, sample_sde

    flow, diffusion = _trained_pair(preset, train_steps, seed)
    vp_velocity = _vp_velocity_model(preset, train_steps, seed)
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = noise(SAMPLES, seed + 5)
    samplers = {
        "sde": lambda k: sample_sde(diffusion, steps=k, seed=seed, z0=z0),
        "pf_ode": lambda k: sample_ode(diffusion, solver="euler", steps=k, z0=z0),
        "vp_ode": lambda k: sample_ode(vp_velocity, solver="euler", steps=k, z0=z0),
        "fm_ode": lambda k: integrate(flow.velocity, z0, "euler", k, schedule="linear"),
    }
    energy, paths = {}, {}
    for name, sample in samplers.items():
        energy[name] = np.asarray([metrics.energy_distance(sample(k).z_end, fresh) for k in SAMPLER_STEPS])
        paths[name] = sample(100).zs[:, :40].numpy()
    return Comparison(
        steps=SAMPLER_STEPS,
        energy=energy,
        paths=paths,
        train_seconds={
            "diffusion": diffusion.elapsed,
            "vp velocity": vp_velocity.elapsed,
            "flow matching": flow.elapsed,
        },
        train_steps=train_steps,
        floor=metrics.energy_distance(datasets.sample(preset, SAMPLES, seed=2), fresh),
    )


def parametrisation_pitfall(preset: str, train_steps: int = 600, seed: int = 0) -> list[Panel]:
    """A noise-prediction network handed to an ODE solver as if it were a velocity, and done right."""
    from fmcore.diffusion import sample_ode

    flow, diffusion = _trained_pair(preset, train_steps, seed)
    fresh = reference_sample(preset)
    z0 = noise(REFERENCE_POINTS // 2, seed + 5)
    raw = diffusion.flow.net
    with torch.no_grad():
        as_velocity = integrate(lambda z, t: raw(z, t), z0, "euler", 100, schedule="vp").z_end
    converted = sample_ode(diffusion, solver="euler", steps=100, z0=z0).z_end
    fm = integrate(flow.velocity, z0, "euler", 100, schedule="linear").z_end
    return [
        Panel(
            "Wrong: ε_θ used as the velocity",
            as_velocity.numpy(),
            _energy_note(as_velocity, fresh, "data"),
            wrong=True,
        ),
        Panel("Right: ε_θ converted, the PF-ODE", converted.numpy(), _energy_note(converted, fresh, "data")),
        Panel("Flow matching: v_θ is the velocity", fm.numpy(), _energy_note(fm, fresh, "data")),
    ]


# -- lesson 6: rectified flow --------------------------------------------------------------------


@dataclass(frozen=True)
class Reflowed:
    """A flow before and after one round of reflow, measured on the same noise.

    Attributes:
        paths_before, paths_after: (K+1, p, 2) RK4 paths of p particles.
        euler: steps -> (before (n, 2), after (n, 2)) Euler samples.  energy: steps -> (before, after)
        energy distances to fresh data.  straightness_before/after: fmcore's S (0 = straight).
        pairs: (z_0, z_1) the coupling reflow trained on, a few of them.  seconds: reflow training time.
    """

    paths_before: np.ndarray
    paths_after: np.ndarray
    euler: dict
    energy: dict
    straightness_before: float
    straightness_after: float
    pairs: tuple[np.ndarray, np.ndarray]
    seconds: float


EULER_STEPS = (1, 2, 4, 8)


def rectify(
    preset: str,
    train_steps: int = 600,
    reflow_steps: int = 500,
    solver: str = "rk4",
    solver_steps: int = 20,
    seed: int = 0,
) -> Reflowed:
    """Train a flow, reflow it once on pairs made by ``solver`` with ``solver_steps``, and measure both."""
    from fmcore.reflow import reflow

    first = _flow_model(preset, train_steps, seed)
    result = reflow(
        first,
        n_pairs=2000,
        train_steps=reflow_steps,
        solver=solver,
        solver_steps=solver_steps,
        seed=seed,
        n_eval=500,
    )
    fresh = torch.from_numpy(reference_sample(preset))
    z0 = noise(SAMPLES, seed + 5)
    euler, energy = {}, {}
    for k in EULER_STEPS:
        ends = [integrate(v, z0, "euler", k).z_end for v in (first.velocity, result.trainer.velocity)]
        euler[k] = tuple(e.numpy() for e in ends)
        energy[k] = tuple(metrics.energy_distance(e, fresh) for e in ends)
    paths = [integrate(v, z0[:40], "rk4", 20).zs.numpy() for v in (first.velocity, result.trainer.velocity)]
    return Reflowed(
        paths_before=paths[0],
        paths_after=paths[1],
        euler=euler,
        energy=energy,
        straightness_before=result.straightness_before,
        straightness_after=result.straightness_after,
        pairs=(result.z0[:40].numpy(), result.z1[:40].numpy()),
        seconds=result.trainer.elapsed,
    )


def grid_errors(
    preset: str, field: str, solver: str = "rk4", steps: int = 50, seed: int = 0
) -> dict[str, float]:
    """Endpoint error of one solver at one step count on every registered time grid (``TIME_GRIDS``)."""
    from fmcore.solvers import TIME_GRIDS

    velocity, schedule = _field_velocity(preset, field)
    z0, reference = _reference(preset, field, seed)
    return {
        grid: _endpoint_error(integrate(velocity, z0, solver, steps, schedule=schedule, grid=grid), reference)
        for grid in TIME_GRIDS
    }


@dataclass(frozen=True)
class Stiffness:
    """Speed and stiffness of the point cloud's exact field along its own paths, near t = 1.

    Attributes:
        ts: (k,) times.  speed: (k,) mean |v(z_t, t)| over the particles: stays O(1).
        stiffness: (k,) mean -div v / d, the average eigenvalue of -dv/dz: grows like 1/(1 - t).
    """

    ts: np.ndarray
    speed: np.ndarray
    stiffness: np.ndarray


def stiffness(
    preset: str, ts: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999), n: int = 40, seed: int = 0
) -> Stiffness:
    """Along exact paths (tight float64 dopri5) the speed stays bounded while dv/dz ~ -I/(1 - t).

    Near t = 1 the posterior picks one data point x, so v = (x - z)/(1 - t) and dv/dz = -I/(1 - t),
    while x - z_t shrinks like (1 - t): the field is stiff, not fast.
    """
    velocity, _ = _field_velocity(preset, "point cloud")
    z = noise(n, seed).double()
    t_prev, speed, stiff = 0.0, [], []
    for t in ts:
        z = integrate(velocity, z, "dopri5", 1, t0=t_prev, t1=t, rtol=1e-8, atol=1e-8).z_end
        speed.append(float(velocity(z, t).norm(dim=1).mean()))
        stiff.append(float(-fmcore.divergence(velocity, z, t).mean() / z.shape[1]))
        t_prev = t
    return Stiffness(np.asarray(ts), np.asarray(speed), np.asarray(stiff))


def rule_of_thumb_table(rows: dict[str, list[dict]], labels: dict[str, str]) -> list[dict]:
    """``rule_of_thumb`` rows of every field as display rows (field, solver, steps, NFE, error, holds?)."""
    return [
        {
            "field": field,
            "solver": labels[row["solver"]],
            "steps": row["steps"],
            "NFE": row["nfe"],
            "endpoint error": f"{row['endpoint_error']:.2g}",
            "holds?": "yes" if row["good"] else "NO",
        }
        for field, field_rows in rows.items()
        for row in field_rows
    ]


def rule_of_thumb_verdict(rows: dict[str, list[dict]], labels: dict[str, str]) -> str:
    """One sentence per field saying where the measured rule held and where not (follows the table)."""
    sentences = []
    for field, field_rows in rows.items():
        failed = [labels[r["solver"]] for r in field_rows if not r["good"]]
        good = [r for r in field_rows if r["good"]]
        cheapest = min(good, key=lambda r: r["nfe"]) if good else None
        sentences.append(
            (
                f"On the {field} field the rule holds for every solver"
                if not failed
                else f"On the {field} field it fails for {', '.join(failed)}"
            )
            + (
                f"; the cheapest good one is {labels[cheapest['solver']]} at {cheapest['nfe']} NFE."
                if cheapest
                else "."
            )
        )
    return (
        " ".join(sentences)
        + " Measured on these fields only: a trained network or another schedule moves the numbers."
    )


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
    data, z0 = _data(preset), noise(n, seed)
    ends, euler_error = {}, {}
    for name in fmcore.SCHEDULES:
        schedule = fmcore.Blurred(name, EXACT_BANDWIDTH)
        velocity = _exact_velocity(data, schedule)
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
    z0 = noise(n, seed + 21)
    exact = integrate(_exact_velocity(train, "linear"), z0, "euler", 100).z_end
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
