"""Outside strings (file names, CSV lines, pasted text, link parameters, model metadata) as plain text.

Streamlit renders the body of ``st.error``, ``st.warning``, ``st.toast``, ``st.info`` and
``st.caption`` as markdown (with LaTeX between ``$`` and some HTML). A message that repeats
something a person uploaded or linked must not become a link, an image, a formula or a tag: every
such message goes through ``plain``. Streamlit-free, so it is tested directly.
"""

from __future__ import annotations

import re

from fmcore.quoting import QUOTE_CHARS, quote

__all__ = ["JOINER", "MESSAGE_CHARS", "QUOTE_CHARS", "plain", "quote", "shorten"]

MESSAGE_CHARS = 600
"""A whole message is cut here: each quoted piece is already short, so only a runaway one gets here."""

# Markdown, GFM, LaTeX and HTML syntax characters; a backslash before ASCII punctuation shows it as is.
_SYNTAX = re.compile(r"([\\`*_\[\]{}()<>#|!~$&^=])")
JOINER = "\u2060"
"""An invisible word joiner. GFM links bare addresses (``http://…``, ``www.…``, ``name@host``) in the
rendered text, after escapes are resolved, so an escape cannot stop it: a joiner inside the
address does, and the text reads the same."""
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)")


def shorten(text: object, limit: int = QUOTE_CHARS) -> str:
    """``str(text)`` on one line (whitespace runs become one space), at most ``limit`` characters + '…'."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def plain(message: object, limit: int = MESSAGE_CHARS) -> str:
    """``message`` escaped so that Streamlit's markdown shows exactly its characters, on one line.

    Args:
        message: any text, e.g. an error that quotes a file name.  limit: the longest message kept.
    Returns:
        Markdown source that renders as the (shortened) text: no link, image, formula, tag or heading.
    """
    return _AUTOLINK.sub(JOINER, _SYNTAX.sub(r"\\\1", shorten(message, limit)))
