"""The schema of one view setting: what it accepts, how a link spells it, which widget holds it.

``setting(...)`` declares a dataclass field with its range or choices; ``schema(cls)`` derives, for
every such field, a ``Setting`` with the parser a link's text goes through (``explorer.core.state``
builds ``SETTINGS`` from ``ViewState`` so). ``format_value`` is the inverse: a value as link text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

__all__ = ["Setting", "format_value", "schema", "setting"]


def format_value(value) -> str:
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


def _number(lo: float, hi: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}")
        return value

    return parse


@dataclass(frozen=True)
class Setting:
    """What one ``ViewState`` field accepts, and how the link and the widgets name it.

    Attributes:
        url: the query parameter's name.  parse: text from a link -> value (ValueError, in words,
            when it does not fit).  widget: whether one widget keyed ``widget_key(name)`` holds it
            (the layer pills and the followed point are composite widgets).
        lazy: its widget sits in a panel built only while open: not drawn leaves the value as is.
        lo, hi: the range of a number.  choices: the values a text setting may take.
    """

    url: str
    parse: Callable[[str], object]
    widget: bool
    lazy: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None


def setting(
    default,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    what: str = "",
    url: str = "",
    parse: Callable[[str], object] | None = None,
    widget: bool = True,
    lazy: bool = False,
):
    """A ``ViewState`` field that declares its type (from ``default``), range or choices, and URL name.

    ``url`` defaults to the field's name; ``what`` names it in messages (default: that name too).
    """
    return field(
        default=default,
        metadata={
            "setting": dict(
                lo=lo, hi=hi, choices=choices, what=what, url=url, parse=parse, widget=widget, lazy=lazy
            )
        },
    )


def schema(cls) -> dict[str, Setting]:
    """Each setting field of ``cls`` -> its ``Setting``, with the parser derived from its type."""
    out = {}
    for f in fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        parse = spec["parse"] or _parser(
            f.default, spec["lo"], spec["hi"], spec["choices"], spec["what"] or f.name
        )
        out[f.name] = Setting(
            url=spec["url"] or f.name,
            parse=parse,
            widget=spec["widget"],
            lazy=spec["lazy"],
            lo=spec["lo"],
            hi=spec["hi"],
            choices=spec["choices"],
        )
    return out


def _parser(default, lo, hi, choices, what: str) -> Callable[[str], object]:
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return _integer(lo, hi)
    if isinstance(default, float):
        return _number(lo, hi)
    return _one_of(tuple(choices), what)
