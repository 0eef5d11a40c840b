"""Figure builders are pure: numbers in, a plotly animation out, the same figure for the same input."""

import base64

import numpy as np
import plotly.io as pio
import pytest

from explorer import compat, figures
from explorer.core import densities, fields, flows, quality
from explorer.playground import cache

F = flows.N_FRAMES


def values(array) -> np.ndarray:
    """A figure's array: plotly.js typed-array specs (what compat.ready_figure stores) decoded."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        shape = array.get("shape")
        return flat.reshape([int(k) for k in shape.split(",")]) if shape else flat
    return np.asarray(array)


def fake_flow(n=200, steps=10, solver="euler", seed=0) -> flows.Flow:
    rng = np.random.default_rng(seed)
    z0 = rng.normal(size=(n, 2)).astype(np.float32)
    z1 = rng.normal(size=(n, 2)).astype(np.float32) * 0.3 + 1.0
    times = flows.frame_times()
    particles = ((1 - times)[:, None, None] * z0 + times[:, None, None] * z1).astype(np.float32)
    nodes = np.linspace(0, 1, steps + 1, dtype=np.float32)
    paths = ((1 - nodes)[:, None, None] * z0[:20] + nodes[:, None, None] * z1[:20]).astype(np.float32)
    return flows.Flow(times, particles, nodes, paths, z1, steps, solver, steps, "uniform", 0.0)


def panel(**overrides) -> figures.Panel:
    flow = overrides.pop("flow", fake_flow())
    field = np.ones((F, fields.ARROW_GRID**2, 2), dtype=np.float32)
    data = np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32)
    return figures.Panel(**{"flow": flow, "data": data, "title": "A", "field": field, **overrides})


def test_a_stride_keeps_every_nth_frame_of_the_whole_figure_and_its_pace():
    """The lighter figure of a session's first view: the same traces, the frames at every 5th time
    (the first and the last among them) with the same data, a slider step per kept frame, each
    shown 5 times as long while playing."""
    whole, light = figures.flow_figure([panel()]), figures.flow_figure([panel()], stride=5)
    assert light.to_plotly_json()["data"] == whole.to_plotly_json()["data"]
    by_name = {frame.name: frame for frame in whole.frames}
    names = [frame.name for frame in light.frames]
    assert names == [frame.name for frame in whole.frames][::5] and names[-1] == "1.00" and len(names) == 11
    for frame in light.frames:
        assert frame.to_plotly_json() == by_name[frame.name].to_plotly_json()
    assert [tuple(step["args"][0]) for step in light.layout.sliders[0].steps] == [(name,) for name in names]
    duration = lambda f: f.layout.updatemenus[0].buttons[0].args[1]["frame"]["duration"]  # noqa: E731
    assert duration(light) == 5 * duration(whole) == 5 * figures.FRAME_MS
    odd = figures.flow_figure([panel()], stride=7)
    assert [frame.name for frame in odd.frames][-2:] == ["0.98", "1.00"]  # the last time is kept
    with pytest.raises(ValueError, match="stride"):
        figures.flow_figure([panel()], stride=0)


def test_one_frame_per_time_with_a_slider_and_play_buttons():
    fig = figures.flow_figure([panel()])
    assert len(fig.frames) == F
    assert [f.name for f in fig.frames] == [f"{t:.2f}" for t in flows.frame_times()]
    assert fig.frames[0].name == "0.00" and fig.frames[-1].name == "1.00"
    (slider,) = fig.layout.sliders
    assert len(slider.steps) == F and slider.currentvalue.prefix == "t = "
    assert list(slider.steps[-1].args[0]) == ["1.00"]
    (menu,) = fig.layout.updatemenus
    play, pause = menu.buttons
    assert play.method == "animate" and play.args[0] is None
    assert play.args[1]["transition"]["duration"] == 0
    assert 60 <= play.args[1]["frame"]["duration"] <= 100
    assert list(pause.args[0]) == [None]


def test_only_the_moving_traces_are_in_the_frames():
    fig = figures.flow_figure([panel()])
    names = [trace.name for trace in fig.data]
    assert names == ["data z₁", "paths (solver steps)", "velocity v(z, t)", "particles z_t"]
    moving = {names.index("velocity v(z, t)"), names.index("particles z_t")}
    for frame in fig.frames:
        assert set(frame.traces) == moving
        assert [t.type for t in frame.data] == ["scatter", "scatter"]
    # the particles move: frame k holds the flow's particles at time k, and change colour noise -> data
    flow = fake_flow()
    particles = fig.frames[-1].data[list(fig.frames[-1].traces).index(names.index("particles z_t"))]
    np.testing.assert_allclose(values(particles.x), flow.particles[-1, :, 0], rtol=1e-6)
    first = fig.frames[0].data[1].marker.color
    last = fig.frames[-1].data[1].marker.color
    assert first != last


def test_arrows_are_one_line_trace_with_nan_gaps_and_arrowheads():
    fig = figures.flow_figure([panel()])
    arrows = next(t for t in fig.data if t.name == "velocity v(z, t)")
    assert arrows.mode == "lines"
    x, y = values(arrows.x).astype(float), values(arrows.y).astype(float)
    g = fields.ARROW_GRID**2
    assert x.shape == (6 * g,) and np.isnan(x[5::6]).all() and np.isfinite(x[0::6]).all()
    # the constant field (1, 1): every shaft points up and to the right, all the same length
    dx, dy = x[1::6] - x[0::6], y[1::6] - y[0::6]
    np.testing.assert_allclose(dx, dy, rtol=1e-5)
    assert np.all(dx > 0) and np.ptp(dx) < 1e-5
    # both barbs start at the tip and point back, symmetric about the shaft
    tip = np.stack([x[1::6], y[1::6]], 1)
    assert np.allclose(tip, np.stack([x[3::6], y[3::6]], 1))
    left, right = np.stack([x[2::6], y[2::6]], 1) - tip, np.stack([x[4::6], y[4::6]], 1) - tip
    shaft = np.stack([dx, dy], 1)
    assert np.all((left * shaft).sum(1) < 0) and np.all((right * shaft).sum(1) < 0)
    np.testing.assert_allclose(np.linalg.norm(left, axis=1), np.linalg.norm(right, axis=1), rtol=1e-4)


def test_arrow_length_is_capped_below_the_cell():
    points = np.zeros((3, 2), dtype=np.float32)
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [1e6, 0.0]], dtype=np.float32)
    x, _ = figures.arrow_segments(points, vectors, scale=1.0)
    lengths = x[1::6] - x[0::6]
    assert lengths[0] == 0.0 and 0 < lengths[1] < lengths[2] <= figures.ARROW_CELL + 1e-6


def test_solver_steps_show_as_dots_only_for_few_steps():
    few = figures.flow_figure([panel(flow=fake_flow(steps=figures.PATH_MARKERS_UP_TO))])
    many = figures.flow_figure([panel(flow=fake_flow(steps=figures.PATH_MARKERS_UP_TO + 1))])
    assert few.data[1].mode == "lines+markers" and many.data[1].mode == "lines"


def test_arrays_go_out_as_float32_binary():
    fig = figures.flow_figure([panel()])
    particles = fig.frames[10].data[1]
    assert values(particles.x).dtype == np.float32
    text = pio.to_json(fig, validate=False)
    assert '"dtype":"f4"' in text and '"bdata"' in text


def test_the_same_input_gives_the_same_figure():
    a = pio.to_json(figures.flow_figure([panel()]), validate=False)
    b = pio.to_json(figures.flow_figure([panel()]), validate=False)
    assert a == b
    c = pio.to_json(figures.flow_figure([panel(flow=fake_flow(seed=1))]), validate=False)
    assert a != c


def test_density_heatmap_is_animated_and_forces_redraw():
    density = (
        np.random.default_rng(0)
        .random((F, densities.DENSITY_GRID, densities.DENSITY_GRID))
        .astype(np.float32)
    )
    fig = figures.flow_figure([panel(density=density)])
    assert fig.data[0].type == "heatmap"
    assert 0 in fig.frames[0].traces and fig.frames[5].data[0].type == "heatmap"
    z = values(fig.frames[5].data[0].z)
    assert z.shape == (densities.DENSITY_GRID, densities.DENSITY_GRID) and z.max() == pytest.approx(1.0)
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["redraw"] is True


def test_warp_and_followed_particle_layers():
    warp = np.zeros((F, 4, 5, 2), dtype=np.float32)
    single = fields.SinglePath(
        start=np.zeros(2, np.float32),
        nodes=np.zeros((11, 2), np.float32),
        exact=np.zeros((101, 2), np.float32),
        particle=np.tile(np.linspace(0, 1, F, dtype=np.float32)[:, None], (1, 2)),
    )
    fig = figures.flow_figure([panel(warp=warp, single=single, show_paths=False)])
    names = [t.name for t in fig.data]
    assert "warped grid" in names and "followed particle" in names and "paths (solver steps)" not in names
    follow = names.index("followed particle")
    last = fig.frames[-1]
    assert values(last.data[list(last.traces).index(follow)].x)[0] == pytest.approx(1.0)
    warp_trace = last.data[list(last.traces).index(names.index("warped grid"))]
    assert np.isnan(values(warp_trace.x)).sum() == 4  # one gap after each line


def test_compare_mode_puts_two_square_panels_on_one_slider():
    fig = figures.flow_figure([panel(title="A"), panel(title="B", flow=fake_flow(steps=3))], height=500)
    assert len(fig.frames) == F and len(fig.layout.sliders) == 1
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis2.scaleanchor == "x2"
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0]
    assert [a.text for a in fig.layout.annotations] == ["A", "B"]
    assert len(fig.frames[0].traces) == 4  # arrows and particles of each panel


def test_panel_title_states_steps_and_nfe():
    title = figures.panel_title(fake_flow(steps=20, solver="rk4"), "A", 0.0123)
    assert "rk4" in title and "20 steps" in title and "20 NFE" in title and "0.0123" in title


def test_loss_figure_has_the_floor_and_thins_long_curves():
    steps = np.arange(5000)
    fig = figures.loss_figure(steps, 1.0 + np.exp(-steps / 500), floor=0.9)
    assert fig.layout.yaxis.type == "log"
    assert len(fig.data[0].x) <= 600 and fig.data[0].x[-1] == 4999
    floor = fig.data[1]
    assert floor.name == "loss floor" and floor.line.dash == "dash"
    np.testing.assert_allclose(floor.y, [0.9, 0.9], rtol=1e-6)
    assert floor.x[-1] == 4999
    assert len(figures.loss_figure(steps[:3], np.ones(3), floor=float("nan")).data) == 1


def test_snapshot_and_schedule_figures():
    rng = np.random.default_rng(0)
    snap = figures.snapshot_figure(
        rng.normal(size=(50, 2)), rng.normal(size=(30, 2)), np.ones((fields.ARROW_GRID**2, 2))
    )
    assert [t.type for t in snap.data] == ["scatter"] * 3 and snap.layout.yaxis.scaleanchor == "x"
    ts = np.linspace(0, 1, 11)
    sched = figures.schedule_figure(ts, ts, 1 - ts)
    assert [t.name for t in sched.data] == ["α_t", "σ_t"]
    svg = figures.schedule_svg(ts, ts, 1 - ts, width=240, height=96)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    # alpha = t rises from the bottom-left corner to the top-right one of the plotting area
    alpha = svg.split("<polyline points='")[1].split("'")[0].split()
    assert alpha[0] == "22.0,80.0" and alpha[-1] == "234.0,14.0"


def test_a_real_flow_from_the_exact_field_feeds_the_figure():
    dataset = cache.load_dataset("8gaussians", 0)
    source = flows.exact_source(dataset, "linear")
    flow = flows.compute_flow(source, cache.noise_particles(100, 0), "heun", 5, "uniform")
    assert flow.nfe == 10 and flow.particles.shape == (F, 100, 2) and flow.paths.shape == (6, 100, 2)
    np.testing.assert_allclose(flow.particles[0], cache.noise_particles(100, 0), atol=1e-6)
    np.testing.assert_allclose(flow.particles[-1], flow.samples, atol=1e-6)
    fig = figures.flow_figure(
        [figures.Panel(flow=flow, data=dataset.shown, field=cache.field_frames(source))]
    )
    assert len(fig.frames) == F


def test_the_flows_own_density_matches_the_closed_form():
    """Change of variables along the exact field (log-likelihood) against the exact mixture density."""
    import torch

    import fmcore

    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal([-1.5, 0.5], 0.3, (30, 2)), rng.normal([1.0, -0.5], 0.3, (30, 2))])
    dataset = cache.load_dataset("custom", 0, points.astype(np.float32), "two-blobs")
    source = flows.exact_source(dataset, "linear")
    size, half = 12, float(flows.frame_times()[F // 2])
    model = cache.model_density_frames(source, size=size, times=(0.0, half))
    assert model.shape == (2, size, size)
    axis = densities.density_axis(size)
    x, y = np.meshgrid(axis, axis)
    grid = np.stack([x.ravel(), y.ravel()], 1)
    normal = np.exp(-0.5 * (grid**2).sum(1)) / (2 * np.pi)
    np.testing.assert_allclose(model[0].ravel(), normal, rtol=1e-5)  # t = 0: the noise N(0, I)
    smoothed = fmcore.Blurred("linear", flows.EXACT_BANDWIDTH)
    exact = fmcore.exact_log_density(torch.from_numpy(grid), half, torch.from_numpy(dataset.shown), smoothed)
    exact = exact.exp().numpy()
    mass = exact > 0.05 * exact.max()  # where there is mass; Heun with 6 steps, so a few percent
    np.testing.assert_allclose(model[1].ravel()[mass], exact[mass], rtol=0.1)


def test_steps_and_nfe_are_named_precisely():
    assert flows.steps_label("rk4", 20) == "20 steps · 80 NFE"
    assert flows.steps_label("euler", 1) == "1 step · 1 NFE"
    assert flows.steps_label("dopri5", 10) == "adaptive, 10 outputs · adaptive NFE"
    assert flows.steps_label("dopri5", 10, 134) == "adaptive, 10 outputs · 134 NFE"


def test_drawn_data_is_measured_against_all_its_strokes():
    """A prefix of the reference must not be one stroke: the points come stroke by stroke."""
    left = np.stack([np.linspace(-2, -1, 200), np.zeros(200)], 1)
    right = np.stack([np.linspace(1, 2, 200), np.zeros(200)], 1)
    dataset = cache.load_dataset("custom", 0, np.concatenate([left, right]).astype(np.float32), "two-strokes")
    prefix = quality.reference_for(dataset, 1000)
    assert (prefix[:, 0] < 0).mean() == pytest.approx(0.5, abs=0.15)
    source = flows.exact_source(dataset, "linear")
    flow = cache.flow(source, 400, 0, "euler", 20, "uniform")
    assert cache.energy_distance(flow.samples, prefix) < 5 * cache.noise_floor(dataset, 400) + 0.01


def test_a_ready_flow_figure_is_valid_and_sends_the_same_json():
    # compat.ready_figure skips plotly's validation and array conversion on every draw: the specs
    # are checked here, with every layer on, by validating them and comparing what
    # st.plotly_chart sends (a figure built from plain numpy arrays, validated, as before).
    import json

    import plotly.graph_objects as go

    rng = np.random.default_rng(2)
    single = fields.SinglePath(
        start=np.zeros(2, np.float32),
        nodes=rng.normal(size=(11, 2)).astype(np.float32),
        exact=rng.normal(size=(101, 2)).astype(np.float32),
        particle=rng.normal(size=(F, 2)).astype(np.float32),
    )
    layers = dict(
        density=rng.random((F, 24, 24)).astype(np.float32),
        warp=rng.normal(size=(F, 4, 5, 2)).astype(np.float32),
        single=single,
    )
    panels = [panel(**layers), panel(title="B", field_kind="difference")]
    fig = figures.flow_figure(panels)
    go.Figure(fig.to_dict())  # raises on any property plotly does not know
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compat, "ready_figure", go.Figure)  # plotly's own validation and conversion
        plain = figures.flow_figure(panels)
    assert json.loads(pio.to_json(fig, validate=False)) == json.loads(pio.to_json(plain, validate=False))
