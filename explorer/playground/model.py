"""What the page knows about the session's network, apart from the runner that trains it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import streamlit as st

from explorer.core.data import Dataset
from explorer.core.state import ViewState

from .keys import MODEL_KEY

__all__ = ["Model", "training_options", "training_spec"]


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
