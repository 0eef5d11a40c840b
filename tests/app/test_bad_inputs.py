"""Bad inputs that other test files do not cover yet; docs/bad-inputs.md lists them all.

Each test states what a person does wrong and what they get: a plain message, the previous data or
model kept, and never a traceback.
"""

import importlib.util
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.core.state import ViewState
from explorer.training import session_runner
from fmcore import datasets
from fmcore.trainer import Trainer
from tests.app.apptest import start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # no worker pool under AppTest
    return start


def stats_step(at: AppTest) -> int:
    line = next(m.value for m in at.markdown if "data-testid='fm-train-stats'" in m.value)
    return int(re.search(r"step ([\d,]+)", re.sub(r"<[^>]+>", "", line)).group(1).replace(",", ""))


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


# -- data ------------------------------------------------------------------------------------------


def test_a_100k_point_csv_is_refused_with_the_limit_and_nothing_changes(app, open_panel):
    at = open_panel(app({"data": "circles"}), "upload")
    rows = "\n".join(f"{x:.3f},{y:.3f}" for x, y in np.random.default_rng(0).normal(size=(100_000, 2)))
    at.file_uploader(key="fme_w_upload").upload("big.csv", ("x,y\n" + rows).encode(), "text/csv").run()
    assert not at.exception
    assert "Too many points: 100,000 given, the limit is 20,000" in errors(at)
    assert "Nothing was changed" in errors(at) and at.query_params["data"] == "circles"


@pytest.mark.parametrize("value", ["1e30", "-1e30"])
def test_csv_with_astronomical_coordinates_is_refused(value):
    points = datasets.parse_csv(f"x,y\n0,0\n1,{value}\n2,2\n")  # a number, so the parser takes it
    with pytest.raises(ValueError, match=r"magnitude 1e\+30.*rescale"):
        datasets.from_points(points)


def test_a_binary_file_uploaded_as_csv_is_refused(app, open_panel):
    at = open_panel(app({"data": "spirals"}), "upload")
    at.file_uploader(key="fme_w_upload").upload("photo.csv", bytes(range(256)) * 4, "text/csv").run()
    assert not at.exception
    assert "photo.csv" in errors(at) and "not a text file" in errors(at)
    assert at.query_params["data"] == "spirals"


# -- links -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lr", ["100", "-1", "0", "1e-9"])
def test_a_learning_rate_outside_the_range_in_a_link_is_ignored_with_a_notice(lr):
    state, notices = ViewState.from_query({"lr": lr, "data": "moons"})
    assert state.lr == ViewState().lr and state.data == "moons"
    assert len(notices) == 1 and "lr" in notices[0]


# -- models ----------------------------------------------------------------------------------------


def test_uploading_a_file_that_is_not_a_model_keeps_the_current_one(app, open_panel):
    at = app({"data": "moons"})
    at.button(key="fme_w_train").click().run()
    at.run()
    at.button(key="fme_w_pause").click().run()
    step = stats_step(at)
    assert step > 0
    open_panel(at, "export")
    # The uploader only offers .safetensors files, so a pickle arrives renamed.
    for name, content in (("notes.safetensors", b"x,y\n1,2\n"), ("pickle.safetensors", b"\x80\x04\x95junk.")):
        at.file_uploader(key="fme_w_model_upload").upload(name, content, "application/octet-stream").run()
        assert not at.exception
        assert name in errors(at) and "not loaded" in errors(at) and "kept" in errors(at)
        assert stats_step(at) == step


# -- training controls -----------------------------------------------------------------------------


def test_pressing_train_twice_keeps_training_the_same_network(app):
    at = app({"data": "8gaussians"})
    at.button(key="fme_w_train").click().run()
    at.run()
    first = stats_step(at)
    assert at.button(key="fme_w_train").disabled, "Train is greyed out while training"
    runner = at.session_state["fme_training_runner"]
    runner.start()  # what a double click that beats the rerun does
    at.run()
    assert not at.exception
    assert stats_step(at) >= first > 0, "a second Train must not start a fresh network"


@pytest.mark.parametrize("budget", [0.0, -1.0])
def test_a_zero_or_negative_slice_budget_still_trains_a_few_steps(budget):
    runner = session_runner({}, backend="inline")
    runner.configure(datasets.sample("moons", 256, seed=0), seed=0)
    runner.start()
    stats = runner.tick(budget)
    assert stats.status == "ok" and stats.step > 0


def test_zero_steps_do_nothing_and_negative_steps_are_refused():
    trainer = Trainer(datasets.sample("moons", 64, seed=0), seed=0)
    stats = trainer.step(0)
    assert (stats.step, stats.status) == (0, "ok")
    for n in (-1, 2.5, "10"):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            trainer.step(n)


def test_reset_during_a_slice_drops_the_slice_and_starts_over():
    runner = session_runner({}, backend="inline")
    runner.configure(datasets.sample("moons", 256, seed=0), seed=0)
    runner.start()
    runner.tick(0.05)
    seen = []
    slicing = threading.Thread(target=lambda: seen.append(runner.tick(1.0)))
    slicing.start()
    time.sleep(0.3)
    runner.reset()  # while the other thread is inside its slice
    slicing.join()
    assert seen == [None], "the slice of the replaced network must not be reported"
    assert runner.step == 0 and not runner.running and runner.velocity is None
    assert len(runner.history[0]) == 0 and runner.status == "idle"
    runner.start()
    assert runner.tick(0.05).step > 0


def test_bad_training_settings_keep_the_previous_network():
    runner = session_runner({}, backend="inline")
    data = datasets.sample("moons", 256, seed=0)
    runner.configure(data, seed=0)
    runner.start()
    runner.tick(0.05)
    step = runner.step
    grid = torch.randn(20, 2)
    before = runner.velocity(grid, 0.5)
    for bad in ({"lr": float("nan")}, {"lr": -1.0}, {"schedule": "warp"}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            runner.configure(data, **bad)
    assert runner.step == step and torch.equal(runner.velocity(grid, 0.5), before)


# -- pages -----------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_switching_pages_during_training_keeps_the_model_and_comes_back_training():
    from playwright.sync_api import sync_playwright

    classroom = _bench_module()
    server, url = classroom.start_server(None)  # the real server, training in its worker pool
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=classroom.CHROMIUM, args=classroom.CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/?data=moons")
            stats = page.locator("[data-testid='fm-train-stats']")
            stats.wait_for(timeout=90_000)
            page.get_by_role("button", name=re.compile("Train")).click()
            page.wait_for_function(
                "() => /step [1-9]/.test(document.querySelector(\"[data-testid='fm-train-stats']\").innerText)",
                timeout=90_000,
            )
            page.get_by_role("link", name=re.compile("ODE view")).first.click()
            stats.wait_for(state="detached", timeout=90_000)
            time.sleep(2)  # the lesson runs; the Playground's fragment does not
            assert page.locator("[data-testid='stException']").count() == 0
            page.get_by_role("link", name=re.compile("Playground")).first.click()
            stats.wait_for(timeout=90_000)
            before = int(re.search(r"step ([\d,]+)", stats.inner_text()).group(1).replace(",", ""))
            assert before > 0, "the model trained before the switch is still there"
            page.wait_for_function(
                f"""() => {{
                    const m = /step ([\\d,]+)/.exec(document.querySelector("[data-testid='fm-train-stats']").innerText);
                    return m && parseInt(m[1].replace(/,/g, '')) > {before};
                }}""",
                timeout=90_000,
            )
            assert page.locator("[data-testid='stException']").count() == 0
            browser.close()
    finally:
        server.terminate()
        server.wait(30)


def _bench_module():
    spec = importlib.util.spec_from_file_location("classroom_bench", ROOT / "bench" / "classroom.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
