"""The Playground's whole view as one value, and its round trip through the URL.

``ViewState`` is what a shared link reproduces: the data (a preset name, or a compact encoding of
drawn points), the path schedule, the solver and its steps, the particles and what the figure
shows. ``from_query`` reads ``st.query_params`` (or any mapping of strings), ignores what it cannot
use and says why; ``to_query`` writes only what differs from the defaults, so links stay short.

Drawn points travel as ``pts=``: quantised to 16 bits on their bounding box, zlib-compressed and
base64url-encoded (about 2 bytes a point for a brush stroke).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

import fmcore
from fmcore import datasets
from fmcore.coupling import COUPLINGS
from fmcore.quoting import quote
from fmcore.solvers import SOLVERS, TIME_GRIDS
from fmcore.trainer import DEFAULTS as TRAINING_DEFAULTS
from fmcore.trainer import TARGETS

__all__ = [
    "CUSTOM",
    "FIELDS",
    "MAX_PARTICLES",
    "MAX_STEPS",
    "MIN_PARTICLES",
    "TARGETS",
    "URL_MAX_POINTS",
    "ViewState",
    "as_shared",
    "decode_points",
    "encode_points",
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
URL_MAX_POINTS = 4000
"""A link carries at most this many drawn points (a uniform subsample beyond): ~10 kB of URL."""

_POINTS_HEADER = struct.Struct("<BI4f")  # version, n, x_min, y_min, x_max, y_max
_POINTS_VERSION = 1
_LEVELS = 65535
_MAX_DECODED_BYTES = _POINTS_HEADER.size + 4 * datasets.MAX_POINTS
"""The most a genuine ``pts=`` decompresses to: the header and 4 bytes a point, at the point cap."""
_MAX_ENCODED_CHARS = 4 * (_MAX_DECODED_BYTES // 3 + 64)
"""zlib never makes data much larger, so no genuine ``pts=`` is longer than its raw size in base64."""


def encode_points(points: np.ndarray) -> str:
    """(n, 2) points -> a URL-safe string; decoding gives them back within 1/65535 of their box.

    Args:
        points: (n, 2) finite coordinates, n >= 1.
    Returns:
        base64url text without padding.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    quantised = np.rint((points - lo) / span * _LEVELS).astype("<u2")
    header = _POINTS_HEADER.pack(_POINTS_VERSION, len(points), *lo.astype(np.float32), *hi.astype(np.float32))
    payload = zlib.compress(header + quantised.tobytes(), 9)
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_points(text: str) -> np.ndarray:
    """The inverse of ``encode_points``.

    Returns:
        (n, 2) float32 points.
    Raises:
        ValueError: in plain words, when the text is not an encoding of points.
    """
    if len(text) > _MAX_ENCODED_CHARS:
        raise ValueError(
            f"the drawn points in the link are longer than {datasets.MAX_POINTS:,} points can be"
        )
    try:
        # Bounded: a few kB of zlib can expand to gigabytes (a "zlib bomb").
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), _MAX_DECODED_BYTES)
    except (binascii.Error, zlib.error, ValueError):
        raise ValueError("the drawn points in the link are damaged (not valid base64/zlib data)") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"the drawn points in the link unpack to more than {datasets.MAX_POINTS:,} points")
    if not inflater.eof:
        raise ValueError("the drawn points in the link are cut short")
    if len(raw) < _POINTS_HEADER.size:
        raise ValueError("the drawn points in the link are cut short")
    version, n, *box = _POINTS_HEADER.unpack_from(raw)
    if version != _POINTS_VERSION:
        raise ValueError(f"the drawn points use encoding version {version}, this app reads version 1")
    body = raw[_POINTS_HEADER.size :]
    if n < 1 or n > datasets.MAX_POINTS or len(body) != 4 * n:
        raise ValueError("the drawn points in the link do not match their stated count")
    if not all(math.isfinite(v) for v in box):
        raise ValueError("the drawn points in the link have a non-finite bounding box")
    lo, hi = np.array(box[:2], dtype=np.float64), np.array(box[2:], dtype=np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    quantised = np.frombuffer(body, dtype="<u2").reshape(n, 2).astype(np.float64)
    return (lo + quantised / _LEVELS * span).astype(np.float32)


def as_shared(points: np.ndarray) -> np.ndarray:
    """The points exactly as a link carries them (quantised), when they fit in a link.

    Using these in the session too means the person who shares a link and the person who opens
    it compute the very same figure.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    return decode_points(encode_points(points)) if 0 < len(points) <= URL_MAX_POINTS else points


def _choices(registry) -> tuple[str, ...]:
    return tuple(registry)


@dataclass(frozen=True)
class ViewState:
    """Everything a link reproduces. Frozen: change it with ``dataclasses.replace``.

    Attributes:
        data: a preset name (``datasets.NAMES``) or ``CUSTOM``.  points: (n, 2) float32 custom
            points, in canvas coordinates; None for presets.
        schedule, solver, grid: keys of ``fmcore.SCHEDULES``, ``SOLVERS``, ``TIME_GRIDS``.
        steps: solver steps (1..MAX_STEPS).  n: particles.  seed: noise and data seed.
        field: one of ``FIELDS``.  density, paths, warp: figure layers.  model_density: draw the
            network's p_t (log-likelihood) instead of the exact one, when there is a network.
        compare: second panel with ``solver_b``, ``steps_b``, ``grid_b``.
        coupling, target, lr: how a new model is trained.  follow: the start (x, y) at t = 0 of
            one particle whose path is drawn, or None.  classroom: figure only, large.
    """

    data: str = "moons"
    points: np.ndarray | None = field(default=None, compare=False, repr=False)
    schedule: str = "linear"
    solver: str = "euler"
    steps: int = 20
    grid: str = "uniform"
    n: int = 1000
    seed: int = 0
    field: str = "exact"
    density: bool = False
    model_density: bool = False
    paths: bool = True
    warp: bool = False
    compare: bool = False
    solver_b: str = "euler"
    steps_b: int = 4
    grid_b: str = "uniform"
    coupling: str = "independent"
    target: str = "conditional"
    lr: float = float(TRAINING_DEFAULTS["lr"])
    follow: tuple[float, float] | None = None
    classroom: bool = False

    # ``points`` is an array: compare it by value so that equal views are equal.
    def __eq__(self, other) -> bool:
        if not isinstance(other, ViewState):
            return NotImplemented
        same_fields = all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name != "points"
        )
        return same_fields and _same_points(self.points, other.points)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self) if f.name != "points"))

    @property
    def points_key(self) -> str:
        """A fingerprint of the custom points (for caches shared by every session, and figure identity).

        A cryptographic hash of the exact bytes: a link cannot forge points with the key of others'.
        """
        if self.points is None:
            return ""
        exact = np.ascontiguousarray(self.points, dtype=np.float32)
        return f"{hashlib.blake2b(exact.tobytes(), digest_size=16).hexdigest()}-{len(self.points)}"

    def with_points(self, points: np.ndarray | None) -> ViewState:
        """The same view on the user's own points (or back to a preset when None)."""
        if points is None or len(points) == 0:
            return replace(self, points=None, data="moons" if self.data == CUSTOM else self.data)
        return replace(self, points=np.asarray(points, dtype=np.float32).reshape(-1, 2), data=CUSTOM)

    # -- the URL ---------------------------------------------------------------------------------

    def to_query(self) -> dict[str, str]:
        """Query parameters for this view: only values that differ from the defaults."""
        default = ViewState()
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "points":
                continue
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            out[f.name] = _format(value)
        if self.data == CUSTOM and self.points is not None:
            points = self.points
            if len(points) > URL_MAX_POINTS:
                keep = np.random.default_rng(0).choice(len(points), URL_MAX_POINTS, replace=False)
                points = points[np.sort(keep)]
            out["pts"] = encode_points(points)
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
        known = {f.name for f in fields(cls)} - {"points"}
        for name, raw in params.items():
            text = raw[-1] if isinstance(raw, list | tuple) and raw else raw
            text = str(text)
            if name == "pts":
                continue
            if name not in known:
                notices.append(f"Ignored the unknown link parameter {quote(name)}.")
                continue
            try:
                values[name] = _PARSERS[name](text)
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
            state = state.with_points(points) if points is not None else replace(state, data="moons")
        return state, notices


def _same_points(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _format(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(f"{v:.4g}" for v in value)
    return str(value)


def _one_of(choices, what: str):
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{what} must be one of {', '.join(choices)}")
        return text

    return parse


def _integer(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"not a whole number between {lo} and {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    lo, hi = LR_RANGE
    if not lo <= value <= hi:
        raise ValueError(f"must be between {lo:g} and {hi:g}")
    return value


def _start_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError("must be two numbers x,y") from None
    if not (abs(x) <= FOLLOW_LIMIT and abs(y) <= FOLLOW_LIMIT):
        raise ValueError(f"x and y must lie between -{FOLLOW_LIMIT:g} and {FOLLOW_LIMIT:g}")
    return x, y


_PARSERS = {
    "data": _one_of((*datasets.NAMES, CUSTOM), "data"),
    "schedule": _one_of(_choices(fmcore.SCHEDULES), "schedule"),
    "solver": _one_of(_choices(SOLVERS), "solver"),
    "solver_b": _one_of(_choices(SOLVERS), "solver"),
    "grid": _one_of(_choices(TIME_GRIDS), "time grid"),
    "grid_b": _one_of(_choices(TIME_GRIDS), "time grid"),
    "steps": _integer(1, MAX_STEPS),
    "steps_b": _integer(1, MAX_STEPS),
    "n": _integer(MIN_PARTICLES, MAX_PARTICLES),
    "seed": _integer(0, MAX_SEED),
    "field": _one_of(FIELDS, "field"),
    "density": _flag,
    "model_density": _flag,
    "paths": _flag,
    "warp": _flag,
    "compare": _flag,
    "classroom": _flag,
    "coupling": _one_of(_choices(COUPLINGS), "coupling"),
    "target": _one_of(TARGETS, "target"),
    "lr": _learning_rate,
    "follow": _start_point,
}
