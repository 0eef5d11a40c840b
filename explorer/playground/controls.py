"""The Playground's controls: each function draws a group of widgets and returns a frozen config.

Widgets are keyed; their values start from the ``ViewState`` (``seed_widgets``), so a shared link
sets every control, and the page rebuilds the state from the returned configs on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import fmcore
from explorer import compat
from explorer.core import flows
from explorer.core.state import FIELDS, MAX_PARTICLES, MAX_SEED, MAX_STEPS, MIN_PARTICLES, ViewState
from fmcore.coupling import COUPLINGS
from fmcore.solvers import SOLVERS, TIME_GRIDS
from fmcore.trainer import TARGETS

__all__ = [
    "LAYER_LABELS",
    "CompareConfig",
    "LayerConfig",
    "ParticleConfig",
    "PathConfig",
    "SamplerConfig",
    "TrainingConfig",
    "compare_controls",
    "layer_controls",
    "nfe_caption",
    "particle_controls",
    "path_controls",
    "sampler_controls",
    "seed_widgets",
    "training_controls",
]

PARTICLE_CHOICES = (250, 500, 1000, 2000, 5000)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
FIELD_LABELS = {"exact": "Exact", "learned": "Learned", "difference": "Learned − exact"}
LAYER_LABELS = {"paths": "Paths", "density": "Density", "warp": "Grid"}
COUPLING_LABELS = {"independent": "Independent (plain FM)", "ot": "Minibatch OT"}
TARGET_LABELS = {"conditional": "Conditional velocity", "marginal": "Marginal velocity (exact, low variance)"}

_PREFIX = "fme_w_"


_DEFAULTS = ViewState()


def _key(name: str) -> str:
    return _PREFIX + name


def _held(name: str):
    """This session's value of a control (the defaults' before the first run).

    Each widget also gets it as its *default*: a browser that first draws a widget from a later run
    than the one that set its value takes the default. Left at Streamlit's own default, a page slow
    to draw (thirty students on one machine) sent back its sliders at their minimum.
    """
    return compat.widget_default(_key(name), getattr(_DEFAULTS, name))


def _index(options, name: str) -> int:
    """``_held`` as a selectbox ``index`` (the first option for a value it does not offer)."""
    held = _held(name)
    return options.index(held) if held in options else 0


def _layer_names(state: ViewState) -> list[str]:
    """The layers the state shows, as the layer pills' value."""
    return [name for name in LAYER_LABELS if getattr(state, name)]


def seed_widgets(state: ViewState) -> None:
    """Set every control to the state's value (on the first run, or after a link was opened)."""
    values = {
        "schedule": state.schedule,
        "solver": state.solver,
        "grid": state.grid,
        "steps": state.steps,
        "n": state.n,
        "seed": state.seed,
        "solver_b": state.solver_b,
        "grid_b": state.grid_b,
        "steps_b": state.steps_b,
        "coupling": state.coupling,
        "target": state.target,
        "lr": state.lr,
        "field": state.field,
        "layers": _layer_names(state),
        "compare": state.compare,
        "model_density": state.model_density,
    }
    for name, value in values.items():
        st.session_state[_key(name)] = value


@dataclass(frozen=True)
class PathConfig:
    schedule: str


@dataclass(frozen=True)
class SamplerConfig:
    solver: str
    grid: str
    steps: int


@dataclass(frozen=True)
class ParticleConfig:
    n: int
    seed: int


@dataclass(frozen=True)
class CompareConfig:
    compare: bool
    solver_b: str
    grid_b: str
    steps_b: int


@dataclass(frozen=True)
class TrainingConfig:
    coupling: str
    target: str
    lr: float


@dataclass(frozen=True)
class LayerConfig:
    field: str
    paths: bool
    density: bool
    warp: bool
    model_density: bool


def _solver_label(name: str) -> str:
    return SOLVERS[name].label


def _grid_label(name: str) -> str:
    return TIME_GRIDS[name].label


def _schedule_label(name: str) -> str:
    return fmcore.SCHEDULES[name].label or name


def nfe_caption(solver: str, steps: int, counted: int | None = None) -> str:
    """HTML line '20 steps · 80 NFE' for under the step slider."""
    label = flows.steps_label(solver, steps, counted)
    per_step = SOLVERS[solver].nfe_per_step
    how = f"{per_step} network evaluation{'s' if per_step != 1 else ''} per step" if per_step else "counted"
    return f"<div class='fm-nfe' data-testid='fm-nfe'><b>{label}</b> <span>({how})</span></div>"


def path_controls() -> PathConfig:
    """The schedule of the path z_t = alpha_t z_1 + sigma_t z_0 the view uses."""
    st.markdown("### Path")
    schedule = st.selectbox(
        "Schedule αₜ, σₜ",
        tuple(fmcore.SCHEDULES),
        index=_index(tuple(fmcore.SCHEDULES), "schedule"),
        format_func=_schedule_label,
        key=_key("schedule"),
        help="z_t = α_t·z₁ + σ_t·z₀. Changing it re-expresses the same flow (fmcore.change_schedule): no retraining.",
    )
    return PathConfig(schedule)


def sampler_controls() -> SamplerConfig:
    """Solver, time grid and steps; the page writes the NFE line under them (``nfe_caption``)."""
    st.markdown("### Sampler")
    solver, grid, steps = _solver_grid_steps(help="Integration steps from t=0 to t=1.")
    return SamplerConfig(solver, grid, int(steps))


def _solver_grid_steps(label: str = "", suffix: str = "", help: str | None = None) -> tuple[str, str, int]:
    """The solver, time grid and steps widgets: the sampler's, or compare mode's second (" B", "_b")."""
    solver = st.selectbox(
        f"Solver{label}",
        tuple(SOLVERS),
        _index(tuple(SOLVERS), f"solver{suffix}"),
        format_func=_solver_label,
        key=_key(f"solver{suffix}"),
    )
    grid = st.selectbox(
        f"Time grid{label}",
        tuple(TIME_GRIDS),
        _index(tuple(TIME_GRIDS), f"grid{suffix}"),
        format_func=_grid_label,
        key=_key(f"grid{suffix}"),
    )
    steps = st.slider(
        f"Steps{label}", 1, MAX_STEPS, int(_held(f"steps{suffix}")), key=_key(f"steps{suffix}"), help=help
    )
    return solver, grid, int(steps)


def particle_controls() -> ParticleConfig:
    """How many particles, and the seed of their noise (and of the preset's sample)."""
    st.markdown("### Particles")
    current = _held("n")
    choices = tuple(sorted({*PARTICLE_CHOICES, int(current)}))
    n = st.select_slider("Particles", choices, int(current), key=_key("n"), format_func=lambda v: f"{v:,}")
    seed = st.number_input(
        "Seed",
        0,
        MAX_SEED,
        int(_held("seed")),
        step=1,
        key=_key("seed"),
        help="Same seed, same noise particles and data sample.",
    )
    return ParticleConfig(int(n), int(seed))


def compare_controls() -> CompareConfig:
    """Compare mode: a second panel with its own solver, grid and steps, on the same particles."""
    compare = st.toggle("Compare with a second sampler", bool(_held("compare")), key=_key("compare"))
    if not compare:
        return CompareConfig(
            False,
            st.session_state.get(_key("solver_b"), "euler"),
            st.session_state.get(_key("grid_b"), "uniform"),
            int(st.session_state.get(_key("steps_b"), 4)),
        )
    solver, grid, steps = _solver_grid_steps(" B", "_b")
    st.markdown(nfe_caption(solver, steps), unsafe_allow_html=True)
    return CompareConfig(True, solver, grid, int(steps))


def training_controls() -> TrainingConfig:
    """How the next model is trained: coupling, regression target and learning rate."""
    st.markdown("### Training")
    coupling = st.selectbox(
        "Coupling",
        tuple(COUPLINGS),
        _index(tuple(COUPLINGS), "coupling"),
        format_func=lambda c: COUPLING_LABELS.get(c, c),
        key=_key("coupling"),
    )
    target = st.selectbox(
        "Target",
        TARGETS,
        _index(tuple(TARGETS), "target"),
        format_func=lambda t: TARGET_LABELS.get(t, t),
        key=_key("target"),
    )
    current = _held("lr")
    rates = tuple(sorted({*LEARNING_RATES, float(current)}))
    lr = st.select_slider(
        "Learning rate", rates, float(current), key=_key("lr"), format_func=lambda v: f"{v:g}"
    )
    st.caption("Changing data or these settings starts a fresh network.")
    return TrainingConfig(coupling, target, float(lr))


def layer_controls() -> LayerConfig:
    """What the figure shows: which field and which layers (the toolbar above the figure)."""
    field_col, layer_col = st.columns([1.25, 1], vertical_alignment="center", gap="small")
    with field_col:
        field = st.segmented_control(
            "Field",
            FIELDS,
            default=_held("field"),
            format_func=FIELD_LABELS.get,
            key=_key("field"),
            label_visibility="collapsed",
        )
    with layer_col:
        layers = st.pills(
            "Layers",
            tuple(LAYER_LABELS),
            default=st.session_state.get(_key("layers"), _layer_names(_DEFAULTS)),
            format_func=LAYER_LABELS.get,
            selection_mode="multi",
            key=_key("layers"),
            label_visibility="collapsed",
        )
    layers = set(layers or ())
    model_density = st.session_state.get(_key("model_density"), False)
    if "density" in layers and (field or "exact") != "exact":
        model_density = st.toggle(
            "Density of the network (log-likelihood, slower) instead of the exact pₜ",
            bool(_held("model_density")),
            key=_key("model_density"),
        )
    return LayerConfig(
        field=field or "exact",
        paths="paths" in layers,
        density="density" in layers,
        warp="warp" in layers,
        model_density=bool(model_density),
    )


def clamp_particles(n: int) -> int:
    return min(MAX_PARTICLES, max(MIN_PARTICLES, int(n)))
