"""The lessons in a real browser: each page loads with no exception and draws its figures; a learner
can commit to a prediction and reveal the answer, and follow the link into the Playground.

Screenshots (1280x800) of every lesson, screen by screen, go to test-artifacts/lesson-<page>-<k>.png.
"""

from pathlib import Path

import pytest

from .conftest import ROOT, assert_no_exception, open_app, shoot, wait_for_app

pytestmark = pytest.mark.browser

PAGES = sorted((ROOT / "pages").glob("[0-9]*_*.py"))
LOAD_TIMEOUT_S = (
    150  # a lesson's first run trains small models; on a loaded 2-core machine that takes a while
)
SCREENS = 8
SCROLLER = "[data-testid='stMain']"


def url_path(page_file: Path) -> str:
    """st.navigation's URL for a page file: its name without the order prefix and the suffix."""
    return "/" + page_file.stem.split("_", 1)[1]


def scroll_to(page, y: int) -> int:
    """Scroll the app's main area to y (pixels); returns where it ended up."""
    return page.evaluate(
        f'(y) => {{ const m = document.querySelector("{SCROLLER}"); m.scrollTop = y; return m.scrollTop; }}',
        y,
    )


@pytest.mark.parametrize("page_file", PAGES, ids=lambda p: p.stem)
def test_lesson_loads_with_figures_and_no_exception(app, page, page_file):
    open_app(page, app.url(url_path(page_file)), timeout_s=LOAD_TIMEOUT_S)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=30_000)
    assert_no_exception(page)
    assert page.locator("h1").first.inner_text().startswith(page_file.stem[0])
    assert page.locator(".js-plotly-plot").count() >= 2, "a live figure and the pitfall's figure"
    assert page.locator(".katex").count() >= 1, "the key formulas"
    width = page.evaluate(
        "() => document.querySelector(\"[data-testid='stMainBlockContainer']\").getBoundingClientRect().width"
    )
    assert width > 850, f"the lesson should use the wide layout; its content is {width:.0f} px wide"
    broken = page.locator(
        ".katex-error, .katex [style*='color:#cc0000'], .katex [style*='color: rgb(204, 0, 0)']"
    )
    assert broken.count() == 0, f"KaTeX could not render: {broken.first.inner_text()}"
    shown = -1
    for k in range(SCREENS):
        y = scroll_to(page, k * 760)
        if y == shown:
            break
        shown = y
        page.wait_for_timeout(400)
        shoot(page, f"lesson-{page_file.stem}-{k}")
    assert_no_exception(page)


def test_predict_then_reveal_the_trajectory(app, page):
    open_app(page, app.url("/The_ODE_view"), timeout_s=LOAD_TIMEOUT_S)
    reveal = page.get_by_role("button", name="Reveal")
    assert reveal.is_disabled(), "no answer before a prediction"
    page.locator("[data-testid='stRadio'] label").filter(has_text="lower left").first.click()
    wait_for_app(page)
    page.get_by_role("button", name="Reveal").click()
    wait_for_app(page, LOAD_TIMEOUT_S)
    feedback = page.locator("[data-testid='stAlertContentSuccess'], [data-testid='stAlertContentError']")
    assert feedback.first.inner_text().startswith(("Right.", "Not quite"))
    page.wait_for_selector(".js-plotly-plot .slider-group", timeout=30_000)  # the animation, with its slider
    assert_no_exception(page)
    shoot(page, "lesson-1-revealed")


def test_the_playground_link_opens_the_playground_with_the_settings(app, page):
    open_app(page, app.url("/ODE_solvers"), timeout_s=LOAD_TIMEOUT_S)
    link = page.get_by_role("link", name="Open this in the Playground")
    href = link.get_attribute("href")
    assert href.startswith("./?") and "compare=1" in href
    with page.expect_popup() as popup:
        link.click()
    playground = popup.value
    wait_for_app(playground, LOAD_TIMEOUT_S)
    assert playground.url.startswith(app.url("/?")), playground.url
    assert "compare=1" in playground.url
    assert_no_exception(playground)
    playground.close()


def test_a_fresh_servers_first_visitor_can_go_straight_to_a_lesson(fresh_app, page):
    """Streamlit serves an app with a pages/ folder as an old-style multipage app until its main
    script has run once; the lesson must still come with the Playground-and-Lessons navigation."""
    solvers = next(p for p in PAGES if "solvers" in p.stem)
    open_app(page, fresh_app.url(url_path(solvers)), timeout_s=LOAD_TIMEOUT_S)
    page.wait_for_selector("h1", timeout=30_000)
    assert_no_exception(page)
    assert page.locator("h1").first.inner_text().startswith(solvers.stem[0])
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Playground" in nav and "Lessons" in nav, nav
    assert "streamlit app" not in nav.lower(), nav
    assert page.url.endswith(url_path(solvers))
