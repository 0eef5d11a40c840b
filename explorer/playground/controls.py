"""The Playground's controls: each function draws a group of widgets, keyed by their setting.

The widget key is the state (Streamlit's Uber demo): each widget holds one ``ViewState`` setting
under ``widget_key(name)``; ``seed_widgets`` puts a state's values there (the first run, a link)
and ``state.from_widgets`` reads the view back, both derived from the settings' schema.
"""

from __future__ import annotations

import streamlit as st

import fmcore
from explorer import compat
from explorer.core import flows
from explorer.core.state import (
    FIELDS,
    LAYERS,
    MAX_NOISE,
    MAX_SEED,
    MAX_STEPS,
    OBJECTIVES,
    SAMPLERS,
    SETTINGS,
    ViewState,
    widget_key,
    widget_values,
)
from fmcore.coupling import COUPLINGS
from fmcore.solvers import SOLVERS, TIME_GRIDS
from fmcore.trainer import OBJECTIVE_DEFAULTS, TARGETS

__all__ = [
    "LAYER_LABELS",
    "PARTICLE_CHOICES",
    "compare_controls",
    "folded",
    "follow_controls",
    "layer_controls",
    "mean_flow_controls",
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
LAYER_LABELS = dict(zip(LAYERS, ("Paths", "Density", "Grid"), strict=True))
COUPLING_LABELS = {"independent": "Independent (plain FM)", "ot": "Minibatch OT"}
TARGET_LABELS = {"conditional": "Conditional velocity", "marginal": "Marginal velocity (exact, low variance)"}
SAMPLER_LABELS = {"ode": "ODE", "sde": "SDE"}
NOISE_LEVELS = tuple(round(0.1 * k, 1) for k in range(round(MAX_NOISE * 10) + 1))
OBJECTIVE_LABELS = {"flow": "Flow v(z, t)", "meanflow": "Mean flow u(z, r, t), few steps"}

_DEFAULTS = widget_values(ViewState())


def _held(name: str):
    """This session's value of a control (the defaults' before the first run).

    Each widget also gets it as its *default*: a browser that first draws a widget from a later run
    than the one that set its value takes the default. Left at Streamlit's own default, a page slow
    to draw (thirty students on one machine) sent back its sliders at their minimum.
    """
    return compat.widget_default(widget_key(name), _DEFAULTS[name])


def _persist(name: str) -> str | None:
    """``persist_state`` of the widget of setting ``name``: a lazy setting's widget keeps its value
    through runs that do not draw it (a folded panel; without it Streamlit fell back to the value a
    link had seeded before, and the next run took that for the view)."""
    return "page" if SETTINGS[name].lazy else None


def _index(options, name: str) -> int:
    """``_held`` as a selectbox ``index`` (the first option for a value it does not offer)."""
    held = _held(name)
    return options.index(held) if held in options else 0


def _choice(
    label: str, options: tuple, name: str, format_func, help: str | None = None, disabled: bool = False
):
    """A selectbox that holds the setting ``name``, started at its held value."""
    return st.selectbox(
        label,
        options,
        _index(options, name),
        format_func=format_func,
        key=widget_key(name),
        help=help,
        disabled=disabled,
        persist_state=_persist(name),
    )


def _number(label: str, name: str, step: int = 1, help: str | None = None):
    """A slider over the range the setting ``name`` declares, started at its held value."""
    spec = SETTINGS[name]
    return st.slider(
        label,
        spec.lo,
        spec.hi,
        _held(name),
        step,
        key=widget_key(name),
        help=help,
        persist_state=_persist(name),
    )


def seed_widgets(values: dict[str, object], overwrite: bool = True) -> None:
    """Put ``values`` (``widget_values(state)``, or some of them) into their widgets.

    ``overwrite=False`` sets only widgets that hold nothing yet.
    """
    for name, value in values.items():
        if overwrite:
            st.session_state[widget_key(name)] = value
        else:
            st.session_state.setdefault(widget_key(name), value)


def _solver_label(name: str) -> str:
    return SOLVERS[name].label


def _grid_label(name: str) -> str:
    return TIME_GRIDS[name].label


def _schedule_label(name: str) -> str:
    return fmcore.SCHEDULES[name].label or name


def nfe_caption(solver: str, steps: int, counted: int | None = None) -> str:
    """HTML line '20 steps · 80 NFE' for under the step slider."""
    label = flows.steps_label(solver, steps, counted)
    per_step = flows.nfe_per_step(solver)
    how = f"{per_step} network evaluation{'s' if per_step != 1 else ''} per step" if per_step else "counted"
    if solver not in SOLVERS:
        how = f"{flows.sampler_label(solver)}: {how}"
    return f"<div class='fm-nfe' data-testid='fm-nfe'><b>{label}</b> <span>({how})</span></div>"


def path_controls() -> None:
    """The schedule of the path z_t = alpha_t z_1 + sigma_t z_0 the view uses."""
    st.markdown("### Path")
    _choice(
        "Schedule αₜ, σₜ",
        tuple(fmcore.SCHEDULES),
        "schedule",
        _schedule_label,
        help="z_t = α_t·z₁ + σ_t·z₀. Changing it re-expresses the same flow (fmcore.change_schedule): no retraining.",
    )


def sampler_controls() -> None:
    """Solver, time grid and steps; the page writes the NFE line under them (``nfe_caption``)."""
    st.markdown("### Sampler")
    sde = _stochastic_controls()
    _solver_grid_steps(help="Integration steps from t=0 to t=1.", ode_only=sde)


def _stochastic_controls() -> bool:
    """The ODE | SDE switch and, for the SDE, its noise level; returns whether the SDE is on."""
    sampler = st.segmented_control(
        "Sampler",
        SAMPLERS,
        default=_held("sampler"),
        format_func=SAMPLER_LABELS.get,
        key=widget_key("sampler"),
        help="The SDE dz = [v + (g²/2)·∇log pₜ] dt + g dW has the flow's marginals pₜ for every g; "
        "its score comes from the velocity itself.",
    )
    if sampler != "sde":
        return False
    current = float(_held("noise"))
    st.select_slider(
        "Noise (scale of gₜ)",
        tuple(sorted({*NOISE_LEVELS, current})),
        current,
        key=widget_key("noise"),
        format_func=lambda v: f"{v:g}",
        persist_state=_persist("noise"),
        help="gₜ = noise·√βₜ: 0 is the ODE (Euler), 1 the schedule's reverse diffusion SDE.",
    )
    st.caption(
        "The SDE runs Euler-Maruyama on the time grid and steps below, one NFE a step: the solver is the ODE's."
    )
    return True


def mean_flow_controls() -> None:
    """The jumps a mean-flow network samples in (one NFE each), for the learned field."""
    _number("Mean-flow steps (NFE)", "nfe")
    st.caption(
        "A mean-flow network jumps z_t = z_r + (t − r)·u(z_r, r, t) on a uniform grid, one NFE a jump; "
        "the exact field keeps the sampler above."
    )


def _solver_grid_steps(
    label: str = "", suffix: str = "", help: str | None = None, ode_only: bool = False
) -> tuple[str, str, int]:
    """The solver, time grid and steps widgets: the sampler's, or compare mode's second (" B", "_b").

    ``ode_only``: the SDE is on, and the solver (not the grid and steps) stands unused.
    """
    solver = _choice(f"Solver{label}", tuple(SOLVERS), f"solver{suffix}", _solver_label, disabled=ode_only)
    grid = _choice(f"Time grid{label}", tuple(TIME_GRIDS), f"grid{suffix}", _grid_label)
    steps = st.slider(
        f"Steps{label}",
        1,
        MAX_STEPS,
        int(_held(f"steps{suffix}")),
        key=widget_key(f"steps{suffix}"),
        help=help,
        persist_state=_persist(f"steps{suffix}"),
    )
    return solver, grid, int(steps)


def folded(label: str, icon: str, name: str):
    """A folded panel (``st.expander`` keyed ``widget_key(name)``) that is lazy: the expander, or
    None while it is closed.

    Only an open panel builds and sends its widgets (the first paint draws none of them); their
    settings are ``lazy`` in the schema, so the view state keeps their values while it is closed
    and seeds the widgets again when it opens (``url.seed``).
    """
    panel = st.expander(label, icon=icon, key=widget_key(name), on_change="rerun")
    return panel if panel.open else None


def _held_select_slider(label: str, name: str, choices, cast, format_func, **options) -> None:
    """A select slider of setting ``name`` over ``choices``, plus its held value when a link set
    another (so the slider can show it)."""
    current = cast(_held(name))
    st.select_slider(
        label,
        tuple(sorted({*choices, current})),
        current,
        key=widget_key(name),
        format_func=format_func,
        persist_state=_persist(name),
        **options,
    )


def particle_controls() -> None:
    """How many particles, and the seed of their noise (and of the preset's sample): folded."""
    panel = folded("Particles and seed", ":material/grain:", "particles_panel")
    if panel is None:
        return
    with panel:
        _held_select_slider("Particles", "n", PARTICLE_CHOICES, int, lambda v: f"{v:,}")
        st.number_input(
            "Seed",
            0,
            MAX_SEED,
            int(_held("seed")),
            step=1,
            key=widget_key("seed"),
            help="Same seed, same noise particles and data sample.",
            persist_state=_persist("seed"),
        )


def compare_controls() -> None:
    """Compare mode: a second panel with its own solver, grid and steps, on the same particles (folded)."""
    panel = folded("Compare two samplers", ":material/compare:", "compare_panel")
    if panel is None:
        return
    with panel:
        compare = st.toggle(
            "Compare with a second sampler",
            bool(_held("compare")),
            key=widget_key("compare"),
            persist_state=_persist("compare"),
        )
        if compare:
            solver, _, steps = _solver_grid_steps(" B", "_b")
            st.markdown(nfe_caption(solver, steps), unsafe_allow_html=True)


def training_controls() -> None:
    """How the next model is trained: model, coupling, regression target and learning rate (folded)."""
    panel = folded("Training options", ":material/tune:", "training_options")
    if panel is None:
        return
    with panel:
        _training_options()


def _training_options() -> None:
    """The Training options panel's widgets; a mean flow has its own settings (the rest disabled)."""
    mean_flow = _choice("Model", OBJECTIVES, "objective", OBJECTIVE_LABELS.get) == "meanflow"
    _choice("Coupling", tuple(COUPLINGS), "coupling", lambda c: COUPLING_LABELS.get(c, c), disabled=mean_flow)
    _choice("Target", tuple(TARGETS), "target", lambda t: TARGET_LABELS.get(t, t), disabled=mean_flow)
    _held_select_slider("Learning rate", "lr", LEARNING_RATES, float, lambda v: f"{v:g}", disabled=mean_flow)
    if mean_flow:
        st.caption(
            "A mean flow (MeanFlow, Geng et al. 2025) trains with its own tuned settings: independent "
            f"noise, the batch's posterior velocity as target, learning rate {OBJECTIVE_DEFAULTS['meanflow']['lr']:g}."
        )
    st.caption("Changing data or these settings starts a fresh network.")
    _number("Particles in the live snapshot", "snapshot_n", step=100)


def layer_controls() -> None:
    """What the figure shows: which field and which layers (the toolbar above the figure)."""
    field_col, layer_col = st.columns([1.25, 1], vertical_alignment="center", gap="small")
    with field_col:
        field = st.segmented_control(
            "Field",
            FIELDS,
            default=_held("field"),
            format_func=FIELD_LABELS.get,
            key=widget_key("field"),
            label_visibility="collapsed",
        )
    with layer_col:
        layers = st.pills(
            "Layers",
            tuple(LAYER_LABELS),
            default=st.session_state.get(widget_key("layers"), _DEFAULTS["layers"]),
            format_func=LAYER_LABELS.get,
            selection_mode="multi",
            key=widget_key("layers"),
            label_visibility="collapsed",
        )
    if "density" in (layers or ()) and (field or "exact") != "exact":
        st.toggle(
            "Density of the network (log-likelihood, slower) instead of the exact pₜ",
            bool(_held("model_density")),
            key=widget_key("model_density"),
        )


def follow_controls() -> None:
    """The followed particle's start point (read before the figure, by ``state.from_widgets``).

    Folded: the view state remembers the point while the panel is closed.
    """
    panel = folded("Follow one particle (the ODE view)", ":material/timeline:", "follow_panel")
    if panel is None:
        return
    with panel:
        st.toggle("Show one particle's path", key=widget_key("follow_on"))
        left, right = st.columns(2)
        left.number_input("start x at t=0", -4.0, 4.0, step=0.1, key=widget_key("fx"), format="%.2f")
        right.number_input("start y at t=0", -4.0, 4.0, step=0.1, key=widget_key("fy"), format="%.2f")
        st.caption("Or click any particle in the figure.")
