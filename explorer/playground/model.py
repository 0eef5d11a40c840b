"""What the page knows about the session's network, apart from the runner that trains it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import streamlit as st

from explorer.core.data import Dataset
from explorer.core.state import ViewState

from .keys import MODEL_KEY

__all__ = ["LABEL_DROPOUT", "Model", "training_options", "training_spec", "trains_labels"]

LABEL_DROPOUT = 0.1
"""Share of each batch trained on the null label: the unconditional field, for guidance."""


@dataclass
class Model:
    """What the page knows about the session's network: its version, and the settings it was trained with.

    ``token`` names the network in caches that every session shares (``st.cache_data``): a random
    uuid4 made with each new network, never an address, which a later session's runner can reuse.
    """

    generation: int = 0
    spec: tuple | None = None
    token: str = ""

    @staticmethod
    def get() -> Model:
        return st.session_state.setdefault(MODEL_KEY, Model())

    def renew(self, spec: tuple | None) -> None:
        """A new network: the next generation, with a fresh ``token``."""
        self.generation += 1
        self.spec = spec
        self.token = uuid.uuid4().hex


def training_spec(state: ViewState, dataset: Dataset) -> tuple:
    return (dataset.key, state.coupling, state.target, state.seed, state.lr, state.objective)


def training_options(state: ViewState) -> dict:
    """What ``TrainingRunner.configure`` is given besides the data, schedule and seed.

    A mean flow keeps its objective's tuned target, coupling and learning rate
    (``fmcore.trainer.OBJECTIVE_DEFAULTS``); the runner trains it inline (the engine steps flows only).
    """
    if state.objective == "meanflow":
        return dict(objective="meanflow", target=None)
    return dict(target=state.target, coupling=state.coupling, lr=state.lr)


def trains_labels(state: ViewState, dataset: Dataset) -> bool:
    """Whether a new network is conditioned on the data's classes: labelled data, trained with the
    conditional target and independent noise (``fmcore.Trainer`` conditions on labels only so, as
    each class's field must start from N(0, I))."""
    return (
        dataset.classes > 0
        and state.objective == "flow"
        and state.target == "conditional"
        and state.coupling == "independent"
    )
