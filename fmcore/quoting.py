"""Quoting what a person gave (a CSV line, a metadata field) back to them, in bounded length."""

from __future__ import annotations

__all__ = ["QUOTE_CHARS", "quote"]

QUOTE_CHARS = 80
"""Longest piece of someone's input an error message repeats back."""


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of ``str(value)`` on one line, cut to about ``limit`` characters with an ellipsis.

    A 2 MB line quoted back whole makes a 2 MB error box; the first characters say which it was.
    """
    text = str(value)
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)
