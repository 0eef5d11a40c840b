"""Labelled data in a real browser: two strokes in two brush colours are two classes."""

import re

import pytest

from .conftest import assert_no_exception, open_app, shoot, wait_for_app
from .test_playground import draw_stroke, stat, wait_for_flow

pytestmark = pytest.mark.browser

COUNT = "[data-testid='fm-point-count']"


def _stroke(page, pad, points) -> None:
    pad.wait_for(timeout=30_000)
    page.wait_for_timeout(300)  # fabric.js binds its mouse handlers once the canvas is mounted
    draw_stroke(page, pad, points)


def test_two_strokes_in_two_colours_are_two_classes(app, page):
    open_app(page, app.url("/"))
    page.get_by_role("tab", name=re.compile("Draw")).click()
    _stroke(
        page, page.locator(".st-key-fme_pad_0 canvas.upper-canvas"), [(0.2, 0.3), (0.5, 0.25), (0.8, 0.3)]
    )
    page.wait_for_function(
        f"() => !(document.querySelector(\"{COUNT}\")?.textContent ?? '0 ').startsWith('0 ')", timeout=20_000
    )
    wait_for_app(page)
    assert "classes" not in stat(page, "fm-point-count")  # one colour: unlabelled

    page.locator(".st-key-fme_w_brush [role='radiogroup'] button", has_text="● 1").click()
    page.wait_for_timeout(500)  # the rerun that hands the pad its new colour starts after the click
    wait_for_app(page)
    _stroke(
        page, page.locator(".st-key-fme_pad_1 canvas.upper-canvas"), [(0.2, 0.75), (0.5, 0.7), (0.8, 0.75)]
    )
    page.wait_for_function(
        f"() => (document.querySelector(\"{COUNT}\")?.textContent ?? '').includes('classes')", timeout=20_000
    )
    wait_for_app(page)
    wait_for_flow(page)
    assert_no_exception(page)
    assert re.search(r"· 2 classes", stat(page, "fm-point-count"))
    assert "pts=" in page.url and "lab=" in page.url  # the classes are in the share link too
    options = page.locator(".st-key-fme_w_class_label [role='radiogroup'] button").all_inner_texts()
    assert [o.strip() for o in options] == ["all", "● 0", "● 1"]
    shoot(page, "playground-drawn-classes")

    # Class 1 (the lower stroke, y down on the pad) is the exact field of its own points only.
    page.locator(".st-key-fme_w_class_label [role='radiogroup'] button", has_text="● 1").click()
    page.wait_for_url(re.compile("class_label=1"), timeout=20_000)  # written at the end of the run
    wait_for_app(page)
    wait_for_flow(page)
    lowest = page.evaluate(
        """() => {
            const plot = document.querySelector('.st-key-fme_flow_chart .js-plotly-plot');
            const frames = plot._transitionData._frames;
            const index = plot._fullData.findIndex(t => t.name === 'particles z_t');
            const last = frames[frames.length - 1];
            let ys = last.data[last.traces.indexOf(index)].y;
            if (ys.bdata) {  // plotly's binary array: base64 float32
                ys = new Float32Array(Uint8Array.from(atob(ys.bdata), c => c.charCodeAt(0)).buffer);
            }
            return Array.from(ys).filter(y => y > 0).length / ys.length;
        }"""
    )
    assert lowest < 0.1, f"{lowest:.0%} of class 1's particles ended in the upper half"


def test_the_labelled_view_in_front_of_a_class(app, page):
    open_app(page, app.url("/?data=8gaussians&class_label=2&guidance=1.5"))
    wait_for_flow(page)
    assert_no_exception(page)
    assert (
        page.locator(".st-key-fme_w_class_label [role='radiogroup'] button[aria-checked='true']")
        .inner_text()
        .strip()
        == "● 2"
    )
    shoot(page, "playground-labels")
    page.evaluate(  # the last frame, t = 1: the class's particles on its own coloured points
        """() => Plotly.animate(document.querySelector('.st-key-fme_flow_chart .js-plotly-plot'), ['1.00'],
            {mode: 'immediate', frame: {duration: 0, redraw: false}, transition: {duration: 0}})"""
    )
    page.wait_for_timeout(500)
    shoot(page, "playground-labels-t1")
