"""Bad inputs that other test files do not cover yet; docs/bad-inputs.md lists them all.

Each test states what a person does wrong and what they get: a plain message, the previous data or
model kept, and never a traceback.
"""

import base64
import hashlib
import importlib.util
import json
import re
import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.core import flows
from explorer.core.state import ViewState, decode_points, encode_points
from explorer.playground import cache, canvas
from explorer.training import session_runner
from fmcore import datasets, io, metrics
from fmcore.models import FlowModel, ModelConfig, VelocityMLP
from fmcore.trainer import Trainer
from tests.app.apptest import start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # no engine process under AppTest
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
    deadline = time.monotonic() + 30
    while not runner._slice_lock.locked():  # the other thread is inside its 1 s slice
        assert time.monotonic() < deadline and slicing.is_alive(), "the slice never started"
        time.sleep(0.005)
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
    server, url = classroom.start_server(None)  # the real server, training in its engine process
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
                "() => /step [1-9]/.test(document.querySelector(\"[data-testid='fm-train-stats']\")?.innerText ?? '')",
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
                    const m = /step ([\\d,]+)/.exec(document.querySelector("[data-testid='fm-train-stats']")?.innerText ?? "");
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


# -- issue 12: hostile and careless input ------------------------------------------------------------

HOSTILE = (
    "[click](http://evil.example)",
    "![x](http://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "$x$",
)
RAW_MARKUP = ("](http", "<img", "$x$", "![")


def messages(at: AppTest) -> list[str]:
    """The markdown bodies of every message element: errors, warnings, toasts, infos, captions."""
    kinds = ("error", "warning", "toast", "info", "caption", "success")
    return [element.value for kind in kinds for element in at.get(kind)]


def assert_no_markup_from(at: AppTest) -> None:
    """No hostile string reaches a message as markup: each of its syntax characters is escaped."""
    for body in messages(at) + [m.value for m in at.markdown]:
        live = re.sub(r"\\.", "·", body)  # an escaped character shows as itself
        assert not any(raw in live for raw in RAW_MARKUP), body


def model_bytes(tmp_path, dim: int = 2, scale: float = 1.0, **metadata) -> bytes:
    """An fmcore model file of a fresh network of ``dim``-D data, its last layer scaled, metadata changed."""
    torch.manual_seed(0)
    net = VelocityMLP(ModelConfig(dim=dim, hidden=16, depth=2))
    with torch.no_grad():
        net.net[-1].weight.mul_(scale)
        net.net[-1].bias.fill_(scale)
    path = tmp_path / "model.safetensors"
    io.save(FlowModel(net, "linear", "velocity"), path)
    if metadata:
        from safetensors.torch import load_file, save_file

        blob = path.read_bytes()
        (size,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + size])["__metadata__"]
        save_file(load_file(path), path, metadata={**header, **metadata})
    return path.read_bytes()


def trained(at: AppTest) -> AppTest:
    at.button(key="fme_w_train").click().run()
    at.run()
    at.button(key="fme_w_pause").click().run()
    assert stats_step(at) > 0
    return at


def upload_model(at: AppTest, open_panel, name: str, content: bytes) -> AppTest:
    open_panel(at, "export")
    at.file_uploader(key="fme_w_model_upload").upload(name, content, "application/octet-stream").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def paste(at: AppTest, text: str) -> AppTest:
    at.text_area(key="fme_w_paste").input(text)
    at.button(key="fme_w_use_paste").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# Data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0,0\n1,1", "0,0\n1,1\n1,0"])
def test_two_or_three_distinct_points_give_a_figure_not_a_traceback(app, open_panel, text):
    at = paste(open_panel(app({"data": "moons"}), "upload"), text)
    assert at.session_state["fme_w_data"] == "custom"
    caption = next(m.value for m in at.markdown if "fm-caption" in m.value)
    assert "too few data points to measure" in caption
    at.button(key="fme_w_train").click().run()  # and a network trains on them
    at.run()
    assert not at.exception and stats_step(at) > 0


def test_two_points_in_a_link_give_a_figure_not_a_traceback(app):
    at = app({"data": "custom", "pts": encode_points(np.array([[0.0, 0.0], [1.0, 1.0]]))})
    assert at.query_params["data"] == "custom"


def test_energy_distance_needs_two_points_a_side_and_says_so_with_none():
    assert cache.energy_distance(np.zeros((5, 2), np.float32), np.zeros((1, 2), np.float32)) is None
    a, b = np.eye(2, dtype=np.float32), np.array([[0, 0], [1, 1]], np.float32)
    assert cache.energy_distance(a, b) == pytest.approx(float(metrics.energy_distance(a, b)))


@pytest.mark.parametrize("tiny", [1e-300, 1e-320])
def test_points_a_tiny_distance_apart_are_not_called_identical(tiny):
    cloud = datasets.from_points(np.array([[0.0, 0.0], [tiny, 0.0], [0.0, tiny]]))
    np.testing.assert_allclose(cloud.data.numpy().std(axis=0).mean(), 1.0, rtol=0.3)
    assert np.isfinite(cloud.data.numpy()).all() and cloud.scale > 0


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_latin1_and_utf16_csvs_are_read(app, open_panel, encoding):
    at = open_panel(app({"data": "spirals"}), "upload")
    content = "# mesures de la côte\nx;y\n0,5; 1,5\n-1; 2\n3; 0\n".encode(encoding)
    at.file_uploader(key="fme_w_upload").upload("côte.csv", content, "text/csv").run()
    assert not at.exception and not at.error, errors(at)
    assert at.session_state["fme_w_data"] == "custom"


def test_an_upload_over_the_cap_is_refused_before_it_is_parsed(app, open_panel):
    at = open_panel(app({"data": "circles"}), "upload")
    big = b"0.1,0.2\n" * (3 * 10**6 // 8)
    at.file_uploader(key="fme_w_upload").upload("big.csv", big, "text/csv").run()
    assert not at.exception
    assert (
        "big.csv is 3.0 MB; uploads are at most 2 MB" in errors(at) and at.query_params["data"] == "circles"
    )


def test_a_huge_csv_line_is_quoted_in_80_characters(app, open_panel):
    at = open_panel(app({"data": "circles"}), "upload")
    at.file_uploader(key="fme_w_upload").upload(
        "long.csv", b"0,0\n" + b"7" * 1_500_000 + b",x\n", "text/csv"
    ).run()
    assert not at.exception and "7" * 80 in errors(at) and "7" * 81 not in errors(at)
    assert len(errors(at)) < 400


def test_too_many_points_are_refused_without_pointing_at_library_code(app, open_panel):
    at = paste(
        open_panel(app({"data": "circles"}), "upload"), "\n".join(f"{i},{i % 7}" for i in range(20_001))
    )
    assert "limit is 20,000" in errors(at) and "datasets.subsample" not in errors(at)


# Links --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inflated_mb", "match"), [(50, "unpack to more than 20,000 points"), (500, "longer than 20,000 points")]
)
def test_a_zlib_bomb_link_is_refused_without_inflating_it(inflated_mb, match):
    bomb = zlib.compress(struct.pack("<BI4f", 1, 20_000, 0, 0, 1, 1) + bytes(inflated_mb * 2**20), 9)
    text = base64.urlsafe_b64encode(bomb).decode().rstrip("=")
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            decode_points(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # 500 MB unbounded; the bound is the 160 kB of 20,000 points
    state, notices = ViewState.from_query({"data": "custom", "pts": text})
    assert state.data == "moons" and "20,000 points" in notices[0]


def test_a_genuine_link_at_the_point_cap_still_decodes():
    points = np.random.default_rng(0).normal(size=(datasets.MAX_POINTS, 2))
    assert decode_points(encode_points(points)).shape == (datasets.MAX_POINTS, 2)


def test_a_60kb_unknown_parameter_name_is_echoed_in_80_characters(app):
    at = app({"q" * 60_000: "1", "solver": "rk4"})
    shown = " ".join(messages(at))
    assert "q" * 80 in shown and "q" * 81 not in shown
    assert at.query_params["solver"] == "rk4"


def test_points_keys_are_a_cryptographic_hash_of_the_exact_bytes():
    points = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    digest = hashlib.blake2b(points.tobytes(), digest_size=16).hexdigest()
    assert ViewState(data="custom", points=points).points_key == f"{digest}-50"
    nudged = points.copy()
    nudged.view(np.uint32)[7, 1] ^= 1  # one bit
    assert (
        ViewState(data="custom", points=nudged).points_key
        != ViewState(data="custom", points=points).points_key
    )


# Models -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 3])
def test_a_model_of_other_than_2d_data_is_refused_and_the_trained_one_kept(app, open_panel, tmp_path, dim):
    at = trained(app({"data": "moons"}))
    step = stats_step(at)
    upload_model(at, open_panel, f"{dim}d.safetensors", model_bytes(tmp_path, dim=dim))
    assert f"{dim}-D data" in errors(at) and "kept" in errors(at)
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    assert not at.exception and stats_step(at) == step


@pytest.mark.parametrize("field", ["model", "metadata", "schedule"])
def test_deep_or_long_metadata_is_refused_in_the_app_and_the_model_kept(app, open_panel, tmp_path, field):
    value = "[" * 50_000 + "]" * 50_000 if field != "schedule" else "s" * 200_000
    at = trained(app({"data": "moons"}))
    step = stats_step(at)
    upload_model(at, open_panel, "odd.safetensors", model_bytes(tmp_path, **{field: value}))
    assert "not loaded" in errors(at) and len(errors(at)) < 600 and stats_step(at) == step


def test_load_errors_name_the_upload_not_the_servers_temp_path(app, open_panel):
    at = upload_model(app({"data": "moons"}), open_panel, "mine.safetensors", b"garbage")
    assert errors(at).startswith("mine.safetensors was not loaded: mine.safetensors is not")
    assert "/tmp" not in errors(at) and "model.safetensors" not in errors(at)


@pytest.mark.parametrize("solver", ["dopri5", "euler", "rk4"])
def test_a_model_whose_outputs_overflow_gives_a_warning_and_keeps_the_figure(
    app, open_panel, tmp_path, solver
):
    at = upload_model(
        app({"data": "moons"}), open_panel, "loud.safetensors", model_bytes(tmp_path, scale=1e30)
    )
    at.selectbox(key="fme_w_solver").set_value(solver).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.warning and at.get("plotly_chart")
    at.selectbox(key="fme_w_solver").set_value("euler").run()  # the next good input works
    assert not at.exception


def test_the_networks_density_after_loading_a_model(app, open_panel, tmp_path):
    at = upload_model(app({"data": "moons"}), open_panel, "m.safetensors", model_bytes(tmp_path))
    at.pills(key="fme_w_layers").set_value(["density"]).run()
    at.toggle(key="fme_w_model_density").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "network's" in next(m.value for m in at.markdown if "fm-caption" in m.value)


def test_a_loaded_or_trained_models_velocity_has_a_divergence(tmp_path):
    from fmcore import likelihood

    trainer = Trainer(datasets.sample("moons", 128, seed=0), seed=0)
    trainer.step(2)
    path = tmp_path / "m.safetensors"
    trainer.save(path)
    z = torch.randn(6, 2, dtype=torch.float64)
    for velocity in (trainer.velocity, io.load(path).velocity):
        h = 1e-3
        fd = sum(
            (velocity(z + h * e, 0.5)[:, k] - velocity(z - h * e, 0.5)[:, k]).double() / (2 * h)
            for k, e in enumerate(torch.eye(2, dtype=torch.float64))
        )
        torch.testing.assert_close(
            likelihood.divergence(velocity, z.float(), 0.5).double(), fd, atol=2e-2, rtol=0
        )
        assert not velocity(z.float(), 0.5).requires_grad  # the solvers still get no graph


def test_each_new_model_gets_its_own_random_cache_token(app, open_panel, tmp_path, monkeypatch):
    keys = []
    original = flows.learned_source
    monkeypatch.setattr(
        flows,
        "learned_source",
        lambda velocity, key, *rest: keys.append(key) or original(velocity, key, *rest),
    )
    sessions = [app({"data": "moons"}) for _ in range(2)]
    for at in sessions:  # generation 1, step 0 in both: only the token tells them apart
        upload_model(at, open_panel, "m.safetensors", model_bytes(tmp_path))
    keys = [key for key in keys if key != ("snapshot",)]  # the live snapshot's own, uncached source
    tokens = {key[0] for key in keys}
    assert len(tokens) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", token) for token in tokens)
    assert {key[1:] for key in keys} == {(1, 0)}


# Drawing pad --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "circle", "radius": "abc", "left": 5, "top": 5},
        {"type": "circle", "radius": 1e308, "left": 5, "top": 5},
        {"type": "circle", "radius": -1e308, "left": 5, "top": 5},
        {"type": "circle", "radius": float("nan"), "left": 5, "top": 5},
        {"type": "circle", "radius": 2, "left": "x", "top": 5},
        {"type": "path", "path": 5},
        {"type": "path", "path": [5, "M", None, ["M", float("inf"), 3]]},
        {"type": "path", "path": [["M", 1, 2]] * (canvas.MAX_VERTICES + 1)},
        {"type": ["path"], "path": [["M", 1, 2]]},
        "not an object",
    ],
)
def test_forged_pad_values_are_skipped(obj):
    assert canvas.strokes_from_json({"objects": [obj]}) == []


@pytest.mark.parametrize("raw", [None, 5, "x", {"objects": 5}, {"objects": None}, []])
def test_a_forged_pad_value_of_the_wrong_shape_gives_no_strokes(raw):
    assert canvas.strokes_from_json(raw) == []


def test_a_forged_stroke_2e7_px_long_gives_at_most_the_stroke_cap():
    zigzag = [["M", 0, 0]] + [["L", 320 * (i % 2), i * 1e3] for i in range(1, 20_000)]
    (line,) = canvas.strokes_from_json({"objects": [{"type": "path", "path": zigzag}]})
    assert line.min() >= 0 and line.max() <= canvas.PAD_PX  # clipped to the pad
    tracemalloc.start()
    points = canvas.stroke_points(line, 6, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(points) == canvas.MAX_STROKE_POINTS and peak < 20 * 2**20


def test_the_pad_says_when_a_stroke_repeats_one_or_would_pass_the_point_cap():
    state = {}
    line = np.array([[10.0, 10.0], [200.0, 120.0]])
    assert canvas.take_strokes(state, "pad_0", [line], 4)
    assert canvas.Drawing(state).count() > 0 and canvas.NOTICE_KEY not in state
    count = canvas.Drawing(state).count()
    assert not canvas.take_strokes(state, "pad_0", [line], 4)  # the same pad reporting again: nothing
    assert canvas.take_strokes(state, "pad_1", [line], 4)  # the same stroke drawn anew: said so
    assert canvas.Drawing(state).count() == count and "exactly one already drawn" in state[canvas.NOTICE_KEY]
    canvas.Drawing(state).replace(np.zeros((datasets.MAX_POINTS - 5, 2)))
    assert canvas.take_strokes(state, "pad_2", [line + 1], 4)
    assert canvas.Drawing(state).count() == datasets.MAX_POINTS - 5
    assert "at most 20,000 points" in state[canvas.NOTICE_KEY]


# Injection ----------------------------------------------------------------------------------------


def test_hostile_link_parameter_names_and_values_are_shown_as_plain_text(app):
    at = app({HOSTILE[0]: "1", "solver": HOSTILE[2], "steps": HOSTILE[3], "schedule": HOSTILE[1]})
    assert len(messages(at)) >= 2
    assert_no_markup_from(at)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_file_names_csv_lines_and_pasted_text_are_shown_as_plain_text(app, open_panel, hostile):
    at = open_panel(app({"data": "moons"}), "upload")
    at.file_uploader(key="fme_w_upload").upload(
        f"{hostile}.csv", f"0,0\n{hostile},1\n".encode(), "text/csv"
    ).run()
    assert not at.exception and hostile.split("(")[0][:3] in errors(at).replace("\\", "")
    assert_no_markup_from(at)
    paste(at, f"0,0\n1,{hostile}")
    assert errors(at) and not at.exception
    assert_no_markup_from(at)
    upload_model(at, open_panel, f"{hostile}.safetensors", b"junk")
    assert_no_markup_from(at)


@pytest.mark.parametrize("field", ["schedule", "prediction", "version", "metadata"])
def test_hostile_model_metadata_is_shown_as_plain_text(app, open_panel, tmp_path, field):
    value = json.dumps({"note": HOSTILE[0]}) if field == "metadata" else HOSTILE[0] + HOSTILE[2]
    at = upload_model(
        app({"data": "moons"}), open_panel, "m.safetensors", model_bytes(tmp_path, **{field: value})
    )
    assert_no_markup_from(at)


# Sweep: every page, and every Playground control at its extremes, with a trained and a loaded model --


def _sweep_values():
    """(widget kind, key, values to set, whether to put the old value back after), in order."""
    import fmcore
    from explorer.core.state import FIELDS, FOLLOW_LIMIT, MAX_SEED, MAX_STEPS, TARGETS
    from explorer.playground import controls
    from fmcore.coupling import COUPLINGS
    from fmcore.solvers import SOLVERS, TIME_GRIDS

    return [
        ("segmented_control", "field", FIELDS, True),
        ("selectbox", "schedule", tuple(fmcore.SCHEDULES), True),
        ("selectbox", "solver", tuple(SOLVERS), True),
        ("selectbox", "grid", tuple(TIME_GRIDS), True),
        ("slider", "steps", (1, MAX_STEPS), True),
        ("segmented_control", "sampler", ("sde",), False),
        ("select_slider", "noise", (0.0, controls.NOISE_LEVELS[-1]), True),
        ("segmented_control", "sampler", ("ode",), False),
        ("select_slider", "n", (min(controls.PARTICLE_CHOICES), max(controls.PARTICLE_CHOICES)), True),
        ("number_input", "seed", (MAX_SEED, 0), True),
        ("pills", "layers", ([], list(controls.LAYER_LABELS)), True),
        ("toggle", "model_density", (True, False), True),
        ("toggle", "follow_on", (True,), False),
        ("number_input", "fx", (-FOLLOW_LIMIT, FOLLOW_LIMIT), True),
        ("number_input", "fy", (-FOLLOW_LIMIT, FOLLOW_LIMIT), True),
        ("toggle", "follow_on", (False,), False),
        ("slider", "png_t", (0.0, 1.0), True),
        ("slider", "spread", (1, 24), True),
        ("toggle", "compare", (True,), False),
        ("selectbox", "solver_b", tuple(SOLVERS), True),
        ("selectbox", "grid_b", tuple(TIME_GRIDS), True),
        ("slider", "steps_b", (1, MAX_STEPS), True),
        ("toggle", "compare", (False,), False),
        ("selectbox", "coupling", tuple(COUPLINGS), True),
        ("selectbox", "target", tuple(TARGETS), True),
        ("select_slider", "lr", (min(controls.LEARNING_RATES), max(controls.LEARNING_RATES)), True),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["trained", "loaded"])
def test_every_control_at_its_extremes_shows_no_traceback(app, open_panel, tmp_path, model):
    from explorer.playground.page import DATA_TABS

    at = app({"data": "moons"})
    if model == "trained":
        trained(at)
    else:
        upload_model(at, open_panel, "m.safetensors", model_bytes(tmp_path))
    for panel, value in (
        ("fme_w_export", True),
        ("fme_w_follow_panel", True),
        ("fme_w_particles_panel", True),
        ("fme_w_compare_panel", True),
        ("fme_w_training_options", True),
        ("fme_w_data_tab", DATA_TABS[1]),
    ):
        at.session_state[panel] = value  # every lazy panel open: its widgets exist
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    at.pills(key="fme_w_layers").set_value(["density"]).run()  # the network-density toggle appears
    swept = set()
    for kind, name, values, restore in _sweep_values():
        widgets = [w for w in at.get(kind) if w.key == f"fme_w_{name}"]
        assert widgets, f"no {kind} {name}"
        default = widgets[0].value
        for value in (*values, default) if restore else values:
            getattr(at, kind)(key=f"fme_w_{name}").set_value(value).run()
            assert not at.exception, (name, value, [e.value for e in at.exception])
        swept.add(name)
    assert at.get("plotly_chart") and swept == {name for _, name, _, _ in _sweep_values()}


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("[0-9]_*.py")))
def test_every_lesson_page_runs_without_a_traceback(page):
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]


def test_after_every_bad_input_the_data_and_model_are_kept_and_the_next_good_input_works(
    app, open_panel, tmp_path
):
    at = trained(app({"data": "spirals"}))
    step = stats_step(at)
    open_panel(at, "upload")
    bad = [
        lambda: at.file_uploader(key="fme_w_upload").upload("big.csv", b"0,0\n" * 10**6, "text/csv").run(),
        lambda: at.file_uploader(key="fme_w_upload").upload("x.csv", bytes(range(256)), "text/csv").run(),
        lambda: paste(at, "1,2\n3,[x](http://evil.example)"),
        lambda: upload_model(at, open_panel, "3d.safetensors", model_bytes(tmp_path, dim=3)),
        lambda: upload_model(at, open_panel, "deep.safetensors", model_bytes(tmp_path, model="[" * 9000)),
    ]
    for bad_input in bad:
        bad_input()
        assert not at.exception and at.error
        assert at.query_params["data"] == "spirals" and stats_step(at) == step
    paste(at, "0,0\n1,1\n2,0\n0,2")
    assert not at.error and at.query_params["data"] == "custom"
