"""A whole class in a real browser: a teacher and 5 students, each in a context of their own.

One fresh ``streamlit run`` (its store a SQLite file in a temp FME_DATA_DIR). The teacher goes
straight to /classroom on the fresh server; the students open the join link, join, and the
dashboard counts them; a pushed solver reaches every student's sampler; the students answer a
lesson's predict-then-see question and the dashboard's counts match; the teacher's reveal reaches
every lesson page; a student's context cannot open the dashboard without the token. Pages load in
parallel (every navigation is sent before any is waited for); no fixed sleeps: every wait is for
a condition. Screenshots (Start a class, a student's badge, the dashboard's polls) go to
test-artifacts/; docs/classroom.md shows them.
"""

import contextlib
import os
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from explorer.rooms import open_store

from .conftest import VIEWPORT, assert_no_exception, shoot, wait_for_app

pytestmark = pytest.mark.browser

NAMES = ["Ada", "Grace", "Alan", "Emmy", "<img src=x onerror=alert(1)>"]
ANSWERS = ["No, never", "No, never", "Yes, but less often", "No, never", "Yes, as often"]
TILES = "[class*='st-key-fme_class_tile_']"
PUSH_REACHES_S = 10
"""The issue's bound, for a machine with its cores to itself; on a shared one it is scaled by the
load per core (``reach_limit``): five full Playground reruns at once wait for the CPU like anything."""
LESSON = "The objective"
LOAD_S = 90


@pytest.fixture
def inline_training(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # 5 students need no engine process on 2 cores


@pytest.fixture
def server(data_dir, inline_training, fresh_app):
    return fresh_app


def text_of(page) -> str:
    return page.inner_text("body")


def start_class(browser, server):
    """The teacher opens /classroom as the fresh server's very first page and starts a class."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(server.url("/classroom"))
    wait_for_app(page)
    page.get_by_role("button", name="Start a class").wait_for(timeout=30_000)
    assert "Page not found" not in text_of(page)  # the workaround pages/classroom.py (compat)
    shoot(page, "classroom-start")
    page.get_by_role("button", name="Start a class").click()
    page.wait_for_selector("text=0 students", timeout=30_000)
    shoot(page, "classroom-started")
    page.get_by_text("Teacher link: private").click()
    teacher = page.locator("[data-testid='stCode']", has_text="/classroom?")
    teacher.wait_for(timeout=30_000)
    query = parse_qs(urlsplit(teacher.inner_text().strip()).query)
    return context, page, query["room"][0], query["token"][0]


def reach_limit() -> float:
    """PUSH_REACHES_S, times the machine's load per core when it is above 1 (others' work on it)."""
    return PUSH_REACHES_S * max(1.0, os.getloadavg()[0] / os.cpu_count())


def nfe_line(page) -> str:
    return page.locator("[data-testid='fm-nfe']").first.inner_text()


def test_a_class_of_five_joins_takes_a_push_and_answers_a_poll(browser, server, data_dir):
    teacher, dashboard, code, _ = start_class(browser, server)
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in NAMES]
    students = [c.new_page() for c in contexts]
    for page in (*students, dashboard):
        page.set_default_timeout(LOAD_S * 1000)  # five Playgrounds load at once on 2 shared cores
    for page in students:  # all five load at once
        page.goto(server.url(f"/?room={code}"), wait_until="commit")
    for page, name in zip(students, NAMES, strict=True):
        form = page.locator(".st-key-fme_room_join")
        form.wait_for()
        form.get_by_label("Your name (optional)").fill(name)
        form.get_by_role("button", name="Join").click()
    for page, name in zip(students, NAMES, strict=True):
        badge = page.locator(".st-key-fme_room_badge")
        badge.get_by_text("your teacher sees this run").wait_for()
        assert name in badge.inner_text() and code in badge.inner_text()
    hostile = students[-1]
    assert hostile.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    shoot(students[0], "classroom-student-badge")

    dashboard.wait_for_selector(f"text={len(NAMES)} students")
    dashboard.wait_for_function(f'document.querySelectorAll("{TILES}").length === {len(NAMES)}')
    assert all(name in text_of(dashboard) for name in NAMES)

    # a pushed solver reaches every student's sampler (the NFE line under it) within 10 s
    assert all(nfe_line(p).startswith("20 steps · 20 NFE") for p in students)  # Euler
    sidebar = dashboard.locator("[data-testid='stSidebar']")
    solver = sidebar.locator("[data-testid='stSelectbox']", has_text="Solver").locator("input")
    solver.click()
    solver.fill("heun")
    solver.press("Enter")
    sidebar.get_by_role("button", name="Push settings").click()
    store = open_store(None, data_dir=data_dir)
    while store.latest_push(code) is None:  # measured from the moment the room holds the push
        time.sleep(0.02)
    pushed = time.monotonic()
    store.close()
    dashboard.get_by_text("Pushed (version 1)").wait_for()
    reached = []  # seconds from the push until each student's sampler shows it (an upper bound:
    for page in students:  # the waits are one after another)
        page.wait_for_function(
            "(document.querySelector(\"[data-testid='fm-nfe']\")?.innerText ?? '').startsWith('20 steps · 40 NFE')"
        )
        reached.append(round(time.monotonic() - pushed, 1))
    limit = reach_limit()
    assert max(reached) <= limit, f"the push reached the students after {reached} s (limit {limit:.0f} s)"
    for page in students:
        page.wait_for_url(re.compile("solver=heun"))  # written at the end of that run
    shoot(students[0], "classroom-student-pushed")

    # each student answers the lesson's question: the dashboard's counts match
    for page in students:
        page.locator("[data-testid='stSidebarNav'] a", has_text=LESSON).click()
    for page, answer in zip(students, ANSWERS, strict=True):
        box = page.locator("[data-testid='stRadio']", has_text="Your prediction")
        box.wait_for()
        box.get_by_text(answer, exact=True).click()
    for page in students:
        page.get_by_text("your guess is sent to your teacher").wait_for()
    dashboard.get_by_text(f"{len(NAMES)} answers").wait_for()
    bars = """() => [...document.querySelectorAll('.js-plotly-plot')]
        .filter(p => p.data && p.data[0].type === 'bar')
        .map(p => Object.fromEntries(Array.from(p.data[0].y, (y, i) => [y, Number(p.data[0].x[i])])))"""
    expected = {a: ANSWERS.count(a) for a in set(ANSWERS)}
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # the count above the chart and its bars come from one read of the store, but plotly redraws
    # the bars a moment after React renders the text: wait for the redraw, then compare
    with contextlib.suppress(PlaywrightTimeout):
        dashboard.wait_for_function(
            f"() => ({bars})().some(c => Object.values(c).reduce((a, b) => a + b, 0) === {len(NAMES)})",
            timeout=10_000,
        )
    counts = dashboard.evaluate(bars)
    assert expected in counts, counts
    assert_no_exception(dashboard)
    dashboard.get_by_role("heading", name="Polls").scroll_into_view_if_needed()
    shoot(dashboard, "classroom-dashboard-poll")

    dashboard.get_by_role("button", name="Reveal to everyone").click()
    for page, answer in zip(students, ANSWERS, strict=True):
        page.get_by_text("Right." if answer == "No, never" else "Not quite").first.wait_for()
        assert_no_exception(page)

    # a student's own context: the dashboard link without the token shows nothing of the class
    other = contexts[0].new_page()
    other.set_default_timeout(LOAD_S * 1000)
    other.goto(server.url(f"/classroom?room={code}"))
    wait_for_app(other)
    other.get_by_text("opens only from its teacher link").wait_for()
    assert other.locator(TILES).count() == 0 and "Grace" not in text_of(other)
    for context in (*contexts, teacher):
        context.close()
