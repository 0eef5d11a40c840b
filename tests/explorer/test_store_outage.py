"""A classroom store that stops answering (Redis down, SQLite locked) is one plain sentence, never a
traceback, and costs no one their seat: against a real redis-server that is killed mid-class, and a
real SQLite file another connection holds locked."""

import shutil
import sqlite3
import subprocess
import time

import numpy as np
import pytest
import redis
from streamlit.testing.v1 import AppTest

from explorer.rooms import StoreUnavailable, StudentReport, open_store
from tests.conftest import free_port


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, so that the test may kill it: (url, process)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is missing: run 'make test' or 'apt-get install redis-server'")
    port = free_port()
    args = [exe, "--port", str(port), "--dir", str(tmp_path), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*args, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    client, deadline = redis.Redis(port=port), time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0", server
    server.kill()
    server.wait()


def _kill(server) -> None:
    server.kill()
    server.wait()


def _report() -> StudentReport:
    return StudentReport(step=10, loss=1.0, loss_floor=0.5, quality=2.0, points=np.zeros((4, 2), np.float32))


def test_a_killed_redis_raises_store_unavailable_from_every_call(own_redis):
    url, server = own_redis
    store = open_store(url)
    code, token = store.create_room()
    student_id = store.join(code, "Ada")
    _kill(server)
    calls = [
        lambda: store.room(code),
        lambda: store.report(code, student_id, _report()),
        lambda: store.students(code, token),
        lambda: store.answer_poll(code, student_id, "q", "a"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match=r"the classroom store \(Redis\) did not answer"):
            call()


def test_a_locked_sqlite_file_raises_store_unavailable_and_the_seat_works_after(tmp_path):
    store = open_store(None, data_dir=tmp_path)
    code, _ = store.create_room()
    student_id = store.join(code, "Ada")
    store._db.execute("PRAGMA busy_timeout = 50")  # not the 10 s a server waits for a busy file
    holder = sqlite3.connect(tmp_path / "rooms.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(
        StoreUnavailable, match=r"the classroom store \(SQLite\) did not answer: database is locked"
    ):
        store.report(code, student_id, _report())
    holder.execute("ROLLBACK")
    store.report(code, student_id, _report())  # the same seat, once the file is free
    assert store.room(code).code == code


def test_a_student_in_a_class_whose_redis_dies_keeps_the_seat_and_reads_one_sentence(own_redis, monkeypatch):
    from tests.app.apptest import start

    url, server = own_redis
    monkeypatch.setenv("FME_ROOMS_URL", url)
    monkeypatch.setenv("FME_TRAINING", "inline")
    code, _ = open_store(url).create_room()
    at = start({"room": code})
    next(b for b in at.button if b.label == "Join").click()
    at.run()
    assert not at.exception and any("In class" in m.value for m in at.markdown)
    _kill(server)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any("cannot reach its store just now" in w for w in warnings), warnings
    assert any("In class" in m.value for m in at.markdown)  # still seated: the store may come back
    assert at.get("plotly_chart"), "the Playground itself goes on"


def test_the_teachers_dashboard_says_the_store_is_not_answering(own_redis, monkeypatch):
    url, server = own_redis
    monkeypatch.setenv("FME_ROOMS_URL", url)
    code, token = open_store(url).create_room()
    _kill(server)

    def page():
        from explorer.classroom import dashboard

        dashboard.main()

    at = AppTest.from_function(page, default_timeout=60)
    at.query_params["room"], at.query_params["token"] = code, token
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    outages = [w.value for w in at.warning if "The classroom store is not answering just now" in w.value]
    assert len(outages) == 1, outages  # said once, not by each part of the page
