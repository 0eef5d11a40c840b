"""Lesson 7's numbers: the instantaneous change of variables along paths, and fmcore.log_likelihood
of the exact field, both against the closed-form density of the blurred data."""

from __future__ import annotations

import numpy as np
import torch

from explorer.lessons import l7_continuity


def test_minus_the_integrated_divergence_is_the_closed_form_log_density_along_paths():
    along = l7_continuity.density_along_paths("moons", n=4, steps=200)
    # Trapezoid rule on 201 nodes: its error is O(h^2) times the divergence's curvature, far below 0.01.
    assert np.abs(along.closed - along.integrated).max() < 0.01
    assert (along.closed[-1] > along.closed[0]).all(), "particles land where the density is higher"
    assert (along.divergence.mean(0) < 0).all(), "on average over the way, the field converges"


def test_the_change_of_variables_likelihood_converges_to_the_closed_form():
    torch.manual_seed(0)
    coarse = l7_continuity.likelihood_maps("moons", steps=2, grid=16)
    fine = l7_continuity.likelihood_maps("moons", steps=20, grid=16)
    assert fine.flow_error < 0.1 < coarse.flow_error
    assert fine.nfe == 80
    assert fine.prior_only_error > 10 * fine.flow_error, "dropping the divergence is badly wrong"
