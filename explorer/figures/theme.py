"""One palette for every picture: noise is blue, data is amber, the learned model is violet.

Figures (plotly), exports (matplotlib/PIL) and the page's CSS all read their colours here, so a
particle drawn in a GIF has the colour it had on the screen.
"""

from __future__ import annotations

BACKGROUND = "#0b1020"
"""The figure's plotting area: a deep blue-black that a projector still shows as dark."""
PAPER = "#0e1117"
"""Around the plotting area; the same as Streamlit's dark page background."""
PANEL = "#151b2c"
GRID_LINE = "#1f2840"
TEXT = "#e6e9f2"
MUTED = "#8b93a7"

NOISE = "#5ea8ff"
"""z_0 ~ N(0, I): everything at t = 0."""
DATA = "#ffb547"
"""z_1, the data: everything at t = 1."""
MODEL = "#b58cff"
"""What the network learned (loss curve, learned-field captions)."""
EXACT = "#55d6be"
"""The closed-form marginal field."""
ERROR = "#ff6b8b"
"""Learned minus exact: where the model is wrong."""
FIELD = "#c9d1e6"
"""Arrows of the velocity field."""
HIGHLIGHT = "#ffffff"
WARP = "#6f7fa8"
CLASS_COLORS = (DATA, EXACT, ERROR, "#9be36a", NOISE, MODEL, "#f5e663", "#ff9a5c")
"""Class k of labelled data, k = 0 .. 7 (also the drawing pad's brush colours): the data's amber
first, so one class looks like unlabelled data; then the palette's teal and pink and a green."""

DENSITY_SCALE = [
    [0.0, "rgba(11,16,32,0)"],
    [0.25, "rgba(60,52,130,0.55)"],
    [0.6, "rgba(120,90,200,0.75)"],
    [1.0, "rgba(235,200,255,0.95)"],
]
"""p_t as light on the dark background: transparent where there is no mass."""

FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b) in 0..255."""
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def mix(a: str, b: str, w: float) -> str:
    """The colour a fraction ``w`` of the way from ``a`` to ``b``, as '#rrggbb'."""
    ra, ga, ba = hex_to_rgb(a)
    rb, gb, bb = hex_to_rgb(b)
    w = min(1.0, max(0.0, float(w)))
    return f"#{round(ra + (rb - ra) * w):02x}{round(ga + (gb - ga) * w):02x}{round(ba + (bb - ba) * w):02x}"


def particle_color(t: float) -> str:
    """Particles change from the noise colour at t=0 to the data colour at t=1."""
    return mix(NOISE, DATA, t)


def class_color(k: int) -> str:
    """The colour of class ``k`` (``CLASS_COLORS``, repeating past the eighth class)."""
    return CLASS_COLORS[int(k) % len(CLASS_COLORS)]


def class_option_css(key: str, classes, first: int = 1) -> str:
    """CSS rules colouring the options of the segmented control keyed ``key`` like their classes:
    option number ``first + i`` (1-based, as ``:nth-of-type``) shows ``classes[i]``'s colour."""
    scope = f".st-key-{key} [role='radiogroup'] button"
    return "".join(
        f"{scope}:nth-of-type({first + i}) p {{ color: {class_color(k)}; font-weight: 700; }}"
        for i, k in enumerate(classes)
    )


def rgba(color: str, alpha: float) -> str:
    r, g, b = hex_to_rgb(color)
    return f"rgba({r},{g},{b},{alpha:g})"


CSS = f"""
<style>
:root {{ --fm-noise: {NOISE}; --fm-data: {DATA}; --fm-model: {MODEL}; --fm-muted: {MUTED}; }}
.block-container {{ padding: 1.1rem 1.6rem 1rem 1.6rem; max-width: 1600px; }}
.fm-header {{ display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.3rem 1.2rem; margin-bottom: 0.1rem; }}
h1.fm-title {{ font-size: 1.55rem; font-weight: 700; letter-spacing: -0.02em; margin: 0; padding: 0; }}
h1.fm-title .noise {{ color: var(--fm-noise); }}
h1.fm-title .data {{ color: var(--fm-data); }}
.fm-tagline {{ color: var(--fm-muted); font-size: 0.98rem; margin-bottom: 0.4rem; }}
.fm-chip {{ display: inline-block; padding: 0.1rem 0.55rem; margin: 0 0.3rem 0.2rem 0; border-radius: 999px;
  font-size: 0.8rem; border: 1px solid #2a3350; background: {PANEL}; color: {TEXT}; white-space: nowrap; }}
.fm-chip b {{ font-weight: 650; }}
.fm-chip.noise {{ border-color: {NOISE}66; color: {NOISE}; }}
.fm-chip.data {{ border-color: {DATA}66; color: {DATA}; }}
.fm-chip.model {{ border-color: {MODEL}66; color: {MODEL}; }}
.fm-chip.exact {{ border-color: {EXACT}66; color: {EXACT}; }}
.fm-chip.error {{ border-color: {ERROR}66; color: {ERROR}; }}
.fm-stat {{ font-variant-numeric: tabular-nums; color: {TEXT}; font-size: 0.92rem; }}
.fm-stat .label {{ color: var(--fm-muted); }}
.fm-caption {{ color: var(--fm-muted); font-size: 0.9rem; line-height: 1.45; }}
.fm-caption b {{ color: {TEXT}; }}
.fm-nfe {{ font-variant-numeric: tabular-nums; font-size: 0.85rem; color: var(--fm-muted); margin-top: -0.4rem; }}
.fm-nfe b {{ color: {TEXT}; }}
div[data-testid="stSidebarUserContent"] {{ padding-top: 1.2rem; }}
div[data-testid="stSidebar"] h3 {{ font-size: 0.78rem; text-transform: uppercase; letter-spacing: 0.08em;
  color: var(--fm-muted); margin: 0.6rem 0 0.1rem 0; }}
canvas.upper-canvas {{ cursor: crosshair !important; }}
header[data-testid="stHeader"] {{ background: transparent; }}
</style>
"""

CLASSROOM_CSS = """
<style>
section[data-testid="stSidebar"], div[data-testid="stSidebarCollapsedControl"],
button[data-testid="stExpandSidebarButton"], header[data-testid="stHeader"] { display: none !important; }
.block-container { max-width: 1700px; padding-top: 0.8rem; }
h1.fm-title { font-size: 2rem; }
</style>
"""
"""``?classroom=1``: no controls, only the picture, bigger."""
