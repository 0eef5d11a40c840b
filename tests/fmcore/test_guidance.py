"""Label-conditioned training and classifier-free guidance: v_w = v_null + w (v_c - v_null)."""

import pytest
import torch

import fmcore
from fmcore import Trainer, datasets, integrate
from fmcore.models import GUIDANCE

CLASSES = 8


@pytest.fixture(scope="module")
def gaussians():
    return datasets.sample("8gaussians", 2000, seed=0, labels=True)


@pytest.fixture(scope="module")
def trained(gaussians):
    points, labels = gaussians
    trainer = Trainer(points, labels=labels, label_dropout=0.1, seed=0)
    trainer.step(1500)
    return trainer


@pytest.fixture(scope="module")
def guided_samples(trained):
    """{w: [(300, 2) samples of class k for k in 0..7]}, the same start noise for every w."""
    noise = [torch.randn(300, 2, generator=torch.Generator().manual_seed(k)) for k in range(CLASSES)]
    return {
        w: [
            integrate(trained.guided_velocity(k, guidance=w), noise[k], "rk4", 20).z_end
            for k in range(CLASSES)
        ]
        for w in (1.0, 1.5, 2.0, 3.0)
    }


def test_the_convention_w1_conditional_w0_unconditional_linear_in_w(trained):
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(0.4)
    flow = trained.flow
    v_c, v_null = flow.velocity(z, t, 3), flow.velocity(z, t, None)
    assert not torch.allclose(v_c, v_null, atol=1e-2)
    assert torch.equal(trained.guided_velocity(3, guidance=1.0)(z, t), v_c)
    assert torch.equal(trained.guided_velocity(3, guidance=0.0)(z, t), v_null)
    assert torch.equal(trained.guided_velocity(None, guidance=5.0)(z, t), v_null)
    assert torch.equal(trained.velocity(z, t), v_null)  # the trainer's plain field is the unconditional one
    for w in (-1.0, 2.5):
        assert torch.allclose(
            trained.guided_velocity(3, guidance=w)(z, t), v_null + w * (v_c - v_null), atol=1e-5
        )
    per_row = trained.guided_velocity(3, guidance=2.0)(z, torch.full((50,), 0.4))
    assert torch.allclose(per_row, trained.guided_velocity(3, guidance=2.0)(z, t), atol=1e-6)


def test_at_w1_samples_of_class_k_land_nearest_its_centroid(gaussians, guided_samples):
    points, labels = gaussians
    centroids = torch.stack([points[labels == k].mean(0) for k in range(CLASSES)])
    for k, samples in enumerate(guided_samples[1.0]):
        nearest = torch.cdist(samples, centroids).argmin(1)
        assert (nearest == k).float().mean() >= 0.9, k


def test_larger_w_concentrates_each_class_and_pushes_samples_off_the_ring(guided_samples):
    # Guidance moves each class away from the others, here outward from the circle: its samples
    # gather tighter (per-class spread falls) and more of them land beyond the radius that holds
    # 95% of the data. Measured at 1500 steps, seed 0: spread 0.14, 0.087, 0.074 (data 0.14) at
    # w = 1, 1.5, 2; share beyond that radius 4%, 8%, 16%, 40% at w = 1, 1.5, 2, 3 (data 5%).
    fresh = datasets.sample("8gaussians", 8000, seed=9)
    radius_95 = torch.quantile(fresh.norm(dim=1), 0.95)

    def spread(w):
        return torch.stack(
            [(s - s.mean(0)).square().sum(1).mean().div(2).sqrt() for s in guided_samples[w]]
        ).mean()

    def beyond(w):
        return torch.cat(guided_samples[w]).norm(dim=1).gt(radius_95).float().mean()

    assert spread(1.0) > spread(1.5) > spread(2.0) and spread(2.0) < 0.7 * spread(1.0)
    assert beyond(1.0) < beyond(1.5) < beyond(2.0) < beyond(3.0)
    assert beyond(1.0) < 0.08 and beyond(3.0) > 0.2  # from about the data's 5% to several times it


def test_labels_survive_saving_and_resuming(trained, tmp_path):
    path = tmp_path / "c.safetensors"
    trained.save(path)
    model = fmcore.load(path)
    assert model.n_classes == CLASSES and model.config == trained.model_config
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(2))
    for label, w in ((3, 1.0), (5, 2.5), (None, 1.0)):
        assert torch.equal(model.guided_velocity(label, w)(z, 0.3), trained.guided_velocity(label, w)(z, 0.3))
    header = path.read_bytes()
    assert GUIDANCE.encode() in header[: 8 + int.from_bytes(header[:8], "little")]
    # Resuming keeps the labels and the draws (the dropout mask included): same losses.
    first, second = (Trainer.from_state_dict(trained.state_dict()) for _ in range(2))
    assert torch.equal(first.labels, trained.labels) and first.n_classes == CLASSES
    assert first.step(20).loss == second.step(20).loss


def test_label_dropout_trains_the_null_label(gaussians):
    # Without dropout the null label is never seen: its field stays near the untrained one, far
    # from the data's unconditional field.
    points, labels = gaussians
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(3))
    exact = fmcore.exact_velocity(z, 0.5, points)
    errors = {}
    for dropout in (0.0, 0.2):
        trainer = Trainer(points, labels=labels, label_dropout=dropout, seed=0)
        trainer.step(600)
        errors[dropout] = float((trainer.velocity(z, 0.5) - exact).square().sum(1).mean())
    assert errors[0.2] < 0.2 * errors[0.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": [0, 1]}, "labels must be 2000 integers"),
        ({"labels": "abc"}, "labels must be"),
        ({"target": "marginal"}, "labels train the conditional target"),
        ({"coupling": "ot"}, "labels train the conditional target"),
        ({"label_dropout": 1.0}, "label_dropout must be a number in"),
    ],
)
def test_bad_labels_are_refused(gaussians, kwargs, message):
    points, labels = gaussians
    with pytest.raises(ValueError, match=message):
        Trainer(points, **{"labels": labels, **kwargs})
    with pytest.raises(ValueError, match="labels must lie in"):
        Trainer(points, labels=labels - 1)


def test_guidance_refuses_what_the_model_cannot_do(trained, gaussians):
    with pytest.raises(ValueError, match="label must be a class from 0 to 7"):
        trained.guided_velocity(8)
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        trained.guided_velocity(2, guidance=float("inf"))
    plain = Trainer(gaussians[0], seed=0)
    with pytest.raises(ValueError, match="unconditional"):
        plain.guided_velocity(1)
    assert plain.model_config.n_classes == 0 and torch.equal(
        plain.guided_velocity(None)(gaussians[0][:5], 0.5), plain.velocity(gaussians[0][:5], 0.5)
    )


def test_the_labelled_loss_floor_mixes_the_class_and_the_null_floors(gaussians, trained):
    # The ideal labelled net is the exact field of each row's class, or of all the data on the
    # null rows, so the floor is (1 - p) floor(classes) + p floor(unconditional) for dropout p.
    points, labels = gaussians
    unconditional = Trainer(points, seed=0).loss_floor
    per_class = Trainer(points, labels=labels, label_dropout=0.0, seed=0).loss_floor
    assert per_class < 0.25 * unconditional  # knowing the Gaussian removes most of the target noise
    assert trained.loss_floor == pytest.approx(0.9 * per_class + 0.1 * unconditional, rel=0.05)
    # ... and no network goes below it (up to batch noise); this one is within 25% after 1500 steps.
    assert trained.loss_floor * 0.95 < sum(trained.history[-100:]) / 100 < 1.25 * trained.loss_floor
