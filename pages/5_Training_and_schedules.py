"""Lesson 5 — training and schedules: one step of the algorithm, and what the schedule changes."""

import streamlit as st

import fmcore
from explorer import figures
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l5_schedules as l5
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.figures import TRAINING_STAGES
from explorer.lessons.kit import Question
from explorer.lessons.shared import Case
from explorer.playground import cache

one_batch = st.cache_data(show_spinner="Training a small network for the demo…")(l5.one_batch)
schedule_facts = st.cache_data(show_spinner="Solving the exact field on every schedule…")(l5.schedule_facts)
schedule_pitfall = st.cache_data(show_spinner="Training two more networks…")(l5.schedule_pitfall)
LABELS = {name: s.label for name, s in fmcore.SCHEDULES.items()}
CODE = (
    "z1 = data[torch.randint(m, (B,))]",
    "z0 = torch.randn(B, 2)",
    "t = torch.rand(B)",
    "z_t = alpha(t) * z1 + sigma(t) * z0",
    "u_t = d_alpha(t) * z1 + d_sigma(t) * z0",
    "error = model(z_t, t) - u_t\nloss = error.square().sum(1).mean()\nloss.backward()\noptimizer.step()",
)
MATH = (
    r"z_1 \sim p_{\text{data}}",
    r"z_0 \sim \mathcal N(0, I)",
    r"t \sim \mathcal U[0, 1]",
    r"z_t = \alpha_t z_1 + \sigma_t z_0",
    r"u_t = \dot\alpha_t z_1 + \dot\sigma_t z_0",
    r"\mathcal L = \tfrac1B \textstyle\sum_i \| v_\theta(z_t^i, t_i) - u_t^i \|^2",
)

lesson.setup_page("5 · Training and schedules")
st.markdown(
    "Training is a regression repeated thousands of times. Step through one step of it on a batch of 12 "
    "points (linear schedule); a real step does the same with 256 points, then updates the weights."
)
preset = st.selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l5_data")
dataset = cache.load_dataset(preset, seed=0)
batch = one_batch(preset)


def next_stage():
    current = TRAINING_STAGES.index(st.session_state.l5_stage)
    st.session_state.l5_stage = TRAINING_STAGES[(current + 1) % len(TRAINING_STAGES)]


left, right = st.columns([1, 1.6], gap="large")
with left:
    stage_name = st.radio("Stage", TRAINING_STAGES, key="l5_stage", horizontal=True)
    stage = TRAINING_STAGES.index(stage_name)
    st.button("Next stage ▶", on_click=next_stage, key="l5_next_stage", type="primary")
    st.latex(MATH[stage])
    st.code(CODE[stage], language="python")
    if stage == 5:
        st.markdown(
            f"This network has trained {batch.trained_steps} steps: its arrows (violet) are close to the "
            "targets (teal) on average, but never equal: each target is one random draw, the network "
            "learns their average. That gap is the loss floor of lesson 2."
        )
with right:
    lesson.chart(lesson_figures.training_step_figure(batch, stage, dataset.shown), "step")

lesson.write_it_yourself(key="l5_target")

st.subheader("Schedules: the same idea, different paths")
# Log-SNRs checked in tests/test_pages.py against fmcore.SCHEDULES: t^2 is above VP for t >= 0.2.
st.markdown(
    "The schedule $(\\alpha_t, \\sigma_t)$ decides how noise turns into data. **Linear** $\\alpha_t = t$, "
    "$\\sigma_t = 1-t$ moves at constant speed. **Cosine** $\\alpha_t = \\sin(\\pi t/2)$, $\\sigma_t = \\cos(\\pi t/2)$ "
    "keeps $\\alpha_t^2 + \\sigma_t^2 = 1$: variance preserving, a diffusion schedule too. **VP** is the "
    "linear-$\\beta$ member of that family: $\\alpha_t = \\exp\\big(-\\tfrac12\\int_0^{1-t}\\beta(s)\\,ds\\big)$ with "
    "$\\beta$ linear from 0.1 to 20, $\\sigma_t = \\sqrt{1-\\alpha_t^2}$; its $\\alpha_0 = e^{-5.025} \\approx 0.0066$, so "
    "it never starts from pure noise. **Polynomial** $\\alpha_t = t^2$, $\\sigma_t = 1 - t^2$. Measured by the "
    "log-SNR $\\log(\\alpha_t/\\sigma_t)$, VP lingers near noise longest: at $t = 0.5$ it is −1.23, against "
    "−1.10 for $t^2$ and 0 for linear and cosine."
)
curves = l5.schedule_curves()
for column, (name, (ts, alpha, sigma)) in zip(st.columns(len(curves)), curves.items(), strict=True):
    column.markdown(f"**{LABELS[name]}**")
    lesson.chart(figures.schedule_figure(ts, alpha, sigma, height=170), f"schedule_{name}", column)
paths = l5.schedule_paths(preset)
lesson.chart(
    lesson_figures.panels_figure(
        [Case(LABELS[n], p[-1], "the same 30 noise-data pairs", paths=p) for n, p in paths.items()],
        background=dataset.shown,
        columns=4,
        height=360,
    ),
    "paths",
)
facts = schedule_facts(preset)
revealed = lesson.predict_then_see(
    Question(
        "Take the exact field of this data on each schedule and solve it accurately from the same noise. "
        "Where do the particles end up?",
        (
            "on the same points for every schedule",
            "the same distribution, but different points",
            "different distributions",
        ),
        "on the same points for every schedule",
        "Mean distance to the linear path's end points: "
        + ", ".join(f"{LABELS[n]} {g:.1g}" for n, g in facts.endpoint_gap.items() if n != "linear")
        + ". Paths with the same end points are one path re-timed and rescaled (fmcore.change_schedule); "
        "VP's small gap is its α₀ ≈ 0.0066.",
        hints={
            "the same distribution, but different points": "Equal log-SNR maps one path onto the other, point by point.",
            "different distributions": "Every schedule goes from N(0, I) to the same data.",
        },
    ),
    key="endpoints",
    context=preset,
)
if revealed:
    panels = [
        Case(LABELS[n], end, f"mean distance to linear's: {facts.endpoint_gap[n]:.1g}")
        for n, end in facts.ends.items()
    ]
    lesson.chart(
        lesson_figures.panels_figure(panels, background=dataset.shown, columns=4, height=330), "endpoints"
    )
    st.dataframe(
        [
            {
                "schedule": LABELS[name],
                "end points vs linear (mean distance)": f"{facts.endpoint_gap[name]:.1g}",
                f"Euler, {l5.EULER_CHECK} steps: endpoint error": f"{facts.euler_error[name]:.3f}",
            }
            for name in fmcore.SCHEDULES
        ],
        hide_index=True,
        width="stretch",
    )
# Lipman et al. 2022 (arXiv 2210.02747), sec. 6: the linear (OT) path trains faster than diffusion paths;
# Kingma & Gao 2023 (arXiv 2303.00848): every schedule's loss is a weighting over log-SNR.
st.markdown(
    "So the schedule does not change *what* the exact field computes; it changes two other things. How hard "
    "the ODE is to solve (the Euler column after the reveal), and the **loss weighting over noise levels**: "
    "with $t \\sim \\mathcal U[0, 1]$, training visits each log-SNR as often as the curves below say (Kingma & "
    "Gao 2023 write every diffusion loss as such a weighting). Lipman et al. (2022) found the linear path "
    "trains faster than diffusion paths on images; on a 2-D toy one short training run cannot tell them apart reliably."
)
lesson.chart(
    lesson_figures.curves_figure(
        {LABELS[n]: (facts.log_snr, d) for n, d in facts.density.items()},
        "log-SNR  λ = log(α/σ)",
        "how often training sees it",
    ),
    "log_snr",
)

with lesson.pitfall(
    "ignoring the schedule",
    "A velocity model's ODE $dz/dt = v(z, t)$ never mentions $\\alpha$ or $\\sigma$, so with a Runge-Kutta "
    "solver on a uniform grid its final samples survive a wrongly named schedule (DPM-Solver++ and the "
    "log-SNR grids read the schedule, and do not). Everything else does not. Convert a network's output (noise, data or "
    "score prediction) with the wrong $\\alpha_t, \\sigma_t$ and the velocity is wrong (top left). Use a cosine "
    "model as a linear-path field and its particles at $t=0.5$ are not where the linear path puts them "
    "(bottom left). `fmcore.change_schedule` maps time and rescales, so the same network is right on the "
    "other path, without retraining:",
):
    lesson.chart(
        lesson_figures.panels_figure(schedule_pitfall(preset), background=dataset.shown, height=720),
        "pitfall",
    )

lesson.self_check(SELF_CHECKS["training"], key="training")

lesson.playground_link(data=preset, schedule="cosine", field="learned")
