"""Lesson 2 — the objective: regress on the conditional velocity, learn the marginal field."""

import streamlit as st

from explorer.figures import theme
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l2_objective as l2
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.kit import Question
from explorer.lessons.shared import Case
from explorer.playground import cache

crossing_paths = st.cache_data(show_spinner=False)(l2.crossing_paths)
posterior = st.cache_data(show_spinner=False)(l2.posterior)
training_race = st.cache_data(show_spinner="Training with both targets…")(l2.training_race)
wrong_target_cases = st.cache_data(show_spinner="Training on wrong targets…")(l2.wrong_target_cases)
memorisation = st.cache_data(show_spinner="Sampling the exact field and a network…")(l2.memorisation)
COLORS = {"conditional": theme.MODEL, "marginal": theme.EXACT}

lesson.setup_page("2 · The objective: conditional and marginal")
st.markdown(
    "Sampling needs the **marginal** field $u_t(z)$: the velocity at $z$ averaged over every way of "
    "getting there. For one data point $z_1$ the path is simple. Pair a noise draw $z_0$ with $z_1$ and "
    "move along $z_t = \\alpha_t z_1 + \\sigma_t z_0$ with the **conditional** velocity (on the linear "
    "path, $\\alpha_t = t$, $\\sigma_t = 1-t$, a straight line at constant speed):"
)
st.latex(
    r"u_t(z_t \mid z_1) = \dot\alpha_t z_1 + \dot\sigma_t z_0 \overset{\text{linear}}{=} z_1 - z_0,"
    r"\qquad u_t(z) = \mathbb E\big[u_t(z_t \mid z_1) \,\big|\, z_t = z\big] = \sum_j w_j(z)\, u_t(z \mid x_j)"
)

preset = st.selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l2_data")
dataset = cache.load_dataset(preset, seed=0)
conditional, marginal = crossing_paths(preset)
revealed = lesson.predict_then_see(
    Question(
        "Left: 60 noise points, each paired with a random data point, move in straight lines, and the "
        "lines cross. Now move the same noise points with the marginal field. Will their paths cross?",
        ("Yes, as often", "Yes, but less often", "No, never"),
        "No, never",
        "The marginal field gives one velocity per (z, t), and for t < 1 it is smooth (Lipschitz), so two "
        "paths cannot meet before t = 1: they bend around each other instead. At t = 1 the field of bare "
        "points is not Lipschitz, and many paths end on the same data point.",
        hints={
            "Yes, as often": "How many velocities does the marginal field have at one (z, t)?",
            "Yes, but less often": "If two paths met, which way would the particle at the meeting point go?",
        },
    ),
    key="cross",
    context=preset,
)
panels = [
    Case(
        "Conditional paths: straight, they cross",
        conditional[-1],
        "what the loss regresses on",
        paths=conditional,
    )
]
if revealed:
    panels.append(
        Case(
            "Marginal field paths: curved, never cross", marginal[-1], "what sampling follows", paths=marginal
        )
    )
lesson.chart(
    lesson_figures.panels_figure(panels, background=dataset.shown, columns=2, height=470), "crossing"
)

st.subheader("The marginal velocity is an average of conditional ones")
left, right = st.columns([1, 2.2], gap="large")
with left:
    st.markdown(
        "Move the point and the time. Each data point $x_j$ pulls $z$ along its straight line; the weight "
        "$w_j(z) \\propto \\mathcal N(z;\\, \\alpha_t x_j, \\sigma_t^2 I)$ says how likely $x_j$ is the "
        "destination. Early on every point has a say and the average points to the middle; near $t=1$ "
        "one point wins."
    )
    zx = st.slider("z, x", -3.0, 3.0, -1.6, 0.1, key="l2_zx")
    zy = st.slider("z, y", -3.0, 3.0, -1.4, 0.1, key="l2_zy")
    t = st.slider("t", 0.0, 0.95, 0.35, 0.05, key="l2_t")
with right:
    post = posterior(preset, (zx, zy), t)
    lesson.chart(lesson_figures.posterior_figure(post, (zx, zy), t), "posterior")

st.subheader("The loss, and why the easy target is enough")
st.latex(
    r"\mathcal L_{\text{CFM}}(\theta) = \mathbb E_{t,\,z_1,\,z_0} \big\| v_\theta(z_t, t) - u_t(z_t \mid z_1) \big\|^2"
    r"= \underbrace{\mathbb E \big\| v_\theta(z_t, t) - u_t(z_t) \big\|^2}_{\mathcal L_{\text{FM}}(\theta)}"
    r"+ \underbrace{\mathbb E \big\| u_t(z_t \mid z_1) - u_t(z_t) \big\|^2}_{\text{floor, free of } \theta}"
)
with st.expander("Derivation, step by step"):
    st.markdown(
        "**1.** Expand both squares. The $\\|v_\\theta\\|^2$ terms agree: $z_t$ has the same distribution in both."
    )
    st.latex(r"\|v - u\|^2 = \|v\|^2 - 2\langle v, u\rangle + \|u\|^2")
    st.markdown(
        "**2.** The cross terms agree too: condition on $z_t$ (tower rule) and use the definition of $u_t(z)$."
    )
    st.latex(
        r"\mathbb E\,\langle v_\theta(z_t,t),\, u_t(z_t\mid z_1)\rangle"
        r"= \mathbb E_{z_t}\big\langle v_\theta(z_t,t),\, \mathbb E[u_t(z_t\mid z_1)\mid z_t]\big\rangle"
        r"= \mathbb E\,\langle v_\theta(z_t,t),\, u_t(z_t)\rangle"
    )
    st.markdown("**3.** What is left differs only in terms without $\\theta$:")
    st.latex(
        r"\mathcal L_{\text{CFM}} - \mathcal L_{\text{FM}} = \mathbb E\|u_t(z_t\mid z_1)\|^2 - \mathbb E\|u_t(z_t)\|^2"
        r"= \mathbb E\,\|u_t(z_t\mid z_1) - u_t(z_t)\|^2 \ \ge 0"
    )
    st.markdown(
        "**4.** So $\\nabla_\\theta \\mathcal L_{\\text{CFM}} = \\nabla_\\theta \\mathcal L_{\\text{FM}}$: same "
        "expected gradients (a batch's estimates differ), same minimiser $v_\\theta = u_t$. But the conditional loss never drops below the floor, "
        "the variance of the target given $z_t$; a loss stuck at the floor is a *trained* model, not a stuck one."
    )

steps = st.select_slider("Training steps (each run)", [200, 400, 800, 1600], value=400, key="l2_train_steps")
race = training_race(preset, steps)
loss_col, error_col = st.columns(2)
with loss_col:
    window = 20
    smoothed = {
        f"{k} target (loss, {window}-step mean)": l2.smoothed_curve(v, window) for k, v in race.loss.items()
    }
    lesson.chart(
        lesson_figures.curves_figure(
            smoothed,
            "step",
            "training loss",
            colors=dict(zip(smoothed, COLORS.values(), strict=True)),
            log_y=True,
            floor=race.floor["conditional"],
        ),
        "loss",
    )
with error_col:
    errors = {f"{k} target": (race.steps, v) for k, v in race.field_error.items()}
    lesson.chart(
        lesson_figures.curves_figure(
            errors,
            "step",
            "field error  E|v_θ − u_t|²  (t ≤ 0.9)",
            colors=dict(zip(errors, COLORS.values(), strict=True)),
            log_y=True,
        ),
        "field_error",
    )
st.markdown(
    f"Both runs chase the same field: after {steps} steps the field error is "
    f"**{race.field_error['conditional'][-1]:.3f}** (conditional target) and **{race.field_error['marginal'][-1]:.3f}** "
    f"(marginal target). The conditional loss flattens at its floor **{race.floor['conditional']:.2f}** while its "
    "field error keeps falling; the marginal target has floor 0 and no target noise, so it gets there in fewer "
    "steps. But every one of its targets averages over all the data points (training took "
    f"{race.seconds['marginal']:.1f} s against {race.seconds['conditional']:.1f} s here, on 500 points): fine for "
    "a toy set, impossible when the data set does not fit into one step."
)

st.subheader("The minimiser memorises; a network does not")
mem = memorisation(preset)
st.markdown(
    "Both losses are minimised by the exact marginal field of the **training set**. On a finite set that "
    "field carries every particle onto one of the training points (its last Euler step returns "
    "$\\mathbb E[z_1\\mid z_t]$, which near $t=1$ is one point): a perfect minimiser only reproduces its data. "
    f"Here, with {len(mem.train)} training points, the share of samples within {mem.eps} of a training point:"
)
# Why networks generalise: see e.g. Kadkhodaie, Guth, Simoncelli, Mallat (ICLR 2024), "Generalization in
# diffusion models arises from geometry-adaptive harmonic representations".
lesson.chart(
    lesson_figures.panels_figure(
        [
            Case("Training set", mem.train, f"{len(mem.train)} points"),
            Case("Exact field's samples", mem.exact, f"{mem.within['exact']:.0%} on a training point", True),
            Case("Network's samples", mem.learned, f"{mem.within['learned']:.0%} on a training point"),
            Case("Fresh data, for scale", mem.fresh, f"{mem.within['fresh']:.0%} on a training point"),
        ],
        columns=4,
        height=330,
    ),
    "memorise",
)
st.markdown(
    f"The network ({mem.train_steps} steps on the same points) lands near a training point "
    + (
        "about as often as fresh data does"
        if abs(mem.within["learned"] - mem.within["fresh"]) < 0.1
        else f"{mem.within['learned']:.0%} of the time against fresh data's {mem.within['fresh']:.0%}"
    )
    + ". It cannot follow the exact field's $1/(1-t)$ stiffness around each point: a small, "
    "smooth network trained briefly by stochastic gradients learns a smoothed field, closer to the blurred "
    "one, and that smoothing is what lets it generalise. Give it many more parameters and steps on few points "
    "and it tends to memorise too."
)

with lesson.pitfall(
    "the wrong target",
    "The velocity of the linear path is $z_1 - z_0 = (z_1 - z_t)/(1-t)$. Drop the $1/(1-t)$ and the "
    "network learns a field that is too slow: particles stop short of the data. Regress on the data point "
    "itself and you get a denoiser, not a velocity; integrate it as a velocity and the samples land in the "
    "wrong place. Same loop, same seed, same solver (RK4, 25 steps):",
):
    lesson.chart(
        lesson_figures.panels_figure(wrong_target_cases(preset), background=dataset.shown, height=400),
        "pitfall",
    )

lesson.self_check(SELF_CHECKS["objective"], key="objective")

lesson.playground_link(data=preset, target="conditional", field="learned")
