"""The Playground in a class, under AppTest, against a real SQLite store in a temp FME_DATA_DIR.

The teacher's side is the store itself (the dashboard's calls, with the token); each AppTest is a
student's session opened from the join link ``/?room=CODE``.
"""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.classroom import session, student
from explorer.core.text import plain
from explorer.rooms import Limits, PushedSettings, open_store
from explorer.rooms.sqlite import SQLiteStore
from tests.app.apptest import start

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def inline_training(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")


@pytest.fixture
def db(tmp_path, monkeypatch):
    """The SQLite file the app opens (a store object of its own, as a second server process would)."""
    monkeypatch.setenv("FME_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FME_ROOMS_URL", raising=False)
    s = open_store(None, data_dir=tmp_path)
    yield s
    s.close()


@pytest.fixture
def room(db):
    return db.create_room()


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def joined(code: str, name: str = "") -> object:
    """A student's session from the join link, after pressing Join with ``name``."""
    at = start({"room": code})
    at.text_input(key="fme_room_name").set_value(name)
    next(b for b in at.button if b.label == "Join").click()
    return ok(at.run())


def badge(at) -> str:
    return "\n".join(m.value for m in at.markdown if "In class" in m.value)


def test_the_join_link_joins_once_with_a_name_and_shows_the_badge(db, room):
    code, token = room
    at = start({"room": code})
    assert "Join the class" in "\n".join(m.value for m in at.markdown)
    assert db.students(code, token) == []  # nothing joined before the student says so
    at = joined(code, "Ada")
    assert "In class" in badge(at) and "Ada" in badge(at) and "teacher sees this run" in badge(at)
    assert at.query_params["room"] == code  # a reload offers the same class again
    ok(at.run())
    ok(at.run())  # reruns keep the seat: no second join
    assert [s.student.name for s in db.students(code, token)] == ["Ada"]
    assert not [b for b in at.button if b.label == "Join"]


def test_a_blank_name_gets_the_pseudonym_the_badge_shows(db, room):
    code, token = room
    at = joined(code, "")
    (seat,) = db.students(code, token)
    assert seat.student.name and plain(seat.student.name) in badge(at)


def test_a_hostile_name_is_plain_text_in_the_badge(db, room):
    code, token = room
    at = joined(code, XSS)
    assert db.students(code, token)[0].student.name == XSS
    shown = badge(at)
    assert plain(XSS) in shown and "<img" not in shown.replace("\\<", "")  # escaped: shown as characters


def test_a_bad_code_says_so_and_the_playground_goes_on(db):
    at = joined("NOSUCH")
    errors = "\n".join(e.value for e in at.error)
    assert "No class is open with the code NOSUCH" in errors
    assert session.SESSION_KEY not in at.session_state
    assert at.get("plotly_chart"), "the Playground is still drawn"
    at.selectbox(key="fme_w_solver").set_value("heun").run()
    ok(at)


def test_a_full_room_says_so(tmp_path, monkeypatch, db):
    from explorer.classroom import dashboard

    full = SQLiteStore(tmp_path / "rooms.db", limits=Limits(students_per_room=1))
    monkeypatch.setattr(dashboard, "_open", lambda url, data_dir: full)  # the server's caps
    code, _ = full.create_room()
    full.join(code, "first")
    at = joined(code, "second")
    assert "cannot take you" in "\n".join(e.value for e in at.error)
    assert session.SESSION_KEY not in at.session_state


def test_a_push_reaches_the_widgets_with_a_notice_and_the_student_may_change_it(db, room):
    code, token = room
    at = joined(code, "Ada")
    db.push_settings(code, token, PushedSettings(solver="heun", steps=7, data="circles"))
    ok(at.run())
    assert at.selectbox(key="fme_w_solver").value == "heun"
    assert at.slider(key="fme_w_steps").value == 7
    assert at.query_params["data"] == "circles" and at.query_params["solver"] == "heun"
    toasts = [t.value for t in at.toast]
    assert any("Your teacher changed" in t and "heun" in t for t in toasts), toasts
    at.selectbox(key="fme_w_solver").set_value("rk4").run()
    ok(at.run())
    assert at.selectbox(key="fme_w_solver").value == "rk4", "a push is applied once"


def test_a_student_who_joins_late_gets_the_latest_push(db, room):
    code, token = room
    db.push_settings(code, token, PushedSettings(schedule="cosine"))
    at = ok(joined(code).run())
    assert at.selectbox(key="fme_w_schedule").value == "cosine"


def test_reports_carry_samples_step_loss_quality_and_chips(db, room):
    code, token = room
    at = joined(code, "Ada")
    at.button(key="fme_w_train").click().run()
    for _ in range(3):
        ok(at.run())
    seat = at.session_state[session.SESSION_KEY]
    at.session_state[session.SESSION_KEY] = replace(seat, reported_at=-math.inf)  # the period has passed
    ok(at.run())
    (seat,) = db.students(code, token)
    r = seat.report
    assert r is not None and r.step > 0 and math.isfinite(r.loss) and math.isfinite(r.loss_floor)
    assert r.points.shape[1] == 2 and 0 < len(r.points) <= Limits().points_per_report
    assert np.isfinite(r.quality) and r.quality > 0
    assert r.chips["solver"] == "euler" and r.chips["data"] == "moons" and r.chips["steps"] == "20"


def test_the_room_start_and_pause_reach_the_student(db, room):
    code, token = room
    at = joined(code)
    db.set_training(code, token, True)
    ok(at.run())
    assert not at.button(key="fme_w_pause").disabled, "training runs"
    db.set_training(code, token, False)
    ok(at.run())
    assert at.button(key="fme_w_pause").disabled, "paused"
    at.button(key="fme_w_train").click().run()
    ok(at.run())
    assert not at.button(key="fme_w_pause").disabled, "the student may train again afterwards"


LESSON = str(Path(__file__).resolve().parents[2] / "pages" / "2_The_objective.py")


def lesson_in_room(db, code: str) -> AppTest:
    """A lesson page in the session of a student who joined ``code`` (the seat their Playground kept)."""
    seat = student.join(db, code, "Ada")
    at = AppTest.from_file(LESSON, default_timeout=120)
    at.session_state[session.SESSION_KEY] = session.InRoom(seat, "Ada")
    return ok(at.run())


def test_a_lesson_guess_goes_to_the_poll_and_the_teachers_reveal_shows_the_answer(db, room):
    code, token = room
    at = lesson_in_room(db, code)
    guess = next(r for r in at.radio if r.key.endswith("__guess"))
    assert not [b for b in at.button if b.key and b.key.endswith("__reveal")], "the teacher reveals"
    question = session.poll_id(guess_prompt(at))
    guess.set_value(guess.options[0]).run()
    ok(at)
    assert db.poll_counts(code, token, question).counts == {guess.options[0]: 1}
    at.radio(key=guess.key).set_value(guess.options[1]).run()
    assert db.poll_counts(code, token, question).counts == {guess.options[1]: 1}, "a changed guess"
    assert not at.success and not at.error, "no answer before the reveal"
    db.reveal(code, token, question)
    ok(at.run())
    feedback = [e.value for e in at.success] + [e.value for e in at.error]
    assert any(text.startswith(("Right.", "Not quite")) for text in feedback), feedback
    assert at.radio(key=guess.key).disabled


def test_a_question_revealed_before_the_guess_shows_the_answer(db, room):
    code, token = room
    at = lesson_in_room(db, code)
    question = session.poll_id(guess_prompt(at))
    db.reveal(code, token, question)
    ok(at.run())
    assert any(e.value.startswith("The answer is") for e in at.error)
    assert db.poll_counts(code, token, question).counts == {}


def guess_prompt(at) -> str:
    prefix = ":material/psychology: **Predict, then see.** "
    return next(m.value for m in at.markdown if m.value.startswith(prefix)).removeprefix(prefix)


def test_poll_ids_are_plain_words_within_the_stores_limit():
    prompt = "Which **target** $u_t$ does `fmcore` regress on, " + "long " * 30
    qid = session.poll_id(prompt)
    assert len(qid) <= Limits().text_chars and not set("*$`") & set(qid)
    assert qid.startswith("Which target u") and qid == session.poll_id(prompt)
