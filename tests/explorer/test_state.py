"""The view state's round trip through the URL: what a shared link must reproduce."""

import dataclasses

import numpy as np
import pytest

from explorer.core.state import (
    CUSTOM,
    SETTINGS,
    URL_MAX_POINTS,
    ViewState,
    decode_points,
    encode_points,
    from_widgets,
    widget_key,
    widget_values,
)


def test_defaults_make_an_empty_query_and_back():
    assert ViewState().to_query() == {}
    state, notices = ViewState.from_query({})
    assert state == ViewState() and notices == []


def test_every_setting_survives_the_round_trip():
    state = ViewState(
        data="spirals",
        schedule="cosine",
        solver="dpm++2m",
        steps=7,
        grid="logsnr",
        n=2000,
        seed=42,
        field="difference",
        density=True,
        paths=False,
        warp=True,
        compare=True,
        solver_b="heun",
        steps_b=3,
        grid_b="karras",
        coupling="ot",
        target="marginal",
        lr=3e-4,
        follow=(1.25, -0.5),
        classroom=True,
    )
    query = state.to_query()
    assert all(isinstance(v, str) for v in query.values())
    back, notices = ViewState.from_query(query)
    assert notices == []
    assert back == state


def test_drawn_points_travel_compactly_and_come_back_within_quantisation():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1500, 2)).astype(np.float32) * [2.0, 0.5]
    state = ViewState().with_points(points)
    query = state.to_query()
    assert query["data"] == CUSTOM
    # 16 bits per coordinate: at most 4 bytes a point before base64 (raw float32 would be 8)
    assert len(query["pts"]) <= 4 * len(points) * 4 / 3 + 64
    back, notices = ViewState.from_query(query)
    assert notices == []
    assert back.points.shape == points.shape
    half_step = (points.max(0) - points.min(0)) / 65535 / 2
    assert np.all(np.abs(back.points - points).max(axis=0) <= half_step * 1.01 + 1e-6)


def test_point_encoding_keeps_degenerate_boxes_and_single_points():
    line = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], dtype=np.float32)  # zero height
    np.testing.assert_allclose(decode_points(encode_points(line)), line, atol=1e-4)
    one = np.array([[0.5, -0.5]], dtype=np.float32)
    np.testing.assert_allclose(decode_points(encode_points(one)), one, atol=1e-6)


def test_links_carry_at_most_a_subsample_of_huge_drawings():
    points = np.random.default_rng(1).uniform(-3, 3, size=(URL_MAX_POINTS * 2, 2)).astype(np.float32)
    back, _ = ViewState.from_query(ViewState().with_points(points).to_query())
    assert len(back.points) == URL_MAX_POINTS
    # a subsample: every point that came back was one of the originals (up to quantisation)
    nearest = np.min(np.abs(back.points[:50, None, :] - points[None, :, :]).sum(-1), axis=1)
    assert nearest.max() < 1e-3


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"solver": "warp-drive"}, "solver"),
        ({"steps": "0"}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"n": "10"}, "n="),
        ({"schedule": "???"}, "schedule"),
        ({"lr": "nan"}, "lr"),
        ({"density": "maybe"}, "density"),
        ({"follow": "1;2"}, "follow"),
        ({"bogus": "1"}, "bogus"),
    ],
)
def test_invalid_parameters_are_ignored_with_a_notice(params, needle):
    state, notices = ViewState.from_query({"data": "circles", **params})
    assert state.data == "circles"  # the valid parts are kept
    assert len(notices) == 1 and needle in notices[0]
    for name in params:
        if hasattr(ViewState, name):
            assert getattr(state, name) == getattr(ViewState(), name)


@pytest.mark.parametrize("pts", [None, "", "not-base64!!", "eJwLz0jNyclXKM8vyklRBAAtQgVp"])
def test_custom_data_with_missing_or_damaged_points_falls_back_with_a_notice(pts):
    params = {"data": CUSTOM} | ({} if pts is None else {"pts": pts})
    state, notices = ViewState.from_query(params)
    assert state.data == "moons" and state.points is None
    assert len(notices) == 1 and "points" in notices[0]


def test_list_values_from_repeated_parameters_use_the_last():
    state, notices = ViewState.from_query({"steps": ["3", "9"]})
    assert state.steps == 9 and notices == []


def test_points_key_identifies_the_points():
    a = ViewState().with_points(np.array([[0, 0], [1, 0], [0, 1]]))
    b = ViewState().with_points(np.array([[0, 0], [1, 0], [0, 2]]))
    assert a.points_key != b.points_key
    assert a != b and a == ViewState().with_points(a.points.copy())


def test_shared_points_are_a_fixed_point_of_the_link():
    from explorer.core.state import as_shared

    points = np.random.default_rng(3).normal(size=(500, 2)).astype(np.float32)
    shared = as_shared(points)
    back, _ = ViewState.from_query(ViewState().with_points(shared).to_query())
    np.testing.assert_array_equal(back.points, shared)  # what the sharer sees is what the link shows


# -- drawn points: fabric.js strokes -> data points (explorer.playground.canvas) ---------------------------


def test_a_stroke_becomes_points_along_it_in_model_coordinates():
    from explorer.core.flows import VIEW_BOX
    from explorer.playground import canvas

    stroke = {
        "objects": [{"type": "Path", "path": [["M", 0, 160], ["Q", 80, 160, 160, 160], ["L", 320, 160]]}]
    }
    (line,) = canvas.strokes_from_json(stroke)
    np.testing.assert_allclose(line, [[0, 160], [160, 160], [320, 160]])
    points = canvas.stroke_points(line, spread_px=0.0, seed=0, pad_px=320)
    assert len(points) == int(320 * canvas.POINTS_PER_PX)
    # the pad's middle row is y = 0; its left and right edges are -VIEW_BOX and +VIEW_BOX
    np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-6)
    assert points[:, 0].min() >= -VIEW_BOX and points[:, 0].max() <= VIEW_BOX
    assert np.ptp(points[:, 0]) > 1.8 * VIEW_BOX  # spread along the whole stroke


def test_the_brush_spread_scatters_points_and_is_reproducible():
    from explorer.playground import canvas

    line = np.array([[100.0, 100.0], [200.0, 100.0]])
    tight = canvas.stroke_points(line, spread_px=1.0, seed=3)
    wide = canvas.stroke_points(line, spread_px=12.0, seed=3)
    assert wide[:, 1].std() > 5 * tight[:, 1].std()
    np.testing.assert_array_equal(wide, canvas.stroke_points(line, spread_px=12.0, seed=3))
    dab = canvas.stroke_points(np.array([[50.0, 50.0]]), spread_px=6.0, seed=0)  # a click, no drag
    assert len(dab) >= 2 and np.isfinite(dab).all()


def test_pad_pixels_map_to_model_coordinates_with_y_up():
    from explorer.core.flows import VIEW_BOX
    from explorer.playground import canvas

    corners = canvas.to_model(np.array([[0, 0], [320, 320], [160, 160]]), pad_px=320)
    np.testing.assert_allclose(corners, [[-VIEW_BOX, VIEW_BOX], [VIEW_BOX, -VIEW_BOX], [0, 0]], atol=1e-9)


def test_the_drawing_keeps_strokes_for_undo_in_a_plain_mapping():
    from explorer.playground import canvas

    session = {}
    pad = canvas.Drawing(session)
    pad.add(np.zeros((3, 2)))
    pad.add(np.ones((2, 2)))
    assert canvas.Drawing(session).count() == 5  # it lives in the session mapping, not the widget
    pad.undo()
    assert canvas.Drawing(session).count() == 3
    pad.clear()
    assert canvas.Drawing(session).points() is None


# -- one schema per setting: the link and the widgets are derived from the ViewState fields -------


def _changed(name: str):
    """A valid value other than the default for the setting ``name``, from its schema alone."""
    spec, default = SETTINGS[name], getattr(ViewState(), name)
    if name == "follow":
        return (1.25, -0.5)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return type(default)(spec.hi if default != spec.hi else spec.lo)
    return next(choice for choice in spec.choices if choice != default)


def test_every_field_but_the_points_is_a_setting_named_in_the_link_by_its_own_name():
    names = [f.name for f in dataclasses.fields(ViewState) if f.name not in ("points", "point_labels")]
    assert list(SETTINGS) == names
    assert all(spec.url == name for name, spec in SETTINGS.items())  # old share links keep working


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_setting_alone_travels_through_the_link(name):
    state = dataclasses.replace(ViewState(), **{name: _changed(name)})
    if name == "data":
        state = ViewState(data="spirals")  # custom data needs points: covered by the point tests
    query = state.to_query()
    assert list(query) == [SETTINGS[name].url]
    assert ViewState.from_query(query) == (state, [])


def test_the_snapshot_particle_count_is_bounded_by_its_declared_range():
    spec = SETTINGS["snapshot_n"]
    state, notices = ViewState.from_query({"snapshot_n": str(spec.hi + 1)})
    assert state.snapshot_n == ViewState().snapshot_n
    assert notices == [f"Ignored snapshot_n='{spec.hi + 1}': must be between {spec.lo} and {spec.hi}."]
    assert ViewState.from_query({"snapshot_n": "1200"})[0].snapshot_n == 1200


def test_the_widgets_hold_the_state_and_give_it_back():
    state = ViewState(**{name: _changed(name) for name in SETTINGS if name not in ("data", "classroom")})
    held = {widget_key(name): value for name, value in widget_values(state).items()}
    assert from_widgets(ViewState(), held) == state
    assert set(widget_values(state)) >= {name for name, spec in SETTINGS.items() if spec.widget}


def test_a_widget_not_drawn_gives_its_default_except_the_lazy_ones():
    state = ViewState(data="spirals", compare=True, n=500, lr=3e-3, model_density=True, follow=(1.0, 1.0))
    back = from_widgets(state, {})
    # the gallery lives in a tab, compare, particles and training in folded panels built only while open
    assert (back.data, back.compare, back.n, back.lr) == ("spirals", True, 500, 3e-3)
    assert (back.model_density, back.follow, back.paths) == (False, None, True)


def test_the_sampler_and_the_model_travel_through_the_link_and_their_hidden_sliders_keep_their_values():
    state = ViewState(sampler="sde", noise=0.3, objective="meanflow", nfe=4)
    query = state.to_query()
    assert query == {"sampler": "sde", "noise": "0.3", "objective": "meanflow", "nfe": "4"}
    assert ViewState.from_query(query) == (state, [])
    # the noise slider is drawn only for the SDE, the NFE slider only for a mean flow: while hidden,
    # the view keeps what the link or the last slider said
    assert (from_widgets(state, {}).noise, from_widgets(state, {}).nfe) == (0.3, 4)
    assert from_widgets(state, {}).sampler == "ode"  # the switch itself is always drawn
    for name, text in (
        ("sampler", "xyz"),
        ("noise", "99"),
        ("noise", "-0.1"),
        ("nfe", "0"),
        ("objective", "gan"),
    ):
        back, notices = ViewState.from_query({name: text})
        assert back == ViewState() and len(notices) == 1 and name in notices[0]
