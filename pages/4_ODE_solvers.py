"""Lesson 4 — ODE solvers: the same field, six ways to integrate it, and what each costs."""

import streamlit as st

from explorer.lessons import figures as lesson_figures
from explorer.lessons import kit as lesson
from explorer.lessons import l4_solvers as l4
from explorer.lessons.checks import SELF_CHECKS
from explorer.lessons.kit import Question
from explorer.lessons.shared import Case
from explorer.playground import cache
from fmcore.solvers import SOLVERS, TIME_GRIDS, time_grid

solver_runs = st.cache_data(show_spinner="Running every solver…")(l4.solver_runs)
error_curves = st.cache_data(show_spinner="Measuring error against NFE…")(l4.error_curves)
rule_of_thumb = st.cache_data(show_spinner="Checking the rule of thumb…")(l4.rule_of_thumb)
few_steps_cases = st.cache_data(show_spinner=False)(l4.few_steps_cases)
stiffness = st.cache_data(show_spinner=False)(l4.stiffness)
grid_errors = st.cache_data(show_spinner=False)(l4.grid_errors)
LABELS = {name: info.label.split(" (")[0] for name, info in SOLVERS.items()}
ALL = tuple(SOLVERS)
HINTS = {
    LABELS["euler"]: "Euler is cheap per step, but its line is the flattest.",
    LABELS["rk4"]: "RK4 has the highest fixed order, but order only pays where the field is smooth.",
    LABELS["dopri5"]: "dopri5's NFE follows its tolerance and how hard the field is, not the step count: "
    "read its dots (one per tolerance) against the other lines at this error.",
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
    "**DPM-Solver++ 2M** (1 NFE per step) turns $v$ into a data prediction $\\hat z_1$ and integrates the "
    "linear part exactly in the log-SNR $\\lambda_t = \\log(\\alpha_t/\\sigma_t)$, with $h_k = \\lambda_{t_{k+1}} - "
    "\\lambda_{t_k}$. Its first-order update (DDIM) is, on the linear path, exactly an Euler step; the second "
    "order comes from extrapolating the last two data predictions (multistep). **dopri5** is adaptive: it "
    "estimates its own error, picks its steps and interpolates the output times inside a step (dense output), "
    "so its NFE follows its tolerance. A method of order $p$ has error $\\approx C h^p$, so on "
    "log-log axes error against NFE is a line of **slope $-p$**:"
)
# DPM-Solver++(2M): Lu et al. 2022 (arXiv 2211.01095), Algorithm 2, in this app's time direction.
st.latex(
    r"""\begin{aligned}
z_{k+1} &= \frac{\sigma_{t_{k+1}}}{\sigma_{t_k}} z_k + \alpha_{t_{k+1}}\big(1 - e^{-h_k}\big)\, D_k,
\qquad \text{error} \approx C\,h^p \propto \text{NFE}^{-p} \\
D_k &= \Big(1 + \frac{h_k}{2 h_{k-1}}\Big)\hat z_1(z_k, t_k) - \frac{h_k}{2 h_{k-1}}\,\hat z_1(z_{k-1}, t_{k-1})
\quad (D_0 = \hat z_1(z_0, t_0)\text{: first order, DDIM})
\end{aligned}"""
)

controls = st.columns([1.3, 1, 1.2, 2])
preset = controls[0].selectbox("Data", ["moons", "8gaussians", "circles", "checkerboard"], key="l4_data")
field = controls[1].radio(
    "Field", list(l4.FIELD_KINDS), key="l4_field", help=" · ".join(l4.FIELD_KINDS.values())
)
grid = controls[2].selectbox(
    "Time grid", list(TIME_GRIDS), format_func=lambda g: TIME_GRIDS[g].label, key="l4_grid"
)
steps = controls[3].slider("Steps", 1, 64, 8, key="l4_steps")
st.caption(f"Field: {l4.FIELD_KINDS[field]}.")
reference, runs = solver_runs(preset, field, steps, grid, ALL)
dataset = cache.load_dataset(preset, seed=0)
curves = error_curves(preset, field, grid, ALL)
target = 0.01
cheapest = min(curves, key=lambda c: l4.nfe_to_reach(c, target))
revealed = lesson.predict_then_see(
    Question(
        f"On this field, which solver reaches an endpoint error of {target} with the **fewest NFE**?",
        tuple(LABELS[c.solver] for c in curves),
        LABELS[cheapest.solver],
        f"{LABELS[cheapest.solver]} needs about {l4.nfe_to_reach(cheapest, target):.0f} NFE. "
        "Read the slopes: a steeper line wins once you want small errors.",
        hints={label: hint for label, hint in HINTS.items() if label != LABELS[cheapest.solver]},
    ),
    key="cheapest",
    context=(preset, field, grid),
)
if not revealed:  # every solver's panel shows its error and NFE: that is the answer, so it waits
    panels = [
        Case("Where the particles start", runs[0].zs[0], "z₀ ~ N(0, I) at t = 0"),
        Case("Where they must end", reference, "a tight adaptive solve, float64"),
    ]
    lesson.chart(
        lesson_figures.panels_figure(panels, background=dataset.shown, columns=2, height=420), "runs"
    )
else:
    panels = [
        Case(
            f"{LABELS[r.solver]} · {r.steps} steps · {r.nfe} NFE",
            r.zs[-1],
            f"endpoint error {r.error:.2g}",
            wrong=r.error > l4.GOOD_ERROR,
            paths=r.zs[:, :40],
        )
        for r in runs
    ]
    lesson.chart(lesson_figures.panels_figure(panels, background=dataset.shown, height=720), "runs")
    st.caption(
        "Faint lines: 40 particles' paths from node to node (dots are the solver's steps). Endpoint error: the "
        "mean distance to where a tight adaptive solve in float64 puts the same particles. dopri5 (tolerance "
        "10⁻³) picks its own steps and reads these grid times off its dense output, an interpolant inside "
        "each accepted step: its NFE follows the tolerance and the field, not the step count chosen above."
    )
    lesson.chart(lesson_figures.error_nfe_figure(curves, LABELS), "error_nfe")
    rk4 = next(c for c in curves if c.solver == "rk4")
    stiff = stiffness(preset)
    st.markdown(
        f"Measured slope of RK4 here: **{rk4.slope:+.1f}** (order 4 would be −4). "
        + (
            "Along the point cloud's own paths the speed stays bounded ("
            + ", ".join(f"{v:.1f}" for v in stiff.speed)
            + " at t = "
            + ", ".join(f"{t:g}" for t in stiff.ts)
            + "), but the field gets **stiff**: near t = 1 one data point x wins, $v = (x - z)/(1-t)$ and "
            "$\\partial v/\\partial z \\approx -I/(1-t)$ (measured $-\\nabla\\cdot v/d$: "
            + ", ".join(f"{k:.3g}" for k in stiff.stiffness)
            + "). Heun's and RK4's last stage evaluates $v$ at t = 1 itself (the field is clamped at "
            "$1 - 10^{-4}$, where $\\partial v/\\partial z \\approx -10^4 I$): the stage's small position error comes "
            "back as a large velocity error, and the order is lost. Midpoint and DPM-Solver++ never evaluate at t = 1."
            if field == "point cloud"
            else "With the data blurred the field stays smooth up to $t=1$ and the orders show, until float32 "
            "rounding (~10⁻⁵) flattens the lines."
        )
    )
    st.subheader("The rule of thumb, measured")
    rows = {name: rule_of_thumb(preset, name, grid) for name in l4.FIELD_KINDS}
    st.markdown(
        "A folk rule says *Euler ~100 steps, RK4 ~50, DPM-Solver ~20*. Counted in NFE, the cost that matters, "
        "that is **100, 200 and 20**. Such rules come from particular models and schedules; here they are on "
        f"both fields, judged by the endpoint error of {l4.SOLVER_PARTICLES} particles (good below "
        f"{l4.GOOD_ERROR}), on the time grid chosen above:"
    )
    st.dataframe(l4.rule_of_thumb_table(rows, LABELS), hide_index=True, width="stretch")
    st.markdown(l4.rule_of_thumb_verdict(rows, LABELS))
    by_grid = grid_errors(preset, "point cloud")
    st.markdown(
        "The cure for a stiff end is to put the steps where the field changes fast, near $t=1$. RK4 with 50 "
        "steps (200 NFE) on the point cloud, by time grid: "
        + ", ".join(f"{TIME_GRIDS[g].label} **{e:.2g}**" for g, e in by_grid.items())
        + ". Same solver, same NFE: only where the steps go changed."
    )
st.caption("Where each time grid puts its steps (the grid is chosen above):")
lesson.chart(
    lesson_figures.grid_figure(
        {TIME_GRIDS[g].label: time_grid(g, min(steps, 24), 0.0, 1.0, "linear").numpy() for g in TIME_GRIDS}
    ),
    "grids",
)

with lesson.pitfall(
    "too few steps",
    "One Euler step from $t$ lands at $z + (1-t)\\,v(z,t) = \\mathbb E[z_1\\mid z_t = z]$, the posterior mean: "
    "so **one** step from $t=0$ puts every particle on the data mean. With 2 steps each particle jumps "
    "along the field at $t=0$ and $t=0.5$: a blurred, shrunken copy of the data. The same particles, 50 steps:",
):
    lesson.chart(
        lesson_figures.panels_figure(few_steps_cases(preset), background=dataset.shown, height=400), "pitfall"
    )

lesson.self_check(SELF_CHECKS["solvers"], key="solvers")

lesson.playground_link(
    data=preset,
    solver="rk4",
    steps=min(steps, 200),
    grid=grid,
    compare=True,
    solver_b="euler",
    steps_b=min(4 * steps, 200),
)
