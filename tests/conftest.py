"""Shared test setup: browser tests are skipped, with the reason, where no Chromium can run; a real
redis-server for the classroom store's tests (``redis_url``)."""

import importlib.util
import shutil
import socket
import subprocess
import time

import pytest
import torch

from bench.chromium import CHROMIUM

# One torch thread for the whole suite (the app, its workers and the CLI do the same): faster for
# these small tensors, and steady when the 2 cores are shared. Test modules need not set it again.
torch.set_num_threads(1)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh FME_DATA_DIR (the rooms' SQLite file lives there) and the default store, not Redis."""
    monkeypatch.setenv("FME_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FME_ROOMS_URL", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_settings():
    """Each test reads the FME_* variables anew (a test may set them with monkeypatch.setenv)."""
    from explorer import settings

    settings.settings.cache_clear()
    settings.configure_torch.cache_clear()
    yield
    settings.settings.cache_clear()
    settings.configure_torch.cache_clear()


@pytest.fixture(autouse=True)
def no_first_view(monkeypatch):
    """An AppTest session's first run is the whole page (``compat.first_view``): there is no browser
    to draw the figure and ask for the rest. The servers the tests start keep the first view."""
    from explorer import compat

    monkeypatch.setattr(compat, "FIRST_VIEW", False)


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright (python) is not installed"
    if not shutil.which(CHROMIUM):
        return f"{CHROMIUM} is missing: run 'make browser' (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = browser_unavailable()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def open_panel():
    """Open a lazy Playground panel in an AppTest, as a click would: ``open_panel(at, "upload")``.

    The data tabs, "Share & export" and the sidebar's folded groups build their widgets only while
    open (first-paint speed).
    """
    from explorer.playground.page import DATA_TABS

    states = {
        "upload": ("fme_w_data_tab", DATA_TABS[2]),
        "export": ("fme_w_export", True),
        "particles": ("fme_w_particles_panel", True),
        "compare": ("fme_w_compare_panel", True),
        "training": ("fme_w_training_options", True),
    }

    def open_(at, panel: str):
        key, value = states[panel]
        at.session_state[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is missing: run 'make test' or 'apt-get install redis-server'")
    import redis

    port, folder = free_port(), tmp_path_factory.mktemp("redis")
    args = [exe, "--port", str(port), "--dir", str(folder), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*args, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"redis-server did not answer PING on port {port}") from None
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)
