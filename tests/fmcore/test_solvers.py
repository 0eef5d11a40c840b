"""Solvers: measured convergence orders, counted NFE, both directions, limits, grids and errors."""

import math
import re

import numpy as np
import pytest
import torch

from fmcore import Blurred, SolverError, exact_posterior_mean, exact_velocity, get_schedule
from fmcore.paths import to_endpoints
from fmcore.solvers import (
    SOLVERS,
    TIME_GRIDS,
    Dopri5State,
    SolverState,
    StepSizeController,
    Trajectory,
    _advance,
    integrate,
    nfe_for,
    time_grid,
)

F64 = torch.float64

# dz/dt = t M z has the closed-form solution z(t) = expm(M t^2 / 2) z(0): a smooth, time-dependent
# linear ODE (a damped rotation) on which every method runs at its textbook order.
M = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=torch.float64)
Z_START = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.2]], dtype=torch.float64)


def rotation_field(z, t):
    return t * z @ M.T


def rotation_solution(z, t0, t1):
    return z @ torch.linalg.matrix_exp(M * 0.5 * (t1**2 - t0**2)).T


def observed_order(steps, errors):
    """Least-squares slope of log error against log step size h = 1/steps."""
    return np.polyfit(np.log(1.0 / np.asarray(steps)), np.log(np.asarray(errors)), 1)[0]


class CallCounter:
    def __init__(self, velocity):
        self.velocity, self.calls = velocity, 0

    def __call__(self, z, t):
        self.calls += 1
        return self.velocity(z, t)


@pytest.fixture(scope="module")
def eight_points():
    """A small data set and query points: the exact field is cheap and non-trivially nonlinear."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(
        16, 2, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "rk4"])
def test_runge_kutta_methods_converge_at_their_order(solver, direction):
    t0, t1 = (0.0, 1.0) if direction == "forward" else (1.0, 0.0)
    steps = [8, 16, 32, 64]  # RK4's error at 64 steps is ~1e-10, far above float64 round-off
    exact = rotation_solution(Z_START, t0, t1)
    errors = [
        (integrate(rotation_field, Z_START, solver, k, t0=t0, t1=t1).z_end - exact).abs().max().item()
        for k in steps
    ]
    assert observed_order(steps, errors) == pytest.approx(SOLVERS[solver].order, abs=0.3)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp"])
@pytest.mark.parametrize("t0, t1", [(0.05, 0.95), (0.95, 0.05)])
def test_dpm_solver_pp_2m_is_second_order_on_the_exact_field(eight_points, schedule, t0, t1):
    # Away from t=1, where the empirical field's posterior collapses and the field stiffens. A
    # backward solve starts from points the forward flow reaches, as encoding data would.
    data, z = eight_points
    field = lambda z, t: exact_velocity(z, t, data, schedule)  # noqa: E731
    if t0 > t1:
        z = integrate(field, z, "dopri5", 1, t0=t1, t1=t0, rtol=1e-10, atol=1e-10).z_end
    exact = integrate(field, z, "dopri5", 1, t0=t0, t1=t1, rtol=1e-10, atol=1e-10).z_end
    steps = [64, 128, 256]
    errors = [
        (integrate(field, z, "dpm++2m", k, t0=t0, t1=t1, schedule=schedule, grid="logsnr").z_end - exact)
        .abs()
        .max()
        .item()
        for k in steps
    ]
    assert observed_order(steps, errors) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_nfe_is_the_number_of_velocity_calls(solver):
    counter = CallCounter(rotation_field)
    trajectory = integrate(counter, Z_START, solver, 7, schedule="linear", t0=0.1, t1=0.9)
    assert trajectory.nfe == counter.calls > 0
    if not SOLVERS[solver].adaptive:
        assert trajectory.nfe == nfe_for(solver, 7) and trajectory.steps == 7


def test_nfe_for_previews_fixed_step_cost_and_declines_for_adaptive():
    assert (nfe_for("euler", 20), nfe_for("midpoint", 10), nfe_for("rk4", 5), nfe_for("dpm++2m", 20)) == (
        20,
        20,
        20,
        20,
    )
    assert nfe_for("dopri5", 20) is None
    with pytest.raises(ValueError, match="unknown solver"):
        nfe_for("leapfrog", 3)


@pytest.mark.parametrize("solver", [s for s in SOLVERS if s != "dpm++2m"])
def test_forward_then_backward_returns_to_the_start(solver):
    steps = 64
    forward = integrate(rotation_field, Z_START, solver, steps, rtol=1e-9, atol=1e-9)
    back = integrate(rotation_field, forward.z_end, solver, steps, t0=1.0, t1=0.0, rtol=1e-9, atol=1e-9)
    # Each leg's global error is O(h^order); the round trip adds the two.
    tolerance = 1e-7 if SOLVERS[solver].adaptive else 10.0 * (1.0 / steps) ** SOLVERS[solver].order
    assert (back.z_end - Z_START).abs().max().item() < tolerance
    assert torch.equal(back.ts, forward.ts.flip(0))


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp"])
def test_dpm_solver_pp_2m_round_trip_on_the_exact_field(eight_points, schedule):
    data, z = eight_points
    field = lambda z, t: exact_velocity(z, t, data, schedule)  # noqa: E731
    options = dict(solver="dpm++2m", schedule=schedule, grid="logsnr")
    errors = []
    for steps in (64, 128):
        there = integrate(field, z, steps=steps, t0=0.05, t1=0.9, **options)
        back = integrate(field, there.z_end, steps=steps, t0=0.9, t1=0.05, **options)
        errors.append((back.z_end - z).abs().max().item())
    # Each leg is second order, so the round trip's error is too: halving the step quarters it.
    assert errors[0] < 1e-2 and math.log2(errors[0] / errors[1]) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_dpm_solver_pp_2m_takes_the_exact_limits_at_pure_noise_and_at_the_data(eight_points, schedule):
    # Starting where alpha = 0 the log-SNR step is infinite and the update is sigma_t z + alpha_t D;
    # arriving where sigma = 0 it is D(z_s) itself. No NaN either way.
    data, z = eight_points
    field = lambda z, t: exact_velocity(z, t, data, schedule)  # noqa: E731
    sampled = integrate(field, z, "dpm++2m", 6, schedule=schedule, grid="logsnr")
    assert torch.isfinite(sampled.zs).all()
    first = get_schedule(schedule)(sampled.ts[1])
    mean = data.mean(0)  # at t=0 the posterior is the prior: every data point equally likely
    torch.testing.assert_close(sampled.zs[1], first.sigma * z + first.alpha * mean)
    last_but_one = sampled.zs[-2]
    torch.testing.assert_close(
        sampled.z_end,
        exact_posterior_mean(last_but_one, sampled.ts[-2], data, schedule),
        rtol=1e-12,
        atol=1e-12,
    )

    encoded = integrate(field, sampled.z_end, "dpm++2m", 6, t0=1.0, t1=0.0, schedule=schedule, grid="logsnr")
    assert torch.isfinite(encoded.zs).all()
    # Arriving at t=0 (alpha = 0) backward gives sigma_0 times the noise prediction, sigma_0 = 1.
    t_s = encoded.ts[-2]
    s = get_schedule(schedule)(t_s)
    _, noise = to_endpoints(field(encoded.zs[-2], t_s), "velocity", encoded.zs[-2], s)
    torch.testing.assert_close(encoded.z_end, noise)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("tol", [1e-5, 1e-8])
def test_dopri5_meets_its_tolerance_at_every_output_time(tol, direction):
    t0, t1 = (0.0, 1.0) if direction == "forward" else (1.0, 0.0)
    trajectory = integrate(rotation_field, Z_START, "dopri5", 50, t0=t0, t1=t1, rtol=tol, atol=tol)
    assert trajectory.zs.shape == (51, *Z_START.shape) and trajectory.steps > 0
    exact = torch.stack([rotation_solution(Z_START, t0, float(t)) for t in trajectory.ts])
    # Each of the ~10 accepted steps keeps its local error under the tolerance; the global error
    # adds them up, and the 4th-order dense output between nodes adds a few more (torchdiffeq's,
    # with the same tableau and norm, is the same to 3 digits: 2.1 tol at 1e-5, 14.6 tol at 1e-8).
    assert (trajectory.zs - exact).abs().max().item() < 20 * tol


def test_dopri5_spends_more_evaluations_for_a_tighter_tolerance():
    loose = integrate(rotation_field, Z_START, "dopri5", 1, rtol=1e-4, atol=1e-4)
    tight = integrate(rotation_field, Z_START, "dopri5", 1, rtol=1e-10, atol=1e-10)
    assert tight.nfe > 2 * loose.nfe


@pytest.fixture(scope="module")
def blurred_field():
    """The exact field of 40 points blurred by 0.1 (finite at t=1, as in the app) and 64 particles."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(40, 2, generator=g, dtype=torch.float64)
    schedule = Blurred("linear", 0.1)
    return (lambda z, t: exact_velocity(z, t, data, schedule)), torch.randn(64, 2, generator=g, dtype=F64)


def test_dopri5_cost_follows_its_tolerance_not_its_output_times(blurred_field):
    field, z = blurred_field
    nfe = {
        (tol, outputs): integrate(field, z, "dopri5", outputs, rtol=tol, atol=tol).nfe
        for tol in (1e-3, 1e-7)
        for outputs in (1, 50)
    }
    assert nfe[1e-3, 50] <= 0.5 * nfe[1e-7, 50]
    # Output times are read off the dense output: asking for 50 of them adds no step.
    assert nfe[1e-3, 50] == nfe[1e-3, 1] and nfe[1e-7, 50] == nfe[1e-7, 1]


@pytest.mark.parametrize("tol", [1e-3, 1e-5, 1e-7])
@pytest.mark.parametrize("field_name", ["rotation", "blurred"])
def test_dopri5_needs_no_more_evaluations_than_torchdiffeq(blurred_field, field_name, tol):
    torchdiffeq = pytest.importorskip("torchdiffeq")
    field, z = (rotation_field, Z_START) if field_name == "rotation" else blurred_field
    ts = torch.linspace(0.0, 1.0, 51, dtype=F64)
    counter = CallCounter(lambda t, y: field(y, t))
    torchdiffeq.odeint(
        counter, z, ts, method="dopri5", rtol=tol, atol=tol, options=dict(norm=lambda x: x.abs().max())
    )
    ours = integrate(field, z, "dopri5", 50, rtol=tol, atol=tol)
    # Same tableau, controller and max norm; torchdiffeq's last step overshoots t=1, ours lands on it.
    assert 0.8 * counter.calls <= ours.nfe <= 1.1 * counter.calls


@pytest.mark.parametrize("tol", [1e-4, 1e-5, 1e-6])
def test_dopri5_on_the_exact_field_is_as_accurate_as_torchdiffeq(blurred_field, tol):
    # A tolerance bounds each step's local error; the global error sums ~10 of them, amplified by
    # the flow: measured here 18-34 tol at the 50 output times, and torchdiffeq (same tableau, norm
    # and controller) errs as much or more (26-146 tol).
    torchdiffeq = pytest.importorskip("torchdiffeq")
    field, z = blurred_field
    reference = integrate(field, z, "dopri5", 50, rtol=1e-12, atol=1e-12)
    ours = integrate(field, z, "dopri5", 50, rtol=tol, atol=tol)
    theirs = torchdiffeq.odeint(
        lambda t, y: field(y, t),
        z,
        reference.ts,
        method="dopri5",
        rtol=tol,
        atol=tol,
        options=dict(norm=lambda x: x.abs().max()),
    )
    error = (ours.zs - reference.zs).abs().max().item()
    assert error < 40 * tol
    assert error <= 1.01 * (theirs - reference.zs).abs().max().item()


def test_dense_output_is_fourth_order_and_exact_at_both_ends():
    # One step of size h from t=0.3, read at 37% of the way: a 4th-order interpolant's local error
    # is O(h^5), so halving h divides it by 32.
    errors = []
    for h in (0.2, 0.1, 0.05, 0.025):
        state = SolverState(rtol=1e9, atol=1e9, t_end=0.3 + h)  # accept any step
        z = rotation_solution(Z_START, 0.0, 0.3)
        carry = Dopri5State(t=0.3, z=z, k=rotation_field(z, torch.tensor(0.3, dtype=F64)), h=h)
        _advance(rotation_field, carry, state)
        step = carry.last
        torch.testing.assert_close(step.at(0.3), z, rtol=0, atol=1e-15)
        torch.testing.assert_close(step.at(0.3 + h), carry.z, rtol=0, atol=1e-15)
        s = 0.3 + 0.37 * h
        errors.append((step.at(s) - rotation_solution(Z_START, 0.0, s)).abs().max().item())
    assert observed_order([5, 10, 20, 40], errors) == pytest.approx(5.0, abs=0.3)


def test_step_size_controller_never_shrinks_after_an_accepted_step():
    controller = StepSizeController()
    assert controller.next_step(0.1, 0.0, 5) == pytest.approx(1.0)  # max_factor
    assert controller.next_step(0.1, 0.9, 5) == pytest.approx(0.1)  # 0.9 * 0.9^-0.2 < 1: kept
    assert controller.next_step(0.1, 1e-5, 5) == pytest.approx(0.1 * 0.9 * 1e-5**-0.2)
    assert controller.next_step(-0.1, 2.0, 5) == pytest.approx(-0.1 * 0.9 * 2.0**-0.2)
    assert controller.next_step(0.1, 1e9, 5) == pytest.approx(0.02)  # min_factor


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("blow_up", ["overflow", "nan"])
def test_a_field_that_returns_non_finite_values_raises_solver_error(solver, blow_up):
    # A model with weights ~1e30 overflows float32; a broken one returns NaN after some time.
    def field(z, t):
        if blow_up == "overflow":
            return z * 1e30 * 1e30
        return torch.full_like(z, math.nan) if t > 0.5 else -z

    with pytest.raises(SolverError, match="non-finite values") as raised:
        integrate(field, Z_START.float(), solver, 8, schedule="linear")
    assert isinstance(raised.value, RuntimeError)
    if blow_up == "nan":
        assert float(re.search(r"at t=([0-9.e+-]+)", str(raised.value)).group(1)) > 0.5


def test_dopri5_on_a_field_too_stiff_to_follow_raises_solver_error():
    # Finite but growing like e^(1e30 t): no step above 1e-14 meets the tolerance.
    with pytest.raises(SolverError, match="cannot meet rtol"):
        integrate(lambda z, t: 1e30 * z, Z_START, "dopri5", 4)


def test_trajectory_keeps_every_state_on_the_grid():
    trajectory = integrate(rotation_field, Z_START, "heun", 10, grid="power", schedule="linear")
    assert isinstance(trajectory, Trajectory)
    assert trajectory.ts.shape == (11,) and trajectory.zs.shape == (11, 3, 2)
    assert torch.equal(trajectory.zs[0], Z_START) and torch.equal(trajectory.z_end, trajectory.zs[-1])
    assert trajectory.solver == "heun"
    with pytest.raises(AttributeError):
        trajectory.nfe = 0


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp"])
@pytest.mark.parametrize("grid", list(TIME_GRIDS))
def test_every_grid_runs_from_t0_to_t1_strictly_monotone(grid, schedule):
    for t0, t1 in [(0.0, 1.0), (1.0, 0.0), (0.2, 0.7), (0.0, 5e-4), (0.9995, 1.0)]:
        ts = time_grid(grid, 12, t0, t1, schedule)
        assert ts.shape == (13,) and ts[0] == t0 and ts[-1] == t1
        assert ((ts[1:] - ts[:-1]) * math.copysign(1.0, t1 - t0) > 0).all()
        assert torch.equal(time_grid(grid, 12, t1, t0, schedule), ts.flip(0))


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp"])
def test_logsnr_grid_is_uniform_in_log_snr_inside_the_end_points(schedule):
    ts = time_grid("logsnr", 10, 0.0, 1.0, schedule)
    lam = get_schedule(schedule).log_snr(ts[1:-1])
    torch.testing.assert_close(lam.diff(), lam.diff().mean().expand(8), rtol=1e-8, atol=0.0)


def test_power_grid_puts_its_steps_near_the_data():
    steps = time_grid("power", 10, 0.0, 1.0).diff()
    assert (steps.diff() < 0).all() and steps[-1] < steps[0] / 50


def test_evaluations_stop_at_the_schedules_t_max():
    seen = []

    def field(z, t):
        seen.append(float(t))
        return -z

    integrate(field, Z_START, "rk4", 4, schedule="vp")
    assert max(seen) == pytest.approx(get_schedule("vp").t_max)


def test_no_graph_is_kept_unless_asked():
    w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    field = lambda z, t: -w * z  # noqa: E731
    assert not integrate(field, Z_START, "rk4", 4).z_end.requires_grad
    end = integrate(field, Z_START, "rk4", 4, track_grad=True).z_end
    (grad,) = torch.autograd.grad(end.sum(), w)
    # z(1) = e^{-w} z(0), so d/dw sum z(1) = -e^{-w} sum z(0) up to RK4's error.
    assert grad.item() == pytest.approx(-math.exp(-0.5) * Z_START.sum().item(), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(solver="leapfrog"), "unknown solver 'leapfrog'; choose one of euler, midpoint"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(steps=2.5), "steps must be an integer >= 1"),
        (dict(steps=True), "steps must be an integer >= 1"),
        (dict(solver="dpm++2m"), "pass schedule="),
        (dict(t0=0.3, t1=0.3), "t0 != t1"),
        (dict(grid="chebyshev"), "unknown time grid 'chebyshev'; choose one of uniform"),
        (dict(grid="logsnr"), "defined by a schedule"),
        (dict(schedule="linear", t1=1.5), r"times must lie in \[0, 1\]"),
        (dict(solver="dopri5", rtol=0.0, atol=0.0), "not both 0"),
        (dict(solver="dopri5", rtol=-1e-3), "rtol, atol >= 0"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        integrate(rotation_field, Z_START, **kwargs)


def test_non_finite_start_is_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        integrate(rotation_field, torch.tensor([[0.0, math.nan]]))


def test_a_velocity_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="velocity returned shape"):
        integrate(lambda z, t: z[:, :1], Z_START, "euler", 2)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_a_zero_length_step_leaves_the_state_alone(solver):
    # 2000 steps of the power grid in float32 put several times near t=1 onto the same float.
    z = Z_START.float()
    trajectory = integrate(lambda z, t: -z, z, solver, 2000, grid="power", schedule="linear")
    assert (trajectory.ts.diff() == 0).any()
    assert torch.isfinite(trajectory.zs).all()


def test_dpm_solver_on_a_schedule_whose_velocity_vanishes_at_noise():
    # Polynomial t^2: d_alpha = d_sigma = 0 at t=0, so v says nothing about z_1 there.
    from fmcore import exact_velocity, integrate

    g = torch.Generator().manual_seed(0)
    data = torch.randn(6, 2, generator=g, dtype=torch.float64)
    z0 = torch.randn(100, 2, generator=g, dtype=torch.float64)

    def v(z, t):
        return exact_velocity(z, t, data, "polynomial")

    ends = integrate(v, z0, solver="dpm++2m", steps=40, schedule="polynomial").zs[-1]
    reference = integrate(v, z0, solver="rk4", steps=200, grid="power").zs[-1]
    assert torch.isfinite(ends).all()
    assert (ends - reference).norm(dim=1).median() < 0.05


def test_a_trajectory_at_its_nodes_is_its_states_and_between_them_the_line():
    """Trajectory.at: exact at every node (also of a non-uniform grid), linear between, clamped
    outside; a constant field's Euler path is a line, so at any time it is z0 + t v."""
    from fmcore import Trajectory

    z0, v = torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.tensor([0.3, 2.0])
    trajectory = integrate(lambda z, t: v.expand_as(z), z0, "euler", 7, grid="power")
    torch.testing.assert_close(trajectory.at(trajectory.ts), trajectory.zs)
    times = torch.linspace(0.0, 1.0, 51)
    torch.testing.assert_close(trajectory.at(times), z0 + times[:, None, None].float() * v)
    two = Trajectory(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([[[0.0]], [[1.0]], [[5.0]]]), 2, "euler", 2)
    at = two.at(torch.tensor([-1.0, 0.25, 0.5, 0.75, 2.0])).flatten().tolist()
    assert at == [0.0, 0.5, 1.0, 3.0, 5.0]
