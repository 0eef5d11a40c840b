"""Lesson 1 — the ODE view: particles flow from noise (t=0) to data (t=1) along dz/dt = v(z, t)."""

import streamlit as st

from explorer import figures
from explorer.core import flows
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l1_ode_view as l1
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.kit import Question
from explorer.playground import cache

SOLVER, STEPS, PARTICLES = "euler", 100, 400
time_direction_cases = st.cache_data(show_spinner="Integrating both ways…")(l1.time_direction_cases)

lesson.setup_page("1 · The ODE view")
st.markdown(
    "A flow model generates a sample by **moving a point**. Draw a point from the noise "
    "distribution at time $t=0$, then let a velocity field $v(z, t)$ carry it until $t=1$: "
    "where it arrives is the sample. Every particle obeys the same ordinary differential equation:"
)
st.latex(
    r"\frac{dz_t}{dt} = v(z_t, t), \qquad z_0 \sim \mathcal N(0, I) \;\xrightarrow{\;t:\,0\,\to\,1\;}\; z_1 \sim p_{\text{data}}"
)
st.markdown(
    "Training (lesson 2) learns $v$. Here we use the **exact** field instead: for the linear path "
    "$z_t = t\\,z_1 + (1-t)\\,z_0$ towards a finite data set it is known in closed form, the average "
    "direction to the data points weighted by how likely each one is to have produced $z$:"
)
st.latex(
    r"v(z, t) = \frac{\mathbb E[z_1 \mid z_t = z] - z}{1 - t}, \qquad z_{k+1} = z_k + h\, v(z_k, t_k)\ \text{(one Euler step)}"
)

# At t = 0, z_0 is independent of z_1, so E[z_1 | z_0 = z] = E[z_1] (pinned in tests/test_pages.py; other
# schedules with alpha_0 = 0 give v(z, 0) = d_alpha(0) E[z_1] + d_sigma(0) z / sigma(0) instead).
st.markdown(
    "One fact turns a guess into a prediction. At $t=0$ the noise tells nothing about the data point it will "
    "become, so $\\mathbb E[z_1\\mid z_0 = z] = \\mathbb E[z_1]$ and **every arrow points at the data mean**: "
    "$v(z, 0) = \\mathbb E[z_1] - z$. As $t$ grows the posterior narrows, and the arrows turn towards the part "
    "of the data nearest to the particle."
)
left, right = st.columns([1, 2.2], gap="large")
with left:
    preset = st.selectbox(
        "Data", ["moons", "8gaussians", "circles", "checkerboard", "spirals"], key="l1_data"
    )
    x0 = st.slider("Start point x", -3.0, 3.0, 1.5, 0.1, key="l1_x0")
    y0 = st.slider("Start point y", -3.0, 3.0, -1.2, 0.1, key="l1_y0")
    dataset = cache.load_dataset(preset, seed=0)
    source = flows.exact_source(dataset, "linear")
    flow = cache.flow(source, PARTICLES, 0, SOLVER, STEPS, "uniform")
    path = cache.single_path(source, (x0, y0), SOLVER, STEPS, "uniform")
    end = path.nodes[-1]
    lands = ("upper" if end[1] >= 0 else "lower") + " " + ("right" if end[0] >= 0 else "left")
    revealed = lesson.predict_then_see(
        Question(
            "The star marks where your particle starts at $t=0$. In which quadrant is it at $t=1$?",
            ("upper left", "upper right", "lower left", "lower right"),
            lands,
            f"It ends at ({end[0]:.2f}, {end[1]:.2f}), on the data. Press ▶ to watch it ride the field.",
            hints={
                q: "At t = 0 it heads for the data mean; then the arrows turn it towards the data nearest to it."
                for q in ("upper left", "upper right", "lower left", "lower right")
                if q != lands
            },
        ),
        key="land",
        context=(preset, x0, y0),
    )
    st.markdown(
        f"<div class='fm-nfe'>{flow.steps} <b>steps</b> of {SOLVER.title()} = <b>{flow.nfe} NFE</b> "
        "(velocity evaluations) per particle</div>",
        unsafe_allow_html=True,
    )
    st.caption(
        f"The field is exact for the {len(dataset.shown)} data points, each blurred by a Gaussian of width "
        f"{flows.EXACT_BANDWIDTH}, so that it stays finite at t = 1 (lesson 4 shows what happens without)."
    )
with right:
    field = cache.field_frames(source)
    if revealed:
        panel = figures.Panel(flow, dataset.shown, field=field, single=path, title=figures.panel_title(flow))
        fig = figures.flow_figure([panel], height=600)
    else:
        fig = lesson_figures.question_figure(dataset.shown, field[0], (x0, y0), height=600)
    lesson.chart(fig, "flow")

with lesson.pitfall(
    "running time the wrong way",
    "Sampling integrates **forward**, from noise at $t=0$ to data at $t=1$. Integrating **backward** is "
    "useful too: it maps data to the noise that generates it (an encoding; run it forward again and "
    "you are back where you started). But start backward from noise, or feed the field a reversed "
    "time $v(z, 1-t)$, and you get nonsense: below, every panel ran 100 Euler steps of the same field.",
):
    cases = time_direction_cases(preset)
    lesson.chart(lesson_figures.panels_figure(cases, background=dataset.shown), "pitfall")

lesson.self_check(SELF_CHECKS["ode"], key="ode")

lesson.playground_link(data=preset, solver=SOLVER, steps=STEPS, paths=True)
