"""Lessons 8 (one flow, many SDEs), 9 (guidance) and 10 (one step) under AppTest: the reveal gates the numbers,
the revealed figure holds the measured data, and every wrong answer gets a hint of its own."""

from __future__ import annotations

import json

import pytest

from .test_pages import chart, points_in, run_page

GENERIC_HINT = "Look at the figure above again"


def annotations(figure: dict) -> str:
    return " ".join(a.get("text", "") for a in figure["layout"].get("annotations", []))


def reveal(at, key: str, option: str):
    at.radio(key=f"{key}__guess").set_value(option).run()
    at.button(key=f"{key}__reveal").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_lesson_8_shows_the_distances_only_after_the_reveal():
    at = run_page("8_One_flow_many_SDEs.py")
    before = chart(at, "family")
    assert "vs the ODE's cloud" not in annotations(before) and not at.dataframe
    assert annotations(before).count("t = 0 → 0.5") == 4  # paths to t = 0.5, four noise levels
    assert "Right:" not in annotations(chart(at, "pitfall"))  # the right SDE's cloud would answer it
    reveal(at, "l8_cloud", "blur more as the noise grows")
    assert at.error and "the answer is “are the same at every noise level”" in at.error[0].value
    assert "Tweedie" not in at.error[0].value and "pulls towards high density" in at.error[0].value
    after = chart(at, "family")
    assert annotations(after).count("vs the ODE's cloud") == 8  # t = 0.5 and t = 1, four levels each
    assert points_in(after) > 2 * points_in(before)
    table = at.dataframe[0].value
    assert list(table["NFE"]) == [100] * 4 and list(table["steps"]) == [100] * 4
    assert table["sampler"][2] == "noise = 1 · reverse diffusion"
    assert annotations(chart(at, "pitfall")).count("energy distance to the ODE's cloud") == 2


def test_lesson_8_right_guess_is_confirmed():
    at = reveal(run_page("8_One_flow_many_SDEs.py"), "l8_cloud", "are the same at every noise level")
    assert at.success and at.success[0].value.startswith("Right. Every member shares p_t")


def test_lesson_9_hides_w3_and_the_measurements_until_the_reveal():
    at = run_page("9_Guidance.py")
    before = chart(at, "guidance")
    titles = annotations(before)
    assert "w = 0" in titles and "w = 1" in titles and "w = 3" not in titles
    assert "off the data" not in titles and not at.dataframe
    assert "w = 5" not in annotations(chart(at, "pitfall"))
    reveal(at, "l9_guidance", "spread over all eight Gaussians")
    assert "the answer is “move outward, away from the other classes”" in at.error[0].value
    assert "That is w = 0" in at.error[0].value and "mean |z| goes" in at.error[0].value
    after = chart(at, "guidance")
    assert "w = 3" in annotations(after) and annotations(after).count("off the data") == 3
    assert points_in(after) > points_in(before)
    assert list(at.dataframe[0].value["in class"])[1] == "100%"


def test_lesson_9_right_guess_and_another_class():
    at = run_page("9_Guidance.py")
    at.selectbox(key="l9_label").set_value(5).run()
    reveal(at, "l9_guidance", "move outward, away from the other classes")
    assert at.success and at.success[0].value.startswith("Right. From w = 1 to w = 3")
    pitfall = chart(at, "pitfall")
    assert annotations(pitfall).count("off the data") == 3 and points_in(pitfall) > 300


def test_lesson_10_shows_where_one_step_lands_only_after_the_reveal():
    at = run_page("10_One_step.py")
    before = annotations(chart(at, "arrows"))
    assert before.count("drawn at 30% length") == 2 and "One Euler step" not in before
    assert "1 step = 1 NFE" not in annotations(chart(at, "pitfall"))
    assert "meanflow" not in [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]
    reveal(at, "l10_step", "on the data, a little blurred")
    assert "the answer is “all on one point, the data mean”" in at.error[0].value
    assert "what is E[z₁ | z₀]?" in at.error[0].value
    after = annotations(chart(at, "arrows"))
    assert "drawn at" not in after and "One Euler step: z₀ + v(z₀, 0)" in after
    assert "every sample within" in after and "the ODE's samples" in after
    assert annotations(chart(at, "pitfall")).count("energy distance to data") == 4
    race = annotations(chart(at, "meanflow"))
    assert "Mean flow: 1 step = 1 NFE" in race and "Flow: 100 Euler steps = 100 NFE" in race
    table = at.dataframe[0].value
    assert list(table["NFE"]) == list(table["steps"]) and set(table["model"]) == {"mean flow", "flow"}


@pytest.mark.parametrize(
    ("name", "key"),
    [("8_One_flow_many_SDEs.py", "sdes"), ("9_Guidance.py", "guide"), ("10_One_step.py", "one_step")],
)
def test_every_wrong_answer_gets_its_own_hint(name, key):
    at = run_page(name)
    i = 0
    while f"{key}_{i}__choice" in [r.key for r in at.radio]:
        radio = at.radio(key=f"{key}_{i}__choice")
        for option in radio.options:
            at.radio(key=f"{key}_{i}__choice").set_value(option).run()
            at.button(key=f"{key}_{i}__check").click().run()
            shown = [e.value for e in at.error] + [e.value for e in at.success]
            assert len(shown) == 1 and GENERIC_HINT not in shown[0], (i, option, shown)
        at.radio(key=f"{key}_{i}__choice").set_value(None).run()  # clears this question's feedback
        i += 1
    assert i >= 3
    assert json.loads(at.get("plotly_chart")[-1].proto.spec)["data"], "the pitfall's figure"
