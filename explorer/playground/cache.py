"""The numbers behind the figures, cached with ``st.cache_data`` and shared by every session.

Each wrapper is a pure function of ``explorer.core``, kept under a key that crosses sessions: a
``Source`` or ``Dataset`` hashes as its ``key`` (preset name and seed, a blake2b content hash of
the user's points, or a model's uuid4 token), never an address or a 32-bit checksum.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.core import data, densities, fields, flows, quality
from explorer.core.data import Dataset
from explorer.core.flows import Flow, Source

__all__ = [
    "density_frames",
    "energy_distance",
    "field_frames",
    "flow",
    "load_dataset",
    "model_density_frames",
    "noise_floor",
    "noise_particles",
    "single_path",
    "warp_frames",
]

_HASH = {Source: lambda source: source.key, Dataset: lambda dataset: dataset.key}


@st.cache_data(max_entries=64, show_spinner=False)
def _preset(name: str, seed: int) -> Dataset:
    return data.preset_dataset(name, seed)


@st.cache_data(max_entries=64, show_spinner=False)
def _custom(points: np.ndarray, key: str, labels: np.ndarray | None) -> Dataset:
    return data.custom_dataset(points, key, labels)


def load_dataset(
    name: str,
    seed: int,
    points: np.ndarray | None = None,
    points_key: str = "",
    labels: np.ndarray | None = None,
) -> Dataset:
    """A preset sample (with its classes, if it has natural ones), or the user's points normalised
    by ``datasets.from_points`` with their optional (n,) ``labels``; ``points_key`` fingerprints both.

    Raises:
        ValueError: the user's points cannot describe a distribution, or the labels cannot be
            their classes (message for a person).
    """
    if points is not None:
        return _custom(points, points_key, labels)
    return _preset(name, seed)


noise_particles = st.cache_data(max_entries=16, show_spinner=False)(data.noise_particles)


@st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)
def flow(source: Source, n: int, seed: int, solver: str, steps: int, grid: str, noise: float = 0.0) -> Flow:
    """``flows.compute_flow`` of n particles from ``noise_particles(n, seed)``, cached by the source's key.

    An SDE's Brownian increments come from ``seed`` too: one figure per view, however often drawn.
    """
    return flows.compute_flow(source, noise_particles(n, seed), solver, steps, grid, noise, seed)


field_frames = st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)(fields.field_frames)
density_frames = st.cache_data(max_entries=24, show_spinner=False, hash_funcs=_HASH)(densities.density_frames)
model_density_frames = st.cache_data(
    max_entries=12, show_spinner="Integrating the network's log-likelihood for every frame…", hash_funcs=_HASH
)(densities.model_density_frames)
warp_frames = st.cache_data(max_entries=24, show_spinner=False, hash_funcs=_HASH)(fields.warp_frames)
single_path = st.cache_data(max_entries=48, show_spinner=False, hash_funcs=_HASH)(fields.single_path)
energy_distance = st.cache_data(max_entries=64, show_spinner=False)(quality.energy_distance)
noise_floor = st.cache_data(max_entries=64, show_spinner=False, hash_funcs=_HASH)(quality.noise_floor)
