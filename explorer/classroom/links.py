"""The links a teacher hands out: ``/?room=CODE`` for students, ``/classroom?room=CODE&token=...`` for the teacher.

Built from the URL the teacher's browser shows (``st.context.url``), so they work behind a proxy
or a base path. The QR code is made by ``segno`` (pure python) as a PNG for the projector.
"""

from __future__ import annotations

import io
from urllib.parse import urlencode, urlsplit

import segno

PAGE = "classroom"
"""The Classroom page's ``url_path`` in the navigation."""


def base_url(page_url: str | None, page: str = PAGE) -> str:
    """The app's root, without a trailing slash, from the URL of one of its pages.

    ``"http://host:8501/classroom?x=1"`` -> ``"http://host:8501"``; ``"https://h/fme/classroom"`` ->
    ``"https://h/fme"``. None (no browser, e.g. under AppTest) -> ``""``: links are then relative.
    """
    if not page_url:
        return ""
    parts = urlsplit(page_url)
    path = parts.path.rstrip("/")
    if path.endswith("/" + page) or path == page:
        path = path[: -len(page)].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}" if parts.netloc else path


def join_link(base: str, code: str) -> str:
    """What students open: the Playground in room ``code``."""
    return f"{base}/?{urlencode({'room': code})}"


def teacher_link(base: str, code: str, token: str) -> str:
    """The private link that opens room ``code``'s dashboard."""
    return f"{base}/{PAGE}?{urlencode({'room': code, 'token': token})}"


def qr_png(text: str, scale: int = 8) -> bytes:
    """``text`` as a QR code PNG (dark modules on white, 4-module quiet zone), for a projector."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
