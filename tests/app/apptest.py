"""The Playground under Streamlit's AppTest, started the way the AppTest suites share."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def start(query: dict | None = None) -> AppTest:
    """A new session of the Playground with ``query`` as its URL parameters, after its first run.

    Set ``FME_TRAINING=inline`` first (a monkeypatch): AppTest trains in its own thread, no engine process.
    """
    at = AppTest.from_file(APP, default_timeout=180)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
