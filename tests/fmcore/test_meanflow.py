"""MeanFlow: the identity on a closed form, exact few-step sampling, training, saving."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from fmcore import (
    AverageVelocityMLP,
    Trainer,
    datasets,
    integrate,
    load,
    meanflow_target,
    sample_mean_flow,
)
from fmcore.metrics import energy_distance

# A Gaussian-to-Gaussian linear path: z_1 ~ N(MU, S^2 I), z_0 ~ N(0, I), z_t = t z_1 + (1 - t) z_0.
# Its marginals are N(m_t, std_t^2 I) with m_t = t MU, std_t^2 = t^2 S^2 + (1 - t)^2, and its flow
# map is affine: z_r -> m_t + (std_t / std_r)(z_r - m_r). So the average velocity is known exactly.
MU = torch.tensor([1.5, -0.5], dtype=torch.float64)
S = 0.3


def _std(t):
    return torch.sqrt(t**2 * S**2 + (1 - t) ** 2)


def _col(x):
    return x.reshape(-1, 1) if x.dim() else x


def exact_velocity(z, t):
    """v(z, t) = dm_t/dt + (dstd_t/dt / std_t)(z - m_t)."""
    std = _std(t)
    d_std = (t * S**2 - (1 - t)) / std
    return MU + _col(d_std / std) * (z - _col(t) * MU)


def flow_map(z_r, r, t):
    return _col(t) * MU + _col(_std(t) / _std(r)) * (z_r - _col(r) * MU)


def exact_average_velocity(z_r, r, t):
    """u(z_r, r, t) = (flow_map(z_r) - z_r) / (t - r), for r < t."""
    return (flow_map(z_r, r, t) - z_r) / _col(t - r)


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    n = 64
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    r = t * torch.rand(n, generator=g, dtype=torch.float64) * 0.99
    z_r = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z_r, r, t


def test_the_identity_holds_on_the_closed_form(batch):
    z_r, r, t = batch
    u, target = meanflow_target(exact_average_velocity, z_r, r, t, exact_velocity(z_r, r))
    assert torch.allclose(u, exact_average_velocity(z_r, r, t))
    # u = v + (t - r) d/dr u holds to rounding (float64): the sign and the tangent (v, 1, 0) are right.
    assert (target - u).abs().max() < 1e-10
    # The paper's form taken literally in this convention (derivative along t, minus sign) is wrong.
    _, du_dt = torch.func.jvp(
        exact_average_velocity, (z_r, r, t), (exact_velocity(z_r, r), torch.zeros_like(r), torch.ones_like(t))
    )
    literal = exact_velocity(z_r, r) - (t - r)[:, None] * du_dt
    assert (literal - u).abs().max() > 0.1


def test_integrating_the_exact_field_gives_the_closed_form_average(batch):
    z_r, r, t = batch
    for i in range(0, len(r), 16):  # integrate takes scalar end times: a few rows, one at a time
        trajectory = integrate(exact_velocity, z_r[i : i + 1], "rk4", 200, t0=float(r[i]), t1=float(t[i]))
        u_integrated = (trajectory.z_end - z_r[i : i + 1]) / (t[i] - r[i])
        # rk4 with 200 steps on a smooth field: error far below 1e-8.
        assert torch.allclose(u_integrated, exact_average_velocity(z_r[i : i + 1], r[i], t[i]), atol=1e-8)


def test_the_average_over_an_empty_interval_is_the_velocity(batch):
    z_r, _, t = batch
    # u(z, t - h, t) = v(z, t) + O(h): at h = 1e-7 in float64 the gap is ~1e-7 times a unit-size derivative.
    near = exact_average_velocity(z_r, t - 1e-7, t)
    assert (near - exact_velocity(z_r, t)).abs().max() < 1e-5
    net = AverageVelocityMLP()
    z = z_r.float()
    assert torch.equal(net(z, t.float()), net(z, t.float(), r=t.float()))
    assert not torch.allclose(net(z, t.float()), net(z, t.float(), r=torch.zeros_like(t).float()))


@pytest.mark.parametrize("steps", [1, 2, 4, 7])
def test_k_steps_of_the_exact_average_velocity_are_exact(steps):
    z0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    trajectory = sample_mean_flow(exact_average_velocity, z0, steps=steps)
    assert (
        trajectory.nfe == steps and trajectory.steps == steps and trajectory.zs.shape == (steps + 1, 500, 2)
    )
    assert torch.allclose(trajectory.ts, torch.linspace(0, 1, steps + 1, dtype=torch.float64))
    # The exact flow map from t = 0 to 1 is z_0 -> MU + S z_0; every intermediate state is on the flow.
    assert torch.allclose(trajectory.z_end, MU + S * z0, atol=1e-12)
    for k, t in enumerate(trajectory.ts):
        assert torch.allclose(trajectory.zs[k], flow_map(z0, torch.tensor(0.0, dtype=torch.float64), t))


@pytest.fixture(scope="module")
def moons():
    return datasets.sample("moons", 1000, seed=0)


@pytest.fixture(scope="module")
def meanflow_trainer(moons):
    trainer = Trainer(moons, objective="meanflow", seed=0, lr=5e-3)
    trainer.step(1200)
    return trainer


def test_training_makes_one_step_samples_far_better_than_one_euler_step(moons, meanflow_trainer):
    flow = Trainer(moons, seed=0)
    flow.step(600)
    z0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(2))
    fresh = datasets.sample("moons", 1000, seed=3)
    one_euler = integrate(flow.velocity, z0, "euler", 1)
    one_jump = sample_mean_flow(meanflow_trainer, z0, steps=1)
    assert one_euler.nfe == one_jump.nfe == 1
    # One Euler step of a flow lands at E[z_1 | z_0] ~ the data mean: a collapsed cloud.
    euler_distance = energy_distance(one_euler.z_end, fresh)
    meanflow_distance = energy_distance(one_jump.z_end, fresh)
    assert meanflow_distance < 0.1 * euler_distance
    assert meanflow_trainer.status == "ok" and math.isnan(meanflow_trainer.loss_floor)


def test_the_instantaneous_field_is_the_average_at_r_equal_t(meanflow_trainer):
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    for t in (0.0, 0.3, 1.0):
        assert torch.equal(meanflow_trainer.velocity(z, t), meanflow_trainer.flow.average_velocity(z, t, t))
    # The velocity still samples by ODE: many Euler steps of u(z, t, t) agree with the learnt jumps.
    fresh = datasets.sample("moons", 1000, seed=5)
    z0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(6))
    ode = integrate(meanflow_trainer.velocity, z0, "rk4", 20).z_end
    jumps = sample_mean_flow(meanflow_trainer, z0, steps=4).z_end
    assert energy_distance(ode, fresh) < 0.05 and energy_distance(jumps, fresh) < 0.05


def test_save_and_load_keep_the_objective(tmp_path, moons, meanflow_trainer):
    path = tmp_path / "f.safetensors"
    meanflow_trainer.save(path)
    model = load(path)
    assert model.objective == "meanflow" and isinstance(model.net, AverageVelocityMLP)
    z0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample_mean_flow(model, z0, 2).z_end, sample_mean_flow(meanflow_trainer, z0, 2).z_end)
    # A flow model's file from before the objective was recorded still loads as a flow model.
    flow = Trainer(moons, seed=0)
    flow.save(path)
    metadata = json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])
    old = {k: v for k, v in metadata["__metadata__"].items() if k != "objective"}
    save_file(load_file(path), path, metadata=old)
    assert load(path).objective == "flow"
    with pytest.raises(ValueError, match="no average velocity"):
        sample_mean_flow(load(path), z0)


def test_a_meanflow_trainer_resumes_exactly(moons):
    trainer = Trainer(moons, objective="meanflow", seed=3)
    trainer.step(20)
    copy = Trainer.from_state_dict(trainer.state_dict())
    assert copy.objective == "meanflow"
    assert trainer.step(10).loss == copy.step(10).loss


def test_bad_meanflow_input_is_refused(moons):
    with pytest.raises(ValueError, match="unknown objective"):
        Trainer(moons, objective="magic")
    with pytest.raises(ValueError, match="prediction='velocity'"):
        Trainer(moons, objective="meanflow", schedule="vp", prediction="noise")
    with pytest.raises(ValueError, match="steps must be"):
        sample_mean_flow(exact_average_velocity, torch.zeros(3, 2), steps=0)
    with pytest.raises(ValueError, match="NaN"):
        sample_mean_flow(exact_average_velocity, torch.full((3, 2), math.nan))
    with pytest.raises(ValueError, match="cannot warm start"):
        Trainer(moons, objective="meanflow").warm_start(Trainer(moons))
