"""The Trainer: learning, the two targets agreeing, couplings, divergence, exact resumption."""

import math
import pickle

import numpy as np
import pytest
import torch

from fmcore import COUPLINGS, Trainer, TrainStats, datasets, exact_log_density, exact_velocity
from fmcore.coupling import ot_permutation
from fmcore.io import load
from fmcore.metrics import near_share, straightness
from fmcore.reflow import reflow
from fmcore.solvers import integrate
from fmcore.trainer import DEFAULTS, Z_FREQS, Z_FREQS_MIN_POINTS


@pytest.fixture(scope="module")
def moons():
    return datasets.sample("moons", 256, seed=0)


def test_loss_decreases_and_stats_report(moons):
    trainer = Trainer(moons, seed=0)
    first = trainer.step(50)
    for _ in range(5):
        last = trainer.step(50)
    assert isinstance(last, TrainStats)
    assert (last.step, last.status, last.message) == (300, "ok", "")
    # The conditional loss cannot go below its floor; what training removes is the excess above it.
    floor = trainer.loss_floor
    assert last.loss - floor < 0.5 * (first.loss - floor)
    assert last.elapsed > first.elapsed > 0 and last.steps_per_s > 0
    assert last.lr == DEFAULTS["lr"] and len(trainer.history) == 300
    assert trainer.losses_since(250) == trainer.history[-50:]


def test_the_loss_approaches_its_floor(moons):
    trainer = Trainer(moons, seed=0)
    trainer.step(600)
    floor = trainer.loss_floor
    # The floor is the loss of the exact field, so no network beats it (up to batch noise, ~5%
    # for 256 samples of a quantity with a spread about its size), and a trained one comes close.
    assert 0.95 * floor < np.mean(trainer.history[-100:]) < 1.15 * floor
    assert Trainer(moons, target="marginal").loss_floor == 0.0
    assert math.isnan(Trainer(moons, coupling="ot").loss_floor)


def _weighted_error(v, u, weights):
    """Relative error of a field, weighted by the path's density: E_p|v - u|^2 / E_p|u|^2."""
    return float((weights * (v - u).square().sum(1)).sum() / (weights * u.square().sum(1)).sum())


def test_marginal_and_conditional_targets_learn_the_same_field(moons):
    t = 0.5
    g = torch.linspace(-2.5, 2.5, 26)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    weights = exact_log_density(grid, t, moons).exp()
    exact = exact_velocity(grid, t, moons)
    fields = {}
    for target in ("conditional", "marginal"):
        trainer = Trainer(moons, target=target, seed=1)
        trainer.step(500)
        fields[target] = trainer.velocity(grid, t)
    errors = {k: _weighted_error(v, exact, weights) for k, v in fields.items()}
    # Tolerance: the data are normalised to mean 0 and unit variance, so the best Gaussian fit's
    # field at t = 0.5 is exactly 0, with relative error 1. A tenth of that means the moons'
    # structure is learnt; both targets share the minimiser, so they must also agree with each other.
    assert errors["conditional"] < 0.1 and errors["marginal"] < 0.1
    assert _weighted_error(fields["conditional"], fields["marginal"], weights) < 0.1
    # Same minimiser, lower variance: at equal steps the noise-free target is closer.
    assert errors["marginal"] < errors["conditional"]


def test_marginal_target_over_the_batch_is_cheap_and_has_a_small_floor(moons):
    trainer = Trainer(moons, target="marginal", reference="batch", seed=0)
    stats = trainer.step(100)
    conditional_floor = Trainer(moons).loss_floor
    assert stats.status == "ok"
    assert 0 < trainer.loss_floor < 0.2 * conditional_floor


def test_ot_coupling_is_a_cost_lowering_permutation():
    generator = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(64, 2, generator=generator), torch.randn(64, 2, generator=generator) + 1.0
    perm = ot_permutation(z0, z1)
    assert sorted(perm.tolist()) == list(range(64))
    paired = COUPLINGS["ot"](z0, z1)
    assert torch.equal(paired, z0[perm])
    assert (paired - z1).square().sum() < (z0 - z1).square().sum()
    # Optimal: no swap of two pairs lowers the cost.
    cost = (paired[:, None] - z1[None]).square().sum(-1)
    swap_gain = cost.diagonal()[:, None] + cost.diagonal()[None, :] - cost - cost.T
    assert swap_gain.max() <= 1e-5
    assert COUPLINGS["independent"](z0, z1) is z0


def test_ot_coupling_gives_straighter_paths(moons):
    z0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
    measured = {}
    for coupling in ("independent", "ot"):
        trainer = Trainer(moons, coupling=coupling, seed=0, batch_size=128)
        trainer.step(200)
        path = integrate(trainer.velocity, z0, "rk4", 20)
        measured[coupling] = straightness(path.zs, path.ts)
    # Independent pairs cross, so the marginal paths must bend (S ~ 0.7 here); OT pairs do not
    # cross within a batch and the paths come out nearly straight (S ~ 0.01).
    assert measured["ot"] < 0.25 * measured["independent"]


def test_divergence_is_caught_and_the_last_good_weights_restored(moons):
    trainer = Trainer(moons, seed=0, lr=1e-2)
    trainer.step(100)
    grid = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    good = trainer.velocity(grid, 0.3)
    trainer.set_lr(100.0)  # Adam at lr=100: the loss climbs past 1e20 without becoming NaN
    stats = trainer.step(100)
    assert stats.status == "diverged" and stats.step == 100
    assert "diverged at step" in stats.message and "restored the weights from step 100" in stats.message
    assert "lower the learning rate" in stats.message
    assert torch.equal(trainer.velocity(grid, 0.3), good)
    assert len(trainer.history) == 100 and all(math.isfinite(x) for x in trainer.history)
    again = trainer.step(50)  # refused until the lr is changed or the run reset
    assert (again.step, again.status) == (100, "diverged") and math.isnan(again.loss)
    trainer.set_lr(1e-2)
    assert trainer.step(50).status == "ok" and trainer.step_count == 150
    trainer.reset()
    assert (trainer.step_count, trainer.history, trainer.status) == (0, [], "ok")


def test_a_resumed_trainer_that_diverges_restores_the_state_it_resumed_from(moons):
    # A state carries no separate snapshot: outside step() a trainer sits at its last check.
    trainer = Trainer(moons, seed=0)
    trainer.step(60)
    state = pickle.loads(pickle.dumps(trainer.state_dict()))
    assert "snapshot" not in state
    resumed = Trainer.from_state_dict(state)
    grid = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    good = resumed.velocity(grid, 0.3)
    resumed.set_lr(100.0)
    stats = resumed.step(100)
    assert stats.status == "diverged" and stats.step == 60 and "from step 60" in stats.message
    assert torch.equal(resumed.velocity(grid, 0.3), good)
    resumed.set_lr(1e-2)
    trainer.step(40)
    resumed.step(40)
    torch.testing.assert_close(resumed.velocity(grid, 0.3), trainer.velocity(grid, 0.3), rtol=0, atol=0)


def test_divergence_from_the_first_step(moons):
    trainer = Trainer(moons, seed=0, lr=100.0)
    initial = trainer.velocity(moons, 0.5)
    stats = trainer.step(50)
    assert stats.status == "diverged" and stats.step == 0
    assert torch.equal(trainer.velocity(moons, 0.5), initial)


def test_state_dict_resumes_exactly(moons):
    for options in ({}, {"target": "marginal", "reference": "batch", "lr_schedule": "cosine"}):
        straight = Trainer(moons, seed=3, **options)
        straight.step(150)
        interrupted = Trainer(moons, seed=3, **options)
        interrupted.step(100)
        state = pickle.loads(pickle.dumps(interrupted.state_dict()))  # as shipped to a worker
        resumed = Trainer.from_state_dict(state)
        resumed.step(50)
        assert resumed.history == straight.history
        grid = torch.randn(50, 2)
        assert torch.equal(resumed.velocity(grid, 0.7), straight.velocity(grid, 0.7))


def test_the_random_stream_is_a_key_and_a_counter_that_a_state_carries(moons):
    trainer = Trainer(moons, seed=-3, batch_size=64)
    trainer.step(70)
    assert math.isfinite(trainer.loss_floor)  # drawn from its own key: the stream does not move
    state = trainer.state_dict()
    assert state["rng"] == {"key": -3 % 2**64, "counter": 70}
    resumed = Trainer.from_state_dict(pickle.loads(pickle.dumps(state)))
    # A draw is a pure function of (key, counter): the trainer reads counter 70 from the batches it
    # drew ahead at 64, the resumed one and one moved there by hand draw it afresh.
    moved = Trainer(moons, seed=-3, batch_size=64)
    moved.rng_counter = 70
    a, b, c = trainer.draw(), resumed.draw(), moved.draw()
    for x, y, z in zip((a.t, a.z_1, a.z_0), (b.t, b.z_1, b.z_0), (c.t, c.z_1, c.z_0), strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)
    assert trainer.rng_counter == resumed.rng_counter == 71
    assert not torch.equal(trainer.draw().z_0, a.z_0)


def test_same_seed_same_losses(moons):
    a, b, c = Trainer(moons, seed=5), Trainer(moons, seed=5), Trainer(moons, seed=6)
    for trainer in (a, b, c):
        trainer.step(60)
    assert a.history == b.history != c.history


def test_options_are_validated(moons):
    with pytest.raises(ValueError, match="valid options: lr, batch_size"):
        Trainer(moons, learning_rate=1e-3)
    for lr in (0, -1e-3, float("nan"), float("inf"), "big"):
        with pytest.raises(ValueError, match="lr"):
            Trainer(moons, lr=lr)
    with pytest.raises(ValueError, match="lr"):
        Trainer(moons).set_lr(-1)
    with pytest.raises(ValueError, match="schedule"):
        Trainer(moons, schedule="quadratic")
    with pytest.raises(ValueError, match="target"):
        Trainer(moons, target="score")
    with pytest.raises(ValueError, match="coupling"):
        Trainer(moons, coupling="sinkhorn")
    with pytest.raises(ValueError, match="independent"):
        Trainer(moons, target="marginal", coupling="ot")
    with pytest.raises(ValueError, match="vp"):
        Trainer(moons, prediction="noise")  # alpha_0 = 0 on the linear path
    with pytest.raises(ValueError, match="NaN"):
        Trainer(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(moons, batch_size=0)


def test_z_features_are_on_by_default_from_a_thousand_points_and_travel_with_the_model(tmp_path):
    small = datasets.sample("moons", Z_FREQS_MIN_POINTS - 1, seed=0)
    large = datasets.sample("moons", Z_FREQS_MIN_POINTS, seed=0)
    assert DEFAULTS["z_freqs"] is None  # chosen from the data
    assert Trainer(small).model_config.z_freqs == 0
    trainer = Trainer(large, seed=1)
    assert trainer.model_config.z_freqs == Z_FREQS > 0
    assert trainer.config["options"]["z_freqs"] == Z_FREQS  # the chosen value, not None
    assert Trainer(large, z_freqs=0).model_config.z_freqs == 0  # an explicit choice wins
    assert Trainer(large, objective="meanflow").model_config.z_freqs == 0  # its tuned defaults
    trainer.step(20)
    resumed = Trainer.from_state_dict(trainer.state_dict())
    assert resumed.model_config == trainer.model_config
    trainer.reset(lr=1e-3)
    assert trainer.model_config.z_freqs == Z_FREQS
    trainer.save(tmp_path / "large.safetensors")
    assert load(tmp_path / "large.safetensors").config.z_freqs == Z_FREQS
    with pytest.raises(ValueError, match="z_freqs"):
        Trainer(small, z_freqs=-1)


def _near_share_over_fresh(data_points: int, **options) -> float:
    """How much more often than fresh data a model trained 1,500 steps on moons puts its samples
    near one of its training points (1: no more than the distribution itself). The radius shrinks
    as 1/sqrt(points) from 0.05 at 60 points, so that fresh data's share stays about 0.12."""
    train = datasets.sample("moons", data_points, seed=0)
    trainer = Trainer(train, seed=0, **options)
    trainer.step(1500)
    z0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    samples = integrate(trainer.velocity, z0, "rk4", 20).z_end
    radius = 0.05 * math.sqrt(60 / data_points)
    return near_share(samples, train, radius) / near_share(
        datasets.sample("moons", 2000, seed=99), train, radius
    )


def test_the_default_z_features_copy_no_small_training_set():
    # The reason for the size rule: on 60 points the features of z copy the training points
    # (measured, seeds 0-1: 3.4x and 3.6x fresh data's share near them, vs 1.1x and 1.8x without),
    # so the defaults leave them off there; on 2,000 points, where they are on, they copy nothing
    # (1.05x and 1.04x).
    assert _near_share_over_fresh(60) < 2.5 < _near_share_over_fresh(60, z_freqs=Z_FREQS)
    assert _near_share_over_fresh(2000) < 1.25


def test_max_steps_ends_the_run(moons):
    trainer = Trainer(moons, max_steps=70)
    assert trainer.step(50).status == "ok"
    stats = trainer.step(50)
    assert (stats.step, stats.status) == (70, "done") and "max_steps" in stats.message
    assert trainer.step(50).step == 70


def test_velocity_accepts_every_kind_of_time(moons):
    trainer = Trainer(moons)
    assert trainer.device.type in ("cuda", "mps", "cpu")
    z = moons[:7].double()
    v = trainer.velocity(z, 0.5)
    assert v.dtype == torch.float32 and v.device.type == "cpu" and v.shape == (7, 2)
    assert torch.allclose(trainer.velocity(z, torch.tensor(0.5)), v)
    assert torch.allclose(trainer.velocity(z, torch.full((7,), 0.5)), v)
    trajectory = integrate(trainer.velocity, torch.randn(10, 2), "rk4", 4)
    assert trajectory.nfe == 16 and torch.isfinite(trajectory.zs).all()


def test_reflow_straightens_the_paths(moons):
    trainer = Trainer(moons, seed=0)
    trainer.step(300)
    result = reflow(trainer, 256, train_steps=200, n_eval=256)
    assert result.z0.shape == result.z1.shape == (256, 2)
    assert result.straightness_after < 0.5 * result.straightness_before
    assert result.one_step_after < result.one_step_before


def test_the_ema_decay_is_the_power_function_under_its_cap(moons):
    # Karras et al. 2024 (EDM2), eq. 3: beta_t = (1 - 1/t)^(gamma + 1) after step t = step_count + 1.
    trainer = Trainer(moons, ema=0.99, ema_power=8)
    for t, expected in ((1, 0.0), (2, 0.5**9), (10, 0.9**9), (100, 0.99**9), (10_000, 0.99)):
        trainer.step_count = t - 1
        assert trainer.ema_decay == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # Where the cap binds: (1 - 1/t)^9 = 0.99 at t = 1 / (1 - 0.99^(1/9)) ~ 896.
    trainer.step_count = 894
    assert trainer.ema_decay < 0.99
    trainer.step_count = 896
    assert trainer.ema_decay == 0.99
    assert DEFAULTS["ema"] > 0 and DEFAULTS["ema_power"] >= 0
    for bad in (-1, float("nan"), "8", True):
        with pytest.raises(ValueError, match="ema_power"):
            Trainer(moons, ema_power=bad)


def _ema_weights(decays: list[float]) -> np.ndarray:
    """The weight of the weights after each step in an EMA with these per-step decays (step 1 first):
    (1 - beta_tau) prod_{s > tau} beta_s, by brute force."""
    return np.array([(1 - b) * np.prod(decays[i + 1 :]) for i, b in enumerate(decays)])


def test_the_power_ema_weighs_the_steps_as_its_closed_form_says():
    gamma, steps = 3.0, 40
    decays = [(1 - 1 / t) ** (gamma + 1) for t in range(1, steps + 1)]
    tau = np.arange(1, steps + 1, dtype=np.float64)
    closed = (tau ** (gamma + 1) - (tau - 1) ** (gamma + 1)) / steps ** (gamma + 1)
    np.testing.assert_allclose(_ema_weights(decays), closed, rtol=1e-12, atol=1e-300)
    assert closed.sum() == pytest.approx(1.0, rel=1e-12)  # beta_1 = 0: nothing left on the init


@pytest.mark.parametrize("cap", [0.999, 0.95])  # the power function all along; capped from step ~79
def test_the_trainers_ema_is_the_weighted_mean_of_its_weights_after_each_step(moons, cap):
    trainer = Trainer(moons, seed=2, ema=cap, ema_power=3, batch_size=64)
    seen, decays = [], []
    for _ in range(120):
        decays.append(trainer.ema_decay)
        trainer.step(1)
        seen.append(torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).double())
    mean = (torch.tensor(_ema_weights(decays))[:, None] * torch.stack(seen)).sum(0)
    ema = torch.cat([p.reshape(-1) for p in trainer.ema_net.parameters()]).double()
    # float32 lerps, 120 of them on weights of size ~1: rounding ~1e-7 each
    torch.testing.assert_close(ema, mean, rtol=0, atol=2e-5)
    assert (cap == 0.95) == (decays[-1] == cap)


def test_the_ema_of_unmoving_weights_is_those_weights(moons):
    # An lr far below float32's resolution leaves the weights where they are, whatever the decays.
    trainer = Trainer(moons, seed=1, lr=1e-30)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.step(60)
    for p, q, e in zip(start, trainer.model.parameters(), trainer.ema_net.parameters(), strict=True):
        assert torch.equal(p, q) and torch.equal(q, e)


def test_a_state_saved_before_ema_power_existed_still_loads(moons):
    # The decay is a function of the step count and the options: no new state, the same format.
    trainer = Trainer(moons, seed=4, ema=0.99)
    trainer.step(20)
    state = trainer.state_dict()
    del state["config"]["options"]["ema_power"]
    resumed = Trainer.from_state_dict(state)
    assert resumed.options["ema"] == 0.99 and resumed.options["ema_power"] == DEFAULTS["ema_power"]
    assert resumed.ema_decay == trainer.ema_decay
    resumed.step(10)
    trainer.step(10)
    assert resumed.history == trainer.history
