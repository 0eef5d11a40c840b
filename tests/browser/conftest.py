"""A real ``streamlit run`` and headless Chromium, shared by every browser test.

    def test_something(app, page):
        open_app(page, app.url("/?data=moons"))       # waits until the script has finished
        shoot(page, "something")                       # test-artifacts/something.png, 1280x800

``app`` serves streamlit_app.py, its pages/ included, on a free localhost port; ``page`` is a fresh
1280x800 tab per test. Lesson pages open at ``app.url("/<page_name>")``. The server and Chromium
live as long as this package's tests (scope "package"): a test elsewhere may start its own
Playwright, which cannot run while another sync Playwright is open in the same thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.chromium import CHROMIUM, CHROMIUM_ARGS, SETTLED_JS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class AppServer:
    base_url: str
    process: subprocess.Popen
    log: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def app():
    """``streamlit run streamlit_app.py`` on a free port, healthy before the first test."""
    yield from _serve("streamlit-server.log")


@pytest.fixture
def fresh_app():
    """A server of its own that no browser has visited yet (for first-visit behaviour)."""
    yield from _serve("streamlit-fresh-server.log")


def _serve(log_name: str):
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / log_name
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not become healthy; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield AppServer(base, process, log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    yield tab
    context.close()


def wait_for_app(page, timeout_s: float = 45) -> None:
    """Wait until the script run is over (``stApp`` says notRunning), nothing is pending, and a
    session's first view has become the whole page (``SETTLED_JS``)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_s * 1000)
    page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000)


def open_app(page, url: str, timeout_s: float = 45) -> None:
    """Navigate and wait for the app to finish its first run."""
    page.goto(url)
    wait_for_app(page, timeout_s)


def assert_no_exception(page) -> None:
    """No Streamlit exception box and no Python traceback on the page."""
    assert page.locator(".stException, [data-testid='stException']").count() == 0, page.inner_text("body")[
        :3000
    ]
    assert "Traceback" not in page.inner_text("body")


def shoot(page, name: str) -> Path:
    """A 1280x800 screenshot in test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
