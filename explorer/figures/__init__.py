"""Pure figure builders: tensors and arrays in, ``plotly.graph_objects.Figure`` out (no ``st.*``)."""

from .flow import (
    ARROW_CELL,
    FRAME_MS,
    PATH_MARKERS_UP_TO,
    Panel,
    arrow_segments,
    flow_figure,
    loss_figure,
    panel_title,
    schedule_figure,
    schedule_svg,
    snapshot_figure,
)

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
