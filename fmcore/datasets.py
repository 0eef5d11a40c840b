"""Two-dimensional data sets z_1 for flow matching: presets, user point clouds, CSV.

Every preset is a distribution, not a fixed picture: `sample(name, n, seed)` draws n i.i.d.
points, so two seeds give two independent samples of the same distribution and metrics between
them measure only sampling noise. Each preset is centred and scaled by fixed constants of its
distribution so that the cloud has unit RMS spread per axis, the same scale as the noise
z_0 ~ N(0, I) it is transported from.

User data (drawn, pasted or uploaded) goes through `from_points`, which validates it, normalises it
the same way and remembers how to map back to the user's coordinates.

Presets with natural classes (`CLASSES`: the two moons, the eight Gaussians, ...) also say which
class each point was drawn from: `sample(name, n, seed, labels=True)` gives `(points, labels)`, the
points the same as without labels. A CSV may carry the class as a third column, `label`.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .quoting import quote

Draw = tuple[np.ndarray, np.ndarray | None]
"""(n, 2) points and their (n,) integer classes, or None for a preset without natural classes."""
Generator = Callable[[int, np.random.Generator], Draw]

MAX_POINTS = 20_000
"""Largest user point cloud `from_points` accepts. Exact marginal velocities and the metrics cost
O(n m) per evaluation, so beyond this the app stops being interactive; `subsample` brings larger
clouds under the cap."""

MAX_ABS_COORDINATE = 1e12
"""Coordinates beyond this are refused: they are almost surely a unit or parsing mistake, and
squaring them during normalisation would approach float64 overflow and lose all precision."""

GENERATORS: dict[str, Generator] = {}
DESCRIPTIONS: dict[str, str] = {}
CLASSES: dict[str, int] = {}
"""Number of natural classes of each preset that has them (labels 0 .. CLASSES[name] - 1)."""


def register(name: str, description: str, classes: int = 0) -> Callable[[Generator], Generator]:
    """Adds a preset generator `(n, rng) -> (points (n, 2), labels (n,) or None)` under `name`;
    `classes` > 0 says it labels its points with that many classes."""

    def decorate(generate: Generator) -> Generator:
        GENERATORS[name] = generate
        DESCRIPTIONS[name] = description
        if classes:
            CLASSES[name] = classes
        return generate

    return decorate


def _on_circle(angle: np.ndarray, radius: np.ndarray | float = 1.0) -> np.ndarray:
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


@register("moons", "Two moons", classes=2)
def moons(n: int, rng: np.random.Generator) -> Draw:
    angle = rng.uniform(0.0, np.pi, n)
    upper = _on_circle(angle)
    lower = np.array([1.0, 0.5]) - upper
    label = (rng.random(n) >= 0.5).astype(np.int64)  # 0 upper moon, 1 lower
    points = np.where(label[:, None] == 0, upper, lower)
    return points + 0.08 * rng.standard_normal((n, 2)), label


@register("circles", "Two concentric circles", classes=2)
def circles(n: int, rng: np.random.Generator) -> Draw:
    label = (rng.random(n) >= 0.5).astype(np.int64)  # 0 outer circle, 1 inner
    radius = np.where(label == 0, 1.0, 0.5)
    points = _on_circle(rng.uniform(0.0, 2 * np.pi, n), radius)
    return points + 0.04 * rng.standard_normal((n, 2)), label


@register("8gaussians", "Eight Gaussians on a circle", classes=8)
def eight_gaussians(n: int, rng: np.random.Generator) -> Draw:
    label = rng.integers(0, 8, n)  # k: the Gaussian at angle 2 pi k / 8
    centres = _on_circle(2 * np.pi * label / 8)
    return centres + 0.1 * rng.standard_normal((n, 2)), label


@register("checkerboard", "Checkerboard", classes=8)
def checkerboard(n: int, rng: np.random.Generator) -> Draw:
    # The dark squares of a 4 x 4 board on [-2, 2]^2: y's column parity follows x's.
    x = rng.uniform(-2.0, 2.0, n)
    u, lower = rng.uniform(0.0, 1.0, n), rng.integers(0, 2, n)
    y = u - 2.0 * lower + np.floor(x) % 2
    # One class per dark square: 2 per column, counted column by column from the left.
    label = 2 * (np.floor(x).astype(np.int64) + 2) + (1 - lower)
    return np.stack([x, y], axis=1), label


@register("spirals", "Two interleaved spirals", classes=2)
def spirals(n: int, rng: np.random.Generator) -> Draw:
    # sqrt spreads points evenly along the arms, whose length grows with the turning angle.
    angle = 3 * np.pi * np.sqrt(rng.random(n))
    label = (rng.random(n) >= 0.5).astype(np.int64)
    arm = np.where(label == 0, 1.0, -1.0)[:, None]
    return arm * _on_circle(angle, angle) + 0.3 * rng.standard_normal((n, 2)), label


@register("swissroll", "Swiss roll")
def swissroll(n: int, rng: np.random.Generator) -> Draw:
    angle = 1.5 * np.pi * (1 + 2 * rng.random(n))
    return _on_circle(angle, angle) + 0.4 * rng.standard_normal((n, 2)), None


@register("pinwheel", "Pinwheel with five blades", classes=5)
def pinwheel(n: int, rng: np.random.Generator) -> Draw:
    blades, radial_std, tangential_std, twist = 5, 0.3, 0.1, 0.25
    radial = 1.0 + radial_std * rng.standard_normal(n)
    tangential = tangential_std * rng.standard_normal(n)
    label = rng.integers(0, blades, n)
    # Points further out turn further, which bends each blade.
    angle = 2 * np.pi * label / blades + twist * np.exp(radial)
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cos * radial - sin * tangential, sin * radial + cos * tangential], axis=1), label


@register("rings", "Four concentric rings")
def rings(n: int, rng: np.random.Generator) -> Draw:
    radius = rng.integers(1, 5, n).astype(float)
    return _on_circle(rng.uniform(0.0, 2 * np.pi, n), radius) + 0.08 * rng.standard_normal((n, 2)), None


@register("smiley", "Smiley face")
def smiley(n: int, rng: np.random.Generator) -> Draw:
    part = rng.choice(4, n, p=[0.5, 0.1, 0.1, 0.3])
    outline = _on_circle(rng.uniform(0.0, 2 * np.pi, n), 2.0)
    left_eye = np.array([-0.7, 0.7]) + 0.15 * rng.standard_normal((n, 2))
    right_eye = np.array([0.7, 0.7]) + 0.15 * rng.standard_normal((n, 2))
    mouth = _on_circle(rng.uniform(1.2 * np.pi, 1.8 * np.pi, n), 1.2)
    points = np.choose(part[:, None], [outline, left_eye, right_eye, mouth])
    return points + 0.05 * rng.standard_normal((n, 2)), None


@register("line", "A line segment")
def line(n: int, rng: np.random.Generator) -> Draw:
    return np.stack([rng.uniform(-1.0, 1.0, n), 0.02 * rng.standard_normal(n)], axis=1), None


NAMES: tuple[str, ...] = tuple(GENERATORS)


def _centre_and_scale(points: np.ndarray) -> tuple[np.ndarray, float]:
    # One scalar for both axes keeps the shape (a circle stays a circle); dividing by the RMS of
    # the per-axis standard deviations gives unit spread per axis on average.
    centre = points.mean(axis=0)
    offsets = points - centre
    scale = float(np.sqrt((offsets**2).mean()))
    if scale < 1e-150:  # squares of a spread this small underflow: measure it in units of its largest offset
        largest = float(np.abs(offsets).max())
        scale = largest * float(np.sqrt(((offsets / largest) ** 2).mean())) if largest > 0 else 0.0
    return centre, scale


@functools.cache
def _preset_standardisation(name: str) -> tuple[np.ndarray, float]:
    # Fixed constants of the distribution, estimated once from a large sample, so that sample()
    # is an i.i.d. draw whose scaling does not depend on n or the seed.
    return _centre_and_scale(GENERATORS[name](2**17, np.random.default_rng(12345))[0])


def sample(name: str, n: int, seed: int = 0, labels: bool = False):
    """Draws n points z_1 from a preset distribution, and with `labels=True` the class of each.

    Args:
        name: one of `NAMES`.  n: number of points, >= 1.  seed: the same seed gives the same points.
        labels: also return the classes; only for presets in `CLASSES`.
    Returns:
        (n, 2) float32 points, centred with unit RMS spread per axis (within about [-3, 3]); with
        `labels=True`, `(points, labels)` with (n,) int64 labels in 0 .. CLASSES[name] - 1 and the
        same points as `labels=False` gives for this seed.
    Raises:
        ValueError: unknown name, invalid n, or labels asked of a preset without natural classes.
    """
    if name not in GENERATORS:
        raise ValueError(f"Unknown data set {name!r}; choose one of: {', '.join(NAMES)}.")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer number of points; got {n!r}.")
    if labels and name not in CLASSES:
        raise ValueError(
            f"The {name!r} data set has no natural classes; labelled presets are: {', '.join(CLASSES)}."
        )
    centre, scale = _preset_standardisation(name)
    points, classes = GENERATORS[name](int(n), np.random.default_rng(seed))
    points = torch.from_numpy((points - centre) / scale).float()
    return (points, torch.from_numpy(classes.astype(np.int64))) if labels else points


@dataclass(frozen=True, eq=False)
class NormalizedPoints:
    """A user's point cloud in model coordinates, with the map back to the user's coordinates.

    Model coordinates z relate to user coordinates x by x = center + scale * z.

    Attributes:
        data: (n, 2) float32 normalised points: mean 0, unit RMS spread per axis.
        center: (2,) float64 mean of the user's points.
        scale: RMS spread per axis of the user's points.
    """

    data: torch.Tensor
    center: torch.Tensor
    scale: float

    def to_user(self, z: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Maps (..., 2) model points to (..., 2) float64 user points.

        float64 because user coordinates may be large offsets (e.g. 1e6) where float32 would
        keep too few digits of the spread.
        """
        return self.center + self.scale * torch.as_tensor(z, dtype=torch.float64)

    def from_user(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Maps (..., 2) user points to (..., 2) float32 model points."""
        return ((torch.as_tensor(x, dtype=torch.float64) - self.center) / self.scale).float()


def _as_point_array(points) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    try:
        return np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "Points must be numbers arranged as n rows of (x, y), e.g. [[0.0, 1.0], [2.0, 3.0]]; "
            f"could not read them as numbers ({error})."
        ) from None


def from_points(points) -> NormalizedPoints:
    """Validates a user's point cloud and normalises it for training.

    Args:
        points: (n, 2) list, numpy array or torch tensor of x, y coordinates, 2 <= n <= MAX_POINTS.
    Returns:
        The normalised cloud and the map back to user coordinates.
    Raises:
        ValueError: with a message for a person, when the points cannot describe a distribution.
    """
    array = _as_point_array(points)
    if array.size == 0:
        raise ValueError("No points given: draw or paste at least 2 distinct points.")
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"Points must have shape (n, 2), one row of x, y per point; got shape {array.shape}."
        )
    n = array.shape[0]
    if n == 1:
        raise ValueError("Only one point given: a distribution needs at least 2 distinct points.")
    if n > MAX_POINTS:
        raise ValueError(
            f"Too many points: {n:,} given, the limit is {MAX_POINTS:,}. "
            "Subsample them first (datasets.subsample)."
        )
    for is_bad, what in ((np.isnan, "NaN (not a number)"), (np.isinf, "an infinite value")):
        bad_rows = np.flatnonzero(is_bad(array).any(axis=1))
        if bad_rows.size:
            raise ValueError(
                f"Point {bad_rows[0]} (counting from 0) contains {what}; "
                f"{bad_rows.size} point(s) are affected. Remove or fix them."
            )
    largest = np.abs(array).max()
    if largest > MAX_ABS_COORDINATE:
        raise ValueError(
            f"A coordinate has magnitude {largest:.3g}, above the limit of "
            f"{MAX_ABS_COORDINATE:.0g}; rescale the data (change units) and try again."
        )
    centre, scale = _centre_and_scale(array)
    if scale == 0.0:
        x, y = array[0]
        raise ValueError(
            f"All {n} points are identical at ({x:g}, {y:g}): "
            "a distribution needs at least 2 distinct points."
        )
    return NormalizedPoints(
        data=torch.from_numpy((array - centre) / scale).float(),
        center=torch.from_numpy(centre),
        scale=scale,
    )


def subsample(points, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Keeps at most `max_points` rows, chosen uniformly without replacement, in their order.

    Args:
        points: (n, 2) array-like.  max_points: the cap, >= 1.  seed: the same seed keeps the same rows.
    Returns:
        (min(n, max_points), 2) float64 array; the input rows unchanged when n <= max_points.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1; got {max_points}.")
    array = _as_point_array(points)
    if len(array) <= max_points:
        return array
    kept = np.random.default_rng(seed).choice(len(array), size=max_points, replace=False)
    return array[np.sort(kept)]


def _parse_number(field: str) -> float | None:
    try:
        return float(field)
    except ValueError:
        return None


def _split_fields(line: str) -> list[str]:
    if ";" in line:
        # Semicolon files come from locales that write decimal commas: "1,5; 2,5".
        fields = [field.replace(",", ".") for field in line.split(";")]
    elif "," in line:
        fields = line.split(",")
    else:
        fields = line.split()
    fields = [field.strip().strip("\"'").strip() for field in fields]
    # Spreadsheets often end every row with a separator.
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _parse_label(field: str, value: float | None, number: int) -> int:
    if value is None or not np.isfinite(value) or value != int(value) or value < 0:
        shown = repr(field) if field else "an empty value"
        raise ValueError(
            f"Line {number}: label {shown} is not a whole number >= 0 (classes are 0, 1, 2, ...)."
        )
    return int(value)


def parse_csv(text: str, labels: bool = False):
    """Parses CSV text of x, y points, each optionally followed by its class: x, y, label.

    One point per line, separated by a comma, a semicolon (then decimal commas are allowed) or
    whitespace. A first row without any number is taken as a header; blank lines and lines
    starting with '#' are skipped. The first data row fixes the columns: two (x, y) or three
    (x, y, label, a whole number >= 0); every row then has as many.

    Args:
        text: the file's contents.  labels: also return the label column.
    Returns:
        (n, 2) float64 array of finite points; with `labels=True`, `(points, labels)` where labels
        is an (n,) int64 array, or None when the file has no label column.
    Raises:
        ValueError: naming the offending line (counting from 1) and value.
    """
    rows, classes = [], []
    header_allowed = True
    columns = None
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_fields(line)
        values = [_parse_number(field) for field in fields]
        if header_allowed and all(value is None for value in values):
            header_allowed = False
            continue
        header_allowed = False
        if len(fields) == 1:
            raise ValueError(
                f"Line {number} has only one value ({quote(line)}); each line needs two numbers: x, y."
            )
        if len(fields) > 3:
            raise ValueError(
                f"Line {number} has {len(fields)} values ({quote(line)}); expected two columns x, y "
                "or three: x, y, label."
            )
        if columns is not None and len(fields) != columns:
            raise ValueError(
                f"Line {number} has {len(fields)} values ({line!r}); expected {columns} like the "
                f"first data row ({'x, y, label' if columns == 3 else 'x, y'})."
            )
        columns = len(fields)
        for field, value in zip(fields[:2], values[:2], strict=True):
            if value is None:
                shown = quote(field) if field else "an empty value"
                raise ValueError(f"Line {number}: {shown} is not a number.")
            if not np.isfinite(value):
                raise ValueError(f"Line {number}: {quote(field)} is not a finite number.")
        rows.append(values[:2])
        if columns == 3:
            classes.append(_parse_label(fields[2], values[2], number))
    if not rows:
        raise ValueError("No data rows found: paste one point per line, like '0.5, -1.2'.")
    points = np.array(rows, dtype=np.float64)
    if not labels:
        return points
    return points, (np.array(classes, dtype=np.int64) if columns == 3 else None)
