"""The Playground's SDE view in a real browser: jagged paths, and a picture fit for a class."""

import re

import pytest

from .conftest import assert_no_exception, open_app, shoot
from .test_playground import FLOW, LOSS, frame_shown, stat, wait_for_flow

pytestmark = pytest.mark.browser


def test_the_sde_view_draws_jagged_paths_and_says_its_steps_and_nfe(app, page):
    open_app(page, app.url("/?sampler=sde&steps=60"))
    wait_for_flow(page)
    assert_no_exception(page)
    assert "60 steps · 60 NFE" in stat(page, "fm-nfe") and "Euler-Maruyama" in stat(page, "fm-nfe")
    assert "SDE" in stat(page, "fm-caption")
    title = page.locator(f"{FLOW} .annotation-text").first.text_content()
    assert "Euler-Maruyama SDE, noise 1" in title
    # Show the frame at t = 0.5, as dragging the time slider there would.
    page.evaluate(f"() => Plotly.animate(document.querySelector('{FLOW}'), ['0.50'], {{mode: 'immediate'}})")
    page.wait_for_function(
        f"() => (document.querySelector('{FLOW} .slider-group > .slider-label')?.textContent ?? '').includes('0.50')",
        timeout=10_000,
    )
    assert "0.50" in frame_shown(page)
    shoot(page, "playground-sde")
    page.evaluate(f"() => Plotly.animate(document.querySelector('{FLOW}'), ['1.00'], {{mode: 'immediate'}})")
    page.wait_for_function(
        f"() => (document.querySelector('{FLOW} .slider-group > .slider-label')?.textContent ?? '').includes('1.00')",
        timeout=10_000,
    )
    shoot(page, "playground-sde-t1")


def test_a_mean_flow_trains_in_the_page_and_draws_its_jumps(app, page):
    open_app(page, app.url("/?objective=meanflow&nfe=2&field=learned"))
    wait_for_flow(page)
    page.get_by_role("button", name=re.compile("Train")).click()
    page.wait_for_selector(LOSS, state="attached", timeout=30_000)
    page.wait_for_function(  # some training, however loaded the machine; the pause then redraws
        "() => /step [1-9]/.test(document.querySelector(\"[data-testid='fm-train-stats']\")?.innerText ?? '')",
        timeout=90_000,
    )
    page.get_by_role("button", name=re.compile("Pause")).click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{FLOW} .annotation-text')]"
        ".some(a => a.textContent.includes('mean flow'))",
        timeout=30_000,
    )
    assert_no_exception(page)
    title = page.locator(f"{FLOW} .annotation-text").first.text_content()
    assert "mean flow" in title and "2 steps · 2 NFE" in title
    assert "2 steps · 2 NFE" in stat(page, "fm-nfe")
    shoot(page, "playground-mean-flow")
