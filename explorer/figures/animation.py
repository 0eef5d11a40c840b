"""The animation's controls: play/pause buttons and a time slider over the named frames."""

from __future__ import annotations

import numpy as np

from . import theme

__all__ = ["FRAME_MS", "animation_controls"]

FRAME_MS = 80
"""Frame duration while playing: 60-100 ms is what the browser keeps up with (NOTES)."""
BUTTONS_PX = 100
"""Width the play and pause buttons take at the slider's left (plotly.js measures them at 96 px)."""


def _tick_label(k: int, count: int, name: str) -> str:
    """The slider shows its current step's label as 't = ...'; the ends say what they are."""
    if k == 0:
        return f"{name} · noise"
    if k == count - 1:
        return f"{name} · data"
    return name


def animation_controls(times: np.ndarray, redraw: bool, frame_ms: int = FRAME_MS) -> dict:
    """Layout entries ``updatemenus`` and ``sliders`` for frames named by their time ('0.00' ...),
    each shown ``frame_ms`` while playing."""
    names = [f"{t:.2f}" for t in times]
    play = dict(
        frame=dict(duration=frame_ms, redraw=redraw),
        fromcurrent=True,
        transition=dict(duration=0),
        mode="immediate",
    )
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    return dict(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                showactive=False,
                x=0.0,
                y=0.0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=30, r=4),
                bgcolor=theme.PANEL,
                bordercolor="#2a3350",
                font=dict(color=theme.TEXT, size=13),
                buttons=[
                    dict(label="▶", method="animate", args=[None, play]),
                    dict(label="❚❚", method="animate", args=[[None], pause]),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                # the whole width, its rail starting after the buttons (BUTTONS_PX) at every width
                x=0.0,
                len=1.0,
                y=0.0,
                yanchor="top",
                pad=dict(t=24, b=0, l=BUTTONS_PX),
                bgcolor=theme.PANEL,
                activebgcolor=theme.DATA,
                bordercolor="#2a3350",
                tickcolor=theme.MUTED,
                # 51 tick labels would overlap: they are transparent, the current value says t.
                font=dict(color="rgba(0,0,0,0)", size=1),
                currentvalue=dict(
                    prefix="t = ",
                    visible=True,
                    xanchor="right",
                    font=dict(color=theme.TEXT, size=14),
                ),
                transition=dict(duration=0),
                steps=[
                    dict(
                        label=_tick_label(k, len(names), name),
                        method="animate",
                        args=[
                            [name],
                            dict(
                                mode="immediate",
                                frame=dict(duration=0, redraw=redraw),
                                transition=dict(duration=0),
                            ),
                        ],
                    )
                    for k, name in enumerate(names)
                ],
            )
        ],
    )
