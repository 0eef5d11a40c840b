"""Share & export: the link, GIF/HTML/PNG/CSV downloads, and saving or loading the model."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.core import flows
from explorer.core.data import Dataset
from explorer.core.points import URL_MAX_POINTS
from explorer.core.state import ViewState, widget_key
from explorer.figures import export

from . import cache
from .classes import picked_class
from .controls import folded
from .training_panel import on_load_model

__all__ = ["Download", "downloads", "export_panel"]


def export_panel(state: ViewState, measured, figure, dataset: Dataset, source: flows.Source, runner) -> None:
    flow = measured[0][0]
    # folded: nothing inside (its widgets, the code highlighter) is built or sent until it is opened
    panel = folded("Share & export", ":material/ios_share:", "export")
    if panel is None:
        return
    with panel:
        query = "&".join(f"{k}={v}" for k, v in state.to_query().items())
        st.markdown(
            "**Share**: the address bar holds this exact view; copy it. Add `classroom=1` for a projector."
        )
        st.code("?" + query if query else "(the default view)", language=None)
        if state.points is not None and len(state.points) > URL_MAX_POINTS:
            st.caption(
                f"The link carries a {URL_MAX_POINTS:,}-point subsample of your {len(state.points):,} points."
            )
        _downloads(flow, figure, dataset, source, state)
        st.caption(
            "GIF and PNG render offline with Pillow; the HTML file embeds plotly.js and plays without a network."
        )
        st.markdown("**Model**")
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        left.download_button(
            "Save model",
            lambda: _model_bytes(runner),
            file_name="flow_model.safetensors",
            mime="application/octet-stream",
            icon=":material/download:",
            on_click="ignore",
            disabled=runner.velocity is None,
            width="stretch",
        )
        right.file_uploader(
            "Load a saved model (.safetensors)",
            type=["safetensors"],
            key=widget_key("model_upload"),
            on_change=on_load_model,
        )


@dataclass(frozen=True)
class Download:
    """One download button: its label, its bytes (or what builds them when clicked), file and type."""

    label: str
    data: bytes | Callable[[], bytes]
    file_name: str
    mime: str
    icon: str


def downloads(
    flow, figure, dataset: Dataset, field: np.ndarray, state: ViewState, k: int
) -> tuple[Download, ...]:
    """GIF, HTML, PNG of frame ``k`` and the samples as CSV, the pictures built only when clicked,
    their data coloured by class when it is labelled, as in the figure (pure: no ``st.*``).

    Args:
        flow: the main panel's ``flows.Flow``.  figure: the animation (for the HTML file).
        field: (F, G, 2) the arrows of each frame.  k: the frame the PNG shows.
    """
    title = f"{flows.sampler_label(flow.solver, flow.noise)} · {flows.steps_label(flow.solver, flow.steps, flow.nfe)} · {state.schedule}"
    classes = dict(data_labels=dataset.shown_labels, picked=picked_class(dataset, state))

    def gif() -> bytes:
        return export.gif_bytes(flow.particles, flow.times, dataset.shown, field, title, **classes)

    def png() -> bytes:
        return export.png_bytes(
            export.render_frame(
                flow.particles[k], float(flow.times[k]), dataset.shown, field[k], title, 800, **classes
            )
        )

    return (
        Download("GIF", gif, "flow.gif", "image/gif", ":material/gif_box:"),
        Download("HTML", lambda: export.html_bytes(figure), "flow.html", "text/html", ":material/html:"),
        Download("PNG", png, f"flow_t{flow.times[k]:.2f}.png", "image/png", ":material/image:"),
        Download(
            "Samples CSV", export.csv_bytes(flow.samples), "samples.csv", "text/csv", ":material/table:"
        ),
    )


def _downloads(flow, figure, dataset: Dataset, source: flows.Source, state: ViewState) -> None:
    """The ``downloads`` as a row of buttons, under the slider that picks the PNG's frame."""
    frame_t = st.slider("Frame for the PNG (t)", 0.0, 1.0, 1.0, 0.02, key=widget_key("png_t"))
    k = round(frame_t * (len(flow.times) - 1))
    files = downloads(flow, figure, dataset, cache.field_frames(source), state, k)
    for col, file in zip(st.columns(len(files)), files, strict=True):
        col.download_button(
            file.label,
            file.data,
            file_name=file.file_name,
            mime=file.mime,
            icon=file.icon,
            on_click="ignore",
            width="stretch",
        )


def _model_bytes(runner) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        runner.save(path)
        return path.read_bytes()
