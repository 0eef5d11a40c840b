"""The exact field as the Playground computes it (float32, fast logits) against float64 and the solver's error."""

import numpy as np
import pytest
import torch

import fmcore
from explorer.core import data, fields, flows
from explorer.figures.marks import speed_scale


def _float64_velocity(dataset):
    points = torch.from_numpy(dataset.shown).double()
    path = fmcore.Blurred("linear", flows.EXACT_BANDWIDTH)
    return lambda z, t: fmcore.exact_velocity(z, t, points, path)


@pytest.mark.parametrize("name", ["moons", "checkerboard", "rings", "spirals"])
def test_float32_field_error_is_far_below_the_rk4_20_step_error(name):
    # What the view shows is RK4-20's samples: its own step error (vs RK4-200, both float64) is what
    # a person sees. The float32 field (FLOAT32_LOGIT_ERROR, float32 sums) moves the samples by
    # about 1e-3 of that on every preset (measured 5e-4 to 2e-3); asserted below 1e-2.
    dataset = data.preset_dataset(name, 0)
    z0 = data.noise_particles(300, 0)
    shown = flows.compute_flow(flows.exact_source(dataset, "linear"), z0, "rk4", 20, "uniform").samples
    v64, start = _float64_velocity(dataset), torch.from_numpy(z0).double()
    same_steps = fmcore.integrate(v64, start, solver="rk4", steps=20).zs[-1].numpy()
    reference = fmcore.integrate(v64, start, solver="rk4", steps=200).zs[-1].numpy()
    precision_error = np.abs(shown - same_steps).max()
    step_error = np.abs(same_steps - reference).max()
    assert precision_error < 1e-2 * step_error, (precision_error, step_error)


def test_float32_arrows_match_float64_to_a_thousandth_of_their_scale():
    dataset = data.preset_dataset("moons", 0)
    arrows = fields.field_frames(flows.exact_source(dataset, "linear"))
    v64, grid = _float64_velocity(dataset), torch.from_numpy(fields.arrow_grid()).double()
    want = np.stack(
        [v64(grid, torch.tensor(float(t), dtype=torch.float64)).numpy() for t in flows.frame_times()]
    )
    assert np.abs(arrows - want).max() < 1e-3 * speed_scale(want)
