"""Rooms expire after a configurable idle time: FME_ROOM_IDLE_HOURS reaches the app's store and its words."""

import pytest

from explorer.classroom import dashboard, session
from explorer.rooms import UnknownRoom
from explorer.settings import Settings, read


def test_the_idle_time_defaults_to_twelve_hours_and_is_read_in_hours():
    assert Settings().room_idle_hours == read({}).room_idle_hours == 12.0
    assert read({"FME_ROOM_IDLE_HOURS": " 0.5 "}).room_idle_hours == 0.5


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf", "nan"])
def test_a_bad_idle_time_names_the_variable(value):
    with pytest.raises(ValueError, match="FME_ROOM_IDLE_HOURS must be"):
        read({"FME_ROOM_IDLE_HOURS": value})


@pytest.mark.parametrize("hours, words", [("12", "12 h"), ("2.5", "2.5 h"), ("0.5", "30 min")])
def test_the_apps_store_expires_rooms_after_the_set_time_and_says_so(data_dir, monkeypatch, hours, words):
    monkeypatch.setenv("FME_ROOM_IDLE_HOURS", hours)
    dashboard._open.clear()  # one store per process: a fresh one for this setting
    store = dashboard.store()
    assert store.limits.idle_seconds == float(hours) * 3600
    code, _ = store.create_room()
    room = store.room(code)
    assert store.expire(now=room.last_active + float(hours) * 3600 - 1) == 0
    assert store.expire(now=room.last_active + float(hours) * 3600 + 1) == 1
    with pytest.raises(UnknownRoom):
        store.room(code)
    assert f"(a class ends after {words} idle)" in session.refusal(UnknownRoom("gone"), code)
    assert dashboard.idle_text() == words
    store.close()
    dashboard._open.clear()
