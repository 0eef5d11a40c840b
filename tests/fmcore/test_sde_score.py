"""The SDE's score is the velocity's (issue 16): the linear path's closed form, and the endpoints.

On z_t = t z_1 + (1 - t) z_0, v = E[z_1 - z_0 | z_t] gives E[z_0 | z_t] = z - t v, and Tweedie's
formula grad log p_t = -E[z_0 | z_t] / sigma_t (Efron 2011, "Tweedie's formula and selection bias")
gives grad log p_t(z) = (t v - z) / (1 - t): an identity in v, so any v checks it.
"""

import torch

import fmcore
from fmcore import convert, datasets, sample_sde


def test_on_the_linear_path_the_score_is_t_v_minus_z_over_one_minus_t():
    g = torch.Generator().manual_seed(0)
    z, v = (
        torch.randn(200, 2, generator=g, dtype=torch.float64),
        torch.randn(200, 2, generator=g, dtype=torch.float64),
    )
    for t in (0.05, 0.3, 0.5, 0.9, 0.999):
        score = convert(v, z, t, "linear", "velocity", "score")
        torch.testing.assert_close(score, (t * v - z) / (1 - t), rtol=1e-12, atol=1e-12)


def test_the_field_of_bare_points_is_never_asked_where_sigma_or_alpha_vanish():
    """The exact field of unblurred points blows up at t = 1 (sigma = 0), its score at t = 0 needs
    alpha > 0: the sampler asks the velocity only at t < 1, takes the exact N(0, I) score at t = 0,
    and its samples stay finite at every noise level."""
    data = datasets.sample("moons", 200, seed=0)
    asked = []

    def velocity(z, t):
        asked.append(float(t))
        return fmcore.exact_velocity(z, t, data, "linear")

    z0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(1))
    for noise in (0.5, 1.0, 3.0):
        trajectory = sample_sde(velocity, z0, "linear", noise=noise, steps=50, seed=2)
        assert torch.isfinite(trajectory.zs).all() and trajectory.nfe == 50
    assert 0.0 in asked and max(asked) < 1.0
