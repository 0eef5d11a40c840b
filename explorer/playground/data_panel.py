"""The Data panel: the preset gallery, the drawing pad, and CSV upload or paste.

Inputs that change the data act in widget callbacks, which run before the script: the figure of
the same run already shows them. Bad input leaves the data as it was, with a plain message.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import numpy as np
import streamlit as st
from PIL import Image

from explorer.core.data import MAX_CLASSES, Dataset, check_labels
from explorer.core.points import as_shared
from explorer.core.state import CUSTOM, ViewState, widget_key
from explorer.core.text import plain, shorten
from explorer.figures import export, theme
from fmcore import datasets

from . import cache, canvas
from .keys import DATA_ERROR_KEY, LAST_PRESET_KEY

__all__ = ["DATA_TABS", "MAX_UPLOAD_MB", "data_panel", "resolve_dataset", "too_large"]

MAX_UPLOAD_MB = 2
"""Largest CSV or model upload (``server.maxUploadSize`` in .streamlit/config.toml says the same):
20,000 points of CSV are under 1 MB, and a model the Playground trains is tens of kB."""
DATA_TABS = (":material/apps: Presets", ":material/draw: Draw", ":material/upload: Upload")


def resolve_dataset(state: ViewState) -> tuple[Dataset, ViewState]:
    """The data of the view; user points that cannot describe a distribution fall back to moons."""
    if state.data == CUSTOM:
        pad = canvas.Drawing(st.session_state)
        points, labels = pad.points(), pad.labels()
        if points is not None:
            points = as_shared(points)
            try:
                dataset = cache.load_dataset(CUSTOM, 0, points, _points_key(points, labels), labels)
                return dataset, replace(state, points=points, point_labels=labels)
            except ValueError as error:
                st.warning(
                    plain(f"Your points can't be used yet: {error} Showing the moons preset meanwhile.")
                )
        state = replace(state, data="moons", points=None)
    return cache.load_dataset(state.data, state.seed), replace(state, points=None, point_labels=None)


def _points_key(points: np.ndarray, labels: np.ndarray | None) -> str:
    key = ViewState(data=CUSTOM, points=points).points_key
    if labels is None:
        return key
    return f"{key}-labels-{hashlib.blake2b(labels.astype('<i8').tobytes(), digest_size=16).hexdigest()}"


def _use_points(points: np.ndarray | None) -> None:
    """Callback side: make the user's points the data (or go back to the last preset)."""
    if points is None:
        st.session_state[widget_key("data")] = st.session_state.get(LAST_PRESET_KEY, "moons")
    else:
        st.session_state[widget_key("data")] = CUSTOM


def _accept_points(raw: np.ndarray, source: str, labels: np.ndarray | None = None) -> None:
    """Validate user points (from a file or pasted text) and their optional (n,) classes, and make
    them the data, or keep everything."""
    if len(raw) > datasets.MAX_POINTS:
        st.session_state[DATA_ERROR_KEY] = (
            f"{source}: Too many points: {len(raw):,} given, the limit is {datasets.MAX_POINTS:,}. "
            "Keep a subset of the rows. Nothing was changed."
        )
        return
    try:
        normalized = datasets.from_points(raw)
        labels = None if labels is None else check_labels(labels, len(raw))
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"{source}: {error} Nothing was changed."
        return
    canvas.Drawing(st.session_state).replace(normalized.data.numpy(), labels)
    _use_points(normalized.data.numpy())
    st.session_state.pop(DATA_ERROR_KEY, None)


def too_large(upload) -> str | None:
    """A sentence when an upload is over ``MAX_UPLOAD_MB`` (refused before it is read), else None."""
    if upload.size <= MAX_UPLOAD_MB * 10**6:  # Streamlit's uploader counts MB of 10^6 bytes
        return None
    return (
        f"{shorten(upload.name)} is {upload.size / 10**6:.1f} MB; uploads are at most {MAX_UPLOAD_MB} MB. "
        "Nothing was changed."
    )


def _csv_text(data: bytes) -> str | None:
    """The text of a CSV in UTF-8, UTF-16 (with its byte-order mark) or Latin-1; None for binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a Latin-1 character: spreadsheets' older exports


def _on_upload() -> None:
    upload = st.session_state.get(widget_key("upload"))
    if upload is None:
        return
    name = shorten(upload.name)
    refusal = too_large(upload)
    if refusal:
        st.session_state[DATA_ERROR_KEY] = refusal
        return
    text = _csv_text(upload.getvalue())
    if text is None:
        st.session_state[DATA_ERROR_KEY] = (
            f"{name}: this is not a text file. Upload a CSV of x,y rows (UTF-8, UTF-16 or Latin-1 text)."
        )
        return
    try:
        points, labels = datasets.parse_csv(text, labels=True)
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"{name}: {error} Nothing was changed."
        return
    _accept_points(points, name, labels)


def _on_paste() -> None:
    text = st.session_state.get(widget_key("paste"), "")
    try:
        points, labels = datasets.parse_csv(text, labels=True)
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"Pasted points: {error} Nothing was changed."
        return
    _accept_points(points, "Pasted points", labels)


def _on_undo() -> None:
    pad = canvas.Drawing(st.session_state)
    pad.undo()
    st.session_state.pop(canvas.NOTICE_KEY, None)
    _use_points(pad.points())


def _on_clear() -> None:
    pad = canvas.Drawing(st.session_state)
    pad.clear()
    st.session_state.pop(canvas.NOTICE_KEY, None)
    _use_points(None)


def _on_preset() -> None:
    choice = st.session_state.get(widget_key("data"))
    if choice is None:  # pills can be unselected: keep the data
        st.session_state[widget_key("data")] = st.session_state.get("fme_last_choice", "moons")
    elif choice != CUSTOM:
        st.session_state[LAST_PRESET_KEY] = choice


THUMBNAIL_COLORS = 32
"""Colours of a gallery thumbnail's palette: amber dots on the dark background, antialiased, look
the same as in full colour, at a quarter of the bytes (the gallery's CSS is on every first paint)."""


def _thumbnail_uri(points: np.ndarray, size: int = 96) -> str:
    image = export.scatter_image(points, size, box=3.2).quantize(THUMBNAIL_COLORS, Image.Quantize.FASTOCTREE)
    return "data:image/png;base64," + base64.b64encode(export.png_bytes(image)).decode("ascii")


@st.cache_data(max_entries=8, show_spinner=False)
def _preset_thumbnails(seed: int) -> tuple[str, ...]:
    return tuple(_thumbnail_uri(datasets.sample(name, 700, seed).numpy()) for name in datasets.NAMES)


def _gallery_css(seed: int, custom: np.ndarray | None) -> str:
    """Turns the preset pills into a grid of clickable thumbnails (each pill gets its picture)."""
    uris = list(_preset_thumbnails(seed))
    if custom is not None:
        uris.append(_thumbnail_uri(custom))
    scope = ".st-key-fme_gallery div[role='radiogroup']"
    rules = [
        f"{scope} {{ display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 6px; }}",
        f"{scope} button {{ height: 74px; min-width: 0; padding: 0 2px 3px 2px; border-radius: 10px;"
        f" align-items: flex-end; justify-content: center; background-size: 64px 64px;"
        f" background-repeat: no-repeat; background-position: center 2px; background-color: {theme.BACKGROUND};"
        f" border: 1px solid #232b42; }}",
        f"{scope} button p {{ font-size: 0.68rem; line-height: 1; color: {theme.MUTED}; white-space: nowrap;"
        " overflow: hidden; text-overflow: ellipsis; }",
        f"{scope} button[aria-checked='true'] {{ border: 2px solid {theme.DATA}; }}",
        f"{scope} button[aria-checked='true'] p {{ color: {theme.TEXT}; }}",
    ]
    rules += [
        f"{scope} button:nth-of-type({i + 1}) {{ background-image: url('{uri}'); }}"
        for i, uri in enumerate(uris)
    ]
    return "<style>" + "\n".join(rules) + "</style>"


def data_panel(state: ViewState) -> None:
    """Presets (gallery + picker), the drawing pad, and CSV upload / paste."""
    error = st.session_state.pop(DATA_ERROR_KEY, None)
    if error:
        st.error(plain(error), icon=":material/error:")
    pad = canvas.Drawing(st.session_state)
    # on_change="rerun" makes the tabs lazy: each tab's widgets (the gallery, the drawing pad with
    # fabric.js, the uploader) are built and sent only while it is open: off the first paint.
    presets, draw, upload = st.tabs(
        DATA_TABS,
        key=widget_key("data_tab"),
        on_change="rerun",
    )
    if presets.open:
        _presets_tab(presets, state, pad)
    if draw.open:
        _draw_tab(draw, pad)
    if upload.open:
        _upload_tab(upload)


def _presets_tab(tab, state: ViewState, pad: canvas.Drawing) -> None:
    with tab, st.container(key="fme_gallery"):
        custom = pad.points()
        st.html(_gallery_css(state.seed, custom))  # style only: applied to the page, no markdown pass
        options = (*datasets.NAMES, CUSTOM) if custom is not None else datasets.NAMES
        st.session_state["fme_last_choice"] = state.data
        st.pills(
            "Data set",
            options,
            format_func=lambda n: "your points" if n == CUSTOM else n,
            key=widget_key("data"),
            on_change=_on_preset,
            label_visibility="collapsed",
            persist_state="page",  # a lazy setting (explorer.playground.controls._persist)
        )
        classes = datasets.CLASSES.get(state.data)
        st.caption(
            datasets.DESCRIPTIONS.get(state.data, "Your own points (drawn or uploaded).")
            + (f" · {classes} classes: pick one above the figure." if classes else "")
        )


def _draw_tab(tab, pad: canvas.Drawing) -> None:
    with tab:
        spread = st.slider(
            "Brush spread",
            1,
            24,
            6,
            key=widget_key("spread"),
            help="How far points scatter around a stroke (pixels).",
        )
        brush = _brush_picker()
        st.space("small")  # room for the pad's hover toolbar, which otherwise covers the last swatch
        canvas.drawing(spread, _use_points, brush=brush)
        notice = st.session_state.get(canvas.NOTICE_KEY)
        if notice:
            st.warning(plain(notice), icon=":material/info:")
        count = pad.count()
        labels = pad.labels()
        classes = (
            "" if labels is None else f" · <b>{len(np.unique(labels))}</b> <span class='label'>classes</span>"
        )
        left, middle, right = st.columns([1.3, 1, 1], vertical_alignment="center")
        left.markdown(
            f"<div class='fm-stat' data-testid='fm-point-count'><b>{count:,}</b> <span class='label'>points drawn</span>{classes}</div>",
            unsafe_allow_html=True,
        )
        middle.button(
            "Undo",
            key=widget_key("undo"),
            on_click=_on_undo,
            icon=":material/undo:",
            disabled=not pad.strokes,
            width="stretch",
        )
        right.button(
            "Clear",
            key=widget_key("clear"),
            on_click=_on_clear,
            icon=":material/delete:",
            disabled=not pad.strokes,
            width="stretch",
        )
        st.caption(
            "Each stroke adds points; they are centred and scaled to unit spread, like the noise. "
            "Each brush colour is a class: draw in two to four colours for labelled data."
        )


def _brush_picker() -> int:
    """The brush colour (class) of the next strokes: one swatch per ``canvas.BRUSHES``."""
    # style only: each option shows its colour
    st.html(f"<style>{theme.class_option_css(widget_key('brush'), range(canvas.BRUSHES))}</style>")
    brush = st.segmented_control(
        "Brush colour (class)",
        tuple(range(canvas.BRUSHES)),
        default=0,
        format_func=lambda k: f"● {k}",
        key=widget_key("brush"),
        help="Strokes in different colours are different classes; one colour is unlabelled data.",
    )
    return 0 if brush is None else int(brush)


def _upload_tab(tab) -> None:
    with tab:
        st.file_uploader(
            "CSV of x,y points, optionally x,y,label (header optional)",
            type=["csv", "txt"],
            key=widget_key("upload"),
            on_change=_on_upload,
        )
        st.text_area(
            "…or paste x,y rows", key=widget_key("paste"), height=90, placeholder="0.5, 1.2\n-0.3, 0.8\n…"
        )
        st.button(
            "Use pasted points",
            key=widget_key("use_paste"),
            on_click=_on_paste,
            icon=":material/content_paste:",
        )
        st.caption(
            f"Up to {datasets.MAX_POINTS:,} points. A third column `label` (whole numbers 0 to "
            f"{MAX_CLASSES - 1}) makes them labelled data. Errors leave your current data and model untouched."
        )
