"""BatchTrainer: every slot trains as its own Trainer would, whatever else is in the bank."""

import math
import pickle
import re
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import gpu
from fmcore import BatchTrainer, Trainer, datasets
from fmcore import trainer as trainer_module
from fmcore.metrics import energy_distance
from fmcore.solvers import integrate

# The draws are the Trainer's own, so the only difference from a plain Trainer is float rounding:
# the batched matrix products sum in another order (about 1e-7 a step). Adam divides each gradient
# component by its running size, so where a component is near 0 that rounding is amplified; after
# 150 steps the weights (of size about 1) agree to about 1e-5, and the fields far closer than any
# sampling noise (checked below through samples).
ATOL = 1e-4


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*trainer.model.parameters(), *trainer.sampling_net.parameters())]


def _assert_same_run(a: Trainer, b: Trainer, atol: float = ATOL):
    assert a.step_count == b.step_count and (a.status, a.message) == (b.status, b.message)
    for x, y in zip(_weights(a), _weights(b), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=atol)
    torch.testing.assert_close(torch.tensor(a.history), torch.tensor(b.history), rtol=1e-4, atol=1e-6)


# One slot per preset, each with its own data size and options: everything a slot may choose alone.
PRESET_OPTIONS = [
    {},
    {"schedule": "cosine", "lr": 3e-3},
    {"target": "marginal", "ema": 0.0},
    {"coupling": "ot", "batch_size": 128},
    {"schedule": "vp", "prediction": "noise"},
    {"target": "marginal", "reference": "batch", "lr_schedule": "cosine", "lr_horizon": 40},
    {"ema": 0.9, "ema_power": 2, "check_every": 7},  # capped from step ~29
    {"lr": 5e-3, "max_steps": 45},
    {"hidden": 32, "depth": 2},
    {"n_freqs": 2, "activation": "gelu", "z_freqs": 3},
    {},
]


def test_every_slot_trains_like_its_own_trainer_on_every_preset():
    names = datasets.NAMES
    assert len(PRESET_OPTIONS) >= len(names)
    runs = []
    bank = BatchTrainer(device="cpu")
    for i, name in enumerate(names):
        options = {"seed": i, **PRESET_OPTIONS[i]}
        data = datasets.sample(name, 150 + 37 * i, seed=i)
        runs.append((name, data, options, bank.add(data, **options), Trainer(data, device="cpu", **options)))
    for n in (30, 30):
        stats = bank.step(n)
        for *_, slot, trainer in runs:
            alone = trainer.step(n)
            assert (stats[slot].step, stats[slot].status, stats[slot].lr) == (
                alone.step,
                alone.status,
                alone.lr,
            )
            assert stats[slot].loss == pytest.approx(alone.loss, rel=1e-4)
    assert stats[runs[7][3]].status == "done" and stats[runs[7][3]].step == 45
    # Same field, so the same samples: their energy distance to fresh data agrees far inside the
    # sampling noise of that distance (its spread between two fresh data sets, the noise floor).
    z0 = torch.randn(400, 2, generator=torch.Generator().manual_seed(7))
    for name, _, _, slot, trainer in runs:
        _assert_same_run(bank.trainer(slot), trainer)
        fresh, other = datasets.sample(name, 400, seed=100), datasets.sample(name, 400, seed=101)
        floor = abs(energy_distance(fresh, other)) + 1e-3
        ours = energy_distance(
            integrate(lambda z, t, s=slot: bank.velocity(s, z, t), z0, "rk4", 8).z_end, fresh
        )
        theirs = energy_distance(integrate(trainer.velocity, z0, "rk4", 8).z_end, fresh)
        assert abs(ours - theirs) < 0.01 * floor, name


def _moons(seed: int, m: int = 256) -> torch.Tensor:
    return datasets.sample("moons", m, seed=seed)


def test_a_slot_is_the_same_alone_or_beside_others_added_and_removed():
    alone = BatchTrainer(device="cpu")
    solo = alone.add(_moons(0), seed=0, lr=1e-2)
    crowd = BatchTrainer(device="cpu")
    others = [crowd.add(_moons(i, 100 + 20 * i), seed=i, lr=1e-3 * i) for i in range(1, 6)]
    watched = crowd.add(_moons(0), seed=0, lr=1e-2)
    crowd.add(_moons(9), seed=9, hidden=32)  # another architecture: another group
    for round_ in range(3):
        alone.step(40)
        crowd.step(40)
        crowd.remove(others.pop(0))
        crowd.add(_moons(20 + round_), seed=20 + round_, schedule="cosine")
    for x, y in zip(_weights(alone.trainer(solo)), _weights(crowd.trainer(watched)), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    assert alone.trainer(solo).history == pytest.approx(crowd.trainer(watched).history, rel=1e-6)
    assert len(crowd) == 7 and watched in crowd.slots and others[0] in crowd.slots
    with pytest.raises(KeyError, match="no slot"):
        crowd.remove(solo + 100)


def test_a_diverging_slot_restores_its_own_weights_and_the_others_never_notice():
    def bank_of(seeds):
        bank = BatchTrainer(device="cpu")
        return bank, {s: bank.add(_moons(s), seed=s) for s in seeds}

    with_bad, slots = bank_of([0, 1, 2])
    without, kept = bank_of([0, 2])
    for bank in (with_bad, without):
        bank.step(100)
    grid = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    good = with_bad.velocity(slots[1], grid, 0.3)
    with_bad.set_lr(slots[1], 100.0)  # Adam at lr=100: the loss climbs past 1e20
    stats = with_bad.step(100)
    without.step(100)
    bad = stats[slots[1]]
    assert bad.status == "diverged" and bad.step == 100
    assert "diverged at step" in bad.message and "restored the weights from step 100" in bad.message
    assert torch.equal(with_bad.velocity(slots[1], grid, 0.3), good)
    for s in (0, 2):
        assert stats[slots[s]].status == "ok" and stats[slots[s]].step == 200
        for x, y in zip(
            _weights(with_bad.trainer(slots[s])), _weights(without.trainer(kept[s])), strict=True
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    again = with_bad.step(10)[slots[1]]
    assert (again.step, again.status) == (100, "diverged") and math.isnan(again.loss)
    with_bad.set_lr(slots[1], 1e-2)
    assert with_bad.step(10)[slots[1]].status == "ok" and with_bad.trainer(slots[1]).step_count == 110


def test_a_slot_diverging_from_its_first_step_keeps_its_initial_weights():
    bank = BatchTrainer(device="cpu")
    slot = bank.add(_moons(0), seed=0, lr=100.0)
    other = bank.add(_moons(1), seed=1)
    initial = bank.velocity(slot, _moons(0), 0.5)
    stats = bank.step(50)
    assert stats[slot].status == "diverged" and stats[slot].step == 0
    assert torch.equal(bank.velocity(slot, _moons(0), 0.5), initial)
    assert stats[other].status == "ok" and stats[other].step == 50


def _optimizer_state(trainer: Trainer) -> list[torch.Tensor]:
    state = trainer.optimizer.state
    return [
        state[p][key].clone() for p in trainer.model.parameters() for key in ("step", "exp_avg", "exp_avg_sq")
    ]


def test_a_slot_not_stepped_keeps_its_weights_ema_and_adam_state_exactly():
    """A row not stepped is left out of the fused Adam and has weight 0 in the batched EMA: nothing
    may move, not even by rounding, while the other slots train on."""
    bank = BatchTrainer(device="cpu")
    done = bank.add(_moons(0), seed=0, max_steps=20)
    other = bank.add(_moons(1), seed=1)
    bank.step(20)
    before = _weights(bank.trainer(done)), _optimizer_state(bank.trainer(done))
    stats = bank.step(30)
    assert stats[done].status == "done" and stats[other].step == 50
    after = _weights(bank.trainer(done)), _optimizer_state(bank.trainer(done))
    for x, y in zip((*before[0], *before[1]), (*after[0], *after[1]), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "options", [{}, {"target": "marginal", "reference": "batch", "lr_schedule": "cosine"}]
)
def test_state_dict_resumes_in_a_trainer_and_add_state_in_a_bank(options):
    straight = Trainer(_moons(3), seed=3, **options)
    straight.step(150)
    bank = BatchTrainer(device="cpu")
    bank.add(_moons(4), seed=4)
    slot = bank.add(_moons(3), seed=3, **options)
    bank.step(100)
    state = pickle.loads(pickle.dumps(bank.state_dict(slot)))  # as shipped to a session
    resumed = Trainer.from_state_dict(state)
    resumed.step(50)
    _assert_same_run(resumed, straight)
    again = BatchTrainer(device="cpu")
    back = again.add_state(state)
    again.step(50)
    _assert_same_run(again.trainer(back), straight)


def test_options_are_validated_as_the_trainer_validates_them():
    bank = BatchTrainer(device="cpu")
    for bad in ({"lr": -1.0}, {"lr": math.inf}, {"batch_size": 0}, {"colour": "red"}, {"target": "nope"}):
        with pytest.raises(ValueError) as from_trainer:
            Trainer(_moons(0), **bad)
        with pytest.raises(ValueError, match=re.escape(str(from_trainer.value))):
            bank.add(_moons(0), **bad)
    slot = bank.add(_moons(0))
    with pytest.raises(ValueError, match="option lr must be"):
        bank.set_lr(slot, 0.0)
    for n in (-1, 2.5, "10"):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            bank.step(n)
    with pytest.raises(ValueError, match="not a Trainer state"):
        bank.add_state({"format": "something else"})
    assert len(bank) == 1 and bank.step(0)[slot].step == 0


def test_the_gpu_bench_says_plainly_when_there_is_no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["bench/gpu.py"])
    with pytest.raises(SystemExit, match=r"needs a cuda GPU .* --device cpu"):
        gpu.main()


def test_the_gpu_bench_runs_its_sweep_on_the_cpu_as_a_smoke_check(monkeypatch, capsys):
    argv = ["bench/gpu.py", "--device", "cpu", "--slots", "1", "3", "30", "--max-slots", "3"]
    monkeypatch.setattr(sys, "argv", [*argv, "--seconds", "0.01"])
    gpu.main()
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("| K slots | steps/s per slot | ms per step | model-steps/s | GPU MiB |")
    rows = [line.strip("|").split("|") for line in lines[header + 2 :] if line.startswith("|")]
    assert [int(r[0]) for r in rows] == [1, 3], "--max-slots leaves out K = 30"
    for k, per_slot, ms, total, memory in ((int(r[0]), *map(float, r[1:4]), r[4].strip()) for r in rows):
        assert per_slot > 0 and ms == pytest.approx(1e3 / per_slot, rel=0.01)
        assert total == pytest.approx(k * per_slot, rel=0.01, abs=1) and memory == "-"


def test_a_state_from_an_unfused_adam_trains_alike():
    # A state saved on mps carries fused=False in its optimizer settings, which the bank then uses.
    trainer = Trainer(_moons(5), seed=5)
    trainer.step(20)
    state = trainer.state_dict()
    state["optimizer"]["param_groups"][0]["fused"] = False
    resumed = Trainer.from_state_dict(state)
    bank = BatchTrainer(device="cpu")
    slot = bank.add_state(state)
    bank.add(_moons(6), seed=6)  # a fused neighbour: another Adam call
    assert bank.trainer(slot).optimizer.param_groups[0]["fused"] is False
    resumed.step(30)
    bank.step(30)
    _assert_same_run(bank.trainer(slot), resumed)


def _labelled(name: str, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return datasets.sample(name, m, seed=seed, labels=True)


def _add_labelled(bank: BatchTrainer, name: str, m: int, seed: int, **options) -> int:
    points, labels = _labelled(name, m, seed)
    return bank.add(points, labels=labels, seed=seed, **options)


def test_a_labelled_slot_trains_like_a_labelled_trainer():
    # Same draws (labels and the dropped share included) and the same one-hot inputs in the same
    # order: only the batched products' rounding differs, as for an unlabelled slot.
    bank = BatchTrainer(device="cpu")
    runs = []
    for seed, (name, options) in enumerate(
        [
            ("moons", {}),
            ("8gaussians", {"label_dropout": 0.3, "schedule": "cosine"}),
            ("pinwheel", {"ema": 0.0}),
        ]
    ):
        points, labels = _labelled(name, 200 + 50 * seed, seed)
        trainer = Trainer(points, labels=labels, seed=seed, device="cpu", **options)
        runs.append((bank.add(points, labels=labels, seed=seed, **options), trainer))
    for n in (40, 60):
        stats = bank.step(n)
        for slot, trainer in runs:
            assert stats[slot].loss == pytest.approx(trainer.step(n).loss, rel=1e-4)
    for slot, trainer in runs:
        assert bank.trainer(slot).n_classes == trainer.n_classes > 0
        _assert_same_run(bank.trainer(slot), trainer)


def test_a_labelled_slot_is_the_same_alone_or_beside_unlabelled_and_other_labelled_slots():
    points, labels = _labelled("8gaussians", 300, 0)
    alone = BatchTrainer(device="cpu")
    solo = alone.add(points, labels=labels, seed=0)
    crowd = BatchTrainer(device="cpu")
    others = [crowd.add(_moons(i, 100 + 20 * i), seed=i) for i in range(1, 4)]  # unlabelled
    for i in range(4, 7):  # labelled, the same 8 classes (the same group) and other class counts
        name = ("8gaussians", "moons", "pinwheel")[i - 4]
        others.append(_add_labelled(crowd, name, 150 + 10 * i, i, label_dropout=0.05 * i))
    watched = crowd.add(points, labels=labels, seed=0)
    for round_ in range(3):
        alone.step(40)
        crowd.step(40)
        crowd.remove(others.pop(0))
        _add_labelled(crowd, "8gaussians", 120, 20 + round_)
    for x, y in zip(_weights(alone.trainer(solo)), _weights(crowd.trainer(watched)), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    assert alone.trainer(solo).history == pytest.approx(crowd.trainer(watched).history, rel=1e-6)


def test_a_labelled_slot_guides_class_k_samples_to_class_k():
    points, labels = _labelled("8gaussians", 2000, 0)
    bank = BatchTrainer(device="cpu")
    slot = bank.add(points, labels=labels, seed=0)
    bank.add(_moons(1), seed=1)
    bank.step(300)  # 99% of each class land nearest their centroid here (a label-blind field: ~12%)
    centroids = torch.stack([points[labels == k].mean(0) for k in range(8)])
    for k in range(8):
        z0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(k))
        samples = integrate(bank.trainer(slot).guided_velocity(k, guidance=1.0), z0, "rk4", 20).z_end
        assert (torch.cdist(samples, centroids).argmin(1) == k).float().mean() >= 0.9, k


def test_state_dict_and_add_state_keep_a_slots_labels():
    points, labels = _labelled("pinwheel", 250, 3)
    straight = Trainer(points, labels=labels, seed=3, label_dropout=0.2)
    straight.step(120)
    bank = BatchTrainer(device="cpu")
    bank.add(_moons(4), seed=4)
    slot = bank.add(points, labels=labels, seed=3, label_dropout=0.2)
    bank.step(70)
    state = pickle.loads(pickle.dumps(bank.state_dict(slot)))  # as shipped to a session
    assert torch.equal(state["labels"], labels) and state["config"]["options"]["label_dropout"] == 0.2
    again = BatchTrainer(device="cpu")
    back = again.add_state(state)
    assert torch.equal(again.trainer(back).labels, labels) and again.trainer(back).n_classes == 5
    again.step(50)
    _assert_same_run(again.trainer(back), straight)
    resumed = Trainer.from_state_dict(again.state_dict(back))
    assert torch.equal(resumed.labels, labels)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(
        resumed.guided_velocity(2, 1.5)(z, 0.4), again.trainer(back).guided_velocity(2, 1.5)(z, 0.4)
    )


def test_mean_flow_models_are_refused_with_a_plain_message():
    bank = BatchTrainer(device="cpu")
    with pytest.raises(ValueError, match=r"flow models only .* train a mean-flow model with Trainer"):
        bank.add(_moons(0), objective="meanflow")
    state = Trainer(_moons(0), objective="meanflow").state_dict()
    with pytest.raises(ValueError, match="flow models only"):
        bank.add_state(state)
    assert bank.slots == []


def test_slots_that_pair_their_own_noise_train_like_their_trainers():
    # Fixed noise pairs (reflow's) and minibatch OT pair each slot's rows on their own, after the
    # batched draw; their draws are still those of their Trainers.
    data, other = _moons(11), _moons(12, 180)
    noise = torch.randn(len(data), 2, generator=torch.Generator().manual_seed(3))
    bank = BatchTrainer(device="cpu")
    fixed, ot = bank.add(data, seed=11, noise=noise), bank.add(other, seed=12, coupling="ot")
    bank.add(_moons(13), seed=13)
    alone = [Trainer(data, seed=11, noise=noise), Trainer(other, seed=12, coupling="ot")]
    bank.step(40)
    for slot, trainer in zip((fixed, ot), alone, strict=True):
        trainer.step(40)
        _assert_same_run(bank.trainer(slot), trainer)


class _OpCount(TorchDispatchMode):
    """Counts the aten ops run inside it (each a kernel launch on a GPU)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _ops_per_step(k: int) -> tuple[int, int]:
    """(ops of a step that draws, ops of the next one, which reads the draws ahead) of a bank of
    ``k`` slots (moons of different sizes, each its own seed) in one pass, as on a GPU (on a CPU the
    bank splits a step into passes of ``ROWS_PER_CPU_PASS`` slots, for the cache; a GPU takes all
    slots in one)."""
    bank = BatchTrainer(device="cpu")
    for i in range(k):
        bank.add(_moons(i, 20 + 3 * i), seed=i)
    bank.step(1)
    (group,) = bank._groups.values()
    group.rows_per_pass = None
    group._ahead = None  # the next step draws, two counters of each slot
    counts = []
    for _ in range(2):
        with _OpCount() as count:
            group.train_step([True] * k)
        counts.append(count.ops)
    return counts[0], counts[1]


def test_a_steps_op_count_does_not_grow_with_the_number_of_slots(monkeypatch):
    # The deterministic stand-in for the GPU target (the step of 300 slots at most 3x the step of
    # 1): a GPU step's cost is its kernel launches, and with every slot's draws one counter-based
    # computation (not ~5 small ops from each slot's own generator) their number is the same
    # whatever K. Two counters drawn at once at every K, so that both kinds of step are counted.
    monkeypatch.setattr(trainer_module, "DRAW_ROWS", {"cpu": 2**30})
    monkeypatch.setattr(trainer_module, "MAX_AHEAD", 2)
    draws, ahead = zip(*(_ops_per_step(k) for k in (1, 30, 300)), strict=True)
    # (one slot's rows of the draws reshape without a copy: K = 1 may count one op fewer)
    assert draws[0] <= draws[1] == draws[2], draws
    assert ahead[0] <= ahead[1] == ahead[2] < draws[0], ahead
