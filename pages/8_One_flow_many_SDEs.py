"""Lesson 8 — one flow, many SDEs: a family of stochastic samplers shares the flow's marginals p_t."""

import streamlit as st

from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l8_sdes as sdes
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.figures import sampling as figures_sampling
from explorer.lessons.kit import Question
from explorer.playground import cache

sde_family = st.cache_data(show_spinner="Sampling the flow at four noise levels…")(sdes.sde_family)
no_score_cases = st.cache_data(show_spinner=False)(sdes.no_score_cases)

lesson.setup_page("8 · One flow, many SDEs")
st.markdown(
    "Lesson 3 set diffusion (an SDE) against flow matching (an ODE). That contrast is only half true. "
    "Take any flow $v(z, t)$ that carries $p_0 = \\mathcal N(0, I)$ to the data, and any noise level "
    "$g_t \\ge 0$. Then the SDE below has **the same marginals** $p_t$ as the ODE $dz = v\\,dt$, at "
    "every $t$. Its two best-known members are the reverse-time SDE (Anderson 1982), which Song et al. 2021 "
    "(*Score-Based Generative Modeling through SDEs*) sample with, and the probability-flow ODE they derived; "
    "any $g_t$ works (Albergo, Boffi & Vanden-Eijnden 2023; the *Flow Matching Guide and Code*, Lipman et al. 2024):"
)
st.latex(
    r"dz = \Big[v(z, t) + \frac{g_t^2}{2}\,\nabla \log p_t(z)\Big]dt + g_t\, dW_t,"
    r"\qquad g_t = \text{noise}\cdot\sqrt{\beta_t},\quad \beta_t = 2\sigma_t^2\,\frac{d}{dt}\log\frac{\alpha_t}{\sigma_t}"
)
st.markdown(
    "Why: the noise $g_t\\,dW$ adds $+\\tfrac{g_t^2}{2}\\Delta p_t$ to the Fokker–Planck equation; the extra drift "
    "$\\tfrac{g_t^2}{2}\\nabla\\log p_t$ adds $-\\nabla\\cdot(\\tfrac{g_t^2}{2} p_t \\nabla \\log p_t) = "
    "-\\tfrac{g_t^2}{2}\\Delta p_t$. They cancel, and what is left is the continuity equation of $v$. "
    "The **score** needs no second network: it comes from the velocity (`fmcore.convert`). On the linear "
    "path $z_t = t\\,z_1 + (1-t)\\,z_0$, $v$ gives $\\mathbb E[z_0 \\mid z_t = z] = z - t\\,v$, and Tweedie's formula "
    "$\\nabla\\log p_t = -\\mathbb E[z_0\\mid z_t]/\\sigma_t$ gives"
)
st.latex(
    r"\nabla \log p_t(z) = \frac{t\,v(z,t) - z}{1 - t},\qquad \beta_t = \frac{2(1-t)}{t}\ \text{(linear path)}"
)
st.markdown(
    "Noise 0 is the ODE. Noise 1 ($g_t^2 = \\beta_t$) is **reverse diffusion**: the reverse-time SDE of the "
    "forward noising process whose marginals are this path's Gaussians (on the VP schedule, the SDE that DDPM's ancestral sampler discretises). "
    "Every panel below samples the Playground's exact field of the same data from the same noise, with "
    "Euler–Maruyama (`fmcore.sample_sde`, the score's pull and the noise taken exactly over each step): "
    "one velocity evaluation per step, fresh noise at every step but the last."
)

left, right = st.columns([1, 3.2], gap="large")
with left:
    preset = st.selectbox("Data", ["8gaussians", "moons", "circles", "checkerboard"], key="l8_data")
    dataset = cache.load_dataset(preset, seed=0)
    family = sde_family(preset)
    revealed = lesson.predict_then_see(
        Question(
            "The paths on the right get rougher with the noise. At $t = 1$, the clouds of samples …",
            (
                "are the same at every noise level",
                "blur more as the noise grows",
                "get sharper as the noise grows",
            ),
            "are the same at every noise level",
            f"Every member shares p_t. Each cloud's energy distance to the ODE's cloud stays within "
            f"{family.excess_end:.1f}× the noise floor ({family.floor_end:.4f}); the small excess is chance "
            "and Euler–Maruyama's error at 100 steps.",
            hints={
                "blur more as the noise grows": "The drift gains (g²/2)·score, which pulls towards high "
                "density exactly as hard as the noise spreads.",
                "get sharper as the noise grows": "No member is better at the end: all of them sample "
                "the same p₁ (up to the solver's error).",
            },
        ),
        key="l8_cloud",
        context=preset,
    )
    st.markdown(
        f"<div class='fm-nfe'>{sdes.STEPS} <b>steps</b> of Euler–Maruyama = <b>{family.runs[0].nfe} NFE</b> "
        "per particle, at every noise level</div>",
        unsafe_allow_html=True,
    )
with right:
    lesson.chart(
        figures_sampling.sde_family_figure(family, dataset.shown, revealed),
        "family",
    )

if revealed:
    st.dataframe(
        [
            {
                "sampler": figures_sampling.level_title(run.noise),
                "steps": run.steps,
                "NFE": run.nfe,
                "path roughness Σ|Δz|²": f"{run.roughness:.2f}",
                "energy distance at t = 0.5": f"{run.distance_half:.4f}",
                "energy distance at t = 1": f"{run.distance_end:.4f}",
            }
            for run in family.runs
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"Each cloud: {sdes.PARTICLES} particles, compared with the ODE's cloud from the same noise. Two "
        f"independent clouds of the same pₜ differ by {family.floor_half:.4f} (t = 0.5) and "
        f"{family.floor_end:.4f} (t = 1) in root mean square: the noise floor of this measurement. Roughness is the mean over "
        "particles of the sum of squared steps; it grows like the Brownian increments' Σ g_t² h (for small "
        "steps: the first step from pure noise draws the noise afresh)."
    )

with lesson.pitfall(
    "adding noise without the score term",
    "Noise alone spreads the particles; the score drift $\\tfrac{g_t^2}{2}\\nabla\\log p_t$ is what pulls them "
    "back. Drop it (drift $v$ only, plus $g_t\\,dW$) and the SDE no longer shares $p_t$: the cloud comes out "
    "blurred. Same field, same noise, same 100 steps each (energy distance to the ODE's cloud under each title):",
):
    lesson.chart(
        lesson_figures.panels_figure(
            # the right SDE's panel would answer the prediction above: it waits for the reveal
            no_score_cases(preset) if revealed else no_score_cases(preset)[::2],
            background=dataset.shown,
            columns=3,
            height=380,
        ),
        "pitfall",
    )
    if not revealed:
        st.caption("The right SDE’s panel appears once you reveal your prediction above.")


lesson.self_check(SELF_CHECKS["sdes"], key="sdes")

lesson.playground_link(data=preset, solver="euler", steps=sdes.STEPS)
