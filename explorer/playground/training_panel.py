"""The Train / Pause / Reset buttons, loading a saved model, and the live part below them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
import torch

from explorer import training
from explorer.core.data import Dataset
from explorer.core.state import ViewState, widget_key
from explorer.core.text import plain, shorten

from . import live
from .data_panel import too_large
from .keys import MODEL_ERROR_KEY
from .model import LABEL_DROPOUT, Model, training_options, training_spec, trains_labels

__all__ = ["on_load_model", "start_training", "training_panel"]


def _configure(runner, dataset: Dataset, state: ViewState) -> bool:
    model = Model.get()
    labels = (
        dict(labels=torch.from_numpy(dataset.train_labels), label_dropout=LABEL_DROPOUT)
        if trains_labels(state, dataset)
        else {}
    )
    try:
        runner.configure(
            torch.from_numpy(dataset.train),
            schedule=state.schedule,
            seed=state.seed,
            **training_options(state),
            **labels,
        )
    except ValueError as error:
        st.session_state[MODEL_ERROR_KEY] = f"Could not start training: {error}"
        return False
    model.renew(training_spec(state, dataset))
    return True


def start_training(runner, dataset: Dataset, state: ViewState) -> None:
    """Train: a fresh network when there is none or the data or settings changed, else go on."""
    model = Model.get()
    if (not runner.configured or model.spec != training_spec(state, dataset)) and not _configure(
        runner, dataset, state
    ):
        return
    runner.start()


def _on_train(dataset: Dataset, state: ViewState) -> None:
    start_training(training.session_runner(st.session_state), dataset, state)


def _on_pause() -> None:
    training.session_runner(st.session_state).pause()


def _on_reset(dataset: Dataset, state: ViewState) -> None:
    _configure(training.session_runner(st.session_state), dataset, state)


def on_load_model() -> None:
    """Load a saved model (validated by fmcore) in place of the current one; errors keep everything."""
    upload = st.session_state.get(widget_key("model_upload"))
    if upload is None:
        return
    name = shorten(upload.name)
    refusal = too_large(upload)
    if refusal:
        st.session_state[MODEL_ERROR_KEY] = refusal.replace(
            "Nothing was changed.", "Your current model is kept."
        )
        return
    runner = training.session_runner(st.session_state)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(upload.getvalue())
        try:
            # Validated by fmcore.io (anything but an fmcore model of 2-D data is refused); messages
            # name the upload, not the server's temporary path.
            runner.load(path, name=name)
        except (ValueError, OSError) as error:
            st.session_state[MODEL_ERROR_KEY] = f"{name} was not loaded: {error} Your current model is kept."
            return
    Model.get().renew(None)
    st.session_state[widget_key("field")] = "learned"
    st.session_state.pop(MODEL_ERROR_KEY, None)
    st.toast(plain(f"Loaded {name}: the figure now shows its learned field."), icon=":material/check_circle:")


def training_panel(runner, dataset: Dataset, state: ViewState) -> None:
    """Train / pause / reset, then the live part: stats, loss curve and the network's samples."""
    # Every element below exists in every run (empty slots when unused), and the live fragment has
    # a container of its own: a fragment run, however many elements it draws, then never shifts,
    # overwrites or clears the Data panel below it in the same column.
    error = st.session_state.pop(MODEL_ERROR_KEY, None)
    error_slot = st.empty()
    if error:
        error_slot.error(plain(error), icon=":material/error:")
    model = Model.get()
    stale = runner.configured and model.spec is not None and model.spec != training_spec(state, dataset)
    if stale and runner.running:  # new data or settings while training: a fresh network, still running
        if _configure(runner, dataset, state):
            runner.start()
            st.toast(
                "Data or training settings changed: training a fresh network.", icon=":material/restart_alt:"
            )
        stale = False
    go_col, pause_col, reset_col = st.columns(3)
    go_col.button(
        "Train" if runner.step == 0 or stale else "Resume",
        key=widget_key("train"),
        on_click=_on_train,
        args=(dataset, state),
        icon=":material/play_arrow:",
        type="primary",
        disabled=runner.running,
        width="stretch",
    )
    pause_col.button(
        "Pause",
        key=widget_key("pause"),
        on_click=_on_pause,
        icon=":material/pause:",
        disabled=not runner.running,
        width="stretch",
    )
    reset_col.button(
        "Reset",
        key=widget_key("reset"),
        on_click=_on_reset,
        args=(dataset, state),
        icon=":material/restart_alt:",
        disabled=not runner.configured,
        width="stretch",
    )
    stale_slot = st.empty()
    if stale:
        stale_slot.caption("The network was trained on other data or settings: **Train** starts a fresh one.")
    live.live_part(runner, dataset, state)
