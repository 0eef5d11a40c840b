"""The Classroom page in a real browser: a teacher, students in their own contexts, a hostile name.

Students' reports are made through the store (the same SQLite file as the server's, in a temp
FME_DATA_DIR), as their Playgrounds will make them. The dashboard's screenshot is kept in
test-artifacts/classroom-dashboard.png.
"""

import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from explorer.classroom import student
from explorer.rooms import open_store
from fmcore import datasets

from .conftest import VIEWPORT, assert_no_exception, open_app, shoot, wait_for_app

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
TILES = "[class*='st-key-fme_class_tile_']"
CLASS = [  # name, preset, solver, training progress in [0, 1]
    ("Ada", "moons", "heun", 1.0),
    ("Grace", "spirals", "rk4", 0.95),
    ("Alan", "8gaussians", "euler", 0.85),
    ("Emmy", "checkerboard", "midpoint", 0.6),
    (XSS, "circles", "dopri5", 0.9),
]


@pytest.fixture
def server(data_dir, fresh_app):
    """A server of its own whose store is the SQLite file under ``data_dir`` (listed first: set before it starts)."""
    return fresh_app


def samples(preset: str, progress: float, seed: int) -> np.ndarray:
    """What a run ``progress`` of the way through training might sample: noise moving onto the data."""
    data = datasets.sample(preset, 200, seed).numpy()
    noise = np.random.default_rng(seed).normal(size=data.shape)
    return progress * data + (1 - progress) * 0.8 * noise


def start_class(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    open_app(page, server.url("/classroom"))  # a fresh server's first page (compat: pages/classroom.py)
    page.get_by_role("button", name="Start a class").click()
    page.wait_for_selector("text=0 students", timeout=30_000)
    page.get_by_text("Teacher link: private").click()
    teacher = page.locator("[data-testid='stCode']", has_text="/classroom?")
    teacher.wait_for(timeout=30_000)  # the expander's rerun may take a while on a busy machine
    query = parse_qs(urlsplit(teacher.inner_text().strip()).query)
    return context, page, query["room"][0], query["token"][0]


def test_a_teacher_sees_each_students_run_and_students_cannot_open_the_dashboard(browser, server, data_dir):
    teacher, page, code, token = start_class(browser, server)
    assert_no_exception(page)
    store = open_store(None, data_dir=data_dir)
    students = []
    for i, (name, preset, solver, progress) in enumerate(CLASS):
        context = browser.new_context(viewport=VIEWPORT)
        students.append(context)
        seat = student.join(store, code, name, client=f"student-{i}")
        chips = {"data": preset, "solver": solver, "steps": 8}
        report = student.report_from(
            samples(preset, progress, i),
            int(3000 * progress),
            1.0 + (1 - progress),
            1.0,
            1 + 20 * (1 - progress) ** 2,
            chips,
        )
        store.report(code, seat.student_id, report)
    for i, answer in enumerate(["faster", "faster", "slower", "same", "faster"]):
        student.poll_answer(
            store,
            student.Membership(code, store.students(code, token)[i].student.id),
            "Will Heun need fewer steps?",
            answer,
        )
    # the live fragment picks the class up by itself (every 2 s), no reload
    page.wait_for_selector(f"text={len(CLASS)} students", timeout=20_000)
    page.wait_for_function(f'document.querySelectorAll("{TILES}").length === {len(CLASS)}', timeout=20_000)
    page.wait_for_timeout(2500)  # plotly draws
    body = page.inner_text("body")
    assert XSS in body  # shown, as the characters it is
    assert (
        page.evaluate(
            "[...document.querySelectorAll('img')].filter(i => i.getAttribute('src') === 'x').length"
        )
        == 0
    )
    assert_no_exception(page)
    shoot(page, "classroom-dashboard")
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.wait_for_timeout(2500)
    shoot(page, "classroom-dashboard-large")
    page.get_by_role("button", name=re.compile("Show large")).first.click()
    page.get_by_role("button", name=re.compile("Back to the grid")).wait_for(timeout=20_000)
    page.wait_for_function(f'document.querySelectorAll("{TILES}").length === 0', timeout=20_000)
    assert "Ada" in page.inner_text("body")  # most steps: first
    shoot(page, "classroom-one-run-large")

    # a student's own context: the link without the token, and with a guessed one, shows no data
    other = students[0].new_page()
    for url in (f"/classroom?room={code}", f"/classroom?room={code}&token=guess"):
        open_app(other, server.url(url))
        text = other.inner_text("body")
        assert "opens only from its teacher link" in text
        assert "Ada" not in text and "students" not in re.sub(r"Students:", "", text)
        assert other.locator(TILES).count() == 0
    # the teacher link works in any context
    open_app(other, server.url(f"/classroom?room={code}&token={token}"))
    other.wait_for_selector(f"text={len(CLASS)} students", timeout=20_000)
    wait_for_app(other)
    for context in (*students, teacher):
        context.close()
    store.close()
