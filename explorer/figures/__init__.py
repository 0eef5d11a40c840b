"""Pure figure builders: tensors and arrays in, ``plotly.graph_objects.Figure`` out (no ``st.*``).

One module per figure: ``flow`` (the Playground's animation), ``live`` (loss and snapshot while
training), ``schedule`` (alpha_t, sigma_t); ``marks`` and ``animation`` are the parts they share.
"""

from .animation import FRAME_MS
from .flow import PATH_MARKERS_UP_TO, Panel, flow_figure, panel_title
from .live import loss_figure, snapshot_figure
from .marks import ARROW_CELL, arrow_segments
from .schedule import schedule_figure, schedule_svg

__all__ = [
    "ARROW_CELL",
    "FRAME_MS",
    "PATH_MARKERS_UP_TO",
    "Panel",
    "arrow_segments",
    "flow_figure",
    "loss_figure",
    "panel_title",
    "schedule_figure",
    "schedule_svg",
    "snapshot_figure",
]
