"""The link's codec for drawn points: ``pts=`` in a shared URL, bounded against hostile links.

Drawn points travel quantised to 16 bits on their bounding box, zlib-compressed and
base64url-encoded (about 2 bytes a point for a brush stroke); their classes (``lab=``) as one byte a
point, zlib-compressed (a few bytes for a drawing: strokes are runs of one class). Decoding refuses, in plain words,
anything longer, larger or other than what ``encode_points`` can write.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import zlib

import numpy as np

from fmcore import datasets

__all__ = ["URL_MAX_POINTS", "as_shared", "decode_labels", "decode_points", "encode_labels", "encode_points"]

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


def encode_labels(labels: np.ndarray) -> str:
    """(n,) classes in 0 .. 255 -> a URL-safe string (base64url of zlib'd bytes, no padding)."""
    raw = np.asarray(labels, dtype=np.int64).reshape(-1)
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise ValueError("labels must lie in 0 .. 255 to travel in a link")
    payload = zlib.compress(raw.astype(np.uint8).tobytes(), 9)
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_labels(text: str, n: int) -> np.ndarray:
    """The inverse of ``encode_labels`` for the n points they belong to.

    Returns:
        (n,) int64 classes.
    Raises:
        ValueError: in plain words, when the text is not n encoded classes.
    """
    if len(text) > 4 * (n // 3 + 64):  # never longer than the raw bytes in base64
        raise ValueError("the point classes in the link are longer than the points they belong to")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), n + 1)
    except (binascii.Error, zlib.error, ValueError):
        raise ValueError("the point classes in the link are damaged (not valid base64/zlib data)") from None
    if len(raw) != n or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"the point classes in the link do not match its {n:,} points")
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
