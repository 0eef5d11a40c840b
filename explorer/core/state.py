"""The Playground's whole view as one value, and its round trip through the URL.

``ViewState`` is what a shared link reproduces: the data (a preset name, or a compact encoding of
drawn points), the path schedule, the solver and its steps, the particles and what the figure
shows. ``from_query`` reads ``st.query_params`` (or any mapping of strings), ignores what it cannot
use and says why; ``to_query`` writes only what differs from the defaults, so links stay short.

Drawn points travel as ``pts=`` and their classes, when they have some, as ``lab=``
(``explorer.core.points``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

import fmcore
from fmcore import datasets
from fmcore.coupling import COUPLINGS
from fmcore.quoting import quote
from fmcore.solvers import SOLVERS, TIME_GRIDS
from fmcore.trainer import DEFAULTS as TRAINING_DEFAULTS
from fmcore.trainer import OBJECTIVES, TARGETS

from .data import MAX_CLASSES
from .points import URL_MAX_POINTS, as_shared, decode_labels, decode_points, encode_labels, encode_points
from .schema import Setting, format_value, schema, setting

__all__ = [
    "ALL_CLASSES",
    "CUSTOM",
    "FIELDS",
    "LAYERS",
    "MAX_GUIDANCE",
    "MAX_MEAN_FLOW_NFE",
    "MAX_NOISE",
    "MAX_PARTICLES",
    "MAX_STEPS",
    "MIN_PARTICLES",
    "OBJECTIVES",
    "SAMPLERS",
    "SETTINGS",
    "TARGETS",
    "URL_MAX_POINTS",
    "Setting",
    "ViewState",
    "as_shared",
    "decode_points",
    "encode_points",
    "from_widgets",
    "setting",
    "widget_key",
    "widget_values",
]

CUSTOM = "custom"
"""``data=custom``: the user's own points (drawn or uploaded) instead of a preset."""
FIELDS = ("exact", "learned", "difference")
"""What drives the figure: the closed-form marginal field, the network, or the network's error."""
MIN_PARTICLES, MAX_PARTICLES = 100, 5000
MAX_STEPS = 200
MAX_SEED = 2**31 - 1
LR_RANGE = (1e-5, 0.1)
FOLLOW_LIMIT = 4.0
SAMPLERS = ("ode", "sde")
"""How the particles move: the ODE dz = v dt, or an SDE with the same marginals (Euler-Maruyama)."""
MAX_NOISE = 2.0
"""Largest scale of the SDE's g_t = noise sqrt(beta_t) the slider offers (1 = reverse diffusion)."""
MAX_MEAN_FLOW_NFE = 8
"""A mean flow is a few-step sampler: its jumps (one NFE each) go up to this many."""
ALL_CLASSES = -1
"""``class_label`` when no class is picked: the figure shows every class."""
MAX_GUIDANCE = 5.0
"""The guidance slider's top: past w ~ 3 most samples already leave the data (lesson 9)."""


def _start_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError("must be two numbers x,y") from None
    if not (abs(x) <= FOLLOW_LIMIT and abs(y) <= FOLLOW_LIMIT):
        raise ValueError(f"x and y must lie between -{FOLLOW_LIMIT:g} and {FOLLOW_LIMIT:g}")
    return x, y


@dataclass(frozen=True)
class ViewState:
    """Everything a link reproduces. Frozen: change it with ``dataclasses.replace``.

    Each field but ``points`` and ``point_labels`` is a ``setting``: its type, range or choices and
    URL name live here, and the link (``to_query``/``from_query``) and the widgets
    (``widget_values``) follow from them.

    Attributes:
        data: a preset name (``datasets.NAMES``) or ``CUSTOM``.  points: (n, 2) float32 custom
            points, in canvas coordinates; None for presets.  point_labels: their (n,) int64
            classes, or None (unlabelled, or a preset).
        schedule, solver, grid: keys of ``fmcore.SCHEDULES``, ``SOLVERS``, ``TIME_GRIDS``.
        steps: solver steps (1..MAX_STEPS).  n: particles.  seed: noise and data seed.
        field: one of ``FIELDS``.  density, paths, warp: figure layers.  model_density: draw the
            network's p_t (log-likelihood) instead of the exact one, when there is a network.
        compare: second panel with ``solver_b``, ``steps_b``, ``grid_b``.
        coupling, target, lr: how a new model is trained.  snapshot_n: particles in the live
            snapshot of the network's samples.  follow: the start (x, y) at t = 0 of
            one particle whose path is drawn, or None.  classroom: figure only, large.
        sampler: one of ``SAMPLERS``; "sde" runs Euler-Maruyama on the grid and steps (the solver
            is for the ODE).  noise: the SDE's scale of g_t (0 the ODE, 1 reverse diffusion).
        objective: what a new network learns, a key of ``fmcore.trainer.OBJECTIVES`` ("flow" v(z, t)
            or "meanflow" u(z, r, t)).  nfe: the jumps (one NFE each) a mean-flow network samples in.
        class_label: the class of labelled data the figure samples (0 .. MAX_CLASSES - 1), or
            ``ALL_CLASSES``.  guidance: w of classifier-free guidance for the learned field of a
            picked class, v_w = v(z,t|null) + w (v(z,t|c) - v(z,t|null)).
    """

    data: str = setting("moons", choices=(*datasets.NAMES, CUSTOM), lazy=True)
    points: np.ndarray | None = field(default=None, compare=False, repr=False)
    schedule: str = setting("linear", choices=tuple(fmcore.SCHEDULES))
    solver: str = setting("euler", choices=tuple(SOLVERS))
    steps: int = setting(20, lo=1, hi=MAX_STEPS)
    grid: str = setting("uniform", choices=tuple(TIME_GRIDS), what="time grid")
    # lazy: the Particles, Compare and Training groups are folded panels built only while open
    n: int = setting(1000, lo=MIN_PARTICLES, hi=MAX_PARTICLES, lazy=True)
    seed: int = setting(0, lo=0, hi=MAX_SEED, lazy=True)
    field: str = setting("exact", choices=FIELDS)
    density: bool = setting(False, widget=False)
    model_density: bool = setting(False)
    paths: bool = setting(True, widget=False)
    warp: bool = setting(False, widget=False)
    compare: bool = setting(False, lazy=True)
    solver_b: str = setting("euler", choices=tuple(SOLVERS), what="solver", lazy=True)
    steps_b: int = setting(4, lo=1, hi=MAX_STEPS, lazy=True)
    grid_b: str = setting("uniform", choices=tuple(TIME_GRIDS), what="time grid", lazy=True)
    coupling: str = setting("independent", choices=tuple(COUPLINGS), lazy=True)
    target: str = setting("conditional", choices=TARGETS, lazy=True)
    lr: float = setting(float(TRAINING_DEFAULTS["lr"]), lo=LR_RANGE[0], hi=LR_RANGE[1], lazy=True)
    snapshot_n: int = setting(600, lo=100, hi=2000, lazy=True)
    follow: tuple[float, float] | None = setting(None, parse=_start_point, widget=False)
    classroom: bool = setting(False, widget=False)
    # Sampling by an SDE with the flow's marginals (fmcore.sample_sde), and few-step mean flows.
    sampler: str = setting("ode", choices=SAMPLERS)
    noise: float = setting(1.0, lo=0.0, hi=MAX_NOISE, lazy=True)
    objective: str = setting("flow", choices=OBJECTIVES, what="model", lazy=True)
    nfe: int = setting(1, lo=1, hi=MAX_MEAN_FLOW_NFE, what="mean-flow NFE", lazy=True)
    # Labelled data: the class picker and the guidance weight (both apply when the data has classes).
    class_label: int = setting(ALL_CLASSES, lo=ALL_CLASSES, hi=MAX_CLASSES - 1, what="class")
    guidance: float = setting(1.0, lo=0.0, hi=MAX_GUIDANCE)

    # The points' (n,) classes, or None: drawn or uploaded labelled data; set with ``with_points``.
    # (``dataclasses.field``: the name ``field`` is the setting above within this class.)
    point_labels: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    # ``points`` and ``point_labels`` are arrays: compare them by value so that equal views are equal.
    def __eq__(self, other) -> bool:
        if not isinstance(other, ViewState):
            return NotImplemented
        same_fields = all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name not in _ARRAYS
        )
        return (
            same_fields
            and _same_points(self.points, other.points)
            and _same_points(self.point_labels, other.point_labels)
        )

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self) if f.name not in _ARRAYS))

    @property
    def points_key(self) -> str:
        """A fingerprint of the custom points (for caches shared by every session, and figure identity).

        A cryptographic hash of the exact bytes: a link cannot forge points with the key of others'.
        """
        if self.points is None:
            return ""
        exact = np.ascontiguousarray(self.points, dtype=np.float32)
        return f"{hashlib.blake2b(exact.tobytes(), digest_size=16).hexdigest()}-{len(self.points)}"

    def with_points(self, points: np.ndarray | None, labels: np.ndarray | None = None) -> ViewState:
        """The same view on the user's own points and their optional (n,) classes (or back to a
        preset when None)."""
        if points is None or len(points) == 0:
            return replace(
                self, points=None, point_labels=None, data="moons" if self.data == CUSTOM else self.data
            )
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        labels = None if labels is None else np.asarray(labels, dtype=np.int64).reshape(len(points))
        return replace(self, points=points, point_labels=labels, data=CUSTOM)

    # -- the URL ---------------------------------------------------------------------------------

    def to_query(self) -> dict[str, str]:
        """Query parameters for this view: only values that differ from the defaults."""
        default = ViewState()
        out: dict[str, str] = {}
        for name, spec in SETTINGS.items():
            value = getattr(self, name)
            if value != getattr(default, name):
                out[spec.url] = format_value(value)
        if self.data == CUSTOM and self.points is not None:
            keep = np.arange(len(self.points))
            if len(keep) > URL_MAX_POINTS:
                keep = np.sort(np.random.default_rng(0).choice(len(keep), URL_MAX_POINTS, replace=False))
            out["pts"] = encode_points(self.points[keep])
            if self.point_labels is not None:
                out["lab"] = encode_labels(self.point_labels[keep])
        return out

    @classmethod
    def from_query(cls, params: Mapping[str, object]) -> tuple[ViewState, list[str]]:
        """Read a view from query parameters.

        Unknown names and invalid values are ignored (the default is kept) and reported.

        Returns:
            ``(state, notices)``: notices are sentences for the user, one per ignored parameter.
        """
        notices: list[str] = []
        values: dict[str, object] = {}
        by_url = {spec.url: name for name, spec in SETTINGS.items()}
        for name, raw in params.items():
            text = raw[-1] if isinstance(raw, list | tuple) and raw else raw
            text = str(text)
            if name in ("pts", "lab"):
                continue
            if name not in by_url:
                notices.append(f"Ignored the unknown link parameter {quote(name)}.")
                continue
            try:
                values[by_url[name]] = SETTINGS[by_url[name]].parse(text)
            except ValueError as error:
                notices.append(f"Ignored {name}={quote(text, 40)}: {error}.")
        state = cls(**values)
        if state.data == CUSTOM:
            encoded = params.get("pts")
            if isinstance(encoded, list | tuple):
                encoded = encoded[-1] if encoded else None
            points = None
            if not encoded:
                notices.append("The link asks for drawn points but carries none; showing the moons preset.")
            else:
                try:
                    points = decode_points(str(encoded))
                except ValueError as error:
                    notices.append(f"Could not read the drawn points ({error}); showing the moons preset.")
            labels = None if points is None else _link_labels(params.get("lab"), len(points), notices)
            state = state.with_points(points, labels) if points is not None else replace(state, data="moons")
        return state, notices


def _link_labels(encoded, n: int, notices: list[str]) -> np.ndarray | None:
    """The classes of the link's n drawn points (``lab=``), or None, with a notice when unreadable."""
    if isinstance(encoded, list | tuple):
        encoded = encoded[-1] if encoded else None
    if not encoded:
        return None
    try:
        return decode_labels(str(encoded), n)
    except ValueError as error:
        notices.append(f"Could not read the classes of the drawn points ({error}); showing them unlabelled.")
        return None


_ARRAYS = ("points", "point_labels")


def _same_points(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


SETTINGS: dict[str, Setting] = schema(ViewState)
"""Every setting of the view by field name: what the link and the widgets are derived from."""
WIDGET_PREFIX = "fme_w_"


def widget_key(name: str) -> str:
    """The ``st.session_state`` key of the widget that holds setting (or control) ``name``."""
    return WIDGET_PREFIX + name


LAYERS = ("paths", "density", "warp")
"""The figure's layers, shown by one multi-select widget (``layers``)."""
FOLLOW_DEFAULT = (0.8, -1.6)
"""Where the followed particle's start widgets stand before anyone picked one."""


def widget_values(state: ViewState) -> dict[str, object]:
    """The value of every widget that shows ``state``, by widget name (not yet prefixed).

    One entry per ``widget=True`` setting, plus the composite ones: ``layers`` (the layers on),
    ``follow_on`` and, when a particle is followed, its start ``fx``, ``fy``.
    """
    values = {name: getattr(state, name) for name, spec in SETTINGS.items() if spec.widget}
    values["layers"] = [name for name in LAYERS if getattr(state, name)]
    values["follow_on"] = state.follow is not None
    if state.follow is not None:
        values["fx"], values["fy"] = map(float, state.follow)
    return values


def from_widgets(state: ViewState, held: Mapping[str, object]) -> ViewState:
    """``state`` with every setting read from its widget in ``held`` (a session state).

    A widget that is not drawn, or holds nothing (a cleared choice), gives its setting's default;
    a ``lazy`` setting's widget sits in a panel built only while open, and keeps the state's value.
    The layer pills give ``paths``, ``density``, ``warp``; ``follow_on``, ``fx``, ``fy`` give ``follow``.
    """
    default = ViewState()
    values = {}
    for name, spec in SETTINGS.items():
        if not spec.widget:
            continue
        value = held.get(widget_key(name))
        if value is None:
            values[name] = getattr(state if spec.lazy else default, name)
        else:
            values[name] = type(getattr(default, name))(value)
    layers = held.get(widget_key("layers"), widget_values(default)["layers"])
    values.update({name: name in (layers or ()) for name in LAYERS})
    values["follow"] = _followed(held)
    return replace(state, **values)


def _followed(held: Mapping[str, object]) -> tuple[float, float] | None:
    if not held.get(widget_key("follow_on")):
        return None
    return round(float(held.get(widget_key("fx"), 0.0)), 3), round(float(held.get(widget_key("fy"), 0.0)), 3)
