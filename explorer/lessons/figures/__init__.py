"""Pure figure builders the lessons need beyond the Playground's (``explorer.figures``).

Arrays in, ``go.Figure`` out, no Streamlit. They use the Playground's palette (``explorer.figures.theme``:
noise blue, data amber, the model violet, the exact field teal, errors pink) and its view box, so a
lesson's picture reads like the Playground's. Arrays are cast to float32 (half the payload).
One module per kind of figure; every public name is importable from here.
"""

from .base import SOLVER_COLORS
from .curves import curves_figure, error_nfe_figure, grid_figure
from .density import density_paths_figure, log_density_figure
from .objective import TRAINING_STAGES, posterior_figure, training_step_figure
from .panels import panels_figure, question_figure

__all__ = [
    "SOLVER_COLORS",
    "TRAINING_STAGES",
    "curves_figure",
    "density_paths_figure",
    "error_nfe_figure",
    "grid_figure",
    "log_density_figure",
    "panels_figure",
    "posterior_figure",
    "question_figure",
    "training_step_figure",
]
