"""StackedMLP: K networks on rows of one tensor, their loss and its hand-written gradient."""

import pytest
import torch

from fmcore.models import ACTIVATIONS, ModelConfig, VelocityMLP
from fmcore.stacked import ACTIVATION_GRADS, StackedMLP

K, B = 3, 17

CONFIGS = [
    *(ModelConfig(activation=name, hidden=8) for name in ACTIVATIONS),
    ModelConfig(hidden=8, depth=1),
    ModelConfig(hidden=8, z_freqs=2),
    ModelConfig(hidden=8, n_classes=3, n_freqs=2),
    ModelConfig(dim=3, hidden=8, depth=2, z_freqs=1, n_classes=2),
]


def _problem(config: ModelConfig, seed: int = 0):
    """K networks (float64), their rows, and a batch: z, t, labels (the null label included), target."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    nets = [VelocityMLP(config).double() for _ in range(K)]
    theta = torch.stack([torch.nn.utils.parameters_to_vector(net.parameters()) for net in nets]).detach()
    z = torch.randn(K, B, config.dim, generator=g, dtype=torch.float64)
    t = torch.rand(K, B, generator=g, dtype=torch.float64)
    target = torch.randn(K, B, config.dim, generator=g, dtype=torch.float64)
    labels = torch.randint(0, config.n_classes + 1, (K, B), generator=g) if config.n_classes else None
    return nets, theta, z, t, labels, target


def test_every_activation_has_its_derivative():
    assert set(ACTIVATION_GRADS) == set(ACTIVATIONS)


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_forward_is_each_rows_velocity_mlp(config):
    nets, theta, z, t, labels, _ = _problem(config)
    mlp = StackedMLP(config, torch.device("cpu"))
    v = mlp.forward(theta, mlp.features(z, t, labels)).mT
    for k, net in enumerate(nets):
        label = None if labels is None else labels[k]
        torch.testing.assert_close(v[k], net(z[k], t[k], label), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_loss_and_grad_are_autograds_row_by_row(config):
    nets, theta, z, t, labels, target = _problem(config)
    weight = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)  # 0: a slot not stepped
    mlp = StackedMLP(config, torch.device("cpu"))
    grad = torch.full_like(theta, float("nan"))  # every entry must be written
    losses = mlp.loss_and_grad(theta, mlp.features(z, t, labels), target, weight, grad)
    for k, net in enumerate(nets):
        label = None if labels is None else labels[k]
        loss = (net(z[k], t[k], label) - target[k]).square().sum(1).mean()
        expected = torch.autograd.grad(weight[k] * loss, list(net.parameters()))
        torch.testing.assert_close(losses[k], loss.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(
            grad[k], torch.cat([x.reshape(-1) for x in expected]), rtol=1e-10, atol=1e-12
        )
    assert grad[1].abs().max() == 0


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[-1]], ids=repr)
def test_grad_matches_central_differences(config):
    """<grad, u> = (L(theta + eps u) - L(theta - eps u)) / (2 eps) + O(eps^2), along random u."""
    _, theta, z, t, labels, target = _problem(config, seed=1)
    weight = torch.tensor([1.0, 2.0, 0.25], dtype=torch.float64)
    mlp = StackedMLP(config, torch.device("cpu"))
    h = mlp.features(z, t, labels)
    grad = torch.empty_like(theta)
    mlp.loss_and_grad(theta, h, target, weight, grad)

    def total(rows: torch.Tensor) -> float:
        return float((weight * mlp.loss_and_grad(rows, h, target, weight, torch.empty_like(rows))).sum())

    eps = 1e-5
    for seed in range(3):
        u = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        slope = (total(theta + eps * u) - total(theta - eps * u)) / (2 * eps)
        assert slope == pytest.approx(float((grad * u).sum()), rel=1e-7)


def test_a_row_is_the_same_alone_or_beside_others_in_float32():
    config = ModelConfig(hidden=16)
    _, theta, z, t, _, target = _problem(config)
    theta, z, t, target = theta.float(), z.float(), t.float(), target.float()
    mlp = StackedMLP(config, torch.device("cpu"))
    weight = torch.ones(K)
    grad = torch.empty_like(theta)
    losses = mlp.loss_and_grad(theta, mlp.features(z, t), target, weight, grad)
    alone = torch.empty_like(theta[1:2])
    loss = mlp.loss_and_grad(theta[1:2], mlp.features(z[1:2], t[1:2]), target[1:2], weight[1:2], alone)
    torch.testing.assert_close(alone[0], grad[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(loss[0], losses[1], rtol=1e-6, atol=0)
