"""Many independent flow matching problems trained in one batched step: ``BatchTrainer``.

Each slot is a full ``Trainer`` (its own data, schedule, target, coupling, seed, options, generator,
EMA, optimizer state, history and divergence checks); what the bank adds is that the networks of
all slots with the same architecture are stepped together. Their weights live as rows of stacked
tensors, ``W_l`` of shape (K, out, in) and ``b_l`` of shape (K, out), and one forward pass is a
``torch.baddbmm`` per layer, on features h_l of shape (K, width, B):

    h_{l+1}[k] = act(W_l[k] h_l[k] + b_l[k])        for every slot k at once

Each slot's ``VelocityMLP`` parameters are views of its rows, so the slot's own ``Trainer`` (its
sampling field, snapshots, ``state_dict``) sees the bank's weights without copies. The losses of
the slots are summed before the backward pass; slot k's loss depends only on row k, so each row's
gradient is exactly that slot's gradient. Adam is torch's fused kernel
(``torch.optim.adam.adam``), called once for all slots that share a learning rate, on each slot's
own optimizer state (so per-slot step counts and bias corrections stay right); the EMA is one
``lerp_`` per layer with a per-slot weight.

The random draws are the Trainer's own (``Trainer._draw`` with the slot's generator), so a slot
trains like a plain ``Trainer`` with the same options and seed (up to the float rounding of
batched matrix products, which sum in another order), and bit for bit the same whatever else is in
the bank.

Speed (``bench/engine.py``, one CPU thread): the per-op overhead of a small MLP step is shared by
all slots; what is left per slot is its share of the matrix products and its draws (a handful of
small ops). The conditional target is computed in one call for all slots sharing a schedule.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.adam import adam

from .models import ACTIVATIONS, ModelConfig, VelocityMLP
from .trainer import Trainer, TrainStats, pick_device

__all__ = ["BatchTrainer"]

_ADAM_SETTINGS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


def _adam_state(optimizer: torch.optim.Adam, p: torch.Tensor) -> dict:
    """The Adam state of parameter ``p``, created as ``torch.optim.Adam`` creates it on its first
    step (a 0-d float32 step count, on the parameter's device when fused, and zero moments)."""
    state = optimizer.state[p]
    if not state:
        group = optimizer.param_groups[0]
        on_device = group["fused"] or group["capturable"]
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu")
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
    grads: list[torch.Tensor] = field(default_factory=list)  # its rows of the group's gradients
    _adam: tuple | None = None

    def __post_init__(self):
        self.params = list(self.trainer.model.parameters())

    def adam_state(self) -> tuple[list, list, list]:
        """(exp_avgs, exp_avg_sqs, steps) of the slot's Adam, cached until ``forget_adam``."""
        if self._adam is None:
            states = [_adam_state(self.trainer.optimizer, p) for p in self.params]
            self._adam = tuple([s[key] for s in states] for key in ("exp_avg", "exp_avg_sq", "step"))
        return self._adam

    def forget_adam(self):
        """After ``Trainer._restore``: its ``optimizer.load_state_dict`` made new state tensors."""
        self._adam = None


class _Group:
    """Slots with one architecture and batch size, their weights stacked along a first K axis."""

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device):
        self.config, self.batch_size, self.device = config, batch_size, device
        self.slots: list[_Slot] = []
        self._stacked = False
        self.activation = ACTIVATIONS[config.activation]()
        features = VelocityMLP(config).to(device)  # for its input features (buffers, no weights used)
        self.freqs = features.freqs
        self.space_features = features.space_features if config.z_freqs else None

    def add(self, slot: _Slot):
        self.slots.append(slot)
        self._stacked = False

    def remove(self, slot: _Slot):
        self.slots.remove(slot)
        self._stacked = False

    def stack(self):
        """(Re)build the stacked weights, EMA and gradients and point every slot's parameters at its
        row, once after any number of adds and removes (until then each Trainer's own tensors or
        its rows of the previous stack stay valid, so reading a slot never needs this)."""
        if self._stacked:
            return
        self._stacked = True
        models = [s.params for s in self.slots]
        emas = [list(s.trainer._sampling_net.parameters()) for s in self.slots]
        self.weights = [
            torch.stack([p.detach() for p in layer]).requires_grad_() for layer in zip(*models, strict=True)
        ]
        self.ema = [torch.stack([p.detach() for p in layer]) for layer in zip(*emas, strict=True)]
        self.grads = [torch.zeros_like(w) for w in self.weights]
        for k, slot in enumerate(self.slots):
            for p, weight in zip(models[k], self.weights, strict=True):
                p.data = weight.detach()[k]
            slot.grads = [grad[k] for grad in self.grads]
            if slot.trainer._ema is not None:
                for p, ema in zip(slot.trainer._ema.parameters(), self.ema, strict=True):
                    p.data = ema[k]

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The K networks at once: z (K, B, d), t (K, B) -> (K, B, d).

        Features run along the middle axis, ``h (K, width, B)``, and each layer is
        ``h <- act(b + W h)``: with d = 2 inputs and outputs, the batch-major layout's (B, 2)
        products and the strided gradients they hand to the activation's backward are several
        times slower on CPU (MKL, torch 2.13); the maths is the same.
        """
        angles = t[..., None] * self.freqs
        inputs = [z, angles.sin(), angles.cos()]
        if self.space_features is not None:
            inputs.append(self.space_features(z))
        h = torch.cat(inputs, dim=-1).mT.contiguous()
        *hidden, (weight, bias) = zip(self.weights[::2], self.weights[1::2], strict=True)
        for w, b in hidden:
            h = self.activation(torch.baddbmm(b[:, :, None], w, h))
        return torch.baddbmm(bias[:, :, None], weight, h).mT

    def train_step(self) -> torch.Tensor:
        """One step of every slot with steps left (the others' rows stay as they are): (K,) losses."""
        live = [s.todo > 0 for s in self.slots]
        t, z_t, target = self._regression(live)
        losses = (self.forward(z_t, t) - target).square().sum(2).mean(1)
        for buffer, grad in zip(self.grads, torch.autograd.grad(losses.sum(), self.weights), strict=True):
            buffer.copy_(grad)
        self._adam(live)
        self._ema_update(live)
        for slot, active in zip(self.slots, live, strict=True):
            if active:
                slot.trainer.step_count += 1
                slot.todo, slot.taken = slot.todo - 1, slot.taken + 1
        return losses.detach()

    def _regression(self, live: list[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each live slot's batch, drawn by its Trainer from its generator, and its regression pair:
        t (K, B), z_t (K, B, d), target (K, B, d); zeros in the rows of the other slots.

        The conditional target is pointwise, so slots sharing a schedule and a prediction get it in
        one call over their rows; a marginal target needs the slot's own data set.
        """
        n, d = self.batch_size, self.config.dim
        zeros = torch.zeros(n, d, device=self.device)
        draws, rows = [], {}
        for k, (slot, active) in enumerate(zip(self.slots, live, strict=True)):
            tr = slot.trainer
            draws.append(tr._draw(n, tr._generator)[:3] if active else (zeros[:, 0], zeros, zeros))
            if active:
                key = (tr.schedule.name, tr.options["prediction"]) if tr.target == "conditional" else k
                rows.setdefault(key, []).append(k)
        t, z1, z0 = (torch.stack(x) for x in zip(*draws, strict=True))
        with torch.no_grad():
            if [len(ks) for ks in rows.values()] == [len(self.slots)]:  # the usual case: one call for all
                pair = self.slots[0].trainer._regression(t.reshape(-1), z1.reshape(-1, d), z0.reshape(-1, d))
                return (t, *(x.view(len(self.slots), n, d) for x in pair))
            z_t, target = torch.zeros_like(z1), torch.zeros_like(z1)
            for ks in rows.values():
                index = torch.tensor(ks, device=self.device)
                pair = self.slots[ks[0]].trainer._regression(
                    t[index].reshape(-1), z1[index].reshape(-1, d), z0[index].reshape(-1, d)
                )
                z_t[index], target[index] = (x.view(len(ks), n, d) for x in pair)
        return t, z_t, target

    @torch.no_grad()  # as Optimizer.step: the update is no part of the graph
    def _adam(self, live: list[bool]):
        """torch's fused/foreach Adam, one call per set of identical settings (usually one lr)."""
        buckets: dict[tuple, list[_Slot]] = {}
        for slot, active in zip(self.slots, live, strict=True):
            if active:
                tr = slot.trainer
                group = tr.optimizer.param_groups[0]
                group["lr"] = tr.lr
                buckets.setdefault(tuple(group[k] for k in _ADAM_SETTINGS), []).append(slot)
        for slots in buckets.values():
            group = slots[0].trainer.optimizer.param_groups[0]
            params = [p for slot in slots for p in slot.params]
            exp_avgs, exp_avg_sqs, steps = (
                [x for slot in slots for x in slot.adam_state()[i]] for i in range(3)
            )
            adam(
                params,
                [g for slot in slots for g in slot.grads],
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                foreach=None if group["fused"] else True,
                fused=group["fused"],
                amsgrad=group["amsgrad"],
                beta1=group["betas"][0],
                beta2=group["betas"][1],
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
            )

    def _ema_update(self, live: list[bool]):
        """ema <- lerp(ema, weights, 1 - decay) row by row; weight 0 (no change) for slots not
        stepped or without an EMA (whose EMA row is an unused copy of the weights)."""
        weights = []
        for slot, active in zip(self.slots, live, strict=True):
            tr = slot.trainer
            if active and tr._ema is not None:
                # The Trainer's warm-up, (t+1)/(t+10): early on the average must not remember the init.
                weights.append(1 - min(tr.options["ema"], (1 + tr.step_count) / (10 + tr.step_count)))
            else:
                weights.append(0.0)
        if not any(weights):
            return
        w = torch.tensor(weights, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            for ema, weight in zip(self.ema, self.weights, strict=True):
                ema.lerp_(weight.detach(), w.view(-1, *[1] * (ema.dim() - 1)))


class BatchTrainer:
    """K independent ``Trainer`` runs stepped together, one batched step for all.

    Slots whose networks differ in shape (data dimension, hidden, depth, n_freqs, z_freqs, activation) or
    in batch size cannot share stacked weights: they are put in separate groups internally, each
    stepped in its own batched pass. Everything else (schedule, target, coupling, prediction,
    reference, lr and its schedule, EMA, check_every, max_steps, the seed and the data, whose size
    may differ) is per slot.

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
        if trainer.labels is not None or trainer.objective != "flow":
            raise ValueError(
                "BatchTrainer steps unconditional flow models only; train a labelled or mean-flow "
                "model with Trainer"
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
            s.todo, s.taken, s.chunk, s.losses = s.trainer._budget(n), 0, [], []
        start = time.perf_counter()
        for group in self._groups.values():
            self._run(group)
        seconds = time.perf_counter() - start
        stats = {}
        for slot_id, s in self._slots.items():
            tr, done = s.trainer, len(s.losses)
            if s.taken:
                tr.elapsed += seconds
            tr._mark_done()
            loss = float(np.mean(s.losses)) if s.losses else math.nan
            stats[slot_id] = tr._stats(loss, done / max(seconds, 1e-9) if done else 0.0)
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
            pending.append((group.train_step(), live))
            due = [
                s
                for s, a in zip(group.slots, live, strict=True)
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
            for s in due:
                chunk, s.chunk = s.chunk, []
                if s.trainer._end_chunk(chunk):
                    s.losses.extend(chunk)
                else:
                    s.todo = 0
                    s.forget_adam()
