"""Lesson 3's comparison: every model is sampled by two members of one SDE family (fmcore.sample_sde,
noise 1 the schedule's reverse diffusion SDE, noise 0 its ODE), so like is compared with like."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fmcore
from explorer.lessons import l3_fm_vs_diffusion as l3
from explorer.lessons.shared import lesson_noise
from fmcore.diffusion import diffusion_trainer, sample_ode
from fmcore.trainer import Trainer

TRAIN_STEPS = 300


@pytest.fixture(scope="module")
def comparison() -> l3.Comparison:
    return l3.fm_vs_diffusion("moons", TRAIN_STEPS)


def test_every_model_has_a_reverse_sde_member_and_an_ode_member():
    models = {model for model, _ in l3.MEMBERS.values()}
    assert models == {"diffusion", "vp velocity", "flow matching"}
    for model in models:
        assert sorted(noise for m, noise in l3.MEMBERS.values() if m == model) == [0.0, 1.0]
    assert set(l3.MEMBERS) == set(l3.SAMPLERS)


def test_the_ode_member_is_each_models_ode_bit_for_bit():
    data = fmcore.datasets.sample("moons", 500, seed=0)
    diffusion, flow = diffusion_trainer(data, seed=0), Trainer(data, schedule="linear", seed=0)
    diffusion.step(20), flow.step(20)
    z0 = lesson_noise(50, 5)
    pf_ode = sample_ode(diffusion, solver="euler", steps=10, z0=z0).zs
    assert torch.equal(l3.sample(diffusion, z0, 0.0, 10, 0).zs, pf_ode)
    fm_ode = fmcore.integrate(flow.velocity, z0, "euler", 10, schedule="linear").zs
    assert torch.equal(l3.sample(flow, z0, 0.0, 10, 0).zs, fm_ode)


def test_both_members_reach_the_same_marginal_for_every_model(comparison):
    """The members share p_1: at 100 steps each model's SDE and ODE samples are equally close to the data.

    Energy distances of 600 samples scatter by about 0.002; the models' own errors (300 training steps)
    are about 0.01, so 0.015 separates "the same p_1" from "another distribution".
    """
    at_100 = comparison.steps.index(100)
    for model in ("diffusion", "vp velocity", "flow matching"):
        sde, ode = (
            next(k for k, (m, g) in l3.MEMBERS.items() if m == model and g == noise) for noise in (1, 0)
        )
        assert comparison.energy[sde][at_100] < 0.02, f"{model} sampled by its reverse SDE misses the data"
        assert abs(comparison.energy[sde][at_100] - comparison.energy[ode][at_100]) < 0.015


def test_the_sde_members_paths_are_rough_and_the_odes_smooth(comparison):
    """Brownian increments make a path's summed squared steps O(1) however fine the grid; an ODE's go to 0."""

    def quadratic_variation(paths: np.ndarray) -> float:
        return float(np.square(np.diff(paths, axis=0)).sum(axis=(0, 2)).mean())

    for sde, ode in (("sde", "pf_ode"), ("vp_sde", "vp_ode"), ("fm_sde", "fm_ode")):
        assert quadratic_variation(comparison.paths[sde]) > 10 * quadratic_variation(comparison.paths[ode])
        np.testing.assert_array_equal(comparison.paths[sde][0], comparison.paths[ode][0])


def test_fewest_steps_and_the_table_read_the_measured_energies(comparison):
    rows = comparison.table(0.006)
    assert [row["sampler"] for row in rows] == list(l3.SAMPLERS.values())
    for key, row in zip(l3.SAMPLERS, rows, strict=True):
        fewest = comparison.fewest_steps(key, 0.006)
        energy = comparison.energy[key]
        if fewest is None:
            assert (energy > 0.006).all() and row["steps to ≤ 0.006"] == "> 100"
        else:
            i = comparison.steps.index(fewest)
            assert energy[i] <= 0.006 and (energy[:i] > 0.006).all()
