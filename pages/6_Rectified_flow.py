"""Lesson 6 — rectified flow: retrain a flow on its own pairs and its paths straighten."""

import streamlit as st

from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l6_rectified_flow as l6
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.kit import Question
from explorer.lessons.l6_rectified_flow import EULER_STEPS
from explorer.lessons.shared import SAMPLES, Case
from explorer.playground import cache

rectify = st.cache_data(show_spinner="Training, then reflowing, on this machine…")(l6.rectify)

lesson.setup_page("6 · Rectified flow")
st.markdown(
    "A trained flow $\\Phi$ carries noise $z_0$ to a sample $\\Phi(z_0)$ along **curved** paths, so few "
    "solver steps cut corners. *Reflow* (Liu et al., 2022) takes the pairs $(z_0, \\Phi(z_0))$ as a fixed "
    "coupling and trains flow matching on them again. Their straight lines cross less than random pairs "
    "(they can still cross, so one round straightens the paths without making them straight), the new flow's "
    "paths are close to straight lines at constant speed, and one Euler step gets much closer. Straightness "
    "measures how far a flow is from that:"
)
st.latex(
    r"\text{pairs: } z_0 \sim \mathcal N(0, I),\ z_1 = \Phi(z_0) \qquad "
    r"\mathcal L = \mathbb E\,\|v_\theta(z_t, t) - (z_1 - z_0)\|^2 \qquad "
    r"S = \int_0^1 \mathbb E\,\big\| (z_1 - z_0) - \tfrac{dz_t}{dt} \big\|^2 dt"
)

left, right = st.columns([1, 3])
preset = left.selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l6_data")
reflow_steps = left.select_slider("Reflow training steps", [250, 500, 1000], value=500, key="l6_reflow_steps")
euler_steps = left.select_slider(
    "Euler steps for the samples", list(EULER_STEPS), value=1, key="l6_euler_steps"
)
result = rectify(preset, reflow_steps=reflow_steps)
dataset = cache.load_dataset(preset, seed=0)
before, after = result.energy[euler_steps]


def measure():
    return (
        "much closer to the data"
        if after < 0.5 * before
        else ("further from the data" if after > 1.5 * before else "about the same"),
        f"With {euler_steps} Euler step(s) = {euler_steps} NFE the energy distance goes from {before:.4f} to "
        f"{after:.4f}; straightness from {result.straightness_before:.3f} to {result.straightness_after:.4f}.",
    )


with left:
    revealed = lesson.predict_then_see(
        Question(
            f"The reflowed model samples with {euler_steps} Euler step(s). Compared with the first model "
            "at the same NFE, its samples are …",
            ("much closer to the data", "about the same", "further from the data"),
            None,
            "",
            hints={
                "further from the data": "Reflow keeps the end points of the pairs; what changes is the path."
            },
        ),
        key="one_step",
        context=(preset, reflow_steps, euler_steps),
        measure=measure,
    )
with right:
    panels = [
        Case(
            "First flow: RK4 paths",
            result.paths_before[-1],
            f"straightness {result.straightness_before:.3f}",
            paths=result.paths_before,
        ),
        Case(
            f"First flow: {euler_steps} Euler step(s)",
            result.euler[euler_steps][0],
            f"energy distance to data {before:.4f}",
            wrong=before > 0.01,
        ),
    ]
    if revealed:
        panels += [
            Case(
                "Reflowed: RK4 paths",
                result.paths_after[-1],
                f"straightness {result.straightness_after:.4f}",
                paths=result.paths_after,
            ),
            Case(
                f"Reflowed: {euler_steps} Euler step(s)",
                result.euler[euler_steps][1],
                f"energy distance to data {after:.4f}",
                wrong=after > 0.01,
            ),
        ]
    lesson.chart(
        lesson_figures.panels_figure(
            panels, background=dataset.shown, columns=2, height=760 if revealed else 400
        ),
        "reflow",
    )

if revealed:
    metric = st.columns(4)
    metric[0].metric("Straightness before", f"{result.straightness_before:.3f}")
    metric[1].metric(
        "after one reflow",
        f"{result.straightness_after:.4f}",
        f"{result.straightness_after - result.straightness_before:+.3f}",
        delta_color="inverse",
    )
    metric[2].metric(f"{euler_steps}-step energy distance before", f"{before:.4f}")
    metric[3].metric("after", f"{after:.4f}", f"{after - before:+.4f}", delta_color="inverse")
st.caption(
    f"Reflow trained {reflow_steps} steps ({result.seconds:.1f} s here) on 2,000 pairs made with RK4, 20 steps, "
    f"warm-started from the first flow. Samples: {SAMPLES} particles, the same noise before and after."
)

with lesson.pitfall(
    "reflow copies its teacher, mistakes included",
    "With pairs made by running the first model forward from noise, reflow learns that model's map, not the "
    "data: it can only be as good as the pairs. Make the pairs "
    "cheaply, with 2 Euler steps instead of RK4 with 20, and the reflowed model learns to produce exactly those "
    "blurred samples, in one straight step (250 reflow steps here).",
):
    cheap = rectify(preset, reflow_steps=250, solver="euler", solver_steps=2)
    lesson.chart(
        lesson_figures.panels_figure(
            [
                Case(
                    "Pairs from RK4, 20 steps: reflowed, 1 step",
                    result.euler[1][1],
                    f"energy distance {result.energy[1][1]:.4f}",
                ),
                Case(
                    "Pairs from Euler, 2 steps: reflowed, 1 step",
                    cheap.euler[1][1],
                    f"energy distance {cheap.energy[1][1]:.4f}",
                    wrong=True,
                ),
                Case(
                    "…which is what its teacher made in 2 steps",
                    result.euler[2][0],
                    f"energy distance {result.energy[2][0]:.4f}",
                    wrong=True,
                ),
            ],
            background=dataset.shown,
            height=400,
        ),
        "pitfall",
    )

st.subheader("Where this leads")
st.markdown(
    "Reflow buys few-step sampling with more training, and every round inherits the last one's errors. The "
    "next ideas attack the same cost from other sides: **distillation** (a student learns to jump several of "
    "the teacher's steps at once), **consistency models** (a network that maps any point of a path straight "
    "to its end), and **minibatch optimal-transport couplings** (pair noise and data well *before* the first "
    "training, so the paths start out straighter: try the OT coupling in the Playground)."
)

lesson.self_check(SELF_CHECKS["reflow_check"], key="reflow_check")

lesson.playground_link(data=preset, coupling="ot", field="learned", solver="euler", steps=2)
