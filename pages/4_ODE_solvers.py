"""Lesson 4 — ODE solvers: the same field, six ways to integrate it, and what each costs."""

import streamlit as st

from explorer import compute
from explorer.lessons import compute as lesson_compute
from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons.kit import Question
from fmcore.solvers import SOLVERS, TIME_GRIDS, time_grid

solver_runs = st.cache_data(show_spinner="Running every solver…")(lesson_compute.solver_runs)
error_curves = st.cache_data(show_spinner="Measuring error against NFE…")(lesson_compute.error_curves)
rule_of_thumb = st.cache_data(show_spinner="Checking the rule of thumb…")(lesson_compute.rule_of_thumb)
few_steps_cases = st.cache_data(show_spinner=False)(lesson_compute.few_steps_cases)
grid_errors = st.cache_data(show_spinner=False)(lesson_compute.grid_errors)
LABELS = {name: info.label.split(" (")[0] for name, info in SOLVERS.items()}
ALL = tuple(SOLVERS)
HINTS = {
    LABELS["euler"]: "Euler is cheap per step, but its line is the flattest.",
    LABELS["rk4"]: "RK4 has the highest fixed order, but order only pays where the field is smooth.",
    LABELS["dopri5"]: "dopri5 is accurate, but its error control costs many NFE before it accepts a step.",
}

lesson.setup_page("4 · ODE solvers")
st.markdown(
    "Sampling is solving $dz/dt = v(z, t)$ from $t=0$ to $t=1$ numerically. A solver cuts $[0, 1]$ into "
    "**steps** $t_0 < t_1 < \\dots < t_K$ and advances one step at a time with step size $h = t_{k+1} - t_k$; "
    "each evaluation of $v$ is one **NFE** (one network call, the cost that matters). Higher-order methods "
    "spend more NFE per step to make each step more accurate:"
)
st.latex(
    r"""\begin{aligned}
\text{Euler (1 NFE):}\;& z_{k+1} = z_k + h\,v(z_k, t_k) \\
\text{Midpoint (2 NFE):}\;& z_{k+1} = z_k + h\,v\big(z_k + \tfrac h2 v(z_k, t_k),\; t_k + \tfrac h2\big) \\
\text{Heun (2 NFE):}\;& z_{k+1} = z_k + \tfrac h2\big(k_1 + v(z_k + h k_1, t_{k+1})\big),\quad k_1 = v(z_k, t_k) \\
\text{RK4 (4 NFE):}\;& z_{k+1} = z_k + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4)
\end{aligned}"""
)
st.markdown(
    "**DPM-Solver++** (1 NFE per step) turns $v$ into a data prediction $\\hat z_1$ and integrates the "
    "linear part exactly in the log-SNR $\\lambda_t = \\log(\\alpha_t/\\sigma_t)$; **dopri5** is adaptive: "
    "it estimates its own error and picks its steps. A method of order $p$ has error $\\approx C h^p$, "
    "so on log-log axes error against NFE is a line of **slope $-p$**:"
)
st.latex(
    r"z_t = \frac{\sigma_t}{\sigma_s} z_s + \alpha_t\big(1 - e^{-(\lambda_t - \lambda_s)}\big)\,\hat z_1(z_s, s)"
    r"\qquad\qquad \text{error} \approx C\,h^p \propto \text{NFE}^{-p}"
)

controls = st.columns([1.3, 1, 1.2, 2])
preset = controls[0].selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l4_data")
field = controls[1].radio(
    "Field", list(lesson_compute.FIELDS), key="l4_field", help=" · ".join(lesson_compute.FIELDS.values())
)
grid = controls[2].selectbox(
    "Time grid", list(TIME_GRIDS), format_func=lambda g: TIME_GRIDS[g].label, key="l4_grid"
)
steps = controls[3].slider("Steps", 1, 64, 8, key="l4_steps")
st.caption(f"Field: {lesson_compute.FIELDS[field]}.")

reference, runs = solver_runs(preset, field, steps, grid, ALL)
dataset = compute.load_dataset(preset, seed=0)
panels = [
    lesson_compute.Panel(
        f"{LABELS[r.solver]} · {r.steps} steps · {r.nfe} NFE",
        r.zs[-1],
        f"endpoint error {r.error:.2g}",
        wrong=r.error > lesson_compute.GOOD_ERROR,
        paths=r.zs[:, :40],
    )
    for r in runs
]
lesson.chart(lesson_figures.panels_figure(panels, background=dataset.shown, height=720), "runs")
st.caption(
    "Faint lines: 40 particles' paths from node to node (dots are the solver's steps). Endpoint error: the "
    "mean distance to where a tight adaptive solve in float64 puts the same particles. dopri5 lands on the "
    "same grid times at tolerance 10⁻³ and takes as many internal steps as it needs."
)

curves = error_curves(preset, field, grid, ALL)
target = 0.01
cheapest = min(curves, key=lambda c: lesson_compute.nfe_to_reach(c, target))
revealed = lesson.predict_then_see(
    Question(
        f"On this field, which solver reaches an endpoint error of {target} with the **fewest NFE**?",
        tuple(LABELS[c.solver] for c in curves),
        LABELS[cheapest.solver],
        f"{LABELS[cheapest.solver]} needs about {lesson_compute.nfe_to_reach(cheapest, target):.0f} NFE. "
        "Read the slopes: a steeper line wins once you want small errors.",
        hints={label: hint for label, hint in HINTS.items() if label != LABELS[cheapest.solver]},
    ),
    key="cheapest",
    context=(preset, field, grid),
)
if revealed:
    lesson.chart(lesson_figures.error_nfe_figure(curves, LABELS), "error_nfe")
    rk4 = next(c for c in curves if c.solver == "rk4")
    st.markdown(
        f"Measured slope of RK4 here: **{rk4.slope:+.1f}** (order 4 would be −4). "
        + (
            "On the point cloud the field is nearly singular at $t=1$, where every particle snaps onto one "
            "of the 500 points with speed $\\sim 1/(1-t)$: Heun and RK4 evaluate $v$ right there in their last "
            "stage and lose their order; midpoint and DPM-Solver++ never evaluate at $t=1$."
            if field == "point cloud"
            else "With the data blurred the field stays smooth up to $t=1$ and the orders show, until float32 "
            "rounding (~10⁻⁵) flattens the lines."
        )
    )

st.subheader("The rule of thumb, measured")
st.markdown(
    "A folk rule says *Euler needs ~100 steps, RK4 ~50, DPM-Solver ~20*. Here it is on both fields, "
    f"judged by the endpoint error of {lesson_compute.SOLVER_PARTICLES} particles (good below "
    f"{lesson_compute.GOOD_ERROR}, where the samples look right), on the time grid chosen above:"
)
rows = [
    {
        "field": name,
        "solver": LABELS[row["solver"]],
        "steps": row["steps"],
        "NFE": row["nfe"],
        "endpoint error": f"{row['endpoint_error']:.2g}",
        "holds?": "yes" if row["good"] else "NO",
    }
    for name in lesson_compute.FIELDS
    for row in rule_of_thumb(preset, name, grid)
]
st.dataframe(rows, hide_index=True, width="stretch")
st.markdown(
    "Where it holds: a smooth field (the blurred one, or a trained network). Where not: the point cloud's "
    "own field near $t=1$, where RK4 with 50 uniform steps is *worse* than Euler with 100. The cure is to "
    "put the steps where the field changes fast: near $t=1$"
    + (f" (the grid “{TIME_GRIDS['power'].label}” is made for this)" if "power" in TIME_GRIDS else "")
    + ". Compare the grids below, then pick one above and watch the error curves and the table move."
)
lesson.chart(
    lesson_figures.grid_figure(
        {TIME_GRIDS[g].label: time_grid(g, min(steps, 24), 0.0, 1.0, "linear").numpy() for g in TIME_GRIDS}
    ),
    "grids",
)
by_grid = grid_errors(preset, "point cloud")
st.markdown(
    "RK4 with 50 steps (200 NFE) on the point cloud, by time grid: "
    + ", ".join(f"{TIME_GRIDS[g].label} **{e:.2g}**" for g, e in by_grid.items())
    + f". Same solver, same NFE: only where the steps go changed (endpoint error; good below {lesson_compute.GOOD_ERROR})."
)

with lesson.pitfall(
    "too few steps",
    "With 2 Euler steps each particle jumps along a straight line from wherever the field pointed at $t=0$ "
    "and $t=0.5$: the samples are a blurred, shrunken copy of the data. The same particles, 50 steps:",
):
    lesson.chart(
        lesson_figures.panels_figure(
            few_steps_cases(preset), background=dataset.shown, columns=2, height=420
        ),
        "pitfall",
    )

lesson.self_check(
    [
        Question(
            "On log-log axes, error against NFE for a method of order p is a line of slope …",
            ("−p", "−1/p", "+p"),
            "−p",
            "Error ~ h^p and NFE ~ 1/h, so log error = −p log NFE + const.",
            hints={"+p": "More NFE should mean less error.", "−1/p": "Write error ~ h^p with h ~ 1/NFE."},
        ),
        Question(
            "RK4 with 25 steps and Euler with 100 steps cost …",
            ("the same NFE (100)", "RK4 costs 4× less", "RK4 costs 4× more"),
            "the same NFE (100)",
            "RK4 makes 4 evaluations per step: 25 × 4 = 100 = 100 × 1.",
            hints={"RK4 costs 4× less": "Count the evaluations per step in the formulas above."},
        ),
        Question(
            "Why does RK4 lose its fourth order on the point-cloud field?",
            (
                "The field blows up near t = 1 and RK4 evaluates it there",
                "float32 rounding",
                "RK4 is only second order",
            ),
            "The field blows up near t = 1 and RK4 evaluates it there",
            "An order-p bound needs p smooth derivatives; near t = 1 they grow like 1/(1-t)^p.",
            hints={
                "float32 rounding": "Rounding flattens the curves near 10⁻⁵; RK4's trouble starts near 1."
            },
        ),
    ],
    key="solvers",
)

lesson.playground_link(
    data=preset,
    solver="rk4",
    steps=min(steps, 200),
    grid=grid,
    compare=True,
    solver_b="euler",
    steps_b=min(4 * steps, 200),
)
