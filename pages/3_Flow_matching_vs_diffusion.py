"""Lesson 3 — flow matching vs diffusion: three models, each sampled by the reverse SDE and by the ODE."""

import streamlit as st

from explorer.figures import theme
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l3_fm_vs_diffusion as l3
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.kit import Question
from explorer.lessons.l3_fm_vs_diffusion import SAMPLERS
from explorer.lessons.shared import SAMPLES, Case
from explorer.playground import cache

fm_vs_diffusion = st.cache_data(show_spinner="Training both models on this machine…")(l3.fm_vs_diffusion)
parametrisation_pitfall = st.cache_data(show_spinner=False)(l3.parametrisation_pitfall)
COLORS = dict(
    zip(
        SAMPLERS.values(),
        (theme.ERROR, theme.DATA, theme.NOISE, theme.HIGHLIGHT, theme.EXACT, theme.MODEL),
        strict=True,
    )
)
SHORT = {
    "sde": "VP noise model: reverse SDE",
    "vp_sde": "VP velocity model: reverse SDE",
    "fm_sde": "Linear velocity model: reverse SDE",
    "pf_ode": "VP noise model: PF-ODE",
    "vp_ode": "VP velocity model: ODE",
    "fm_ode": "Linear velocity model: ODE",
}
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
    "**One family of samplers, for every model.** Whatever the network predicts, a path with marginals "
    "$p_t$ has a whole family of SDEs that share those marginals: for any diffusion level $g_t \\ge 0$, the "
    "noise spreads the density by $\\tfrac{g_t^2}{2}\\Delta p_t$ and the extra drift along the score moves it "
    "back by as much (the Fokker–Planck equation). With $v$ the velocity of the path and "
    "$\\beta_t = 2\\sigma_t^2\\,\\tfrac{d}{dt}\\log(\\alpha_t/\\sigma_t)$:"
)
st.latex(
    r"dz = \Big[v(z, t) + \frac{g_t^2}{2}\nabla\log p_t(z)\Big]dt + g_t\,dW_t,"
    r"\qquad g_t = \text{noise}\cdot\sqrt{\beta_t}"
)
st.markdown(
    "Noise 0 is the ODE $dz = v\\,dt$ (for a diffusion model it is called the **probability-flow ODE**); "
    "noise 1 is the schedule's **reverse diffusion SDE**, on VP the familiar one: "
    "$dz = [\\tfrac12\\beta_t z + \\beta_t\\nabla\\log p_t(z)]dt + \\sqrt{\\beta_t}\\,dW_t$, because there "
    "$v = \\tfrac12\\beta_t z + \\tfrac12\\beta_t\\nabla\\log p_t$. Reverse diffusion is one member of the family, "
    "not a kind of model: the score follows from whatever the network predicts (`fmcore.convert`), so a "
    "diffusion model can be sampled by its ODE and a flow matching model by the reverse SDE, or by any "
    "member in between. `fmcore.sample_sde(velocity, z0, schedule, noise=…)` is that family, by "
    "Euler–Maruyama; noise 0 is Euler on the ODE, bit for bit."
)

st.markdown(
    '"Diffusion against flow matching" usually changes four things at once: the schedule (VP against linear), '
    "what the network predicts (noise against velocity), the loss weighting over noise levels that comes "
    "with it, and the sampler. Below, three models (same data, network, batch and seed) are each sampled by "
    "the **same code**, `fmcore.sample_sde`, at noise 1 (top row) and noise 0 (bottom row). Down a column only "
    "the sampler changes; along a row, first the parametrisation and its weighting (noise → velocity, same "
    "VP path), then the schedule (VP → linear, both velocity models)."
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
                Case(SHORT[key], paths[-1][:20], "20 paths, 100 steps = 100 NFE", paths=paths[:, :20])
                for key, paths in result.paths.items()
            ],
            background=dataset.shown,
            columns=3,
            height=640,
        ),
        "paths",
    )


AT = 10  # steps at which the prediction is checked


def measure():
    at = {key: float(result.energy[key][result.steps.index(AT)]) for key in SAMPLERS}
    worst = max(at, key=at.get)
    need = ", ".join(
        f"{SHORT[key].lower()} {result.fewest_steps(key, GOOD) or f'> {result.steps[-1]}'}"
        for key in SAMPLERS
    )
    return SAMPLERS[worst], (
        f"At {AT} steps the energy distances are "
        + ", ".join(f"{SHORT[key].lower()} {value:.4f}" for key, value in at.items())
        + f". Steps needed to get within {GOOD}: {need}. Read the curves in pairs, one change at a time: "
        "each model's reverse SDE against its ODE is the sampler only; the noise model against the VP velocity "
        "model is the parametrisation (and with it the loss weighting); VP velocity against linear is the "
        "schedule only."
    )


revealed = lesson.predict_then_see(
    Question(
        f"All six samplers get {AT} steps = {AT} NFE (one network call each). Whose samples end up "
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
    st.dataframe(result.table(GOOD), hide_index=True, width="stretch")
    st.caption(
        f"Energy distance of {SAMPLES} samples to fresh data; {SAMPLES} points of the data itself would "
        f"differ from it by {result.floor:.4f} in root mean square (the noise floor). Each model trained {result.train_steps} steps (same network, "
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
