"""Lesson 3 — flow matching vs diffusion: the same data trained both ways, sampled three ways."""

import streamlit as st

from explorer.figures import theme
from explorer.lessons import compute as lesson_compute
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.compute import SAMPLERS, Panel
from explorer.lessons.kit import Question
from explorer.playground import cache

fm_vs_diffusion = st.cache_data(show_spinner="Training both models on this machine…")(
    lesson_compute.fm_vs_diffusion
)
parametrisation_pitfall = st.cache_data(show_spinner=False)(lesson_compute.parametrisation_pitfall)
COLORS = dict(zip(SAMPLERS.values(), (theme.ERROR, theme.NOISE, theme.EXACT, theme.MODEL), strict=True))
SHORT = {
    "sde": "VP noise model: reverse SDE",
    "pf_ode": "VP noise model: PF-ODE",
    "vp_ode": "VP velocity model: ODE",
    "fm_ode": "Linear velocity model: ODE",
}
MODEL = {"sde": "diffusion", "pf_ode": "diffusion", "vp_ode": "vp velocity", "fm_ode": "flow matching"}
GOOD = 0.006

lesson.setup_page("3 · Flow matching vs diffusion")
st.markdown(
    "A diffusion model and a flow model learn the same kind of thing from the same kind of regression. "
    "Diffusion (here the VP schedule, in this app's time: $t=0$ noise, $t=1$ data) trains a network "
    "$\\varepsilon_\\theta$ to predict the noise in $z_t$, which is the **score** up to a scale: "
    "*denoising score matching*. Flow matching trains $v_\\theta$ to predict the velocity: "
    "*vector-field regression*. Both targets are conditional, and on one path they convert into each other."
)
# The noise loss is DSM weighted by sigma_t^2: with s_theta = -eps_theta / sigma_t and the conditional
# score -z_0 / sigma_t (Song et al. 2021, arXiv 2011.13456, eq. 7; Kingma & Gao 2023, arXiv 2303.00848).
st.latex(
    r"\mathbb E\,\|\varepsilon_\theta(z_t, t) - z_0\|^2 = \mathbb E\,\sigma_t^2\,\big\|s_\theta(z_t, t) - \nabla\log p_t(z_t\mid z_1)\big\|^2,\quad "
    r"s_\theta = -\frac{\varepsilon_\theta}{\sigma_t}"
    r"\qquad\qquad \mathcal L_{\text{FM}} = \mathbb E\,\|v_\theta(z_t, t) - (\dot\alpha_t z_1 + \dot\sigma_t z_0)\|^2"
)
st.markdown(
    "Diffusion can sample two ways: the **reverse SDE** (drift plus fresh noise at every step) or the "
    "**probability-flow ODE**, which has the same marginals $p_t$ with no noise, and which is exactly the "
    "velocity of the path. Flow matching samples with its ODE. With $\\beta_t$ the VP noise rate:"
)
st.latex(
    r"dz = \big[\tfrac12\beta_t z + \beta_t \nabla\log p_t(z)\big]dt + \sqrt{\beta_t}\,dW_t"
    r"\qquad dz = \big[\tfrac12\beta_t z + \tfrac12\beta_t \nabla\log p_t(z)\big]dt"
    r"\qquad dz = v_\theta(z, t)\,dt"
)

st.markdown(
    '"Diffusion against flow matching" changes four things at once: the schedule (VP against linear), '
    "what the network predicts (noise against velocity), the loss weighting over noise levels that comes "
    "with it, and the sampler. Below, each neighbouring pair of panels changes **one** of them: the sampler "
    "(SDE → PF-ODE, same noise model), the parametrisation and weighting (noise → velocity, same VP path, "
    "same ODE), then the schedule (VP → linear, both velocity models)."
)
left, right = st.columns([1, 3])
preset = left.selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l3_data")
train_steps = left.select_slider(
    "Training steps (each model)", [300, 600, 1200], value=600, key="l3_train_steps"
)
result = fm_vs_diffusion(preset, train_steps)
dataset = cache.load_dataset(preset, seed=0)
with right:
    lesson.chart(
        lesson_figures.panels_figure(
            [
                Panel(SHORT[key], paths[-1][:20], "20 paths, 100 steps = 100 NFE", paths=paths[:, :20])
                for key, paths in result.paths.items()
            ],
            background=dataset.shown,
            columns=4,
            height=330,
        ),
        "paths",
    )


def fewest(sampler: str) -> int | None:
    return next((k for k, e in zip(result.steps, result.energy[sampler], strict=True) if e <= GOOD), None)


AT = 10  # steps at which the prediction is checked


def measure():
    at = {key: float(result.energy[key][result.steps.index(AT)]) for key in SAMPLERS}
    worst = max(at, key=at.get)
    need = ", ".join(f"{SHORT[key].lower()} {fewest(key) or f'> {result.steps[-1]}'}" for key in SAMPLERS)
    return SAMPLERS[worst], (
        f"At {AT} steps the energy distances are "
        + ", ".join(f"{SHORT[key].lower()} {value:.4f}" for key, value in at.items())
        + f". Steps needed to get within {GOOD}: {need}. Read the curves in pairs, one change at a time: "
        "SDE vs PF-ODE is the sampler only; PF-ODE vs VP velocity is the parametrisation (and with it the "
        "loss weighting); VP velocity vs linear is the schedule only."
    )


revealed = lesson.predict_then_see(
    Question(
        f"All four samplers get {AT} steps = {AT} NFE (one network call each). Whose samples end up "
        "**furthest from the data**?",
        tuple(SAMPLERS.values()),
        None,
        "",
    ),
    key="l3_steps",
    context=(preset, train_steps),
    measure=measure,
)
if revealed:  # the curves and the table answer the question: shown only after the reveal
    lesson.chart(
        lesson_figures.curves_figure(
            {SAMPLERS[k]: (result.steps, e) for k, e in result.energy.items()},
            "steps (= NFE)",
            "energy distance to data",
            COLORS,
            log_y=True,
            log_x=True,
            markers=True,
            floor=GOOD,
            floor_label="good enough:",
        ),
        "energy",
    )

    st.subheader("Your run, in numbers")
    rows = [
        {
            "sampler": SAMPLERS[key],
            "training s": f"{result.train_seconds[MODEL[key]]:.2f}",
            **{f"{k} steps": f"{e:.4f}" for k, e in zip(result.steps, result.energy[key], strict=True)},
            f"steps to ≤ {GOOD}": str(fewest(key) or f"> {result.steps[-1]}"),
        }
        for key in SAMPLERS
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(
        f"Energy distance of {lesson_compute.SAMPLES} samples to fresh data; two data samples differ by about "
        f"{max(abs(result.floor), 0.001):.3f}. Each model trained {result.train_steps} steps (same network, "
        "batch, seed); every sampler makes one network evaluation per step, so steps = NFE. Measured here."
    )

with lesson.pitfall(
    "mixing up what the network predicts",
    "A diffusion network predicts noise, not velocity. Hand $\\varepsilon_\\theta$ to an ODE solver as if it "
    "were $v_\\theta$ and the particles are pushed *along the noise* instead of towards the data. Convert "
    "first: $\\hat z_0 = \\varepsilon_\\theta$, $\\hat z_1 = (z - \\sigma_t \\hat z_0)/\\alpha_t$, "
    "$v = \\dot\\alpha_t \\hat z_1 + \\dot\\sigma_t \\hat z_0$ (`fmcore.convert`). Euler, 100 steps each:",
):
    lesson.chart(
        lesson_figures.panels_figure(
            parametrisation_pitfall(preset, train_steps), background=dataset.shown, height=400
        ),
        "pitfall",
    )

lesson.self_check(SELF_CHECKS["diffusion"], key="diffusion")

lesson.playground_link(data=preset, schedule="vp", solver="euler", steps=20, field="learned")
