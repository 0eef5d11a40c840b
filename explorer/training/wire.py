"""What crosses between a session and the training engine: sampling weights, polls' reports, states.

A Trainer state travels with its tensors as numpy arrays (``to_wire`` / ``from_wire``): torch
pickles each tensor through ``torch.save``, about 10x slower for a state of ~40 tensors. The
sampling network travels as ``FlowWeights`` (a few kB of arrays) and is rebuilt in the server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fmcore.models import FlowModel, ModelConfig, VelocityMLP
from fmcore.trainer import STATE_FORMAT, Trainer, TrainStats

__all__ = [
    "HISTORY_TAIL",
    "FlowWeights",
    "Report",
    "flow_from_weights",
    "from_wire",
    "to_wire",
    "trimmed_state",
]

HISTORY_TAIL = 1000
"""Losses kept in a synced state. The trainer reads only the recent ones (its divergence check
uses a median of the last 500); the whole curve stays in the session."""


@dataclass(frozen=True)
class FlowWeights:
    """The sampling network as plain arrays: a few kB, cheap to rebuild in the server."""

    config: ModelConfig
    schedule: str
    prediction: str
    weights: dict[str, np.ndarray]

    @classmethod
    def of(cls, trainer: Trainer) -> FlowWeights:
        flow = trainer.flow
        weights = {k: v.detach().cpu().numpy().copy() for k, v in flow.net.state_dict().items()}
        return cls(flow.config, flow.schedule.name, flow.prediction, weights)


def flow_from_weights(w: FlowWeights) -> FlowModel:
    net = VelocityMLP(w.config)
    # torch.tensor copies: arrays that came through Ray are read-only.
    net.load_state_dict({k: torch.tensor(v) for k, v in w.weights.items()})
    return FlowModel(net.requires_grad_(False), w.schedule, w.prediction)


def trimmed_state(trainer: Trainer) -> dict:
    """``trainer.state_dict()`` with only the recent losses (``HISTORY_TAIL``)."""
    state = trainer.state_dict()
    state["history"] = state["history"][-HISTORY_TAIL:].clone()
    return state


@dataclass(frozen=True)
class Report:
    """What a poll returns for one slot.

    Attributes:
        stats: the slot's last ``TrainStats`` with ``loss`` the mean of ``losses``; None before its
            first batched step.  losses: (k,) float32, the losses of the steps since the last poll.
        flow: the sampling weights (None when no step was taken since the last poll).
        state: the slot's ``trimmed_state`` every ``sync_s`` seconds, else None.
        device: where the engine trains.
    """

    stats: TrainStats | None
    losses: np.ndarray
    flow: FlowWeights | None
    state: dict | None
    device: str


def _map_state(value, convert):
    """``value`` with ``convert`` applied to every array in each Trainer state it is or holds (a
    state, or a ``Report`` with one); anything else as it is."""
    if isinstance(value, Report) and value.state is not None:
        return replace(value, state=_map_state(value.state, convert))
    if isinstance(value, dict) and value.get("format") == STATE_FORMAT:
        return _map_arrays(value, convert)
    return value


def _map_arrays(value, convert):
    if isinstance(value, torch.Tensor | np.ndarray):
        return convert(value)
    if isinstance(value, dict):
        return {k: _map_arrays(v, convert) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_arrays(v, convert) for v in value)
    return value


def to_wire(value):
    """A request's argument or an answer as it crosses to or from the engine: its Trainer states'
    tensors as numpy arrays. torch pickles each tensor through ``torch.save``; a state of ~40
    tensors then takes ~10x longer to pickle and unpickle (3.4 ms and 5.8 ms here) than its arrays."""
    return _map_state(value, lambda x: x.numpy() if isinstance(x, torch.Tensor) else x)


def from_wire(value):
    """``to_wire``'s inverse: the states' arrays as tensors again (copied where read-only, as Ray
    hands out arrays from its object store)."""

    def tensor(x):
        if not isinstance(x, np.ndarray):
            return x
        return torch.from_numpy(x if x.flags.writeable else x.copy())

    return _map_state(value, tensor)
