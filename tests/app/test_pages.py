"""Every lesson page, run headless with AppTest: it runs clean, its figures hold data, its
self-check answers right and wrong answers with the right feedback, and predict-then-see reveals.

Pages share ``st.cache_data`` within this process, so only each page's first run trains or integrates.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.core.state import ViewState
from explorer.lessons import l2_objective, l4_solvers, l5_schedules, shared
from explorer.lessons.kit import Question, grade, playground_url, reveal

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "pages").glob("[0-9]*_*.py"))
TIMEOUT_S = 120

# page file -> (main chart key, self-check key, a right answer and a wrong one to its first question)
LESSONS = {
    "1_The_ODE_view.py": ("flow", "ode", "forward, from noise at t=0 to t=1", "either way works"),
    "2_The_objective.py": ("crossing", "objective", "z_1 − z_0", "z_1 − z_t"),
    "3_Flow_matching_vs_diffusion.py": (
        "paths",
        "diffusion",
        "have the same marginals p_t, but different paths",
        "follow the same paths",
    ),
    "4_ODE_solvers.py": ("runs", "solvers", "−p", "+p"),
    "5_Training_and_schedules.py": (
        "step",
        "training",
        "independently for each point, uniform on [0, 1]",
        "once per batch",
    ),
    "6_Rectified_flow.py": (
        "reflow",
        "reflow_check",
        "the first model's sample from that z₀",
        "a random data point",
    ),
    "7_Continuity_and_likelihood.py": (
        "likelihood",
        "continuity",
        "probability is moved by u, never created or destroyed",
        "the density is the same at every t",
    ),
    "8_One_flow_many_SDEs.py": (
        "family",
        "sdes",
        "the same marginals p_t, but different paths",
        "the same paths",
    ),
    "9_Guidance.py": ("guidance", "guide", "w = 1", "w = 0"),
    "10_One_step.py": ("arrows", "one_step", "E[z₁] − z", "0"),
}


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, key: str) -> dict:
    """The figure JSON of the plotly chart with this key."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise AssertionError(f"no plotly chart with key {key!r}")


def points_in(figure: dict) -> int:
    """Finite (x, y) values drawn by a figure's traces (plotly sends arrays as base64 or lists)."""
    total = 0
    for trace in figure["data"]:
        x = trace.get("x")
        if isinstance(x, dict) and "bdata" in x:
            values = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"]))
        else:
            values = np.asarray(x if x is not None else [], dtype=float)
        total += int(np.isfinite(values.astype(float)).sum())
    return total


def test_every_page_is_listed():
    assert sorted(p.name for p in PAGES) == sorted(LESSONS), "add the new page to LESSONS"


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_page_runs_with_a_main_figure_and_a_playground_link(name):
    at = run_page(name)
    key = LESSONS[name][0]
    assert points_in(chart(at, key)) > 50
    assert at.title and at.title[0].value[0].isdigit()
    assert at.latex, "each lesson states its key formulas"
    links = at.get("link_button")
    assert links and links[-1].proto.url.startswith("./"), "each lesson links into the Playground"


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_self_check_answers_right_and_wrong(name):
    at = run_page(name)
    _, key, right, wrong = LESSONS[name]
    at.radio(key=f"{key}_0__choice").set_value(wrong).run()
    at.button(key=f"{key}_0__check").click().run()
    assert [e.value for e in at.error] and at.error[-1].value.startswith("Not quite.")
    assert not at.success
    at.radio(key=f"{key}_0__choice").set_value(right).run()
    at.button(key=f"{key}_0__check").click().run()
    assert at.success and at.success[-1].value.startswith("Right.")
    assert not at.error


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_predict_then_see_reveals_after_a_guess(name):
    at = run_page(name)
    guess = next(r for r in at.radio if r.key and r.key.endswith("__guess"))
    reveal = next(b for b in at.button if b.key and b.key.endswith("__reveal"))
    assert reveal.disabled, "nothing to reveal before a guess"
    charts_before = sum(points_in(json.loads(c.proto.spec)) for c in at.get("plotly_chart"))
    guess.set_value(guess.options[0]).run()
    at.button(key=reveal.key).click().run()
    assert not at.exception
    feedback = [e.value for e in at.success] + [e.value for e in at.error]
    assert any(text.startswith(("Right.", "Not quite")) for text in feedback)
    charts_after = sum(points_in(json.loads(c.proto.spec)) for c in at.get("plotly_chart"))
    assert charts_after > charts_before, "revealing should draw the answer"


def test_grade_gives_the_explanation_or_a_hint():
    q = Question("2 + 2?", ("4", "5", "22"), "4", "Add them.", hints={"22": "That is concatenation."})
    assert grade(q, "4").correct and grade(q, "4").message == "Right. Add them."
    assert not grade(q, "22").correct and "concatenation" in grade(q, "22").message
    assert grade(q, "5").message.startswith("Not quite.")
    with pytest.raises(ValueError, match="not one of the options"):
        Question("?", ("a",), "b", "")


def test_reveal_tells_a_wrong_guess_the_answer():
    q = Question("2 + 2?", ("4", "5"), "4", "Add them.")
    assert reveal(q, "4").message == "Right. Add them."
    wrong = reveal(q, "5")
    assert not wrong.correct and "“4”" in wrong.message and wrong.message.endswith("Add them.")


def test_playground_url_round_trips_through_the_view_state():
    url = playground_url(data="circles", solver="euler", steps=5, compare=True)
    assert url.startswith("./?")
    query = dict(pair.split("=") for pair in url[3:].split("&"))
    state, notices = ViewState.from_query(query)
    assert not notices
    assert (state.data, state.solver, state.steps, state.compare) == ("circles", "euler", 5, True)
    assert playground_url() == "./"
    with pytest.raises(TypeError):
        playground_url(not_a_setting=1)


# -- the numbers behind the lessons (explorer/lessons/l*_*.py) ----------------------------------


def test_fitted_slope_and_nfe_to_reach_recover_a_power_law():
    nfe = np.array([4.0, 8, 16, 32, 64])
    curve = l4_solvers.ErrorCurve("rk4", nfe, 3.0 * nfe**-2.0, l4_solvers.fitted_slope(nfe, 3.0 * nfe**-2.0))
    assert curve.slope == pytest.approx(-2.0, abs=1e-9)
    assert l4_solvers.nfe_to_reach(curve, 3.0 / 20.0**2) == pytest.approx(20.0, rel=1e-9)
    assert l4_solvers.nfe_to_reach(curve, 1e-9) == float("inf")
    flat = np.full(5, 1e-7)  # below the float32 floor: no slope to fit
    assert np.isnan(l4_solvers.fitted_slope(nfe, flat))


def test_the_marginal_velocity_is_the_posterior_average_of_conditional_ones():
    post = l2_objective.posterior("moons", (0.3, -0.7), 0.4)
    assert post.weights.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(post.marginal, post.weights @ post.conditional, atol=1e-4)
    np.testing.assert_allclose(post.posterior_mean, post.weights @ post.data, atol=1e-5)


def test_conditional_paths_are_straight_and_start_where_the_marginal_ones_do():
    conditional, marginal = l2_objective.crossing_paths("moons", n=10)
    mid = len(conditional) // 2
    np.testing.assert_allclose(conditional[mid], 0.5 * (conditional[0] + conditional[-1]), atol=1e-5)
    np.testing.assert_allclose(conditional[0], marginal[0])


def test_smoothed_curve_averages_windows():
    steps, means = l2_objective.smoothed_curve(np.arange(10.0), window=4)
    np.testing.assert_array_equal(steps, np.arange(4, 11))
    np.testing.assert_allclose(means, np.arange(1.5, 8.0))


def test_the_blurred_schedule_inverts_its_log_snr():
    import torch

    blurred = shared.blurred()
    t = torch.tensor([0.01, 0.3, 0.7, 0.99], dtype=torch.float64)
    np.testing.assert_allclose(blurred.t_of_log_snr(blurred.log_snr(t)), t, atol=1e-9)


def test_the_training_step_advances_stage_by_stage():
    at = run_page("5_Training_and_schedules.py")
    stages = at.radio(key="l5_stage").options
    assert at.radio(key="l5_stage").value == stages[0]
    for expected in [*stages[1:], stages[0]]:
        at.button(key="l5_next_stage").click().run()
        assert at.radio(key="l5_stage").value == expected
    at.radio(key="l5_stage").set_value(stages[-1]).run()
    assert "loss on this batch" in chart(at, "step")["layout"]["title"]["text"]


@pytest.mark.parametrize(
    ("name", "gated"),
    [("3_Flow_matching_vs_diffusion.py", "energy"), ("4_ODE_solvers.py", "error_nfe")],
)
def test_the_numbers_that_answer_a_prediction_wait_for_the_reveal(name, gated):
    at = run_page(name)
    assert not at.dataframe, "a table of measured errors would answer the prediction"
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{gated}")]
    if name.startswith("4_"):
        titles = " ".join(a["text"] for a in chart(at, "runs")["layout"]["annotations"])
        assert "NFE" not in titles and "error" not in titles, "solver panels show error per NFE"
    guess = next(r for r in at.radio if r.key and r.key.endswith("__guess"))
    guess.set_value(guess.options[0]).run()
    at.button(key=next(b.key for b in at.button if b.key and b.key.endswith("__reveal"))).click().run()
    assert at.dataframe and chart(at, gated)["data"]


def test_the_rule_of_thumb_is_stated_in_nfe():
    rows = l4_solvers.rule_of_thumb("moons", "blurred", "uniform")
    assert [(r["solver"], r["steps"], r["nfe"]) for r in rows] == [
        ("euler", 100, 100),
        ("rk4", 50, 200),
        ("dpm++2m", 20, 20),
    ]


def test_the_point_clouds_field_is_stiff_near_t1_not_fast():
    s = l4_solvers.stiffness("moons", ts=(0.9, 0.99, 0.999))
    assert s.speed.max() < 3.0 and s.speed[-1] < 1.5 * s.speed[0], "the speed stays O(1)"
    # -div v / d -> 1 / (1 - t): the posterior has picked one point, and dv/dz = -I / (1 - t).
    np.testing.assert_allclose(s.stiffness[-1] * (1 - s.ts[-1]), 1.0, rtol=0.05)
    assert s.stiffness[-1] > 100 * s.stiffness[0]


def test_one_euler_step_from_noise_lands_on_the_data_mean():
    one, two, fifty = l4_solvers.few_steps_cases("moons", n=50)
    mean = shared.lesson_data("moons").numpy().mean(0)
    # z + (1 - 0) v(z, 0) = E[z_1 | z_0 = z] = E[z_1] for every z (the last Euler step returns the posterior mean).
    np.testing.assert_allclose(one.points, np.broadcast_to(mean, one.points.shape), atol=1e-5)
    assert one.wrong and two.wrong and not fifty.wrong


def test_vp_lingers_near_noise_longest_and_never_starts_from_pure_noise():
    import fmcore

    t = torch.linspace(0.2, 0.999, 200, dtype=torch.float64)
    vp, poly = fmcore.SCHEDULES["vp"], fmcore.SCHEDULES["polynomial"]
    assert (poly.log_snr(t) > vp.log_snr(t)).all(), "t^2 has the higher log-SNR for every t >= 0.2"
    half = torch.tensor(0.5, dtype=torch.float64)
    assert float(poly.log_snr(half)) == pytest.approx(-1.10, abs=0.005)
    assert float(vp.log_snr(half)) == pytest.approx(-1.23, abs=0.005)
    assert float(vp.alpha(torch.tensor(0.0, dtype=torch.float64))) == pytest.approx(0.0066, abs=5e-5)


def test_the_exact_endpoint_map_does_not_depend_on_the_schedule():
    facts = l5_schedules.schedule_facts("moons", n=60)
    assert facts.endpoint_gap["cosine"] < 1e-4 and facts.endpoint_gap["polynomial"] < 1e-4
    assert facts.endpoint_gap["vp"] < 0.01, "VP differs only through alpha_0 ~ 0.0066"
    assert len(set(round(e, 3) for e in facts.euler_error.values())) > 1, "but the ODEs differ in difficulty"
    for density in facts.density.values():
        assert density.sum() * (facts.log_snr[1] - facts.log_snr[0]) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("name", ["linear", "cosine", "polynomial"])
def test_at_t0_the_exact_field_is_the_schedules_start_velocity(name):
    """v(z, 0) = d_alpha(0) E[z_1] + d_sigma(0) / sigma(0) z where alpha_0 = 0: on the linear path E[z_1] - z."""
    import fmcore

    data = shared.lesson_data("moons").double()
    z = shared.lesson_noise(20).double()
    s = fmcore.get_schedule(name)(torch.tensor(0.0, dtype=torch.float64))
    expected = s.d_alpha * data.mean(0) + s.d_sigma / s.sigma * z
    np.testing.assert_allclose(fmcore.exact_velocity(z, 0.0, data, name), expected, atol=1e-9)
    if name == "linear":
        np.testing.assert_allclose(expected, data.mean(0) - z, atol=1e-12)


def test_the_exercise_checks_a_typed_target_and_shows_the_text_only_as_code():
    at = run_page("5_Training_and_schedules.py")
    hostile = "__import__('os').system('x') **bold** <b>x</b>"
    at.text_input(key="l5_target").input(hostile).run()
    assert at.error and all(hostile not in e.value and "<b>" not in e.value for e in at.error)
    assert any(c.value.endswith(hostile) for c in at.code), "the typed text appears as code"
    at.text_input(key="l5_target").input("-(z0 - z1)").run()
    assert at.success and "linear" in at.success[-1].value


def test_the_exact_field_memorises_and_the_network_generalises():
    mem = l2_objective.memorisation("moons", m=60, n=300, train_steps=600)
    assert mem.within["exact"] == 1.0, "the minimiser of both losses reproduces the training points"
    assert mem.within["learned"] < 0.5 and mem.within["learned"] < mem.within["fresh"] + 0.15


def test_dpm_solvers_first_order_step_on_the_linear_path_is_an_euler_step():
    import fmcore

    data = shared.lesson_data("moons").double()
    z = shared.lesson_noise(30).double()

    def v(x, t):
        return fmcore.exact_velocity(x, t, data, "linear")

    kwargs = dict(t0=0.2, t1=0.6, schedule="linear")
    dpm = fmcore.integrate(v, z, "dpm++2m", 1, **kwargs).z_end
    np.testing.assert_allclose(dpm, fmcore.integrate(v, z, "euler", 1, **kwargs).z_end, atol=1e-10)


def test_every_wrong_self_check_answer_gets_a_hint_at_the_idea():
    from explorer.lessons.checks import SELF_CHECKS

    missing = [
        (key, q.prompt, option)
        for key, questions in SELF_CHECKS.items()
        for q in questions
        for option in q.options
        if option != q.answer and option not in q.hints
    ]
    assert not missing, "a wrong answer would get only the generic 'look at the figure again'"
    assert set(SELF_CHECKS) == {LESSONS[name][1] for name in LESSONS}


def test_lesson_3_samples_every_model_by_its_reverse_sde_and_by_its_ode():
    at = run_page("3_Flow_matching_vs_diffusion.py")
    titles = " ".join(a["text"] for a in chart(at, "paths")["layout"]["annotations"])
    for model in ("VP noise model", "VP velocity model", "Linear velocity model"):
        assert f"{model}: reverse SDE" in titles
    assert "VP noise model: PF-ODE" in titles and "Linear velocity model: ODE" in titles
    prose = " ".join(m.value for m in at.markdown)
    assert "fmcore.sample_sde" in prose and "one member of the family" in prose
