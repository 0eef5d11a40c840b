"""The write-it-yourself exercise: its script runs once the blank is filled, and its checker accepts
the right target in any algebraic form, rejects wrong ones, and never evaluates anything but arithmetic
on the allowed names."""

from __future__ import annotations

import pytest
import torch

from explorer.lessons import exercise as lesson_exercise
from explorer.lessons.exercise import check_target


@pytest.mark.parametrize(
    "text",
    ["z1 - z0", "-(z0 - z1)", "d_alpha*z1 + d_sigma*z0", "(z1*(1-t) - z0*(1-t))/(1-t)", " -1*z0 + z1 "],
)
def test_right_targets_in_several_forms_pass(text):
    assert check_target(text).correct


def test_only_the_general_form_holds_on_every_schedule():
    assert check_target("d_alpha * z1 + d_sigma * z0").general
    linear_only = check_target("z1 - z0")
    assert linear_only.correct and not linear_only.general and "d_alpha" in linear_only.message


@pytest.mark.parametrize(
    ("text", "idea"),
    [
        ("z1 - z0*t", "differentiate"),  # a wrong vector
        ("z1", "differentiate"),  # a position, not a velocity
        ("alpha * z1 + sigma * z0", "differentiate"),  # z_t itself
        ("t", "2-D vector"),
        ("z1 / (1 - t) - z0 / 0", "not finite"),
    ],
)
def test_wrong_targets_are_rejected_with_a_hint(text, idea):
    result = check_target(text)
    assert not result.correct and idea in result.message


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo pwned')",
        "z1.__class__",
        "open('/etc/passwd')",
        "[z1 for z1 in ()]",
        "lambda: 0",
        "z1 if t else z0",
        "'z1'",
        "True * z1",
        "z_t",
        "exit()",
        "(" * 300 + "z1" + ")" * 300,
        "z1 +",
        "",
    ],
)
def test_hostile_or_malformed_input_is_refused(text):
    with pytest.raises(lesson_exercise.TargetError):
        lesson_exercise.parse_target(text)
    result = check_target(text)
    assert not result.correct
    assert text.strip() == "" or text not in result.message, "the learner's text is never echoed"


def test_hostile_input_never_runs(tmp_path):
    sentinel = tmp_path / "ran"
    check_target(f"__import__('pathlib').Path('{sentinel}').touch()")
    assert not sentinel.exists()


def test_a_huge_power_overflows_instead_of_hanging():
    assert not check_target("10**10**10 * z1").correct


def test_the_script_trains_and_samples_once_the_blank_is_filled(capsys):
    source = lesson_exercise.SCRIPT.replace("u_t = ...", "u_t = d_alpha * z1 + d_sigma * z0")
    assert "u_t = ..." in lesson_exercise.SCRIPT and source != lesson_exercise.SCRIPT
    assert len(lesson_exercise.SCRIPT.splitlines()) <= 35
    torch.set_num_threads(1)
    exec(compile(source.replace("range(2000)", "range(300)"), "exercise", "exec"), {})
    out = capsys.readouterr().out
    energy = float(out.strip().splitlines()[-1].split(":")[-1].split("#")[0])
    assert energy < 0.2, out
