"""The drawing pad: brush strokes on a canvas become a cloud of data points.

A stroke is a fabric.js path (``json_data["objects"]``) in canvas pixels. It becomes points spread
evenly along its length, jittered by a Gaussian of the brush's spread, in model coordinates: the
pad covers the same square ``[-VIEW_BOX, VIEW_BOX]^2`` as the figure, y up.

Each stroke's colour is its points' class: the pad has up to ``BRUSHES`` brush colours (the first
``theme.CLASS_COLORS``); a drawing in one colour is unlabelled.

The points themselves live in ``st.session_state`` as a list of strokes (undo pops the last one),
never only in the widget: they survive reruns and page switches. After each stroke the pad is
remounted empty with all points painted into its background, so what you see on the pad is exactly
the data set.

The pad's value comes from the browser and can be rewritten by anyone: every number in it is
checked (finite, on the pad), paths of other shapes are skipped, a stroke gives at most
``MAX_STROKE_POINTS`` points and the pad holds at most ``datasets.MAX_POINTS``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import streamlit as st

from explorer.core.flows import VIEW_BOX
from explorer.figures import theme
from explorer.figures.export import scatter_image
from fmcore import datasets

__all__ = [
    "BRUSHES",
    "PAD_PX",
    "Drawing",
    "brush_color",
    "drawing",
    "polyline_from_path",
    "stroke_classes",
    "stroke_points",
    "strokes_from_json",
    "take_strokes",
    "to_model",
]

PAD_PX = 320
POINTS_PER_PX = 0.45
"""Points per pixel of stroke length: a stroke across the pad gives ~150 points."""
MAX_STROKE_POINTS = 4000
"""A long scribble gives a few hundred points; a forged stroke millions of pixels long gives this many."""
MAX_VERTICES = 20_000
"""fabric.js samples a stroke every few pixels: a path with more vertices than this is not a drawing."""
NOTICE_KEY = "fme_pad_notice"
"""A sentence about the last stroke when it was not added (identical, or the pad is full)."""
BRUSHES = 4
"""Brush colours on the pad: a drawing has 1 (unlabelled) to 4 classes."""
BRUSH_ALPHA = 0.6


def brush_color(k: int) -> str:
    """The stroke colour of brush ``k`` as the pad draws (and reports) it: class ``k``'s colour."""
    return theme.rgba(theme.class_color(k), BRUSH_ALPHA)


def to_model(pixels: np.ndarray, pad_px: int = PAD_PX) -> np.ndarray:
    """(k, 2) canvas pixels (y down) -> model coordinates (y up) in [-VIEW_BOX, VIEW_BOX]^2."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    scale = 2 * VIEW_BOX / pad_px
    return np.stack([pixels[:, 0] * scale - VIEW_BOX, VIEW_BOX - pixels[:, 1] * scale], axis=1)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def polyline_from_path(path: list, pad_px: int = PAD_PX) -> np.ndarray:
    """The vertices of a fabric.js path (commands like ``["M", x, y]``, ``["Q", cx, cy, x, y]``).

    Curves are represented by their end points (fabric's freedraw samples them densely). Anything
    that is not such a path (not a list, too many vertices) gives no vertices; commands without two
    finite numbers are skipped; vertices are clipped to the pad.
    """
    if not isinstance(path, list) or len(path) > MAX_VERTICES:
        return np.zeros((0, 2))
    vertices = []
    for command in path:
        numbers = [v for v in command[1:] if _finite(v)] if isinstance(command, list) else []
        if len(numbers) >= 2:
            vertices.append(numbers[-2:])
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 2).clip(0.0, pad_px)


def strokes_from_json(json_data: dict | None, pad_px: int = PAD_PX) -> list[np.ndarray]:
    """Pixel polylines of every freedraw path and point on the canvas, in drawing order.

    Objects that are not a path or a dot with finite numbers on the pad are skipped.
    """
    return [line for _, line in _strokes(json_data, pad_px)]


def stroke_classes(json_data: dict | None, brush: int, pad_px: int = PAD_PX) -> list[int]:
    """The class of each stroke of ``strokes_from_json``: the brush whose colour it was drawn in.

    A stroke colour that is no brush's (the value comes from the browser) takes ``brush``, the
    brush selected now.
    """
    brushes = {brush_color(k): k for k in range(BRUSHES)}
    return [brushes.get(str(obj.get("stroke", ""))[:40], brush) for obj, _ in _strokes(json_data, pad_px)]


def _strokes(json_data: dict | None, pad_px: int) -> list[tuple[dict, np.ndarray]]:
    """(object, pixel polyline) of each usable stroke on the canvas, in drawing order."""
    objects = json_data.get("objects") if isinstance(json_data, dict) else None
    strokes = []
    for obj in objects if isinstance(objects, list) else []:
        if not isinstance(obj, dict):
            continue
        kind = str(obj.get("type", ""))[:16].lower()
        if kind == "path":
            line = polyline_from_path(obj.get("path"), pad_px)
            if len(line):
                strokes.append((obj, line))
        elif kind == "circle":  # point mode: a dot at its centre
            radius, left, top = (obj.get(name, 0) for name in ("radius", "left", "top"))
            if all(_finite(v) for v in (radius, left, top)) and 0 <= radius <= pad_px:
                centre = np.array([[left + radius, top + radius]], dtype=np.float64)
                if ((centre >= 0) & (centre <= pad_px)).all():
                    strokes.append((obj, centre))
    return strokes


def stroke_points(line_px: np.ndarray, spread_px: float, seed: int, pad_px: int = PAD_PX) -> np.ndarray:
    """Points spread evenly along a stroke and jittered by the brush.

    Args:
        line_px: (k, 2) polyline in canvas pixels.  spread_px: standard deviation of the jitter in
            pixels (the brush's size).  seed: the same stroke and seed give the same points.
    Returns:
        (j, 2) float32 points in model coordinates, j >= 1.
    """
    line_px = np.asarray(line_px, dtype=np.float64).reshape(-1, 2)
    segment = np.linalg.norm(np.diff(line_px, axis=0), axis=1) if len(line_px) > 1 else np.zeros(0)
    length = float(segment.sum())
    rng = np.random.default_rng(seed)
    # A dab still leaves a small cloud; a forged stroke millions of pixels long stops at the cap.
    count = min(max(int(length * POINTS_PER_PX), 1 + int(spread_px)), MAX_STROKE_POINTS)
    if length > 0:
        along = np.concatenate([[0.0], np.cumsum(segment)])
        where = rng.uniform(0.0, length, count)
        centres = np.stack([np.interp(where, along, line_px[:, i]) for i in range(2)], axis=1)
    else:
        centres = np.repeat(line_px[:1], count, axis=0)
    jittered = centres + rng.normal(0.0, max(spread_px, 0.0), centres.shape)
    jittered = jittered.clip(0.0, pad_px)
    return to_model(jittered, pad_px).astype(np.float32)


SEEN_KEY = "fme_strokes_seen"
TAKEN_KEY = "fme_strokes_taken"  # per pad key: how many of its objects were already taken


def take_strokes(
    state,
    key: str,
    strokes: list[np.ndarray],
    spread_px: float,
    pad_px: int = PAD_PX,
    classes: list[int] | None = None,
) -> bool:
    """Add the new strokes that the pad ``key`` reports to the session's drawing.

    A pad that is being replaced can report its last stroke once more (remount, page switch): what
    a key already reported is not taken again. A stroke whose exact pixel path is already on the pad,
    or one that would take the pad past ``datasets.MAX_POINTS``, is not added, and
    ``state[NOTICE_KEY]`` says so.

    Args:
        state: ``st.session_state`` (any mutable mapping).  strokes: pixel polylines, drawing order.
        classes: the class of each stroke (its brush), default 0 for all.
    Returns:
        Whether anything new was reported (the data may have changed).
    """
    taken = state.setdefault(TAKEN_KEY, {})
    classes = [0] * len(strokes) if classes is None else classes
    start, taken[key] = taken.get(key, 0), len(strokes)
    strokes, classes = strokes[start:], classes[start:]
    if not strokes:
        return False
    current, seen = Drawing(state), state.setdefault(SEEN_KEY, set())
    state.pop(NOTICE_KEY, None)
    for line, label in zip(strokes, classes, strict=True):  # usually one: the pad is remounted after each
        if line.tobytes() in seen:
            state[NOTICE_KEY] = (
                "That stroke is exactly one already drawn, so it was not added twice. Draw it again "
                "slightly differently to add more points there."
            )
            continue
        points = stroke_points(line, spread_px, seed=current.generation, pad_px=pad_px)
        if current.count() + len(points) > datasets.MAX_POINTS:
            state[NOTICE_KEY] = (
                f"The pad holds at most {datasets.MAX_POINTS:,} points; that stroke was not added. "
                "Undo or clear some strokes first."
            )
            break
        seen.add(line.tobytes())
        current.add(points, label)
    return True


class Drawing:
    """The session's drawn strokes (model coordinates) and their points' classes, kept in
    ``st.session_state``."""

    KEY = "fme_drawing"

    def __init__(self, state):
        data = state.setdefault(self.KEY, {"strokes": [], "classes": [], "generation": 0})
        self._data = data

    @property
    def strokes(self) -> list[np.ndarray]:
        return self._data["strokes"]

    def point_classes(self) -> np.ndarray | None:
        """(n,) int64 class (brush) of each point of ``points()``, however many colours were used."""
        return np.concatenate(self._data["classes"]) if self.strokes else None

    def labels(self) -> np.ndarray | None:
        """``point_classes()`` when the drawing uses two colours or more, else None (unlabelled)."""
        classes = self.point_classes()
        return classes if classes is not None and classes.min() != classes.max() else None

    @property
    def generation(self) -> int:
        return self._data["generation"]

    def points(self) -> np.ndarray | None:
        return np.concatenate(self.strokes).astype(np.float32) if self.strokes else None

    def count(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    def add(self, points: np.ndarray, label: int = 0) -> None:
        """One stroke's (j, 2) points, all of class ``label``."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        self.strokes.append(points)
        self._data["classes"].append(np.full(len(points), int(label), dtype=np.int64))
        self._data["generation"] += 1

    def replace(self, points: np.ndarray | None, labels: np.ndarray | None = None) -> None:
        """All points at once (an upload, a link), as one stroke; ``labels`` (n,) or None (class 0)."""
        self._data["strokes"], self._data["classes"] = [], []
        if points is not None:
            points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            self.strokes.append(points)
            self._data["classes"].append(
                np.zeros(len(points), np.int64) if labels is None else np.asarray(labels, np.int64)
            )
        self._data["generation"] += 1

    def undo(self) -> None:
        if self.strokes:
            self.strokes.pop()
            self._data["classes"].pop()
        self._data["generation"] += 1

    def clear(self) -> None:
        self.replace(None)


@st.cache_data(max_entries=8, show_spinner=False)
def _background(points: np.ndarray | None, classes: np.ndarray | None, pad_px: int) -> bytes:
    image = scatter_image(
        np.zeros((0, 2)) if points is None else points, pad_px, theme.DATA, grid=True, labels=classes
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawing(
    spread_px: float, on_points: Callable[[np.ndarray], None], pad_px: int = PAD_PX, brush: int = 0
) -> Drawing:
    """Show the pad drawing in brush colour ``brush``; new strokes become points of their brush's
    class and ``on_points(all_points)`` is called.

    The conversion runs in the canvas's change callback, before the script, so the figure drawn in
    the same run already shows the new points.
    """
    pad = Drawing(st.session_state)
    key = f"fme_pad_{pad.generation}"

    def consume():
        value = st.session_state.get(key)
        drawing_value = value.get("drawing") if hasattr(value, "get") else None
        raw = drawing_value.get("raw") if hasattr(drawing_value, "get") else None
        strokes, classes = strokes_from_json(raw, pad_px), stroke_classes(raw, brush, pad_px)
        if take_strokes(st.session_state, key, strokes, spread_px, pad_px, classes):
            on_points(Drawing(st.session_state).points())

    # Imported here: the component registers itself on import, which needs a running Streamlit.
    from streamlit_drawable_canvas import st_canvas

    st_canvas(
        stroke_width=max(2, int(spread_px * 2)),
        stroke_color=brush_color(brush),
        background_image=_background(pad.points(), pad.point_classes(), pad_px),
        update_streamlit=True,
        height=pad_px,
        width=pad_px,
        drawing_mode="freedraw",
        key=key,
        on_change=consume,
    )
    return pad
