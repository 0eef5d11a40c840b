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
from streamlit.testing.v1 import AppTest

from explorer.core.state import ViewState
from explorer.lessons import compute as lesson_compute
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


# -- the numbers behind the lessons (explorer/lesson_compute.py) ----------------------------------


def test_fitted_slope_and_nfe_to_reach_recover_a_power_law():
    nfe = np.array([4.0, 8, 16, 32, 64])
    curve = lesson_compute.ErrorCurve(
        "rk4", nfe, 3.0 * nfe**-2.0, lesson_compute.fitted_slope(nfe, 3.0 * nfe**-2.0)
    )
    assert curve.slope == pytest.approx(-2.0, abs=1e-9)
    assert lesson_compute.nfe_to_reach(curve, 3.0 / 20.0**2) == pytest.approx(20.0, rel=1e-9)
    assert lesson_compute.nfe_to_reach(curve, 1e-9) == float("inf")
    flat = np.full(5, 1e-7)  # below the float32 floor: no slope to fit
    assert np.isnan(lesson_compute.fitted_slope(nfe, flat))


def test_the_marginal_velocity_is_the_posterior_average_of_conditional_ones():
    post = lesson_compute.posterior("moons", (0.3, -0.7), 0.4)
    assert post.weights.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(post.marginal, post.weights @ post.conditional, atol=1e-4)
    np.testing.assert_allclose(post.posterior_mean, post.weights @ post.data, atol=1e-5)


def test_conditional_paths_are_straight_and_start_where_the_marginal_ones_do():
    conditional, marginal = lesson_compute.crossing_paths("moons", n=10)
    mid = len(conditional) // 2
    np.testing.assert_allclose(conditional[mid], 0.5 * (conditional[0] + conditional[-1]), atol=1e-5)
    np.testing.assert_allclose(conditional[0], marginal[0])


def test_smoothed_curve_averages_windows():
    steps, means = lesson_compute.smoothed_curve(np.arange(10.0), window=4)
    np.testing.assert_array_equal(steps, np.arange(4, 11))
    np.testing.assert_allclose(means, np.arange(1.5, 8.0))


def test_the_blurred_schedule_inverts_its_log_snr():
    import torch

    blurred = lesson_compute._blurred()
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
