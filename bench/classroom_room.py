"""A class in a room: N students in real browsers, one teacher's dashboard, one pushed setting.

    .venv/bin/python bench/classroom.py --room                    # 30 students, a server of its own
    .venv/bin/python bench/classroom.py --room --sessions 10
    .venv/bin/python bench/classroom.py --room --url http://127.0.0.1:8080   # e.g. deploy/scale_out.sh --redis

The teacher's page starts a class (Start a class) and reads the join code off it; each student
opens the join link, joins, and keeps their Playground open (no plotly.js: drawing is their own
laptop's work, see bench/classroom.py). Then:

- **dashboard refresh**: how long each run of the dashboard's 2-second fragment takes with the
  class in it (the page's script state, running -> not running, timed in the page), p50 and p95;
- **push reach**: the teacher pushes solver heun; for each student, seconds from the click until
  their sampler's NFE line says 40 NFE (heun: 2 per step), waited for in parallel; p50, p95, max.

Printed with the load average, since the machine's other work moves every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from urllib.parse import parse_qs, urlsplit

from bench.chromium import CHROMIUM, CHROMIUM_ARGS, SETTLED_JS

PUSHED_NFE = "20 steps · 40 NFE"  # solver heun at the default 20 steps
REFRESH_TIMER = """() => {
    window.__fmeRuns = [];
    const app = document.querySelector("[data-testid='stApp']");
    let began = null;
    new MutationObserver(() => {
        const state = app.getAttribute('data-test-script-state');
        if (state === 'running' && began === null) began = performance.now();
        if (state === 'notRunning' && began !== null) { window.__fmeRuns.push(performance.now() - began); began = null; }
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def _settled(page, timeout_s: float) -> None:
    await page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000)


async def _teacher(browser, url: str, timeout_s: float):
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(timeout_s * 1000)
    page = await context.new_page()
    await page.goto(url + "/classroom")
    await page.get_by_role("button", name="Start a class").click()
    await page.wait_for_selector("text=0 students")
    await page.get_by_text("Teacher link: private").click()
    link = page.locator("[data-testid='stCode']", has_text="/classroom?")
    return page, parse_qs(urlsplit((await link.inner_text()).strip()).query)["room"][0]


async def _student(browser, url: str, code: str, index: int, timeout_s: float):
    from bench.classroom import PLOTLY_BUNDLE

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.route(PLOTLY_BUNDLE, lambda route: route.abort())
    context.set_default_timeout(timeout_s * 1000)
    page = await context.new_page()
    await page.goto(f"{url}/?room={code}")
    form = page.locator(".st-key-fme_room_join")
    await form.get_by_label("Your name (optional)").fill(f"Student {index + 1}")
    await form.get_by_role("button", name="Join").click()
    await page.locator(".st-key-fme_room_badge").get_by_text("your teacher sees this run").wait_for()
    return page


async def _reach(page, since: float) -> float:
    await page.wait_for_function(
        f"document.querySelector(\"[data-testid='fm-nfe']\")?.innerText.startsWith('{PUSHED_NFE}')"
    )
    return time.monotonic() - since


async def _room(url: str, students: int, stagger: float, timeout_s: float, refreshes: int) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        dashboard, code = await _teacher(browser, url, timeout_s)

        async def later(i):
            await asyncio.sleep(i * stagger)
            return await _student(browser, url, code, i, timeout_s)

        began = time.monotonic()
        pages = await asyncio.gather(*(later(i) for i in range(students)))
        joined_s = time.monotonic() - began
        await dashboard.wait_for_selector(f"text={students} students", timeout=timeout_s * 1000)
        await _settled(dashboard, timeout_s)
        await dashboard.evaluate(REFRESH_TIMER)
        await dashboard.wait_for_function(f"window.__fmeRuns.length >= {refreshes}", timeout=timeout_s * 1000)
        runs_ms = await dashboard.evaluate("window.__fmeRuns")
        solver = dashboard.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']", has_text="Solver")
        box = solver.locator("input")
        await box.click()
        await box.fill("heun")
        await box.press("Enter")
        pushed = time.monotonic()
        await dashboard.get_by_role("button", name="Push settings").click()
        reach = await asyncio.gather(*(_reach(page, pushed) for page in pages))
        await browser.close()
    return {"refresh_s": [ms / 1000 for ms in runs_ms], "reach_s": list(reach), "joined_s": joined_s}


def room_bench(options: argparse.Namespace) -> dict:
    """Run the room bench against ``options.url`` or a server of its own; print and return the figures."""
    from bench.classroom import start_server

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: run 'make browser' (apt-get install chromium)")
    os.environ.setdefault("FME_DATA_DIR", tempfile.mkdtemp(prefix="fme-room-bench-"))  # the server's rooms.db
    server, url = (None, options.url) if options.url else start_server(options.backend, log_name="room.log")
    try:
        result = asyncio.run(
            _room(url, options.sessions, options.stagger, options.timeout, options.refreshes)
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
    refresh, reach = result["refresh_s"], result["reach_s"]
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"room: {options.sessions} students + 1 dashboard at {url}, {os.cpu_count()} cores "
        f"(browsers share them), load average {load}; all joined in {result['joined_s']:.0f} s"
    )
    print(
        f"dashboard refresh (one run of its fragment, {len(refresh)} runs): "
        f"p50 {_percentile(refresh, 0.5):.2f} s, p95 {_percentile(refresh, 0.95):.2f} s"
    )
    print(
        f"push (solver heun) -> every student's sampler: p50 {_percentile(reach, 0.5):.1f} s, "
        f"p95 {_percentile(reach, 0.95):.1f} s, max {max(reach):.1f} s"
    )
    return result
