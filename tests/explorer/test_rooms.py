"""Classroom storage, run against both real stores: SQLite in a temp folder and a real redis-server.

The Redis server is started by a fixture on a free port in a temp folder and stopped after; where
``redis-server`` is missing (``make test`` installs it) those cases are skipped with the reason.
"""

import base64
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from explorer.rooms import (
    Limits,
    PushedSettings,
    RoomFull,
    StudentReport,
    TooManyAttempts,
    UnknownRoom,
    open_store,
)
from explorer.rooms.model import CODE_ALPHABET, CODE_LENGTH
from explorer.rooms.redis_store import RedisStore, room_key
from explorer.rooms.sqlite import SQLiteStore
from explorer.rooms.store import token_hash
from tests.clock import Clock

ROOT = Path(__file__).resolve().parents[2]
XSS = "<img src=x onerror=alert(1)>"
HOUR = 3600.0


@pytest.fixture(params=["sqlite", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_store(kind, request, tmp_path, clock):
    """``make_store(limits=...)``: a new store object on this test's one database (SQLite file or
    an emptied Redis), so two calls are two replicas of one server."""
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        open_store(url).r.flushdb()
    else:
        url = f"sqlite:///{tmp_path / 'data' / 'rooms.db'}"
    opened = []

    def make(limits: Limits = Limits()):
        store = open_store(url, limits=limits, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store):
    return make_store()


def stored_text(store) -> str:
    """Everything the store holds, as one string (to look for secrets in it)."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            return "\n".join(db.iterdump())
    parts = []
    for key in store.r.scan_iter("*"):
        kind = store.r.type(key)
        value = {"hash": store.r.hgetall, "set": store.r.smembers, "zset": lambda k: store.r.zrange(k, 0, -1)}
        parts.append(f"{key} {value[kind](key)}")
    return "\n".join(parts)


def report(step=10, points=None, **chips) -> StudentReport:
    if points is None:
        points = np.random.default_rng(max(step, 0)).normal(size=(50, 2)).astype(np.float32)
    return StudentReport(step=step, loss=1.5, loss_floor=1.0, quality=3.0, chips=chips, points=points)


def test_a_class_from_start_to_dashboard(store, clock):
    code, token = store.create_room()
    assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
    ada = store.join(code, "Ada")
    clock.advance(1)
    anon = store.join(code.lower()[:3] + "-" + code.lower()[3:])  # as a student might type it
    points = np.random.default_rng(0).uniform(-3, 3, size=(200, 2)).astype(np.float32)
    store.report(code, ada, report(step=120, points=points, solver="euler", data="moons"))

    seats = store.students(code, token)
    assert [s.student.id for s in seats] == [ada, anon]  # in joining order
    assert seats[0].student.name == "Ada"
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ [1-9][0-9]", seats[1].student.name)  # "Curious Otter 17"
    first = seats[0].report
    assert (first.step, first.loss, first.loss_floor, first.quality) == (120, 1.5, 1.0, 3.0)
    assert dict(first.chips) == {"solver": "euler", "data": "moons"}
    assert first.points.dtype == np.float32 and first.points.shape == (200, 2)
    # stored as float16: relative error at most 2^-11 (half an ulp of a 10-bit mantissa)
    np.testing.assert_allclose(first.points, points, rtol=2**-11, atol=0)
    assert seats[1].report is None and seats[1].answers == {}


def test_a_new_report_replaces_the_last_and_marks_the_student_seen(store, clock):
    code, token = store.create_room()
    sid = store.join(code, "Ada")
    store.report(code, sid, report(step=1))
    clock.advance(30)
    store.report(code, sid, report(step=2))
    (seat,) = store.students(code, token)
    assert seat.report.step == 2
    assert seat.student.last_seen - seat.student.joined == 30


def test_a_student_reports_only_into_their_own_room(store):
    code, token = store.create_room()
    other, _ = store.create_room()
    sid = store.join(other)
    with pytest.raises(UnknownRoom, match="not in the class"):
        store.report(code, sid, report())
    assert store.students(code, token) == []


def test_a_report_before_the_first_step_keeps_its_nan_loss(store):
    code, token = store.create_room()
    sid = store.join(code)
    store.report(code, sid, StudentReport(step=0, loss=float("nan"), loss_floor=1.0, quality=float("inf")))
    (seat,) = store.students(code, token)
    assert np.isnan(seat.report.loss) and seat.report.quality == float("inf")
    assert seat.report.points.shape == (0, 2)


def test_names_are_data_kept_as_given(store):
    code, token = store.create_room()
    ids = [store.join(code, name) for name in (XSS, "  **bold** & `code`  ", "Zo\x00e\u202e\n", "   ")]
    names = [s.student.name for s in store.students(code, token)]
    assert names[:3] == [XSS, "**bold** & `code`", "Zoe"]  # trimmed, control characters removed
    assert names[3] != "" and len(ids) == 4  # blank: a pseudonym
    with pytest.raises(ValueError, match="display name is 41 characters long; at most 40"):
        store.join(code, "x" * 41)


def test_teacher_calls_need_the_token(store):
    code, token = store.create_room()
    _, other_token = store.create_room()  # a real token, of another room
    sid = store.join(code)
    calls = [
        lambda t: store.check_token(code, t),
        lambda t: store.students(code, t),
        lambda t: store.push_settings(code, t, PushedSettings(solver="heun")),
        lambda t: store.set_training(code, t, True),
        lambda t: store.poll_counts(code, t, "q1"),
        lambda t: store.reveal(code, t, "q1"),
        lambda t: store.export_csv(code, t),
    ]
    for call in calls:
        for wrong in ("", token[:-1], other_token, sid, token_hash(token)):
            with pytest.raises(PermissionError, match="teacher link is not valid"):
                call(wrong)
        call(token)
    assert store.latest_push(code).solver == "heun"


def test_the_token_is_random_and_kept_only_as_its_hash(store):
    code, token = store.create_room()
    assert len(base64.urlsafe_b64decode(token + "=")) >= 16  # >= 128 bits
    assert len({store.create_room()[1] for _ in range(5)} | {token}) == 6
    store.join(code, "Ada")
    text = stored_text(store)
    assert token not in text
    assert token_hash(token) in text
    assert code in text  # the dump holds the room: the check above looked in the right place


def test_wrong_codes_are_rate_limited_per_client(make_store, clock):
    store = make_store(Limits(failed_joins_per_minute=3))
    code, _ = store.create_room()
    wrong = "ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY"
    for _ in range(3):
        with pytest.raises(UnknownRoom, match="no class has the code"):
            store.join(wrong, client="10.0.0.1")
    with pytest.raises(TooManyAttempts, match="wait a minute"):
        store.join(code, client="10.0.0.1")  # even the right code: guessing gains nothing
    assert store.join(code, client="10.0.0.2")  # another client is not blocked
    for _ in range(5):
        store.join(code, client="10.0.0.2")  # right codes do not count
    clock.advance(61)
    assert store.join(code, client="10.0.0.1")
    assert "10.0.0.1" not in stored_text(store)  # clients are kept hashed


def test_caps_on_students_rooms_and_reports(make_store):
    store = make_store(
        Limits(students_per_room=2, rooms_per_server=2, points_per_report=10, chips_per_report=2)
    )
    code, _ = store.create_room()
    sid = store.join(code)
    store.join(code)
    with pytest.raises(RoomFull, match=r"class is full \(2 students"):
        store.join(code)
    store.create_room()
    with pytest.raises(RoomFull, match="already holds 2 classes"):
        store.create_room()
    store.report(code, sid, report(points=np.zeros((10, 2))))
    bad = {
        "at most 10 points": report(points=np.zeros((11, 2))),
        r"\(n, 2\) array": report(points=np.zeros((5, 3))),
        "finite": report(points=np.full((2, 2), np.nan)),
        "at most 2 chips": report(points=np.zeros((1, 2)), a="1", b="2", c="3"),
        "chip value is 65 characters long; at most 64": report(points=np.zeros((1, 2)), solver="x" * 65),
        "step must be >= 0": report(step=-1, points=np.zeros((1, 2))),
    }
    for message, rep in bad.items():
        with pytest.raises(ValueError, match=message):
            store.report(code, sid, rep)


def test_rooms_expire_after_the_idle_time_with_their_students(make_store, clock):
    store = make_store(Limits(idle_seconds=2 * HOUR))
    code, token = store.create_room()
    sid = store.join(code, "Ada")
    clock.advance(2 * HOUR - 1)
    store.report(code, sid, report())  # activity keeps the room alive
    clock.advance(2 * HOUR - 1)
    assert store.room(code).code == code
    assert store.expire() == 0
    clock.advance(2)
    for call in (
        lambda: store.room(code),
        lambda: store.students(code, token),
        lambda: store.report(code, sid, report()),
        lambda: store.join(code),
    ):
        with pytest.raises(UnknownRoom):
            call()
    assert store.expire() == 1
    text = stored_text(store)
    assert sid not in text and "Ada" not in text  # student data lives only as long as the room
    later, _ = store.create_room()
    assert store.expire(now=clock() + 2 * HOUR) == 0
    assert store.expire(now=clock() + 2 * HOUR + 1) == 1  # ``now`` given: no clock needed
    with pytest.raises(UnknownRoom):
        store.join(later)


def test_the_default_idle_time_is_twelve_hours(store, clock):
    code, _ = store.create_room()
    clock.advance(12 * HOUR)
    assert store.room(code).code == code
    clock.advance(1)
    with pytest.raises(UnknownRoom):
        store.room(code)


def test_pushed_settings_carry_a_version_each_student_applies_once(store):
    code, token = store.create_room()
    assert store.latest_push(code) is None
    first = store.push_settings(code, token, PushedSettings(solver="heun", steps=8))
    assert first.version == 1 and first.changed() == {"solver": "heun", "steps": 8}
    applied, changes = 0, []
    for _ in range(3):  # a student's redraws
        pushed = store.latest_push(code)
        if pushed is not None and pushed.version > applied:
            applied, changes = pushed.version, [*changes, pushed.changed()]
    second = store.push_settings(code, token, PushedSettings(data="moons", coupling="ot"))
    assert second.version == 2 and store.latest_push(code) == second
    assert changes == [{"solver": "heun", "steps": 8}]
    assert store.room(code).push == second
    with pytest.raises(ValueError, match="positive whole number"):
        store.push_settings(code, token, PushedSettings(steps=0))
    assert store.latest_push(code).version == 2  # a refused push costs no version


def test_training_is_started_and_paused_for_the_room(store):
    code, token = store.create_room()
    assert store.room(code).training is False
    store.set_training(code, token, True)
    assert store.room(code).training is True
    store.set_training(code, token, False)
    assert store.room(code).training is False


def test_polls_count_answers_and_close_on_reveal(make_store):
    store = make_store(Limits(polls_per_room=2))
    code, token = store.create_room()
    a, b, c = (store.join(code, name) for name in "abc")
    assert store.answer_poll(code, a, "q1", "left")
    assert store.answer_poll(code, b, "q1", "right")
    assert store.answer_poll(code, c, "q1", "right")
    assert store.answer_poll(code, a, "q1", "right")  # a changes their mind before the reveal
    store.answer_poll(code, a, "q2", "yes")
    poll = store.poll_counts(code, token, "q1")
    assert dict(poll.counts) == {"right": 3} and not poll.revealed
    assert not store.is_revealed(code, "q1")
    store.reveal(code, token, "q1")
    assert store.is_revealed(code, "q1") and store.room(code).revealed == {"q1"}
    assert store.answer_poll(code, b, "q1", "left") is False  # closed: nothing changes
    assert dict(store.poll_counts(code, token, "q1").counts) == {"right": 3}
    assert store.poll_counts(code, token, "q1").revealed
    with pytest.raises(ValueError, match="already has 2 polls"):
        store.answer_poll(code, b, "q3", "x")
    seats = store.students(code, token)
    assert [dict(s.answers) for s in seats] == [
        {"q1": "right", "q2": "yes"},
        {"q1": "right"},
        {"q1": "right"},
    ]
    with pytest.raises(UnknownRoom, match="not in the class"):
        store.answer_poll(code, "f" * 32, "q1", "x")


def test_csv_export_holds_each_students_results_and_no_formulas(store, clock):
    code, token = store.create_room()
    names = ["Ada", '=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", XSS]
    ids = []
    for name in names:
        ids.append(store.join(code, name))
        clock.advance(1)
    store.report(
        code, ids[0], replace(report(step=500, solver="heun", data="moons"), loss=-0.5, quality=1.25)
    )
    store.report(code, ids[1], report(step=20, solver="=cmd|' /C calc'!A0"))
    store.answer_poll(code, ids[0], "q1", "right")
    store.answer_poll(code, ids[2], "q1", "-left")

    rows = list(csv.DictReader(io.StringIO(store.export_csv(code, token).decode("utf-8"))))
    assert [r["student"] for r in rows] == [
        "Ada",
        '\'=HYPERLINK("http://x","y")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        XSS,
    ]
    ada = rows[0]
    assert (ada["step"], ada["loss"], ada["loss_floor"], ada["quality"]) == ("500", "-0.5", "1.0", "1.25")
    assert (ada["setting:solver"], ada["setting:data"], ada["poll:q1"]) == ("heun", "moons", "right")
    assert rows[1]["setting:solver"] == "'=cmd|' /C calc'!A0"
    assert rows[2]["poll:q1"] == "'-left" and rows[2]["step"] == ""
    assert float(rows[1]["last_seen"]) - float(rows[1]["joined"]) >= 0


def test_two_store_objects_on_one_database_see_each_others_writes(make_store):
    teacher_side, student_side = make_store(), make_store()  # two replicas of the server
    code, token = teacher_side.create_room()
    sid = student_side.join(code, "Ada")
    student_side.report(code, sid, report(step=7))
    assert [s.report.step for s in teacher_side.students(code, token)] == [7]
    teacher_side.push_settings(code, token, PushedSettings(solver="rk4"))
    assert student_side.latest_push(code).solver == "rk4"
    teacher_side.reveal(code, token, "q1")
    assert student_side.is_revealed(code, "q1")


def test_many_students_reporting_at_once(make_store):
    replicas = [make_store(), make_store()]
    code, token = replicas[0].create_room()
    errors = []

    def student(i: int) -> None:
        try:
            store = replicas[i % 2]
            sid = store.join(code, f"student {i}")
            for step in range(1, 21):
                store.report(code, sid, report(step=step, points=np.full((200, 2), i, np.float32)))
            store.answer_poll(code, sid, "q1", str(i % 3))
        except Exception as e:  # collected: an assertion in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seats = replicas[1].students(code, token)
    assert len(seats) == 12 and {s.report.step for s in seats} == {20}
    assert {s.student.name: float(s.report.points[0, 0]) for s in seats} == {
        f"student {i}": i for i in range(12)
    }
    assert dict(replicas[0].poll_counts(code, token, "q1").counts) == {"0": 4, "1": 4, "2": 4}


WRITER = """
import sys
import numpy as np
from explorer.rooms import StudentReport, open_store

store = open_store(sys.argv[1])
for i in range(5):
    sid = store.join(sys.argv[2], f"{sys.argv[3]}-{i}")
    for step in range(1, 11):
        store.report(sys.argv[2], sid, StudentReport(step, 1.0, 1.0, 1.0, points=np.zeros((200, 2))))
"""


def test_server_processes_share_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'rooms.db'}"
    store = open_store(url)
    code, token = store.create_room()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, code, f"p{n}"], cwd=ROOT) for n in range(3)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0]
    seats = store.students(code, token)
    assert sorted(s.student.name for s in seats) == sorted(f"p{n}-{i}" for n in range(3) for i in range(5))
    assert {s.report.step for s in seats} == {10}
    store.close()


def test_every_redis_key_of_a_room_expires_by_itself(redis_url):
    store = open_store(redis_url, limits=Limits(idle_seconds=HOUR))
    store.r.flushdb()
    code, token = store.create_room()
    sid = store.join(code, "Ada")
    store.report(code, sid, report())
    store.answer_poll(code, sid, "q1", "a")
    store.reveal(code, token, "q1")
    keys = list(store.r.scan_iter("fme:room:*"))
    assert len(keys) == 7  # the room hash and its six parts, all present
    assert all(0 < store.r.ttl(k) <= HOUR + 60 for k in keys)
    store.close()


def test_redis_publishes_each_push(redis_url):
    store = open_store(redis_url)
    code, token = store.create_room()
    got, arrived = [], threading.Event()
    listener = store.subscribe(code, lambda pushed: (got.append(pushed), arrived.set()))
    try:
        channel = f"{room_key(code)}:push"
        deadline = time.monotonic() + 30  # the subscription is live once the server counts it
        while store.r.pubsub_numsub(channel)[0][1] < 1:
            assert time.monotonic() < deadline, "the listener never subscribed"
            time.sleep(0.01)
        pushed = store.push_settings(code, token, PushedSettings(schedule="cosine"))
        assert arrived.wait(5)
        assert got == [pushed] and pushed.version == 1
    finally:
        listener.stop()
        listener.join(timeout=5)
        store.close()


def test_open_store_reads_the_url(tmp_path):
    default = open_store(None, data_dir=tmp_path / "data")
    assert isinstance(default, SQLiteStore) and default.path == tmp_path / "data" / "rooms.db"
    named = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(named, SQLiteStore) and named.path == tmp_path / "x.db"
    with sqlite3.connect(named.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    for bad in ("postgres://x/y", "sqlite://", "rooms.db"):
        with pytest.raises(ValueError, match="sqlite:///"):
            open_store(bad)
    for store in (default, named):
        store.close()


def test_a_redis_url_opens_redis(redis_url):
    store = open_store(redis_url.replace("/0", "/1"))
    assert isinstance(store, RedisStore) and store.r.connection_pool.connection_kwargs["db"] == 1
    store.close()


def test_the_rooms_package_imports_no_ui():
    probe = "import json, sys, explorer.rooms.sqlite, explorer.rooms.redis_store; print(json.dumps(list(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    modules = {name.split(".")[0] for name in json.loads(loaded.stdout)}
    assert "explorer" in modules and not modules & {"streamlit", "plotly", "torch", "fmcore"}
