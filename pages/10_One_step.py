"""Lesson 10 — one step: instantaneous vs average velocity, and why one Euler step gives the data mean."""

import streamlit as st

from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l10_one_step as one_step
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.figures import sampling as figures_sampling
from explorer.lessons.kit import Question
from explorer.lessons.shared import Case
from explorer.playground import cache

MEANFLOW_PANELS = {("mean flow", 1), ("mean flow", 2), ("flow", 1), ("flow", 100)}

one_step_run = st.cache_data(show_spinner="Integrating the exact field…")(one_step.one_step)
euler_cases = st.cache_data(show_spinner=False)(one_step.euler_cases)
few_step_race = st.cache_data(
    show_spinner=f"Training a mean flow and a flow ({one_step.TRAIN_STEPS:,} steps each) on moons…"
)(one_step.few_step_race)

lesson.setup_page("10 · One step")
st.markdown(
    "A flow model samples by following its velocity $v(z, t)$, the **instantaneous** velocity: the tangent of "
    "the path at one time. Few steps are cheap but follow a curved path badly, and one step fails "
    "completely. On the linear path from noise, $z_t = t\\,z_1 + (1-t)\\,z_0$, the field is "
    "$v(z,t) = (\\mathbb E[z_1 \\mid z_t = z] - z)/(1 - t)$. At $t = 0$, $z_t = z_0$ is pure noise, independent "
    "of the data, so $\\mathbb E[z_1 \\mid z_0] = \\mathbb E[z_1]$:"
)
st.latex(
    r"v(z, 0) = \mathbb E[z_1] - z \quad\Longrightarrow\quad z_0 + 1\cdot v(z_0, 0) = \mathbb E[z_1]"
    r"\ \ \text{for every } z_0"
)
st.markdown(
    "The **average** velocity over a step is the chord instead of the tangent (Geng et al. 2025, *Mean Flows "
    "for One-step Generative Modeling*). Along the ODE's path from $z_r$ at time $r$,"
)
st.latex(
    r"u(z_r, r, t) = \frac{1}{t - r}\int_r^t v(z_s, s)\,ds"
    r"\qquad\Longrightarrow\qquad z_t = z_r + (t - r)\,u(z_r, r, t)\ \text{exactly, for any step}"
)
st.markdown(
    "So a network that learns $u$ can jump from noise to data in one step. Below, both are computed for the "
    "Playground's exact field: $v(z_0, 0)$ in closed form, $u(z_0, 0, 1) = z_1 - z_0$ by solving the ODE "
    f"accurately (RK4, {one_step.ORACLE_STEPS} steps = {4 * one_step.ORACLE_STEPS} NFE): the oracle a "
    "one-step model is trained to match."
)

left, right = st.columns([1, 3.2], gap="large")
with left:
    preset = st.selectbox(
        "Data", ["moons", "8gaussians", "circles", "checkerboard", "spirals"], key="l10_data"
    )
    dataset = cache.load_dataset(preset, seed=0)
    step = one_step_run(preset)
    revealed = lesson.predict_then_see(
        Question(
            "Take **one** Euler step (1 NFE) from $t = 0$ to $t = 1$ with the exact field. Where do the "
            f"{one_step.PARTICLES} samples land?",
            (
                "all on one point, the data mean",
                "on the data, a little blurred",
                "where they started: the noise",
            ),
            "all on one point, the data mean",
            f"Every arrow v(z₀, 0) = E[z₁] − z₀ ends on the mean (within {step.euler_spread:.0e}). Energy "
            f"distance to the data: {step.energy_euler:.3f} for one Euler step, {step.energy_ode:.4f} for the "
            "step with u.",
            hints={
                "on the data, a little blurred": "At t = 0 the noise point z₀ tells nothing about which data "
                "point it goes to: what is E[z₁ | z₀]?",
                "where they started: the noise": "The step has size 1 and v(z₀, 0) is not zero: follow one "
                "arrow to its end.",
            },
        ),
        key="l10_step",
        context=preset,
    )
with right:
    lesson.chart(figures_sampling.one_step_figure(step, dataset.shown, revealed), "arrows")

st.subheader("A network of the average velocity: MeanFlow")
st.markdown(
    "The oracle above needed an accurate ODE solve per sample. MeanFlow (Geng et al. 2025) trains a network "
    "$u_\\theta(z, r, t)$ instead, without ever solving the ODE. Differentiate $(t - r)\\,u(z_r, r, t) = "
    "\\int_r^t v\\,ds$ in $r$ along the path: this gives the **MeanFlow identity** (in this app's time, the "
    "state at the start $r$ of the step; the paper runs time the other way, which flips a sign)"
)
st.latex(
    r"u(z_r, r, t) = v(z_r, r) + (t - r)\,\frac{d}{dr}u(z_r, r, t),\qquad"
    r"\frac{d}{dr}u = v \cdot \nabla_z u + \partial_r u"
)
st.markdown(
    "The right-hand side is the regression target (its gradient stopped); $\\frac{d}{dr}u$ is one "
    "Jacobian–vector product (`torch.func.jvp`) along $(v, 1, 0)$, and $v$ is a flow matching target "
    "(here the batch's posterior-weighted velocity, an estimate of the marginal $v$ with far less noise than "
    "$z_1 - z_0$). "
    "At $r = t$ the identity is plain flow matching. Sampling: $z_t = z_r + (t - r)\\,u_\\theta(z_r, r, t)$, "
    "one NFE per step (`fmcore.sample_mean_flow`)."
)
if revealed:
    race = few_step_race()
    chosen = [row for row in race.rows if (row.model, row.steps) in MEANFLOW_PANELS]
    lesson.chart(
        lesson_figures.panels_figure(
            [
                Case(
                    row.title,
                    row.points,
                    f"energy distance to data: {row.energy:.4f}",
                    wrong=row.energy > 20 * race.floor,
                )
                for row in chosen
            ],
            background=cache.load_dataset(one_step.MEANFLOW_PRESET, seed=0).shown,
            columns=len(chosen),
            height=360,
        ),
        "meanflow",
    )
    st.dataframe(
        [
            {
                "model": row.model,
                "sampler": row.sampler,
                "steps": row.steps,
                "NFE": row.nfe,
                "energy distance": f"{row.energy:.4f}",
                "× noise floor": f"{row.energy / race.floor:.1f}",
            }
            for row in race.rows
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"Both models: the same hidden layers and data (2,000 points of moons), {one_step.TRAIN_STEPS:,} training "
        f"steps each with their objective's defaults ({race.train_seconds['mean flow']:.1f} s and "
        f"{race.train_seconds['flow']:.1f} s on this machine: a MeanFlow step costs a JVP more). "
        f"{one_step.PARTICLES} samples from the same noise, compared with fresh data; {one_step.PARTICLES} points "
        f"of the data itself would differ from it by {race.floor:.4f} in root mean square, the noise floor. "
        "The energy distance is an unbiased estimate: when two "
        "distributions agree it can dip just below 0."
    )
else:
    st.caption(
        "The race between a trained mean flow and a trained flow runs once you reveal your prediction above."
    )

with lesson.pitfall(
    "reading a few Euler steps as a few-step model",
    "With $K$ Euler steps the last one, from $t_k = 1 - 1/K$, returns $z + (1 - t_k)\\,v(z, t_k) = "
    "\\mathbb E[z_1 \\mid z_{t_k} = z]$: a **posterior mean**, an average of data points, not a sample. One step "
    "gives one point, two steps the means of blurry clusters. A flow model needs many steps, or a model "
    "of the average velocity. Below, the exact field of the data blurred by the Playground's 0.08 (so the means "
    "are of blurred data), the same noise each time:",
):
    lesson.chart(
        lesson_figures.panels_figure(
            # the one-step panel would answer the prediction above: it waits for the reveal
            euler_cases(preset) if revealed else euler_cases(preset)[1:],
            background=dataset.shown,
            columns=len(one_step.EULER_STEPS),
            height=360,
        ),
        "pitfall",
    )
    if not revealed:
        st.caption("The one-step panel appears once you reveal your prediction above.")


lesson.self_check(SELF_CHECKS["one_step"], key="one_step")

lesson.playground_link(data=preset, solver="euler", steps=1, paths=True)
