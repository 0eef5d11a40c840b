"""The server settings a class depends on, read the way ``streamlit run`` reads them."""

from pathlib import Path

import pytest
from streamlit import config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project_config(monkeypatch):
    """Streamlit's options as parsed from the project's .streamlit/config.toml (the cwd's)."""
    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)
    yield config
    monkeypatch.undo()
    config.get_config_options(force_reparse=True)


def test_the_server_does_not_collect_garbage_after_every_script_run(project_config):
    # Streamlit's default gc.collect() after each run, fragment runs included, held the GIL ~0.1 s
    # each time: 38 % of the server's samples with ten sessions training (py-spy), control changes
    # 6.3 s p50 against 1.4 s without it (bench/classroom.py --sessions 10).
    assert project_config.get_option("runner.postScriptGC") is False


def test_the_server_runs_headless_without_usage_stats(project_config):
    assert project_config.get_option("server.headless") is True
    assert project_config.get_option("browser.gatherUsageStats") is False


def test_no_message_is_sent_as_a_reference_to_the_browsers_cache(project_config):
    # Under load Streamlit 1.67 mishandles cached-message references; each way ("Bad delta path
    # index", "Cached ForwardMsg MISS") stopped pages in bench/classroom.py with 30 sessions.
    assert project_config.get_option("global.minCachedMessageSize") >= 1e12


def test_the_widget_default_warning_is_off(project_config):
    # compat.widget_default passes each widget's session value as its default as well; Streamlit
    # would log "default value but also set via Session State" at every run.
    assert project_config.get_option("global.disableWidgetStateDuplicationWarning") is True


def test_the_server_does_not_watch_files(project_config):
    # Watching the whole project (.venv included) wrote 58,132 "Inotify queue overflowed" lines
    # in 75 minutes (issue 12); serving never reloads code.
    assert project_config.get_option("server.fileWatcherType") == "none"


def test_uploads_are_capped_at_what_the_playground_accepts(project_config):
    from explorer.playground.page import MAX_UPLOAD_MB

    # A 199 MB CSV under the 200 MB default peaked the server at 5 GB (issue 12).
    assert project_config.get_option("server.maxUploadSize") == MAX_UPLOAD_MB <= 5
