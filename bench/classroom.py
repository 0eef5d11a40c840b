"""A classroom against one server: many sessions training at once.

    .venv/bin/python bench/classroom.py                   # 30 real browser sessions (Playwright)
    .venv/bin/python bench/classroom.py --sessions 5 --seconds 20
    .venv/bin/python bench/classroom.py --micro           # runner only: inline vs the training engine
    .venv/bin/python bench/classroom.py --floor           # 30 pages of a one-line app: the browsers' cost
    .venv/bin/python bench/classroom.py --room            # 30 students in a room: dashboard, pushes

``--micro`` needs no server or browser. It runs 1 and 5 "sessions" (threads calling
``runner.tick`` in a loop, as the Playground's fragment does) next to a thread that keeps
JSON-serialising a large figure dict (what a Streamlit server does while it redraws), once with
training in the server's threads (``inline``) and once in the training engine (``engine``), and
prints training steps/s per session and the drawing thread's rate.

The default mode starts the real server (``streamlit run streamlit_app.py``) on a free port and
drives N headless Chromium pages; see ``classroom()`` for what each session does and what is
reported. Browsers and server share this machine's cores, so absolute numbers are pessimistic;
compare backends (``--backend``) or session counts in the same run.

Drawing is the students' laptops' work, not the server's: a page costs its browser ~2.5 CPU-s to
load, ~1 s per control change (plotly redrawing the 51-frame figure) and ~0.15 s per live redraw.
Thirty such pages on the server's own 2 cores measure Chromium, not the app. So by default only
``--draw`` pages (5) draw their charts; the others are the same real browser sessions (websocket,
widgets, fragment timers, every figure computed and sent by the server) that never load plotly.js.
``--draw 30`` makes all of them draw, for a machine with the cores for it or with ``--url``.

A failed session leaves what its student would have seen and why: a screenshot
(test-artifacts/classroom-session-N.png) and, in test-artifacts/classroom-failed-sessions.json,
the page's console, websocket and URL events and the last messages both ways (each server message
as type, delta path and fragment; each page message as URL, fragment and slider values).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (needs ROOT on the path)

# -- micro: the runner alone ---------------------------------------------------------------------


def _figure_dict(points: int = 1000, frames: int = 50) -> dict:
    """A plotly-like figure as plain Python lists: the serialisation work of one redraw."""
    xs = [i * 0.001 for i in range(points)]
    return {
        "data": [{"x": xs, "y": xs, "type": "scatter"}],
        "frames": [{"data": [{"x": xs, "y": xs}]}] * frames,
    }


VARIANTS = {
    "inline": ("inline", None),
    "inline-si": ("inline", 0.0005),  # inline with a 0.5 ms GIL switch interval (default 5 ms)
    "engine": ("engine", None),
}


def _micro_run(variant: str, sessions: int, seconds: float, data, draw: bool = True) -> dict:
    from explorer.training import TrainingRunner

    backend, switch = VARIANTS[variant]
    runners = [TrainingRunner(backend) for _ in range(sessions)]
    for seed, runner in enumerate(runners):
        runner.configure(data, seed=seed)
        runner.start()
    deadline = time.monotonic() + 120
    while any(r.step == 0 for r in runners) and time.monotonic() < deadline:
        for runner in runners:  # warm-up: engine start-up and first-call costs, outside the clock
            runner.tick(0.1)
    stop = threading.Event()
    start_steps = [runner.step for runner in runners]
    drawn = [0]

    def session(runner):
        while not stop.is_set():
            runner.tick(0.15)

    def drawing():
        figure = _figure_dict()
        while not stop.is_set():
            json.dumps(figure)
            drawn[0] += 1

    threads = [threading.Thread(target=session, args=(r,)) for r in runners]
    if draw:
        threads.append(threading.Thread(target=drawing))
    previous = sys.getswitchinterval()
    if switch:
        sys.setswitchinterval(switch)
    try:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        sys.setswitchinterval(previous)
    for runner in runners:
        runner.pause()
    rates = [(r.step - s) / wall for r, s in zip(runners, start_steps, strict=True)]
    return {
        "per_session": statistics.mean(rates),
        "min_session": min(rates),
        "total": sum(rates),
        "draws_per_s": drawn[0] / wall,
        "failed": [r.message for r in runners if r.status != "ok"],
    }


def _alone(seconds: float, data) -> tuple[float, float]:
    """References measured in the same run: one trainer alone, one drawing thread alone."""
    from fmcore.trainer import Trainer

    trainer = Trainer(data, seed=0, device="cpu")
    trainer.step(50)
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds / 2:
        trainer.step(50)
        done += 50
    steps = done / (time.perf_counter() - started)
    figure, count, started = _figure_dict(), 0, time.perf_counter()
    while time.perf_counter() - started < seconds / 2:
        json.dumps(figure)
        count += 1
    return steps, count / (time.perf_counter() - started)


def micro(seconds: float, repeats: int = 1, session_counts=(1, 5)) -> dict:
    import torch

    from explorer.training import get_engine
    from fmcore.datasets import sample

    # Same footing for every variant: one torch thread, as the engine uses.
    torch.set_num_threads(1)
    data = sample("moons", 2000, seed=0)
    get_engine().warm()
    print(
        f"micro: {seconds:.0f} s per run x {repeats}, one training engine, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"
    )
    runs: dict[tuple[str, int], list[dict]] = {}
    references = []
    for _ in range(repeats):  # interleaved, so that a change in the machine's load hits every variant
        references.append(_alone(seconds, data))
        for sessions in session_counts:
            for variant in VARIANTS:
                runs.setdefault((variant, sessions), []).append(_micro_run(variant, sessions, seconds, data))
    alone_steps = statistics.median(r[0] for r in references)
    alone_draws = statistics.median(r[1] for r in references)
    print(f"reference: one trainer alone {alone_steps:.0f} steps/s; drawing thread alone {alone_draws:.1f}/s")
    header = f"{'variant':10} {'sessions':>8} {'steps/s/session':>16} {'min':>6} {'total':>6} {'x alone':>8} {'draws/s':>8}"
    print(header)
    results = {}
    for sessions in session_counts:
        for variant in VARIANTS:
            group = runs[variant, sessions]
            r = results[variant, sessions] = {
                key: statistics.median(g[key] for g in group)
                for key in ("per_session", "min_session", "total", "draws_per_s")
            }
            failed = [m for g in group for m in g["failed"]]
            print(
                f"{variant:10} {sessions:>8} {r['per_session']:>16.0f} {r['min_session']:>6.0f} "
                f"{r['total']:>6.0f} {r['total'] / alone_steps:>8.2f} {r['draws_per_s']:>8.1f}"
                + (f"  FAILED: {failed}" if failed else "")
            )
    for sessions in session_counts:
        inline = max(results["inline", sessions]["per_session"], 1e-9)
        print(
            f"{sessions} session(s): engine / inline steps/s per session "
            f"{results['engine', sessions]['per_session'] / inline:.1f}x, "
            f"inline-si / inline {results['inline-si', sessions]['per_session'] / inline:.1f}x"
        )
    return results


# -- classroom: real browsers against the real server -------------------------------------------

PRESETS = ("moons", "circles", "8gaussians", "checkerboard", "spirals")

# The Playground's stable hooks (explorer/playground/: training_panel.py, controls.py). If one goes missing
# the sessions fail with a message naming it, rather than hang.
STATS = "[data-testid='fm-train-stats']"  # "step 1,234 · 456 steps/s · ... · training"
NFE = "[data-testid='fm-nfe']"  # the caption under the "Steps" slider
GALLERY_BUTTON = ".st-key-fme_gallery button"
STEPS_SLIDER = "Steps"
TRAIN, PAUSE = "Train", "Pause"
STEP_PATTERN = re.compile(r"step ([\d,]+)")


PLOTLY_BUNDLE = re.compile(r"/PlotlyChart\.[^/]*\.js$")  # Streamlit's lazily loaded plotly.js chunk
# A page that skips plotly.js never draws the main figure, and a session's first view waits for
# that drawing before it asks for the whole page (explorer.compat.first_view; its fallback is 10 s).
# Such a page marks the chart as drawn the moment it arrives, as a drawing laptop would shortly after.
STAND_IN_FOR_THE_DRAWN_FIGURE = """
new MutationObserver(() => {
    const chart = document.querySelector('.st-key-fme_flow_chart');
    if (chart && !chart.querySelector('.fme-stand-in')) {
        chart.insertAdjacentHTML('beforeend',
            '<div class="js-plotly-plot fme-stand-in" hidden><div class="scatterlayer"><div class="trace"></div></div></div>');
    }
}).observe(document, {childList: true, subtree: true});
"""


class Missing(RuntimeError):
    """An element the bench drives is not on the page."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory of ``pid`` and of all its descendants (the server, its training workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    sizes, todo = {}, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            with open(f"/proc/{current}/status") as f:
                sizes[current] = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    own = sizes.pop(pid, 0)
    return own, sum(sizes.values())


def start_server(
    backend: str | None,
    script: Path = ROOT / "streamlit_app.py",
    cwd: Path = ROOT,
    log_name: str = "classroom-server.log",
) -> tuple[subprocess.Popen, str]:
    """``streamlit run script`` on a free localhost port, healthy; its output in test-artifacts/log_name."""
    port = _free_port()
    env = dict(os.environ)
    if backend:
        env["FME_TRAINING"] = backend
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    log = open(ROOT / "test-artifacts" / log_name, "wb")  # noqa: SIM115 (lives with the server)
    server = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.3)
        if server.poll() is not None:
            break
    server.kill()
    raise SystemExit(f"the server did not start; see {log.name}")


async def _visible(locator, what: str, timeout_s: float):
    try:
        await locator.first.wait_for(state="visible", timeout=timeout_s * 1000)
    except Exception as error:
        raise Missing(f"{what} did not appear within {timeout_s:.0f} s ({type(error).__name__})") from None
    return locator.first


async def _step(page) -> int | None:
    try:  # briefly absent while a rerun replaces the live part: no sample this second
        text = await page.locator(STATS).first.inner_text(timeout=5_000)
    except Exception:
        return None
    match = STEP_PATTERN.search(text)
    return int(match.group(1).replace(",", "")) if match else None


async def _move(page, slider, key: str, attempts: int = 10) -> float:
    """Press ``key`` on the slider until its value moves; returns when the press that moved it began.

    On a busy page a rerun can re-render the sidebar between focusing the slider and the key press,
    and the press then goes nowhere: without this the bench waited for a change never made.
    """
    before = await slider.get_attribute("aria-valuetext")
    for _ in range(attempts):
        await slider.focus()
        pressed = time.perf_counter()
        await slider.press(key)
        try:
            await page.wait_for_function(
                "([el, before]) => el.getAttribute('aria-valuetext') !== before",
                arg=[await slider.element_handle(), before],
                timeout=10_000,
                polling=250,  # not requestAnimationFrame: thirty busy pages may paint rarely
            )
            return pressed
        except Exception:
            continue  # the press was lost; focus and press again
    raise Missing(f"the Steps slider did not move after {attempts} key presses")


def _describe_sent(payload) -> str:
    """One BackMsg from the page in a line: a rerun request's URL, fragment and slider values."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    try:
        msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
    except Exception as error:  # a diagnostic line, whatever the bytes
        return f"sent: undecodable ({error})"
    kind = msg.WhichOneof("type")
    if kind != "rerun_script":
        return f"sent {kind}"
    state = msg.rerun_script
    values = {
        w.id.rsplit("-", 1)[-1]: getattr(w, w.WhichOneof("value"))
        for w in state.widget_states.widgets
        if w.WhichOneof("value") in ("int_value", "double_value", "double_array_value", "int_array_value")
    }
    values = {k: (list(v.data) if hasattr(v, "data") else v) for k, v in values.items()}
    return (
        f"sent rerun query={state.query_string!r} fragment={state.fragment_id[:8]} "
        f"auto={state.is_auto_rerun} widgets={len(state.widget_states.widgets)} numbers={values}"
    )


def _describe(payload) -> str:
    """One ForwardMsg from the server in a line: its type, and a delta's path and fragment."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if isinstance(payload, str):
        return f"text {payload[:80]}"
    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except Exception as error:  # a diagnostic line, whatever the bytes
        return f"undecodable {len(payload)} bytes ({error})"
    kind = msg.WhichOneof("type")
    run = msg.metadata.run
    line = f"{kind} run={run.script_run_id[:6]}{' fragments=' + ','.join(f[:6] for f in run.fragment_ids) if run.fragment_ids else ''}"
    if kind == "delta":
        delta = msg.delta
        line += (
            f" path={list(msg.metadata.delta_path)} {delta.WhichOneof('type')}"
            f"{'/' + delta.new_element.WhichOneof('type') if delta.WhichOneof('type') == 'new_element' else ''}"
            f" fragment={delta.fragment_id[:8]}"
        )
    elif kind == "script_finished":
        line += f" status={ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)}"
    elif kind == "session_status_changed":
        line += f" running={msg.session_status_changed.script_is_running}"
    line += f" ref_hash={msg.ref_hash[:6]}" if msg.ref_hash else ""
    return line


async def _session(browser, url: str, index: int, options: argparse.Namespace, result: dict) -> None:
    """One student: open the Playground, pick a preset, train, move a slider a few times, pause."""
    seconds, changes, wait = options.seconds, options.changes, options.timeout
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    result["draws"] = index < options.draw
    if not result["draws"]:
        # Everything but the charts' drawing: the server computes and sends every figure as for any
        # page; this page just never loads plotly.js to draw them (a student's laptop would).
        await context.route(PLOTLY_BUNDLE, lambda route: route.abort())
        await context.add_init_script(STAND_IN_FOR_THE_DRAWN_FIGURE)
    # Generous: on a small machine the browsers themselves are slow; a session fails when the app
    # does not answer, not when Chromium is busy drawing.
    context.set_default_timeout(wait * 1000)
    page = await context.new_page()
    events = result.setdefault("events", [])  # (seconds, what) happened to the page, for a failure's report
    born = time.perf_counter()

    def note(what: str) -> None:
        events.append((round(time.perf_counter() - born, 1), what))

    page.on("crash", lambda _: note("renderer crashed"))
    page.on(
        "framenavigated",
        lambda frame: note(f"URL {frame.url}") if frame == page.main_frame else None,  # loads and URL updates
    )
    page.on("console", lambda m: note(f"console {m.type}: {m.text[:160]}"))
    frames = collections.deque(maxlen=150)  # the last messages from the server, decoded on failure
    sent = []  # and every message from the page (a click, a key, a fragment's timer)

    def watch(ws) -> None:
        note(f"websocket opened {ws.url}")
        ws.on("close", lambda _: note("websocket closed"))
        ws.on("framereceived", lambda payload: frames.append((round(time.perf_counter() - born, 2), payload)))
        ws.on(
            "framesent",
            lambda payload: sent.append((round(time.perf_counter() - born, 2), payload)),
        )

    page.on("websocket", watch)
    try:
        started = time.perf_counter()
        await page.goto(url + "/")
        await _visible(page.locator(STATS), "the training stats line (data-testid=fm-train-stats)", wait)
        result["load_s"] = time.perf_counter() - started
        preset = PRESETS[index % len(PRESETS)]
        button = await _visible(
            page.locator(GALLERY_BUTTON).filter(has_text=preset), f"the preset button {preset!r}", wait
        )
        await button.click()
        await page.locator(f"{GALLERY_BUTTON}[aria-checked='true']").filter(has_text=preset).wait_for()
        train = await _visible(page.get_by_role("button", name=TRAIN, exact=False), "the Train button", wait)
        await train.click()
        clicked = time.perf_counter()
        await page.locator(STATS).filter(has_text="training").wait_for()
        slider = await _visible(page.get_by_role("slider", name=STEPS_SLIDER), "the Steps slider", wait)
        samples = []
        latencies = []
        t_end = time.perf_counter() + seconds
        change_at = [time.perf_counter() + seconds * (k + 1) / (changes + 1) for k in range(changes)]
        while time.perf_counter() < t_end or change_at:  # every change is made, however slow the page
            step = await _step(page)
            if step is not None:
                samples.append((time.perf_counter(), step))
            if change_at and time.perf_counter() >= change_at[0]:
                change_at.pop(0)
                t0 = await _move(page, slider, "ArrowRight" if len(latencies) % 2 == 0 else "ArrowLeft")
                steps = await slider.get_attribute("aria-valuetext")  # the server answered when it says so
                await page.wait_for_function(
                    "([sel, steps]) => { const e = document.querySelector(sel);"
                    " return e && e.innerText.startsWith(steps + ' step'); }",
                    arg=[NFE, steps],
                    polling=250,
                )
                latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(1.0)
        result["latencies"] = latencies
        # What the student got: steps since pressing Train, start-up and queueing included.
        final_step = await _step(page) or max((s for _, s in samples), default=0)  # absent mid-rerun
        result["steps_per_s"] = final_step / (time.perf_counter() - clicked)
        result["first_step_s"] = next((t - clicked for t, s in samples if s > 0), math.inf)
        result["final_step"] = final_step
        result["final_stats"] = await page.locator(STATS).first.inner_text()
        changed = sorted(set(parse_qs(urlsplit(page.url).query)) - {"data", "steps"})
        if changed:  # the student only picked data and moved Steps
            raise RuntimeError(f"settings changed by themselves: {urlsplit(page.url).query}")
        pause = page.get_by_role("button", name=PAUSE, exact=False)
        if await pause.count():
            await pause.first.click()
        if await page.locator("[data-testid='stException']").count():
            raise RuntimeError("the page shows a Python exception")
    except Missing as error:
        result["error"] = f"missing element: {error}"
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        if "error" in result:  # what the student would have seen
            shot = ROOT / "test-artifacts" / f"classroom-session-{index}.png"
            try:
                await page.screenshot(path=str(shot), timeout=30_000)
                result["error"] += f" (page: {shot.relative_to(ROOT)})"
            except Exception:
                pass
            notes = [e for _, e in events if e.startswith(("renderer", "console error"))][-3:]
            if notes:
                result["error"] += "; " + "; ".join(notes)
            result["last_messages"] = [(t, _describe(payload)) for t, payload in frames]
            result["sent_messages"] = [(t, _describe_sent(payload)) for t, payload in sent]
        await context.close()


async def _classroom(url: str, options: argparse.Namespace, server_pid: int | None):
    from playwright.async_api import async_playwright

    results = [{} for _ in range(options.sessions)]
    memory = {"peak": 0, "idle": sum(_rss_bytes(server_pid)) if server_pid else 0, "split": (0, 0)}
    stop = asyncio.Event()

    async def watch_memory():
        while not stop.is_set():
            if server_pid:
                split = _rss_bytes(server_pid)
                if sum(split) > memory["peak"]:
                    memory["peak"], memory["split"] = sum(split), split
            await asyncio.sleep(1.0)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        watcher = asyncio.create_task(watch_memory())

        async def later(i):
            await asyncio.sleep(i * options.stagger)
            await _session(browser, url, i, options, results[i])

        await asyncio.gather(*(later(i) for i in range(options.sessions)))
        stop.set()
        await watcher
        await browser.close()
    return results, memory


FLOOR_PAGE = """import streamlit as st
st.markdown("<div data-testid='fm-train-stats'>step 0</div>", unsafe_allow_html=True)
"""


async def _floor_loads(url: str, options: argparse.Namespace) -> list[float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        async def load(i: int) -> float:
            await asyncio.sleep(i * options.stagger)
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            started = time.perf_counter()
            await page.goto(url, timeout=options.timeout * 1000)
            await page.locator(STATS).first.wait_for(timeout=options.timeout * 1000)
            elapsed = time.perf_counter() - started
            await context.close()
            return elapsed

        loads = await asyncio.gather(*(load(i) for i in range(options.sessions)))
        await browser.close()
    return list(loads)


def floor(options: argparse.Namespace) -> list[float]:
    """The same number of pages of a one-line Streamlit app: what this machine's browsers alone cost."""
    import tempfile

    script = Path(tempfile.mkdtemp()) / "one_line.py"
    script.write_text(FLOOR_PAGE)
    server, url = start_server(None, script)
    try:
        loads = asyncio.run(_floor_loads(url, options))
    finally:
        server.terminate()
    print(
        f"floor: {options.sessions} pages of a one-line Streamlit app, {os.cpu_count()} cores: first render "
        f"p50 {_percentile(loads, 0.5):.1f} s, p95 {_percentile(loads, 0.95):.1f} s"
    )
    return loads


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def classroom(options: argparse.Namespace) -> dict:
    """Drive ``options.sessions`` browsers at once; print failures, control latency, steps/s, memory."""
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: run 'make browser' (apt-get install chromium)")
    sessions, seconds, backend, url = options.sessions, options.seconds, options.backend, options.url
    server = None
    if url is None:
        server, url = start_server(backend)
    try:
        started = time.perf_counter()
        results, memory = asyncio.run(_classroom(url, options, server.pid if server else None))
        wall = time.perf_counter() - started
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    failed = [(i, r["error"]) for i, r in enumerate(results) if "error" in r]
    if failed:
        log = ROOT / "test-artifacts" / "classroom-failed-sessions.json"
        log.write_text(json.dumps({i: results[i] for i, _ in failed}, indent=1, default=str))
    ok = [r for r in results if "error" not in r]
    latencies = [x for r in ok for x in r.get("latencies", [])]
    drawn = [x for r in ok if r.get("draws") for x in r.get("latencies", [])]
    rates = [r["steps_per_s"] for r in ok]
    loads = [r["load_s"] for r in results if "load_s" in r]
    print(
        f"classroom: {sessions} sessions x {seconds:.0f} s training, backend "
        f"{backend or os.environ.get('FME_TRAINING') or 'default'}, {os.cpu_count()} cores "
        f"(browsers share them), {url}, {wall:.0f} s wall"
    )
    drawing = min(options.draw, sessions)
    if drawing < sessions:
        print(
            f"{drawing} page(s) draw their charts; {sessions - drawing} run everything else (the server "
            "computes and sends every figure alike) but skip loading plotly.js, whose drawing would be "
            "each student's own laptop's work and here shares the server's cores"
        )
    print(f"sessions failed: {len(failed)} / {sessions}")
    for i, error in failed[:10]:
        print(f"  session {i}: {error}")
    print(f"first render: p50 {_percentile(loads, 0.5):.1f} s, p95 {_percentile(loads, 0.95):.1f} s")
    print(
        f"control change (Steps slider -> caption updated), {len(latencies)} changes: "
        f"p50 {_percentile(latencies, 0.5):.2f} s, p95 {_percentile(latencies, 0.95):.2f} s"
    )
    if drawing < sessions:
        print(
            f"  on the pages that draw their charts, {len(drawn)} changes: "
            f"p50 {_percentile(drawn, 0.5):.2f} s, p95 {_percentile(drawn, 0.95):.2f} s"
        )
    for i, r in enumerate(results):
        if "error" not in r and r["steps_per_s"] == 0:
            print(f"  session {i} did not train; its stats line reads: {r.get('final_stats', '?')!r}")
    if rates:
        firsts = [r["first_step_s"] for r in ok]
        print(
            f"training steps/s per session (page's step count / time since Train): mean "
            f"{statistics.mean(rates):.0f}, min {min(rates):.0f}, max {max(rates):.0f}; total {sum(rates):.0f}"
        )
        print(
            f"Train -> first step on the page: p50 {_percentile(firsts, 0.5):.1f} s, "
            f"p95 {_percentile(firsts, 0.95):.1f} s"
        )
    if server is not None:
        mib = 2**20
        print(
            f"server memory (RSS, server + training workers): idle {memory['idle'] / mib:.0f} MiB, "
            f"peak {memory['peak'] / mib:.0f} MiB (server {memory['split'][0] / mib:.0f}, workers "
            f"{memory['split'][1] / mib:.0f}) -> {memory['peak'] / mib / sessions:.0f} MiB per session, "
            f"{(memory['peak'] - memory['idle']) / mib / sessions:.0f} MiB per session above idle"
        )
    return {"failed": failed, "latencies": latencies, "rates": rates, "memory": memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--micro", action="store_true", help="runner only, inline vs the training engine")
    parser.add_argument(
        "--floor", action="store_true", help="as many pages of a one-line app: the browsers' own cost"
    )
    parser.add_argument("--sessions", type=int, default=30, help="browser sessions (default 30)")
    parser.add_argument("--seconds", type=float, default=None, help="training time per session or run")
    parser.add_argument("--backend", choices=("engine", "inline"), help="FME_TRAINING for the server")
    parser.add_argument("--url", help="drive an already running server (e.g. nginx from deploy/scale_out.sh)")
    parser.add_argument("--changes", type=int, default=3, help="slider changes per session (default 3)")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between session starts")
    parser.add_argument(
        "--draw",
        type=int,
        default=None,
        help="pages that draw their charts (default: all up to 5); the others skip plotly.js",
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds a page may take to answer")
    parser.add_argument("--repeats", type=int, default=1, help="--micro: interleaved repeats (medians)")
    parser.add_argument("--room", action="store_true", help="a class in a room: bench/classroom_room.py")
    parser.add_argument("--refreshes", type=int, default=10, help="--room: dashboard runs timed")
    args = parser.parse_args(argv)
    if args.room:
        from bench.classroom_room import room_bench

        room_bench(args)
        return 0
    if args.micro:
        micro(args.seconds or 8.0, args.repeats)
        return 0
    if args.floor:
        floor(args)
        return 0
    args.seconds = args.seconds or 30.0
    args.draw = min(args.sessions, 5) if args.draw is None else args.draw
    report = classroom(args)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
