"""Lesson 5 — training and schedules: one step of the algorithm, and what the schedule changes."""

import streamlit as st

import fmcore
from explorer import compute, figures
from explorer.figures import theme
from explorer.lessons import compute as lesson_compute
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons.compute import Panel
from explorer.lessons.figures import TRAINING_STAGES
from explorer.lessons.kit import Question

one_batch = st.cache_data(show_spinner="Training a small network for the demo…")(lesson_compute.one_batch)
schedule_race = st.cache_data(show_spinner="Training on every schedule (a few seconds)…")(
    lesson_compute.schedule_race
)
schedule_pitfall = st.cache_data(show_spinner="Training two more networks…")(lesson_compute.schedule_pitfall)
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
dataset = compute.load_dataset(preset, seed=0)
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

st.subheader("Schedules: the same idea, different paths")
st.markdown(
    "The schedule $(\\alpha_t, \\sigma_t)$ decides how noise turns into data. Linear moves at constant "
    "speed; cosine keeps $\\alpha_t^2 + \\sigma_t^2 = 1$ (variance preserving); VP is the diffusion "
    "schedule, which lingers near noise and rushes at the end; the polynomial one lingers longer still."
)
curves = lesson_compute.schedule_curves()
for column, (name, (ts, alpha, sigma)) in zip(st.columns(len(curves)), curves.items(), strict=True):
    column.markdown(f"**{LABELS[name]}**")
    lesson.chart(figures.schedule_figure(ts, alpha, sigma, height=170), f"schedule_{name}", column)
paths = lesson_compute.schedule_paths(preset)
lesson.chart(
    lesson_figures.panels_figure(
        [Panel(LABELS[n], p[-1], "the same 30 noise-data pairs", paths=p) for n, p in paths.items()],
        background=dataset.shown,
        columns=4,
        height=360,
    ),
    "paths",
)


def measure_race():
    runs, _ = schedule_race(preset)
    best = min(runs, key=lambda r: r.energy[-1])
    vp = next(r for r in runs if r.schedule == "vp")
    return LABELS[best.schedule], (
        f"After {best.steps[-1]} steps, {LABELS[best.schedule]} is closest to the data here "
        f"(energy distance {best.energy[-1]:.4f}); VP is at {vp.energy[-1]:.4f}."
    )


revealed = lesson.predict_then_see(
    Question(
        "Diffusion folklore says the VP schedule trains well. Train the same network for "
        f"{lesson_compute.SCHEDULE_STEPS} steps on each schedule: which one gets closest to the data?",
        tuple(LABELS.values()),
        None,
        "",
    ),
    key="race",
    context=preset,
    measure=measure_race,
)
if revealed:
    runs, floor = schedule_race(preset)
    by_step = {LABELS[r.schedule]: (r.steps, r.energy) for r in runs}
    by_time = {LABELS[r.schedule]: (r.seconds, r.energy) for r in runs}
    colors = dict(zip(by_step, (theme.DATA, theme.EXACT, theme.ERROR, theme.MODEL), strict=False))
    a, b = st.columns(2)
    lesson.chart(
        lesson_figures.curves_figure(by_step, "training step", "energy distance to data", colors, log_y=True),
        "race_steps",
        a,
    )
    lesson.chart(
        lesson_figures.curves_figure(
            by_time, "seconds of training, this machine", "energy distance", colors, log_y=True
        ),
        "race_time",
        b,
    )
    st.dataframe(
        [
            {
                "schedule": LABELS[r.schedule],
                "steps/s here": round(r.steps_per_s),
                f"energy distance after {r.steps[-1]} steps": f"{r.energy[-1]:.4f}",
                "straightness of its paths (0 = straight)": f"{r.straightness:.3f}",
            }
            for r in runs
        ],
        hide_index=True,
        width="stretch",
    )
    vp = next(r for r in runs if r.schedule == "vp")
    rank = sorted(runs, key=lambda r: r.energy[-1]).index(vp) + 1
    fastest = max(runs, key=lambda r: r.steps_per_s)
    st.markdown(
        f"**Does VP train faster here?** Measured: VP ranks **{rank} of {len(runs)}** after {vp.steps[-1]} steps "
        f"and runs {vp.steps_per_s:.0f} steps/s against {fastest.steps_per_s:.0f} for the fastest "
        f"({LABELS[fastest.schedule]}). Its paths bend more than the linear ones (straightness above), so "
        "they also need more solver steps. VP's reputation comes from images and noise prediction; on this "
        "2-D task with a velocity network, the measurement is the answer."
    )
    st.caption(
        f"Measured on this machine, once (cached). Two independent data samples differ by about "
        f"{max(abs(floor), 0.001):.3f}: smaller differences are noise. Samples: RK4, 20 steps = 80 NFE."
    )

with lesson.pitfall(
    "ignoring the schedule",
    "A velocity model's ODE $dz/dt = v(z, t)$ never mentions $\\alpha$ or $\\sigma$, so its final samples "
    "survive a wrongly named schedule. Everything else does not. Convert a network's output (noise, data or "
    "score prediction) with the wrong $\\alpha_t, \\sigma_t$ and the velocity is wrong (top left). Use a cosine "
    "model as a linear-path field and its particles at $t=0.5$ are not where the linear path puts them "
    "(bottom left). `fmcore.change_schedule` maps time and rescales, so the same network is right on the "
    "other path, without retraining:",
):
    lesson.chart(
        lesson_figures.panels_figure(schedule_pitfall(preset), background=dataset.shown, height=720),
        "pitfall",
    )

lesson.self_check(
    [
        Question(
            "In one training step, the times t are drawn …",
            (
                "independently for each point, uniform on [0, 1]",
                "once per batch",
                "from the solver's time grid",
            ),
            "independently for each point, uniform on [0, 1]",
            "Each (z₁, z₀, t) triple is one regression example; spreading t over the batch lowers the variance.",
            hints={"from the solver's time grid": "Training never runs a solver."},
        ),
        Question(
            "The cosine schedule α = sin(πt/2), σ = cos(πt/2) keeps α² + σ² equal to …",
            ("1 at every t", "t", "1 − t"),
            "1 at every t",
            "sin² + cos² = 1: that is what 'variance preserving' means.",
        ),
        Question(
            "You trained on cosine and want the model's particles on the linear path. You …",
            ("re-express it with change_schedule", "use the same network unchanged", "must retrain"),
            "re-express it with change_schedule",
            "Equal log-SNR gives the time map; a rescaling of z does the rest. No retraining.",
            hints={"use the same network unchanged": "Look at the bottom-left panel of the pitfall."},
        ),
    ],
    key="training",
)

lesson.playground_link(data=preset, schedule="cosine", field="learned")
