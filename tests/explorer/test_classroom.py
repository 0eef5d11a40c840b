"""The classroom's streamlit-free parts (explorer/classroom), against a real SQLite store in a temp folder."""

import math
import struct
from dataclasses import fields
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from explorer.classroom import figures, links, push, student, tiles
from explorer.rooms import Limits, PushedSettings, Seat, Student, StudentReport, UnknownRoom, open_store

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def store(tmp_path):
    s = open_store(None, data_dir=tmp_path)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("page_url", "base"),
    [
        ("http://localhost:8501/classroom", "http://localhost:8501"),
        ("http://10.0.0.5:8501/classroom/?room=X", "http://10.0.0.5:8501"),
        ("https://school.example/fme/classroom", "https://school.example/fme"),
        ("http://localhost:8501/", "http://localhost:8501"),
        (None, ""),
    ],
)
def test_the_base_url_is_the_apps_root(page_url, base):
    assert links.base_url(page_url) == base


def test_the_links_carry_the_code_and_the_token():
    token = "a-b_c" * 9
    join = links.join_link("http://h:8501", "ABC234")
    teacher = links.teacher_link("http://h:8501", "ABC234", token)
    assert join == "http://h:8501/?room=ABC234"
    parts = urlsplit(teacher)
    assert parts.path == "/classroom" and parse_qs(parts.query) == {"room": ["ABC234"], "token": [token]}
    assert links.join_link("", "ABC234") == "/?room=ABC234"  # relative without a browser URL


def test_the_qr_code_is_a_png_of_whole_modules_with_a_quiet_zone():
    png = links.qr_png("http://h:8501/?room=ABC234", scale=5)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == height and width % 5 == 0
    modules = width // 5 - 8  # 4 modules of quiet zone on each side
    assert modules >= 21 and (modules - 21) % 4 == 0  # a QR symbol is 21 + 4k modules wide


def seat(name, step=None, quality=1.0, last_seen=100.0, sid=None, chips=None):
    report = None
    if step is not None:
        pts = np.ones((4, 2), np.float32)
        report = StudentReport(
            step=step, loss=1.2, loss_floor=1.0, quality=quality, chips=chips or {}, points=pts
        )
    return Seat(Student(sid or name, name, 0.0, last_seen), report, {})


def test_a_tile_shows_the_report_and_when_the_student_was_seen():
    t = tiles.tile(seat("Ada", step=1234, quality=2.5, chips={"solver": "heun", "data": "moons"}), now=112.0)
    assert (t.name, t.step, t.loss, t.loss_floor, t.quality, t.seen_s, t.reported) == (
        "Ada",
        1234,
        1.2,
        1.0,
        2.5,
        12.0,
        True,
    )
    assert tiles.status_line(t) == "step 1,234 · quality 2.50 · seen 12 s ago"
    assert tiles.loss_text(t) == "loss 1.20 · floor 1.00"
    assert tiles.floor_ratio(t) == pytest.approx(1.0 / 1.2)
    assert tiles.chip_texts(t) == ["data: moons", "solver: heun"]
    waiting = tiles.tile(seat("Bo"), now=100.0)
    assert not waiting.reported and math.isnan(waiting.loss) and waiting.points.shape == (0, 2)
    assert tiles.status_line(waiting) == "waiting for a first report · seen just now"
    assert tiles.floor_ratio(waiting) == 0.0


def test_tiles_sort_by_step_quality_and_name_with_the_unreported_last():
    seats = [
        seat("zoe", 5, 3.0),
        seat("Amy", 9, float("nan")),
        seat("bob"),
        seat("Cy", 9, 1.5),
        seat("dee", 1, 2.0),
    ]
    order = {by: [t.name for t in tiles.tiles(seats, 100.0, by)] for by in tiles.SORTS}
    assert order["step"] == ["Amy", "Cy", "zoe", "dee", "bob"]  # ties keep joining order
    assert order["quality"] == ["Cy", "dee", "zoe", "Amy", "bob"]  # lower is better; NaN last
    assert order["name"] == ["Amy", "bob", "Cy", "dee", "zoe"]
    with pytest.raises(ValueError, match="sort by one of step, quality, name"):
        tiles.sort_tiles([], "loss")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (4.9, "just now"),
        (5, "5 s ago"),
        (59.9, "59 s ago"),
        (60, "1 min ago"),
        (7200, "2 h ago"),
    ],
)
def test_seen_text(seconds, text):
    assert tiles.seen_text(seconds) == text


@pytest.mark.parametrize(
    ("x", "text"),
    [(1.0, "1.00"), (0.012, "0.0120"), (45.678, "45.7"), (12345.6, "12,346"), (float("nan"), "–")],
)
def test_tile_numbers_keep_three_significant_digits(x, text):
    assert tiles.number(x) == text


def test_the_header_counts_students():
    assert [tiles.count_text(n) for n in (0, 1, 5)] == ["0 students", "1 student", "5 students"]


def test_push_choices_are_the_registries_and_push_fields():
    names = {f.name for f in fields(PushedSettings)} - {"version"}
    assert set(push.CHOICES) | {"steps"} == names == set(push.LABELS)
    assert "heun" in push.CHOICES["solver"] and "moons" in push.CHOICES["data"]


def test_a_push_form_keeps_what_is_left_alone():
    keep = {name: push.KEEP for name in push.CHOICES}
    assert push.settings_from(keep, 0) == PushedSettings()
    wanted = push.settings_from({**keep, "solver": "rk4", "coupling": "ot"}, 12)
    assert wanted == PushedSettings(solver="rk4", coupling="ot", steps=12)
    assert push.describe(wanted) == "solver rk4, solver steps 12, coupling ot"
    with pytest.raises(ValueError, match="not a solver"):
        push.settings_from({"solver": XSS}, 0)
    with pytest.raises(ValueError, match="cannot be pushed"):
        push.settings_from({"lr": "1"}, 0)
    with pytest.raises(ValueError, match="between 1 and"):
        push.settings_from(keep, push.MAX_STEPS + 1)


def test_every_choice_is_accepted_by_the_store(store):
    code, token = store.create_room()
    for name, options in push.CHOICES.items():
        for option in options:
            sent = store.push_settings(code, token, push.settings_from({name: option}, 0))
            assert getattr(store.latest_push(code), name) == option and store.latest_push(code) == sent


def test_a_student_joins_reports_and_is_seen_by_the_teacher(store):
    code, token = store.create_room()
    seat_ = student.join(store, code.lower()[:3] + "-" + code.lower()[3:], None, client="s1")
    assert seat_.code == code and len(seat_.student_id) == 32
    samples = np.random.default_rng(0).normal(size=(1000, 2))
    samples[3] = np.nan
    chips = {f"k{i}": i for i in range(40)} | {"x" * 100: "y"}
    report = student.report_from(samples, 77, 1.3, 1.0, 2.2, chips)
    assert report.points.shape == (200, 2) and np.isfinite(report.points).all()
    finite = samples[np.isfinite(samples).all(axis=1)]
    np.testing.assert_allclose(report.points[[0, -1]], finite[[0, -1]].astype(np.float32))  # evenly spread
    assert len(report.chips) == Limits().chips_per_report
    store.report(code, seat_.student_id, report)
    (got,) = store.students(code, token)
    assert got.student.name  # a pseudonym
    np.testing.assert_allclose(got.report.points, report.points, rtol=1e-3, atol=1e-3)  # kept as float16
    assert got.report.step == 77 and got.report.chips == {f"k{i}": str(i) for i in range(16)}


def test_a_few_samples_are_kept_as_they_are():
    report = student.report_from(np.arange(6.0).reshape(3, 2), 0, float("nan"), 1.0, float("nan"), {})
    np.testing.assert_array_equal(report.points, np.arange(6.0, dtype=np.float32).reshape(3, 2))


def test_pending_push_returns_each_version_once(store):
    code, token = store.create_room()
    assert student.pending_push(store, code, 0) is None
    store.push_settings(code, token, PushedSettings(solver="heun"))
    update = student.pending_push(store, code, 0)
    assert update.version == 1 and update.settings.solver == "heun"
    assert update.notice == "Your teacher changed solver heun."
    assert student.pending_push(store, code, update.version) is None
    store.push_settings(code, token, PushedSettings(steps=4, grid="karras"))
    assert (
        student.pending_push(store, code, 1).notice
        == "Your teacher changed time grid karras, solver steps 4."
    )
    with pytest.raises(UnknownRoom):
        student.pending_push(store, "ZZZZZZ", 0)


def test_poll_answers_count_until_the_reveal(store):
    code, token = store.create_room()
    seats = [student.join(store, code, f"S{i}") for i in range(4)]
    for s, answer in zip(seats, ["a", "b", "a", "b"], strict=True):
        assert student.poll_answer(store, s, "q1", answer)
    assert student.poll_answer(store, seats[1], "q1", "a")  # changed before the reveal
    assert dict(store.poll_counts(code, token, "q1").counts) == {"a": 3, "b": 1}
    assert tiles.questions(store.students(code, token)) == ["q1"]
    store.reveal(code, token, "q1")
    assert not student.poll_answer(store, seats[3], "q1", "a")
    assert dict(store.poll_counts(code, token, "q1").counts) == {"a": 3, "b": 1}


def test_figures_draw_the_samples_and_escape_answers():
    t = tiles.tile(seat("Ada", step=1), now=100.0)
    fig = figures.tile_figure(t)
    assert len(fig.data[0].x) == 4 and fig.layout.xaxis.range == (-figures.LIMIT, figures.LIMIT)
    bars = figures.poll_figure({"b": 1, XSS: 3, "a": 2})
    assert list(bars.data[0].y) == ["&lt;img src=x onerror=alert(1)&gt;", "a", "b"]  # most first
    assert list(bars.data[0].x) == [3, 2, 1]


@pytest.mark.parametrize("module", ["links", "tiles", "push", "student", "figures"])
def test_only_the_dashboard_imports_streamlit(module):
    from tests.test_layers import ROOT, imported_roots

    assert "streamlit" not in imported_roots(ROOT / "explorer" / "classroom" / f"{module}.py")


@pytest.mark.parametrize("schedule", ["linear", "vp"])
def test_a_mean_flows_tile_shows_the_samples_of_its_own_jumps(schedule):
    """A student's tile (the live snapshot's samples, ``room.report``) for a mean flow: its jumps
    z_t = z_r + (t - r) u(z_r, r, t) at the Playground's NFE and on its path's times (the VP path
    ends at t_max < 1), as the main figure samples it; not u(z, t, t) integrated as a velocity."""
    import torch

    from explorer.core import data, flows
    from explorer.core.state import ViewState
    from explorer.playground import live
    from explorer.training.runner import TrainingRunner
    from fmcore import get_schedule, integrate

    dataset = data.preset_dataset("moons", seed=0)
    runner = TrainingRunner("inline")
    runner.configure(torch.from_numpy(dataset.train), schedule=schedule, seed=0, objective="meanflow")
    runner.start()
    runner.tick(budget_s=0.2)
    state = ViewState(nfe=2, snapshot_n=200, seed=3)
    _, samples = live._snapshot(runner, dataset, state)

    u, t_max = runner.average_velocity, get_schedule(schedule).t_max
    z = torch.from_numpy(data.noise_particles(200, 3))
    with torch.no_grad():
        for r, t in ((0.0, t_max / 2), (t_max / 2, t_max)):
            z = z + (t - r) * u(z, torch.tensor(r), torch.tensor(t))
    np.testing.assert_allclose(samples, z.numpy(), atol=1e-5)
    # The same as the main figure's samples from that noise (its sampler for this network).
    source = flows.learned_source(runner.velocity, ("test",), schedule, schedule, u)
    main = flows.compute_flow(source, data.noise_particles(200, 3), *flows.main_sampler(state, source))
    np.testing.assert_allclose(samples, main.samples, atol=1e-6)
    with torch.no_grad():
        wrong = integrate(
            runner.velocity, z.new_tensor(data.noise_particles(200, 3)), "midpoint", 8, schedule=schedule
        )
    assert np.abs(samples - wrong.z_end.numpy()).max() > 1e-3
