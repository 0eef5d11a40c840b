"""VelocityMLP's inputs: Fourier features of z as documented, the old net when they are off, and
what they are for (thin structures learnt in fewer steps)."""

import math

import pytest
import torch

from fmcore import Trainer, datasets, exact_log_density, exact_velocity
from fmcore.models import AverageVelocityMLP, ModelConfig, VelocityMLP


def test_space_features_are_the_documented_octaves_of_each_coordinate():
    net = VelocityMLP(ModelConfig(dim=2, z_freqs=3, n_freqs=4))
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    features = net.space_features(z)
    assert features.shape == (7, 2 * 2 * 3)
    # Layout: [sin(pi f_j z_i)] for (i, j) coordinate-major, then the cosines; f_j = 1, 2, 4.
    expected_sin = torch.stack([torch.sin(math.pi * f * z[:, i]) for i in range(2) for f in (1, 2, 4)], 1)
    torch.testing.assert_close(features[:, :6], expected_sin)
    torch.testing.assert_close(
        features[:, 6:],
        torch.stack([torch.cos(math.pi * f * z[:, i]) for i in range(2) for f in (1, 2, 4)], 1),
    )
    # The lowest frequency has period 2 in each coordinate, so the features repeat there.
    torch.testing.assert_close(net.space_features(z + 2.0), features, atol=1e-5, rtol=0)
    assert net.net[0].in_features == 2 + 2 * 2 * 3 + 2 * 4


def test_without_space_features_the_net_is_the_old_one():
    # Files saved before z_freqs existed carry no such key: they must build the same network.
    old = ModelConfig.from_dict({"dim": 2, "hidden": 64, "depth": 3, "n_freqs": 4, "activation": "silu"})
    assert old.z_freqs == 0
    torch.manual_seed(0)
    a = VelocityMLP(old)
    torch.manual_seed(0)
    b = VelocityMLP(ModelConfig(z_freqs=2))
    assert a.net[0].in_features == 2 + 2 * 4
    assert [p.shape for p in a.state_dict().values()][1:] == [p.shape for p in b.state_dict().values()][1:]
    z = torch.randn(5, 2)
    assert torch.equal(a(z, 0.3), a.net(torch.cat([z, a.time_features(torch.tensor(0.3), 5)], 1)))


@pytest.mark.parametrize("z_freqs", [-1, 33, 1.5, True])
def test_bad_z_freqs_are_refused(z_freqs):
    with pytest.raises(ValueError, match="z_freqs"):
        ModelConfig(z_freqs=z_freqs)


def _weighted_error(v, u, weights):
    """Relative error of a field, weighted by the path's density: E_p|v - u|^2 / E_p|u|^2."""
    return float((weights * (v - u).square().sum(1)).sum() / (weights * u.square().sum(1)).sum())


def test_space_features_learn_thin_rings_faster():
    # Near the data end the marginal field of rings 0.04 wide bends on the scale of the posterior
    # width sigma_t / alpha_t (0.11 at t = 0.9): detail a plain MLP of z is slow to fit (spectral
    # bias). With the same seed and 1,000 steps, octave features of z cut the density-weighted
    # error there; over seeds 0-2 the ratio was 0.76-0.84 (0.31 -> 0.23-0.26).
    data = datasets.sample("rings", 1000, seed=0)
    g = torch.linspace(-2.5, 2.5, 41)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    t = 0.9
    exact, weights = exact_velocity(grid, t, data), exact_log_density(grid, t, data).exp()
    errors = {}
    for z_freqs in (0, 4):
        trainer = Trainer(data, seed=0, z_freqs=z_freqs)
        trainer.step(1000)
        errors[z_freqs] = _weighted_error(trainer.velocity(grid, t), exact, weights)
    assert errors[4] < 0.9 * errors[0]


def test_the_mean_flow_net_reads_the_same_space_features():
    net = AverageVelocityMLP(ModelConfig(z_freqs=2))
    assert net.net[0].in_features == 2 + 2 * 2 * 2 + 2 * 4 * 2
    z = torch.randn(6, 2)
    inputs = torch.cat(
        [
            z,
            net.time_features(torch.tensor(0.7), 6),
            net.time_features(torch.tensor(0.7) - torch.tensor(0.5), 6),
        ],
        1,
    )
    assert torch.equal(net(z, 0.7, 0.5), net.net(torch.cat([inputs, net.space_features(z)], 1)))
