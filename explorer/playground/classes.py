"""Labelled data: the class picker and the guidance slider above the figure, and what they mean.

Each widget holds one ``ViewState`` setting (``class_label``, ``guidance``). With a class c picked,
the exact view shows the exact field of c's points (the exact conditional field) and the learned
view samples the network's classifier-free guided field, fmcore's convention:

    v_w(z, t | c) = v(z, t | null) + w (v(z, t | c) - v(z, t | null)),

w = 1 the conditional field, w = 0 the unconditional one, w > 1 past the class (sharper, and some
samples leave the data). Unlabelled data hides both controls.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from explorer import compat
from explorer.core.data import Dataset
from explorer.core.state import ALL_CLASSES, MAX_GUIDANCE, ViewState, widget_key
from explorer.core.text import plain
from explorer.figures import theme

from .model import trains_labels

__all__ = ["CONVENTION", "checked_class", "class_caption", "class_controls", "picked_class", "picked_data"]

CONVENTION = (
    "v_w = v(z,t|∅) + w (v(z,t|c) − v(z,t|∅)): w = 1 is the conditional field of class c, "
    "w = 0 the unconditional one, w > 1 sharpens the class and can push samples off the data."
)
"""The convention in words, as the page shows it (``fmcore.models.GUIDANCE`` in symbols)."""


def picked_class(dataset: Dataset, state: ViewState) -> int | None:
    """The class being sampled, drawn brighter in every picture; None for all classes or unlabelled data."""
    return state.class_label if state.class_label in dataset.present else None


def picked_data(dataset: Dataset, state: ViewState) -> Dataset:
    """The data of the picked class (all of it for ``ALL_CLASSES`` or unlabelled data): what the exact
    field is computed from and what samples are measured against."""
    k = picked_class(dataset, state)
    return dataset if k is None else dataset.of_class(k)


def _class_name(k: int) -> str:
    return "all" if k == ALL_CLASSES else f"● {k}"


def checked_class(state: ViewState, dataset: Dataset) -> ViewState:
    """The view with the class that is shown: a picked class the data does not have (a link, or
    other data since) goes back to all classes, with a notice."""
    if not dataset.present:
        return replace(state, class_label=ALL_CLASSES)
    if state.class_label not in (ALL_CLASSES, *dataset.present):
        st.warning(
            plain(
                f"Ignored class_label={state.class_label}: this data has the classes "
                f"{', '.join(map(str, dataset.present))}. Showing all classes."
            ),
            icon=":material/link_off:",
        )
        st.session_state[widget_key("class_label")] = ALL_CLASSES
        state = replace(state, class_label=ALL_CLASSES)
    return state


def class_controls(state: ViewState, dataset: Dataset) -> None:
    """One row above the figure for labelled data: the class picker and the guidance slider
    (nothing for unlabelled data: the Data panel says which data has classes). ``state``: the view
    from ``checked_class``."""
    if not dataset.present:
        return
    classes = (ALL_CLASSES, *dataset.present)
    picker, slider = st.columns([2.3, 1], vertical_alignment="bottom", gap="small")
    with picker:
        st.html(_swatch_css(dataset.present))  # style only: each class in its colour
        st.pills(
            "Class",
            classes,
            default=compat.widget_default(widget_key("class_label"), state.class_label),
            format_func=_class_name,
            key=widget_key("class_label"),
            help="Sample one class of the labelled data, or all of them.",
            label_visibility="collapsed",
        )
    slider.slider(
        "Guidance w",
        0.0,
        MAX_GUIDANCE,
        float(compat.widget_default(widget_key("guidance"), state.guidance)),
        0.1,
        format="w = %.1f",
        key=widget_key("guidance"),
        disabled=state.class_label == ALL_CLASSES,
        help=CONVENTION,
        label_visibility="collapsed",
    )


def class_caption(state: ViewState, dataset: Dataset, runner) -> None:
    """Under the figure, for labelled data: what the picked class gets, and the guidance convention."""
    if dataset.present:
        st.caption(_what_is_shown(state, dataset, runner))


def _swatch_css(present: tuple[int, ...]) -> str:
    """Colours the picker's options like their classes in the figure (``theme.class_color``)."""
    scope = f".st-key-{widget_key('class_label')} [role='radiogroup'] button"
    rules = [
        f".st-key-{widget_key('class_label')} [role='radiogroup'] {{ flex-wrap: wrap; row-gap: 4px; }}",
        f"{scope} {{ padding: 0 0.5rem; }}",
    ]
    rules.append(theme.class_option_css(widget_key("class_label"), present, first=2))  # after "all"
    return "<style>" + "".join(rules) + "</style>"


def _what_is_shown(state: ViewState, dataset: Dataset, runner) -> str:
    """One short caption: what the picked class gets, and (for a class) the guidance convention."""
    if not trains_labels(state, dataset):
        trained = " Labels train only with the conditional target and independent coupling: the network is unconditional."
    elif runner.n_classes == 0 and runner.velocity is not None:
        trained = " The network was trained without labels: press Train for a label-conditioned one."
    else:
        trained = ""
    if state.class_label == ALL_CLASSES:
        return (
            "All classes: the exact field of all the data; the network's unconditional field v(z,t|∅). "
            "Pick a class to sample it, with guidance w." + trained
        )
    return (
        f"Class {state.class_label}: exact view, the exact field of its points; learned view, {CONVENTION}"
        + trained
    )
