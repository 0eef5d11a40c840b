"""Many independent flow matching problems trained in one batched step: ``BatchTrainer``.

Each slot is a full ``Trainer`` (its own data, schedule, target, coupling, seed, options, generator,
EMA, optimizer state, history and divergence checks), stepped through the Trainer's public
stepping API (``budget``, ``draw``, ``regression``, ``ema_decay``, ``check``, ``finish``); what
the bank adds is that the networks of all slots with the same architecture are stepped together.
A slot's P parameters are row k of one flat tensor ``theta`` (K, P); the layers are views of it,
``W_l`` (K, out, in) and ``b_l`` (K, out), and one forward pass is a ``torch.baddbmm`` per layer,
on features h_l of shape (K, width, B):

    h_{l+1}[k] = act(W_l[k] h_l[k] + b_l[k])        for every slot k at once

Each slot's ``VelocityMLP`` parameters, EMA and Adam state are views of its rows, so the slot's own
``Trainer`` (its sampling field, snapshots, ``state_dict``) sees the bank's tensors without copies.
The forward pass, the loss and its gradient are ``fmcore.stacked.StackedMLP``'s (the backward pass
written out, equal to autograd's, into buffers kept between steps); slot k's loss depends only on
row k, so each row's gradient is exactly that slot's gradient. Adam is torch's fused kernel over the
slots' rows (each with its own lr and step count) and the EMA one lerp of (K, P) rows (each slot's
decay), whatever K and the depth.

A labelled slot (``Trainer(data, labels=y)``) also feeds its network the one-hot labels its
``Trainer.draw`` returned (the null label on the ``label_dropout`` share), after the other
features, as ``VelocityMLP.forward`` orders them.

The random draws are the Trainer's own: each slot's stream is counter-based (``fmcore.counter_rng``,
Philox at the slot's key and counter), so the draws of all slots are one batched computation, the
same numbers as each slot's ``Trainer.draw``, and a slot trains like a plain ``Trainer`` with the
same options and seed (up to float rounding: batched matrix products sum in another order, and
Adam's update is written for rows), and the same (to 1e-6) whatever else is in the bank.

Speed (``bench/engine.py``, one CPU thread): the per-op overhead of a small MLP step is shared by
all slots; what is left per slot is its share of the matrix products (at 30 slots about 80 GFLOP/s,
MKL's rate for such products on this CPU, and most of the step) and of the draws. The
conditional target is computed in one call for all slots sharing a schedule. On a GPU a step is a
fixed number of kernel launches whatever K (tests/fmcore/test_batch_trainer.py counts them), except
for slots with minibatch OT, fixed noise pairs or a marginal target, a few ops each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from . import counter_rng
from .models import ModelConfig
from .stacked import StackedMLP
from .trainer import Trainer, TrainStats, batches, draw_layout, draws_ahead, pick_device

__all__ = ["BatchTrainer"]

ROWS_PER_CPU_PASS = 16


def _adam_state(optimizer: torch.optim.Adam, p: torch.Tensor) -> dict:
    """The Adam state of parameter ``p``, created as ``torch.optim.Adam`` creates it on its first
    step (a 0-d float32 step count and zero moments)."""
    state = optimizer.state[p]
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def _group_key(trainer: Trainer) -> tuple[ModelConfig, int]:
    """What slots must share to be stacked: the network's shape and the batch size."""
    return trainer.model_config, trainer.options["batch_size"]


@dataclass
class _Slot:
    """One slot: its Trainer, and what the current ``step(n)`` call planned for it."""

    trainer: Trainer
    todo: int = 0  # steps this call still may take
    taken: int = 0  # steps taken in this call
    chunk: list[float] = field(default_factory=list)  # losses since its last check
    losses: list[float] = field(default_factory=list)  # losses kept in this call


class _Group:
    """Slots with one architecture and batch size, every per-slot tensor a row of one flat one.

    A slot's P parameters (the ``VelocityMLP``'s, in order) are row k of ``theta`` (K, P); its EMA,
    Adam moments and Adam step counts are rows of ``ema``, ``exp_avg``, ``exp_avg_sq`` (K, P) and
    ``steps`` (K, L) (one count per parameter tensor, as torch keeps them). The layers' weights are
    views of ``theta``, so an update (Adam, EMA, the divergence check's largest weight) is a few
    ops on (K, P) whatever the depth, and each Trainer's own tensors are views of its rows.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device):
        self.config, self.batch_size, self.device = config, batch_size, device
        self.slots: list[_Slot] = []
        self._stacked = False
        self.mlp = StackedMLP(config, device)
        self.shapes, self.sizes = self.mlp.shapes, self.mlp.sizes
        # Slots per forward and backward pass: on a CPU, passes of 16 bound each kept buffer (about
        # 1 MB at hidden 64, batch 256) whatever K, at a speed within the noise of one pass (30 and
        # 100 slots, one thread, measured here); elsewhere one pass for all, since each pass costs
        # its kernel launches.
        self.rows_per_pass = ROWS_PER_CPU_PASS if device.type == "cpu" else None

    def add(self, slot: _Slot):
        self.slots.append(slot)
        self._stacked = False

    def remove(self, slot: _Slot):
        self.slots.remove(slot)
        self._stacked = False

    def unstack(self):
        """After a ``Trainer.check`` restored a slot: its ``optimizer.load_state_dict`` made new
        state tensors, which the next step gathers again."""
        self._stacked = False

    def _flat(self, rows: list[list[torch.Tensor]]) -> torch.Tensor:
        """(K, P): each slot's tensors, flattened and concatenated in parameter order."""
        return torch.stack([torch.cat([x.detach().reshape(-1) for x in row]) for row in rows])

    def _point(self, tensors: list[torch.Tensor], flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of one (P,) row of ``flat``, one per parameter, shaped as ``tensors``."""
        return [x.view(shape) for x, shape in zip(flat.split(self.sizes), self.shapes, strict=True)]

    def stack(self):
        """(Re)build the flat rows and point every slot's parameters, EMA and Adam state at them,
        once after any number of adds, removes and restores (until then each Trainer's own tensors
        or its rows of the previous stack stay valid, so reading a slot never needs this)."""
        if self._stacked:
            return
        self._stacked = True
        trainers = [s.trainer for s in self.slots]
        params = [list(tr.model.parameters()) for tr in trainers]
        states = [[_adam_state(tr.optimizer, p) for p in ps] for tr, ps in zip(trainers, params, strict=True)]
        self.theta = self._flat(params)
        self.ema = self._flat([list(tr.sampling_net.parameters()) for tr in trainers])
        self.exp_avg, self.exp_avg_sq = (
            self._flat([[s[key] for s in ss] for ss in states]) for key in ("exp_avg", "exp_avg_sq")
        )
        self.steps = torch.stack([torch.stack([s["step"] for s in ss]) for ss in states]).to(torch.float32)
        self.grad = torch.empty_like(self.theta)  # overwritten by each step
        # each slot's rows as the fused Adam takes them: (P,) parameters, moments, a 0-d step count
        self.rows = [
            list(x) for x in (self.theta, self.grad, self.exp_avg, self.exp_avg_sq, self.steps[:, 0])
        ]
        theta = self.theta
        for k, (tr, ps, ss) in enumerate(zip(trainers, params, states, strict=True)):
            for p, view in zip(ps, self._point(ps, theta[k]), strict=True):
                p.data = view
            if tr.ema_net is not None:
                ema = list(tr.ema_net.parameters())
                for p, view in zip(ema, self._point(ema, self.ema[k]), strict=True):
                    p.data = view
            for i, (s, m, v) in enumerate(
                zip(ss, self._point(ps, self.exp_avg[k]), self._point(ps, self.exp_avg_sq[k]), strict=True)
            ):
                s["exp_avg"], s["exp_avg_sq"], s["step"] = m, v, self.steps[k, i]
        self._stack_draws(trainers)

    def _stack_draws(self, trainers: list[Trainer]):
        """What ``_regression`` draws from, for all slots at once: their keys (K, 2), data one after
        another (M, d) with each slot's offset (K, 1) and size (K,), labels (M,), t_max and
        label_dropout (K, 1); which slots pair their noise themselves (fixed noise, a coupling), and
        which slots share one call of the conditional target. The draws ahead are dropped."""
        device = self.device
        self.keys = torch.tensor([counter_rng.key_words(tr.rng_key) for tr in trainers], device=device)
        self.data = torch.cat([tr.data for tr in trainers])
        self.data_sizes = torch.tensor([len(tr.data) for tr in trainers], device=device)
        self.offsets = (self.data_sizes.cumsum(0) - self.data_sizes)[:, None]
        self.labels = torch.cat([tr.labels for tr in trainers]) if self.config.n_classes else None
        self.t_max = torch.tensor([[tr.schedule.t_max] for tr in trainers], device=device)
        self.label_dropout = torch.tensor([[tr.options["label_dropout"]] for tr in trainers], device=device)
        self.paired = [
            k for k, tr in enumerate(trainers) if tr.noise is not None or tr.coupling != "independent"
        ]
        self.conditional: dict[tuple, list[int]] = {}
        for k, tr in enumerate(trainers):
            if tr.target == "conditional":
                self.conditional.setdefault((tr.schedule.name, tr.options["prediction"]), []).append(k)
        self.marginal = [k for k, tr in enumerate(trainers) if tr.target == "marginal"]
        self._ahead: tuple[list[int], counter_rng.Draws] | None = None

    def train_step(self, live: list[bool]) -> torch.Tensor:
        """One step of the slots flagged ``live``; the others' rows stay exactly as they are: (K,) losses."""
        self.stack()
        t, z_t, target, labels = self._regression(live)
        mask = torch.tensor(live, dtype=z_t.dtype, device=self.device)
        h = self.mlp.features(z_t, t, labels)
        losses, grad = torch.empty(len(live), device=self.device), self.grad
        k = len(live)
        rows = self.rows_per_pass or k
        for i in range(0, k, rows):
            j = min(i + rows, k)
            losses[i:j] = self.mlp.loss_and_grad(self.theta[i:j], h[i:j], target[i:j], mask[i:j], grad[i:j])
        self._adam(live, mask)
        self._ema_update(live)
        for slot, active in zip(self.slots, live, strict=True):
            if active:
                slot.trainer.step_count += 1
                slot.todo, slot.taken = slot.todo - 1, slot.taken + 1
        return losses

    def _draws(self, counters: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every slot's draws at its counter: rows (K, n) (offsets not added), uniforms (K, n, u) and
        the noise's normals (K, n, d), in ``draw_layout``'s order, as each slot's ``Trainer.draw``
        draws them: Philox at (key, counter) for all K slots in one ``counter_rng.draw``, the next
        ``draws_ahead`` counters of each at once (the same numbers as one by one)."""
        k, n = len(counters), self.batch_size
        if self._ahead is None or not all(
            0 <= c - b < self._ahead[1].rows.shape[1] for c, b in zip(counters, self._ahead[0], strict=True)
        ):
            ahead = draws_ahead(k, n, self.device)
            start = torch.tensor(counters, device=self.device)[:, None]
            steps = torch.arange(ahead, device=self.device)
            uniforms, normals = draw_layout(self.config.n_classes > 0)
            draws = counter_rng.draw(
                self.keys.repeat_interleave(ahead, 0),
                (start + steps).reshape(-1),
                n,
                self.data_sizes.repeat_interleave(ahead),
                uniforms,
                self.config.dim + normals,
            )
            fields = (draws.rows, draws.uniforms, draws.normals)
            self._ahead = (counters, counter_rng.Draws(*(x.view(k, ahead, *x.shape[1:]) for x in fields)))
        base, draws = self._ahead
        at = [c - b for c, b in zip(counters, base, strict=True)]
        if len(set(at)) == 1:  # the usual case, every slot stepped since: views, no index to copy
            return draws.rows[:, at[0]], draws.uniforms[:, at[0]], draws.normals[:, at[0]]
        slot, at = torch.arange(k, device=self.device), torch.tensor(at, device=self.device)
        return draws.rows[slot, at], draws.uniforms[slot, at], draws.normals[slot, at]

    def _regression(
        self, live: list[bool]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Every slot's batch, drawn from its stream as its ``Trainer.draw`` would, and its regression
        pair: t (K, B), z_t (K, B, d), target (K, B, d), and in a labelled group the batch's labels
        (K, B) int64 (the null label on the dropped share), else None. The live slots' counters move
        on; the other rows are drawn all the same (the step masks them) and their counters stay.

        The draws of all slots are one batched computation whatever K (``counter_rng``); only the
        slots that pair their noise themselves (fixed noise, minibatch OT) or have a marginal
        target (which needs their own data set) cost a few ops each. The conditional target is
        pointwise (labels do not change it: a labelled Trainer trains only that target), so slots
        sharing a schedule and a prediction get it in one call over their rows.
        """
        d, slots = self.config.dim, self.slots
        trainers = [s.trainer for s in slots]
        rows, uniforms, z0 = self._draws([tr.rng_counter for tr in trainers])
        for tr, active in zip(trainers, live, strict=True):
            tr.rng_counter += active
        batch = batches(
            rows + self.offsets,
            uniforms,
            z0,
            self.data,
            self.t_max,
            self.labels,
            self.label_dropout,
            self.config.n_classes,
        )
        t, z1, z0 = batch.t, batch.z_1, batch.z_0
        if self.paired:
            z0 = z0.clone()  # a view of the draws ahead: they stay as drawn
            for k in self.paired:
                if live[k]:
                    z0[k] = trainers[k].pair(rows[k], z0[k], z1[k])
        k_all = len(slots)
        with torch.no_grad():
            if len(self.conditional) == 1 and not self.marginal:  # the usual case: one call for all
                pair = trainers[0].regression(t.reshape(-1), z1.reshape(-1, d), z0.reshape(-1, d))
                return (t, *(x.view(k_all, -1, d) for x in pair), batch.labels)
            z_t, target = torch.zeros_like(z1), torch.zeros_like(z1)
            for ks in [*self.conditional.values(), *([k] for k in self.marginal if live[k])]:
                index = torch.tensor(ks, device=self.device)
                pair = trainers[ks[0]].regression(
                    t[index].reshape(-1), z1[index].reshape(-1, d), z0[index].reshape(-1, d)
                )
                z_t[index], target[index] = (x.view(len(ks), -1, d) for x in pair)
        return t, z_t, target, batch.labels

    @torch.no_grad()  # as Optimizer.step: the update is no part of the graph
    def _adam(self, live: list[bool], mask: torch.Tensor):
        """torch's Adam (``torch.optim.Adam`` as the Trainer makes it: no weight decay, no amsgrad)
        on the rows of the ``live`` slots, from the gradient rows ``self.grad``, each slot with its own
        lr and step count; the other rows keep their weights, moments and counts exactly.

        torch's own fused kernel (``torch._fused_adam_``, what ``Adam(fused=True)`` calls, and what
        the Trainer uses on a CPU or cuda), with each slot's row as one parameter and its step count
        as that parameter's: one pass over the rows (here half the time of the same maths as
        (K, P) ops), one call per distinct lr among the live slots, since the kernel takes one lr
        per call (usually one call). ``mask``: (K,) ``live`` as 0 and 1."""
        group = self.slots[0].trainer.optimizer.param_groups[0]
        (beta1, beta2), eps = group["betas"], group["eps"]
        self.steps += mask[:, None]
        by_lr: dict[float, list[int]] = {}
        for k, (slot, active) in enumerate(zip(self.slots, live, strict=True)):
            if active:
                by_lr.setdefault(slot.trainer.lr, []).append(k)
        for lr, ks in by_lr.items():
            every = len(ks) == len(self.slots)  # the usual case: the lists as they are
            theta, grad, exp_avg, exp_avg_sq, steps = (
                rows if every else [rows[k] for k in ks] for rows in self.rows
            )
            torch._fused_adam_(
                theta, grad, exp_avg, exp_avg_sq, [], steps,
                lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False,
            )  # fmt: skip

    @torch.no_grad()
    def _ema_update(self, live: list[bool]):
        """ema <- lerp(ema, theta, 1 - decay) row by row, 1 - decay taken in Python as the Trainer
        takes it; weight 0 (no change) for slots not stepped or without an EMA (whose EMA row is an
        unused copy of the weights)."""
        weight = [
            [1 - s.trainer.ema_decay if active and s.trainer.ema_net is not None else 0.0]
            for s, active in zip(self.slots, live, strict=True)
        ]
        self.ema.lerp_(self.theta, torch.tensor(weight, dtype=self.ema.dtype, device=self.device))

    def weight_max(self) -> list[float]:
        """Each slot's largest absolute weight, for its divergence check."""
        return self.theta.abs().amax(1).tolist()


class BatchTrainer:
    """K independent ``Trainer`` runs stepped together, one batched step for all.

    Slots whose networks differ in shape (data dimension, hidden, depth, n_freqs, z_freqs, activation,
    the number of classes of a labelled slot) or in batch size cannot share stacked weights: they
    are put in separate groups internally, each stepped in its own batched pass. Everything else
    (schedule, target, coupling, prediction, reference, lr and its schedule, EMA, check_every,
    max_steps, label_dropout, the seed, the data, whose size may differ, and its labels) is per
    slot. Mean-flow slots are refused (another network, and a loss through a Jacobian-vector
    product): train them with ``Trainer``.

    Args:
        device: None picks cuda, then mps, then cpu (like ``Trainer``); every slot lives on it.
    """

    def __init__(self, device=None):
        self.device = pick_device(device)
        self._slots: dict[int, _Slot] = {}
        self._groups: dict[tuple, _Group] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def slots(self) -> list[int]:
        """The ids of the slots, in the order they were added."""
        return list(self._slots)

    def add(
        self, data, schedule="linear", target="conditional", coupling="independent", seed=0, **options
    ) -> int:
        """A new slot training on ``data``; arguments and options as ``Trainer``'s (validated the same
        way, the same ``ValueError``s). Returns the slot's id."""
        return self._adopt(
            Trainer(
                data,
                schedule=schedule,
                target=target,
                coupling=coupling,
                seed=seed,
                device=self.device,
                **options,
            )
        )

    def add_state(self, state: dict) -> int:
        """A new slot resuming a ``Trainer.state_dict()`` (or ``BatchTrainer.state_dict(slot)``)."""
        return self._adopt(Trainer.from_state_dict(state, device=self.device))

    def _adopt(self, trainer: Trainer) -> int:
        if trainer.objective != "flow":
            raise ValueError(
                "BatchTrainer steps flow models only (labelled or not); train a mean-flow model with Trainer"
            )
        key = _group_key(trainer)
        if key not in self._groups:
            self._groups[key] = _Group(*key, self.device)
        slot = _Slot(trainer)
        self._groups[key].add(slot)
        slot_id, self._next_id = self._next_id, self._next_id + 1
        self._slots[slot_id] = slot
        return slot_id

    def _slot(self, slot: int) -> _Slot:
        if slot not in self._slots:
            raise KeyError(f"no slot {slot!r} in this BatchTrainer; slots: {self.slots}")
        return self._slots[slot]

    def remove(self, slot: int):
        """Drop a slot; the others train on as if it had never been there."""
        s = self._slot(slot)
        key = _group_key(s.trainer)
        self._groups[key].remove(s)
        if not self._groups[key].slots:
            del self._groups[key]
        del self._slots[slot]

    def trainer(self, slot: int) -> Trainer:
        """The slot's ``Trainer`` (read it: ``history``, ``flow``, ``loss_floor``, ``config``; train it
        through the bank, whose stacked weights its parameters are views of)."""
        return self._slot(slot).trainer

    def set_lr(self, slot: int, lr: float):
        """``Trainer.set_lr`` for one slot (also resumes it after a divergence)."""
        self._slot(slot).trainer.set_lr(lr)

    def velocity(self, slot: int, z, t) -> torch.Tensor:
        """The slot's sampling field (EMA weights) at (z, t), as ``Trainer.velocity``: (n, d) on the CPU."""
        return self._slot(slot).trainer.velocity(z, t)

    def state_dict(self, slot: int) -> dict:
        """The slot as a ``Trainer.state_dict()``: ``Trainer.from_state_dict`` resumes it exactly."""
        return self._slot(slot).trainer.state_dict()

    def step(self, n: int = 50) -> dict[int, TrainStats]:
        """``n`` more steps of every slot (fewer for a slot that reaches ``max_steps`` or diverges;
        none for one that is "diverged" or "done"), as ``Trainer.step(n)`` would take them.

        Returns:
            {slot id: the slot's ``TrainStats`` for this call}.
        """
        for s in self._slots.values():
            s.todo, s.taken, s.chunk, s.losses = s.trainer.budget(n), 0, [], []
        start = time.perf_counter()
        for group in self._groups.values():
            self._run(group)
        seconds = time.perf_counter() - start
        stats = {
            slot_id: s.trainer.finish(s.losses, seconds if s.taken else 0.0)
            for slot_id, s in self._slots.items()
        }
        for s in self._slots.values():
            s.todo = 0
        return stats

    @staticmethod
    def _run(group: _Group):
        """Step the group until no slot has steps left; check each slot where its Trainer would (every
        ``check_every`` steps of this call and at its last one), keeping or restoring it."""
        group.stack()
        pending: list[tuple[torch.Tensor, list[bool]]] = []
        while any(s.todo > 0 for s in group.slots):
            live = [s.todo > 0 for s in group.slots]
            pending.append((group.train_step(live), live))
            due = [
                (k, s)
                for k, (s, a) in enumerate(zip(group.slots, live, strict=True))
                if a and (s.todo == 0 or s.taken % s.trainer.options["check_every"] == 0)
            ]
            if not due:
                continue
            rows = torch.stack([losses for losses, _ in pending]).tolist()
            for row, (_, was_live) in zip(rows, pending, strict=True):
                for s, x, a in zip(group.slots, row, was_live, strict=True):
                    if a:
                        s.chunk.append(x)
            pending = []
            weight_max = group.weight_max()
            for k, s in due:
                chunk, s.chunk = s.chunk, []
                if s.trainer.check(chunk, weight_max[k]):
                    s.losses.extend(chunk)
                else:
                    s.todo = 0
                    group.unstack()
