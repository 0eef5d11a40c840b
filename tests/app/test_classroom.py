"""The Classroom page under AppTest, against a real SQLite store in a temp folder (FME_DATA_DIR).

The page is run as a function (AppTest cannot switch ``st.navigation`` pages); students join and
report through the store itself, as their Playgrounds will.
"""

import csv
import io
import json
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.classroom import student
from explorer.core.text import plain
from explorer.rooms import open_store
from explorer.settings import settings

XSS = "<img src=x onerror=alert(1)>"


def page():
    from explorer.classroom import dashboard

    dashboard.main()


@pytest.fixture
def db(data_dir):
    """The same SQLite file the page opens, as a second store object (another process would do the same)."""
    s = open_store(None, data_dir=data_dir)
    yield s
    s.close()


def run(query: dict | None = None) -> AppTest:
    at = AppTest.from_function(page, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def started() -> tuple[AppTest, str, str]:
    """A session that pressed Start a class: (app, join code, token read from the teacher link)."""
    at = run()
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    codes = [c.value for c in at.code]
    teacher = next(c for c in codes if "/classroom?" in c)
    query = parse_qs(urlsplit(teacher).query)
    return at, query["room"][0], query["token"][0]


def texts(at) -> str:
    return "\n".join(
        str(e.value) for kind in ("markdown", "caption", "subheader", "text") for e in at.get(kind)
    )


def test_start_a_class_shows_the_code_the_join_link_and_the_teacher_link(data_dir, db):
    at = run()
    assert [b.label for b in at.button] == ["Start a class"]
    at, code, token = started()
    codes = [c.value for c in at.code]
    assert f"/?room={code}" in codes and code in codes
    assert len(token) >= 43  # 256 bits, URL-safe base64
    db.check_token(code, token)  # the link's token opens the room in the store
    assert len(at.get("image")) == 1, "a QR code of the join link"
    assert [b.label for b in at.button if b.label == "Start a class"] == []
    assert at.get("subheader")[0].value == "0 students"


def test_the_dashboard_shows_each_student_who_reports(data_dir, db):
    _, code, token = started()
    names = ["Ada", "Grace", "Alan", "Emmy", "Kurt"]
    for i, name in enumerate(names):
        seat = student.join(db, code, name, client=f"s{i}")
        samples = np.random.default_rng(i).normal(size=(500, 2))
        db.report(
            code, seat.student_id, student.report_from(samples, 10 * i, 1.2, 1.0, 2.0 + i, {"solver": "heun"})
        )
    at = run({"room": code, "token": token})  # the teacher link, in a fresh session
    assert at.get("subheader")[0].value == "5 students"
    assert len(at.get("plotly_chart")) == 5, "one scatter per tile"
    assert len([b for b in at.button if b.label == "Show large"]) == 5
    for name in names:
        assert f"**{plain(name)}**" in texts(at)
    assert "step 40" in texts(at)  # sorted by step: Kurt first
    first = next(m.value for m in at.markdown if m.value.startswith("**"))
    assert first == f"**{plain('Kurt')}**"


def test_sorting_by_name_and_showing_one_run_large(data_dir, db):
    _, code, token = started()
    for name, step in (("zed", 5), ("Bea", 1), ("amy", 9)):
        seat = student.join(db, code, name)
        db.report(code, seat.student_id, student.report_from(np.zeros((3, 2)), step, 1, 1, 1, {}))
    at = run({"room": code, "token": token})
    at.get("button_group")[0].set_value("name").run()
    names = [m.value for m in at.markdown if m.value.startswith("**")]
    assert names == ["**amy**", "**Bea**", "**zed**"]
    at.button(key=next(b.key for b in at.button if b.label == "Show large")).click().run()
    assert [b.label for b in at.button if b.label in ("Back to the grid", "Show large")] == [
        "Back to the grid"
    ]
    assert len(at.get("plotly_chart")) == 1


@pytest.mark.parametrize("query", [{"room": "X"}, {"room": "X", "token": "wrong"}, {"token": "wrong"}])
def test_a_wrong_or_missing_token_shows_no_data(data_dir, db, query):
    code, _ = db.create_room()
    seat = student.join(db, code, "Secret Sam")
    db.report(code, seat.student_id, student.report_from(np.zeros((3, 2)), 1, 1, 1, 1, {}))
    query = {k: (code if v == "X" else v) for k, v in query.items()}
    at = run(query)
    if "room" in query:
        assert [e.value for e in at.error] and "teacher link" in at.error[0].value
        assert not at.get("plotly_chart") and not at.code
    assert "Secret Sam" not in texts(at)
    assert not any(h.value.endswith("students") for h in at.get("subheader"))


def test_pushed_settings_reach_the_store(data_dir, db):
    at, code, _token = started()
    at.selectbox(key="fme_class_push_solver").set_value("heun")
    at.selectbox(key="fme_class_push_data").set_value("spirals")
    at.number_input(key="fme_class_push_steps").set_value(8)
    at.button(key="FormSubmitter:fme_class_push-Push settings").click().run()
    assert not at.exception
    latest = db.latest_push(code)
    assert (latest.solver, latest.data, latest.steps, latest.schedule, latest.version) == (
        "heun",
        "spirals",
        8,
        None,
        1,
    )
    assert "solver heun" in at.success[0].value
    update = student.pending_push(db, code, seen_version=0)
    assert update.notice == "Your teacher changed data preset spirals, solver heun, solver steps 8."
    assert student.pending_push(db, code, seen_version=1) is None


def test_start_and_pause_training_for_the_room(data_dir, db):
    at, code, _ = started()
    assert db.room(code).training is False
    next(b for b in at.button if b.label == "Start all").click().run()
    assert db.room(code).training is True
    next(b for b in at.button if b.label == "Pause all").click().run()
    assert db.room(code).training is False


def test_poll_counts_match_the_answers_and_reveal_reaches_everyone(data_dir, db):
    at, code, token = started()
    answers = ["faster", "slower", "faster", "same", "faster"]
    for i, answer in enumerate(answers):
        seat = student.join(db, code, f"S{i}")
        assert student.poll_answer(db, seat, "l4-euler", answer)
    at.run()
    bars = [c for c in at.get("plotly_chart") if '"type":"bar"' in c.proto.spec.replace(" ", "")]
    assert len(bars) == 1
    spec = json.loads(bars[0].proto.spec)["data"][0]
    assert dict(zip(spec["y"], spec["x"], strict=True)) == {"faster": 3, "slower": 1, "same": 1}
    next(b for b in at.button if b.label == "Reveal to everyone").click().run()
    assert db.is_revealed(code, "l4-euler")
    assert db.answer_poll(code, db.students(code, token)[0].student.id, "l4-euler", "slower") is False


def test_export_downloads_the_rooms_csv(data_dir, db):
    at, code, token = started()
    seat = student.join(db, code, "=cmd()")
    db.report(
        code, seat.student_id, student.report_from(np.zeros((3, 2)), 7, 1.5, 1.0, 2.5, {"solver": "rk4"})
    )
    at.run()
    download = at.get("download_button")[0]
    assert download.proto.label == "Download results (CSV)"
    rows = list(csv.DictReader(io.StringIO(db.export_csv(code, token).decode())))
    assert rows[0]["student"] == "'=cmd()" and rows[0]["step"] == "7" and rows[0]["setting:solver"] == "rk4"


def test_a_hostile_display_name_is_shown_as_text(data_dir, db):
    at, code, _token = started()
    seat = student.join(db, code, XSS)
    chips = {"solver": XSS, "[x](http://evil.example)": "1"}
    db.report(code, seat.student_id, student.report_from(np.zeros((3, 2)), 1, 1, 1, 1, chips))
    assert student.poll_answer(db, seat, "q", XSS)
    at.run()
    shown = texts(at)
    assert f"**{plain(XSS)}**" in shown
    assert not re.search(r"(?<!\\)<", shown), "every < is escaped"
    assert "](http" not in shown
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "<img" not in specs and "&lt;img src=x onerror=alert(1)&gt;" in specs


def test_the_store_is_opened_once_per_process(data_dir):
    from explorer.classroom import dashboard

    assert settings().data_dir == data_dir
    at = run()
    at.button[0].click().run()
    assert dashboard.store() is dashboard.store()


def test_a_class_on_redis(redis_url, data_dir, monkeypatch):
    """The same page on the Redis store (FME_ROOMS_URL), a real redis-server started by the fixture."""
    monkeypatch.setenv("FME_ROOMS_URL", redis_url)
    redis_db = open_store(redis_url)
    redis_db.r.flushdb()
    at, code, token = started()
    for name in ("Ada", XSS, "Kurt"):
        seat = student.join(redis_db, code, name)
        redis_db.report(
            code, seat.student_id, student.report_from(np.zeros((3, 2)), 5, 1, 1, 1, {"solver": "rk4"})
        )
    at = run({"room": code, "token": token})
    assert at.get("subheader")[0].value == "3 students" and len(at.get("plotly_chart")) == 3
    assert f"**{plain(XSS)}**" in texts(at)
    at.selectbox(key="fme_class_push_solver").set_value("euler")
    at.button(key="FormSubmitter:fme_class_push-Push settings").click().run()
    assert student.pending_push(redis_db, code, 0).notice == "Your teacher changed solver euler."
    assert not (tmp := data_dir / "rooms.db").exists(), f"{tmp} should not be made with Redis"
    redis_db.close()
