"""The Playground in a real browser: what a person does with a mouse, and what they then see."""

import re
import time
from pathlib import Path

import pytest

from .conftest import assert_no_exception, open_app, shoot, wait_for_app

pytestmark = pytest.mark.browser

FLOW = ".st-key-fme_flow_chart .js-plotly-plot"
LOSS = ".st-key-fme_loss .js-plotly-plot"


def wait_for_flow(page, timeout_s=60):
    page.wait_for_selector(f"{FLOW} .scatterlayer .trace", timeout=timeout_s * 1000)


def frame_shown(page) -> str:
    """The slider's current label, e.g. 't = 0.42'."""
    return page.locator(f"{FLOW} .slider-group > .slider-label").first.text_content()


def stat(page, testid: str) -> str:
    return page.locator(f"[data-testid='{testid}']").first.inner_text()


def draw_stroke(page, pad, points) -> None:
    """One mouse stroke on the drawing pad through ``points``, (x, y) as fractions of its box."""
    box = pad.bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=4)
    page.mouse.up()


def test_first_paint_then_scrub_the_time_slider(app, page):
    started = time.perf_counter()
    open_app(page, app.url("/"))
    wait_for_flow(page)
    first_paint = time.perf_counter() - started
    assert_no_exception(page)
    assert "20 steps · 20 NFE" in stat(page, "fm-nfe")
    assert frame_shown(page).strip() == "t = 0.00 · noise"
    # plotly.js kept the figure's own margins: one that it has to widen (for the slider or the y
    # tick labels) makes it draw the whole figure a second time on the first paint
    size, margin = page.evaluate(
        f"() => {{ const l = document.querySelector('{FLOW}')._fullLayout; return [l._size, l.margin]; }}"
    )
    assert {side: size[side] for side in "lrtb"} == {side: margin[side] for side in "lrtb"}
    shoot(page, "playground-t0")

    # Scrub: drag the slider's grip to the far right (t = 1), then back to the middle.
    rail = page.locator(f"{FLOW} .slider-rail-rect").bounding_box()
    y = rail["y"] + rail["height"] / 2
    grip = page.locator(f"{FLOW} .slider-grip-rect").bounding_box()
    page.mouse.move(grip["x"] + grip["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(rail["x"] + rail["width"] * 0.5, y, steps=8)
    page.mouse.move(rail["x"] + rail["width"] - 1, y, steps=8)
    page.mouse.up()
    page.wait_for_function(
        f"() => (document.querySelector('{FLOW} .slider-group > .slider-label')?.textContent ?? '').includes('1.00')",
        timeout=10_000,
    )
    # the particles moved with the slider: their colour is the data colour at t = 1
    colour = page.evaluate(
        f"""() => {{
            const plot = document.querySelector('{FLOW}');
            const trace = plot._fullData.find(t => t.name === 'particles z_t');
            return trace.marker.color;
        }}"""
    )
    assert colour.lower() == "#ffb547"
    shoot(page, "playground-t1")
    print(f"first paint of the animated figure: {first_paint:.1f} s")


FIRST_PAINT_JS = """(() => {
  new MutationObserver(() => {
    const plot = document.querySelector('.st-key-fme_flow_chart .js-plotly-plot');
    if (window.__firstPaint || !plot || !plot.querySelector('.scatterlayer .trace')) return;
    window.__firstPaint = {
      top: plot.getBoundingClientRect().top,
      frames: (plot._transitionData?._frames ?? []).length,
      traces: plot._fullData.map(t => t.name),
      drawnTrigger: !!document.querySelector('.st-key-fme_figure_drawn'),
      toolbarWidgets: document.querySelectorAll(
        ".st-key-fme_toolbar :is([data-testid='stButtonGroup'], [data-testid='stSlider'])").length,
    };
  }).observe(document, {childList: true, subtree: true});
})();"""


@pytest.mark.parametrize("query", ["/?data=moons", "/?data=swissroll"])
def test_a_new_visitors_first_view_is_animated_and_stays_put(app, page, query):
    """The first view (``compat.first_view``): the exact field and its particles, animated, with the
    toolbar's room but not its widgets; the whole page then arrives around the figure without
    moving it (labelled data has a two-row toolbar, unlabelled one row)."""
    page.add_init_script(FIRST_PAINT_JS)
    open_app(page, app.url(query))
    first = page.evaluate("() => window.__firstPaint")
    assert first["drawnTrigger"] and first["frames"] == 11
    assert {"velocity v(z, t)", "particles z_t", "data z₁"} <= set(first["traces"])
    assert first["toolbarWidgets"] == 0  # its room only
    # the widgets' code loads after the run (a 40 px skeleton meanwhile): wait for the widgets
    page.locator(".st-key-fme_toolbar [data-testid='stButtonGroup']").first.wait_for(timeout=20_000)
    plot = page.locator(FLOW)
    assert plot.evaluate("p => p._transitionData._frames.length") == 51
    assert plot.evaluate("p => p.getBoundingClientRect().top") == pytest.approx(first["top"], abs=1)
    assert_no_exception(page)


def test_draw_strokes_and_see_the_points_counted(app, page):
    open_app(page, app.url("/"))
    page.get_by_role("tab", name=re.compile("Draw")).click()
    pad = page.locator(".st-key-fme_pad_0 canvas.upper-canvas")  # the pad of a session's first stroke
    pad.wait_for(timeout=30_000)
    assert stat(page, "fm-point-count").startswith("0")

    draw_stroke(page, pad, [(0.2, 0.3), (0.4, 0.25), (0.6, 0.3), (0.8, 0.4)])
    page.wait_for_function(
        "() => !(document.querySelector(\"[data-testid='fm-point-count']\")?.textContent ?? '0 ').startsWith('0 ')",
        timeout=20_000,
    )
    wait_for_app(page)
    first = int(stat(page, "fm-point-count").split()[0].replace(",", ""))
    assert first > 20
    pad = page.locator(".st-key-fme_pad_1 canvas.upper-canvas")  # remounted, empty, after the stroke
    pad.wait_for(timeout=30_000)
    page.wait_for_timeout(300)  # fabric.js binds its mouse handlers once the canvas is mounted
    draw_stroke(page, pad, [(0.3, 0.7), (0.5, 0.75), (0.7, 0.7)])
    page.wait_for_function(
        f"() => parseInt((document.querySelector(\"[data-testid='fm-point-count']\")?.textContent ?? '').replace(',', '')) > {first}",
        timeout=20_000,
    )
    wait_for_app(page)
    assert_no_exception(page)
    assert "data=custom" in page.url and "pts=" in page.url  # the drawing is in the share link
    wait_for_flow(page)
    shoot(page, "playground-drawn")
    drawn = stat(page, "fm-point-count")

    # A lesson and back: the drawing is kept in the session, not only in the widget.
    page.get_by_role("link", name="The ODE view").click()
    wait_for_app(page, 120)
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Playground").click()
    wait_for_app(page)
    wait_for_flow(page)
    assert (
        page.locator(".st-key-fme_gallery button[aria-checked='true']").text_content().strip()
        == "your points"
    )
    page.get_by_role("tab", name=re.compile("Draw")).click()  # the count lives in the Draw tab
    page.wait_for_selector("[data-testid='fm-point-count']", timeout=20_000)
    assert stat(page, "fm-point-count").split()[0] == drawn.split()[0]


def test_training_grows_the_loss_curve(app, page):
    open_app(page, app.url("/?data=8gaussians"))
    wait_for_flow(page)
    page.get_by_role("button", name=re.compile("Train")).click()
    page.wait_for_selector(LOSS, timeout=30_000)

    # The curve's last step, not its length: past CURVE_POINTS steps the runner thins it to a
    # fixed number of block means.
    last_step = (
        f"(() => {{ const x = document.querySelector('{LOSS}')._fullData[0].x; return x[x.length - 1]; }})()"
    )
    first = page.evaluate(f"() => {last_step}")
    page.wait_for_function(f"() => document.querySelector('{LOSS}') && {last_step} > {first}", timeout=20_000)
    text = stat(page, "fm-train-stats")
    assert re.search(r"step [\d,]+", text) and "steps/s" in text and "cpu" in text
    assert _engine_children(app.process.pid), "under streamlit run, training runs in the engine process"
    # Every 50 ms for 3 s (several redraws): the network's samples never vanish while redrawn.
    lowest = page.evaluate(
        """async () => {
            let lowest = Infinity;
            for (let i = 0; i < 60; i++) {
                const heights = [...document.querySelectorAll('.st-key-fme_snapshot')]
                    .map(e => e.getBoundingClientRect().height);
                lowest = Math.min(lowest, Math.max(0, ...heights));
                await new Promise(r => setTimeout(r, 50));
            }
            return lowest;
        }"""
    )
    assert lowest > 100, f"the snapshot chart was {lowest:.0f} px tall during a redraw"
    assert_no_exception(page)
    shoot(page, "playground-training")
    page.get_by_role("button", name=re.compile("Pause")).click()
    page.wait_for_function(
        "() => (document.querySelector(\"[data-testid='fm-train-stats']\")?.textContent ?? '').includes('paused')",
        timeout=20_000,
    )


def test_a_shared_link_reproduces_the_view(app, page):
    open_app(page, app.url("/?data=circles&solver=heun&steps=7&compare=1&solver_b=euler&steps_b=2&warp=1"))
    wait_for_flow(page)
    assert_no_exception(page)
    assert "7 steps · 14 NFE" in stat(page, "fm-nfe")
    titles = page.locator(f"{FLOW} .annotation-text").all_text_contents()
    assert any("heun" in t and "14 NFE" in t for t in titles)
    assert any("euler" in t and "2 steps · 2 NFE" in t for t in titles)
    selected = page.locator(".st-key-fme_gallery button[aria-checked='true']").inner_text()
    assert selected.strip() == "circles"
    shoot(page, "playground-shared-compare")


def test_classroom_mode_shows_only_the_figure(app, page):
    open_app(page, app.url("/?classroom=1&data=spirals&density=1"))
    wait_for_flow(page)
    assert_no_exception(page)
    assert page.locator("section[data-testid='stSidebar']").is_hidden()
    assert page.locator(FLOW).bounding_box()["height"] >= 700
    shoot(page, "playground-classroom")


def _engine_children(server: int) -> list[int]:
    """The server's spawned children running the training engine (``explorer.training.engine``)."""
    tasks = Path(f"/proc/{server}/task")
    children = [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]
    return [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
