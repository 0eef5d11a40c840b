"""The diffusion baseline: noise prediction on VP, sampled by the reverse SDE and the PF-ODE."""

import pytest
import torch

from fmcore import Trainer, datasets
from fmcore.diffusion import diffusion_trainer, sample_ode, sample_reverse_vp
from fmcore.metrics import energy_distance
from fmcore.schedules import SCHEDULES


@pytest.fixture(scope="module")
def trained():
    trainer = diffusion_trainer(datasets.sample("moons", 512, seed=0), seed=0)
    stats = trainer.step(1500)
    assert stats.status == "ok"
    return trainer


def test_it_is_a_noise_prediction_trainer_on_vp(trained):
    assert trained.schedule.name == "vp" and trained.options["prediction"] == "noise"
    assert trained.flow.prediction == "noise"
    with pytest.raises(ValueError, match="fixes schedule"):
        diffusion_trainer(datasets.sample("moons", 16), schedule="linear")


def test_probability_flow_drift_is_the_path_velocity(trained):
    # PF-ODE: dz/dt = 1/2 beta (z + score); it must equal the velocity that paths.convert derives
    # from the same noise prediction (both are exact identities of the VP path).
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for t in (0.1, 0.5, 0.9):
        beta = float(SCHEDULES["vp"].beta(torch.tensor(t)))
        drift = 0.5 * beta * (z + trained.flow.predict(z, t, "score"))
        assert torch.allclose(drift, trained.velocity(z, t), rtol=1e-4, atol=1e-4)


def test_sde_and_ode_samples_are_near_the_data(trained):
    fresh = datasets.sample("moons", 1000, seed=7)
    noise = energy_distance(torch.randn(1000, 2, generator=torch.Generator().manual_seed(1)), fresh)
    sde = sample_reverse_vp(trained, 1000, steps=100, seed=1)
    ode = sample_ode(trained, 1000, solver="rk4", steps=20, seed=1)
    assert sde.zs.shape == (101, 1000, 2) and sde.nfe == 100 and torch.isfinite(sde.zs).all()
    assert ode.nfe == 80 and ode.ts[-1] == 1.0
    # Pure noise is ~0.05 from the data here; the sampling noise floor of 1000 vs 512 points is
    # ~0.002. Both samplers must close all but a few percent of the gap.
    assert energy_distance(sde.zs[-1], fresh) < 0.1 * noise
    assert energy_distance(ode.zs[-1], fresh) < 0.1 * noise


def test_sde_is_stochastic_and_seeded(trained):
    z0 = torch.randn(200, 2)
    a, b, c = (sample_reverse_vp(trained, steps=10, seed=s, z0=z0).zs[-1] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sde_needs_the_vp_path():
    linear = Trainer(datasets.sample("moons", 32), schedule="linear")
    with pytest.raises(ValueError, match="VP"):
        sample_reverse_vp(linear, 10, steps=5)
