"""Labelled data through the Playground's pipeline: presets' classes, brush colours on the drawing
pad, a CSV's label column; the class a figure is restricted to; the class colours it is drawn in."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer import figures
from explorer.core import data, flows
from explorer.core.points import URL_MAX_POINTS, decode_labels, encode_labels
from explorer.core.state import ALL_CLASSES, ViewState
from explorer.figures import theme
from explorer.playground import canvas
from explorer.playground.classes import picked_data
from fmcore import datasets


@pytest.mark.parametrize("name", sorted(datasets.CLASSES))
def test_a_preset_with_natural_classes_carries_them_beside_the_same_points(name):
    dataset = data.preset_dataset(name, seed=3)
    points, labels = datasets.sample(name, data.EXACT_POINTS, 3, labels=True)
    assert dataset.classes == datasets.CLASSES[name]
    np.testing.assert_array_equal(points.numpy(), datasets.sample(name, data.EXACT_POINTS, 3).numpy())
    np.testing.assert_array_equal(dataset.shown, points.numpy())
    np.testing.assert_array_equal(dataset.shown_labels, labels.numpy())
    assert len(dataset.train_labels) == len(dataset.train) and len(dataset.reference_labels) == len(
        dataset.reference
    )
    assert dataset.present == tuple(range(datasets.CLASSES[name]))


@pytest.mark.parametrize("name", sorted(set(datasets.NAMES) - set(datasets.CLASSES)))
def test_a_preset_without_classes_is_unlabelled(name):
    dataset = data.preset_dataset(name, seed=0)
    assert dataset.classes == 0 and dataset.present == () and dataset.train_labels is None


def test_one_class_of_a_preset_is_exactly_its_points_under_its_own_key():
    dataset = data.preset_dataset("8gaussians", seed=0)
    three = dataset.of_class(3)
    np.testing.assert_array_equal(three.shown, dataset.shown[dataset.shown_labels == 3])
    np.testing.assert_array_equal(three.reference, dataset.reference[dataset.reference_labels == 3])
    assert set(three.train_labels.tolist()) == {3} and three.key != dataset.key
    # the eighth of the ring at angle 2 pi 3 / 8
    centre = three.shown.mean(0) / np.linalg.norm(three.shown.mean(0))
    np.testing.assert_allclose(centre, [np.cos(3 * np.pi / 4), np.sin(3 * np.pi / 4)], atol=0.05)
    with pytest.raises(ValueError, match="no class 8"):
        dataset.of_class(8)


def test_the_picked_class_restricts_the_exact_field_to_that_class():
    dataset = data.preset_dataset("moons", seed=0)
    assert picked_data(dataset, ViewState()) is dataset
    assert picked_data(dataset, ViewState(class_label=1)).key == dataset.of_class(1).key
    assert picked_data(dataset, ViewState(class_label=5)) is dataset  # a class it lacks: all of it
    # Near t = 1 the exact field of class 1 carries a point of the upper moon to the lower one.
    upper, lower = dataset.of_class(0).shown.mean(0), dataset.of_class(1).shown.mean(0)
    z = torch.from_numpy(np.asarray([upper], dtype=np.float32))
    v = flows.exact_source(picked_data(dataset, ViewState(class_label=1)), "linear").velocity(
        z, torch.tensor(0.9)
    )
    assert float(v[0] @ torch.from_numpy(lower - upper)) > 0


def _clusters(sizes, spread=0.05):
    """Far-apart clusters along x, one per class: (points, labels, centres)."""
    rng = np.random.default_rng(0)
    centres = np.array([[4.0 * k, (-1.0) ** k] for k in range(len(sizes))])
    points = np.concatenate(
        [c + spread * rng.standard_normal((n, 2)) for c, n in zip(centres, sizes, strict=True)]
    )
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    order = rng.permutation(len(points))  # classes interleaved, as in a real file
    return points[order], labels[order], centres


@pytest.mark.parametrize("sizes", [(800, 900), (300, 500, 700), (3000, 100, 200, 1500)])
def test_custom_labels_follow_their_points_through_subsampling_and_shuffling(sizes):
    points, labels, centres = _clusters(sizes)
    dataset = data.custom_dataset(points, "k", labels)
    normalized = datasets.from_points(points)
    centres = (centres - normalized.center.numpy()) / normalized.scale
    for shown, own in ((dataset.shown, dataset.shown_labels), (dataset.reference, dataset.reference_labels)):
        nearest = np.linalg.norm(shown[:, None] - centres[None], axis=2).argmin(1)
        np.testing.assert_array_equal(nearest, own)
    np.testing.assert_array_equal(dataset.train_labels, labels)
    assert dataset.classes == len(sizes) and dataset.present == tuple(range(len(sizes)))


def test_labels_are_checked_in_plain_words():
    assert data.check_labels(np.zeros(5, np.int64), 5) is None  # one class: unlabelled
    np.testing.assert_array_equal(data.check_labels(np.array([0, 2, 2]), 3), [0, 2, 2])  # a gap is fine
    with pytest.raises(ValueError, match="one label per point"):
        data.check_labels(np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="whole numbers"):
        data.check_labels(np.array([0.5, 1.0]), 2)
    with pytest.raises(ValueError, match="whole numbers"):
        data.check_labels(np.array([-1, 1]), 2)
    with pytest.raises(ValueError, match=f"at most {data.MAX_CLASSES} classes"):
        data.check_labels(np.array([0, data.MAX_CLASSES]), 2)
    with pytest.raises(ValueError, match="one label per point"):
        data.custom_dataset(np.random.default_rng(0).normal(size=(10, 2)), "k", np.array([0, 1]))


def _stroke(y: float) -> np.ndarray:
    return np.array([[40.0, y], [160.0, y + 5], [280.0, y]])


@pytest.mark.parametrize("colours", [1, 2, 3, 4])
def test_each_brush_colour_is_a_class_and_one_colour_is_unlabelled(colours):
    state: dict = {}
    strokes = [_stroke(40.0 + 60 * k) for k in range(colours)]
    assert canvas.take_strokes(state, "pad", strokes, 4.0, classes=list(range(colours)))
    pad = canvas.Drawing(state)
    assert len(pad.strokes) == colours
    if colours == 1:
        assert pad.labels() is None and set(pad.point_classes().tolist()) == {0}
        return
    labels = pad.labels()
    assert len(labels) == len(pad.points()) and sorted(set(labels.tolist())) == list(range(colours))
    # each stroke's points, and only them, have its class; the pad is y-down, the model y-up
    for k in range(colours):
        y = canvas.to_model(_stroke(40.0 + 60 * k))[:, 1].mean()
        assert np.abs(pad.points()[labels == k][:, 1] - y).max() < 0.4
    dataset = data.custom_dataset(pad.points(), "drawn", pad.labels())
    assert dataset.present == tuple(range(colours))
    pad.undo()
    assert (pad.labels() is None) == (colours == 2) and len(pad.point_classes()) == len(pad.points())


def test_a_strokes_class_is_read_from_its_colour_and_a_forged_colour_takes_the_brush():
    def path(colour, y):
        return {"type": "path", "stroke": colour, "path": [["M", 10, y], ["Q", 50, y, 90, y + 10]]}

    raw = {
        "objects": [
            path(canvas.brush_color(2), 20),
            path(canvas.brush_color(0), 60),
            path("rgba(1,2,3,0.6)", 100),
            {"type": "rect"},
            path(canvas.brush_color(3), 140),
        ]
    }
    assert len(canvas.strokes_from_json(raw)) == 4
    assert canvas.stroke_classes(raw, brush=1) == [2, 0, 1, 3]
    assert canvas.brush_color(1) == theme.rgba(theme.CLASS_COLORS[1], canvas.BRUSH_ALPHA)


def test_a_replaced_drawing_keeps_the_labels_it_was_given():
    state: dict = {}
    pad = canvas.Drawing(state)
    points, labels, _ = _clusters((30, 40))
    pad.replace(points, labels)
    np.testing.assert_array_equal(pad.labels(), labels)
    pad.replace(points)  # a link's points carry no classes
    assert pad.labels() is None


def test_csv_label_column_becomes_the_classes_and_bad_labels_name_their_line():
    points, labels = datasets.parse_csv("x,y,label\n0,0,1\n1,1,0\n2,0,1\n", labels=True)
    np.testing.assert_array_equal(labels, [1, 0, 1])
    assert data.custom_dataset(points, "csv", labels).present == (0, 1)
    with pytest.raises(ValueError, match=r"Line 3: label '1\.5'"):
        datasets.parse_csv("x,y,label\n0,0,1\n1,1,1.5\n", labels=True)


def test_the_figure_colours_data_by_class_and_fades_the_classes_not_picked():
    dataset = data.preset_dataset("circles", seed=0)
    flow = flows.compute_flow(
        flows.exact_source(dataset, "linear"), data.noise_particles(50, 0), "euler", 4, "uniform"
    )

    def data_colours(**labelled):
        panel = figures.Panel(flow=flow, data=dataset.shown, **labelled)
        trace = next(t for t in figures.flow_figure([panel]).data if t.name.startswith("data"))
        return trace.marker.color

    assert data_colours() == theme.rgba(theme.DATA, 0.28)  # unlabelled: as before
    colours = data_colours(data_labels=dataset.shown_labels)
    for k in (0, 1):
        expected = theme.rgba(theme.class_color(k), 0.4)
        assert {c for c, own in zip(colours, dataset.shown_labels, strict=True) if own == k} == {expected}
    faded = data_colours(data_labels=dataset.shown_labels, picked=1)
    assert {c for c, own in zip(faded, dataset.shown_labels, strict=True) if own == 0} == {
        theme.rgba(theme.class_color(0), 0.18)
    }
    assert len(theme.CLASS_COLORS) >= data.MAX_CLASSES and len(set(theme.CLASS_COLORS)) == len(
        theme.CLASS_COLORS
    )


def test_the_live_snapshot_colours_labelled_data_by_class_like_the_main_figure():
    from explorer.playground import live
    from explorer.training.runner import TrainingRunner

    dataset = data.preset_dataset("moons", seed=0)
    runner = TrainingRunner("inline")
    runner.configure(torch.from_numpy(dataset.train), seed=0)
    runner.start()
    runner.tick(budget_s=0.05)
    state = ViewState(snapshot_n=100)
    figure, samples = live._snapshot(runner, dataset, state)
    colours = figure.data[0].marker.color
    assert len(colours) == len(dataset.shown)
    for k in dataset.present:
        expected = theme.rgba(theme.class_color(k), 0.4)  # the main figure's (previous test)
        assert {c for c, own in zip(colours, dataset.shown_labels, strict=True) if own == k} == {expected}
    assert figure.data[-1].marker.color == theme.MODEL and samples.shape == (100, 2)  # samples: violet
    unlabelled = replace(dataset, shown_labels=None, train_labels=None, reference_labels=None)
    plain, _ = live._snapshot(runner, unlabelled, state)
    assert plain.data[0].marker.color == theme.rgba(theme.DATA, 0.28)


def test_the_caption_names_the_colours_the_data_is_drawn_in():
    from explorer.playground.captions import data_colours

    assert data_colours(data.preset_dataset("swissroll", seed=0)) == "amber points"  # unlabelled
    labelled = data.preset_dataset("8gaussians", seed=0)
    words = data_colours(labelled)
    assert "amber" not in words and "coloured by class" in words
    for k in labelled.present:  # each class's number in its own colour, as the figure draws it
        assert f"<b style='color:{theme.class_color(k)}'>● {k}</b>" in words
    assert words.count("●") == len(labelled.present) == 8


def test_the_class_and_guidance_settings_round_trip_through_the_link():
    state = ViewState(data="8gaussians", class_label=5, guidance=2.5)
    query = state.to_query()
    assert query == {"data": "8gaussians", "class_label": "5", "guidance": "2.5"}
    assert ViewState.from_query(query) == (state, [])
    assert ViewState().class_label == ALL_CLASSES and ViewState().guidance == 1.0
    again, notices = ViewState.from_query({"class_label": "nine", "guidance": "12"})
    assert again == ViewState()
    assert notices == [
        "Ignored class_label='nine': not a whole number between -1 and 7.",
        "Ignored guidance='12': must be between 0 and 5.",
    ]


def test_a_labelled_run_trains_inline_and_guides_only_the_classes_it_knows():
    from explorer.training.runner import TrainingRunner

    points, labels = datasets.sample("8gaussians", 800, seed=0, labels=True)
    runner = TrainingRunner("inline")
    runner.configure(points, seed=0, labels=labels, label_dropout=0.1)
    runner.start()
    runner.tick(budget_s=0.2)
    assert runner.n_classes == 8
    z = torch.randn(16, 2)
    t = torch.tensor(0.5)
    conditional, unconditional = runner.guided_velocity(3, 1.0)(z, t), runner.guided_velocity(3, 0.0)(z, t)
    np.testing.assert_allclose(
        unconditional, runner.velocity(z, t), atol=1e-6
    )  # "all classes": the null label
    guided = runner.guided_velocity(3, 2.5)(z, t)  # v_w = v_null + w (v_c - v_null), one doubled batch
    np.testing.assert_allclose(guided, unconditional + 2.5 * (conditional - unconditional), atol=1e-5)
    assert not torch.allclose(conditional, unconditional, atol=1e-3)
    with pytest.raises(ValueError, match="from 0 to 7"):
        runner.guided_velocity(8, 1.0)

    plain = TrainingRunner("inline")
    plain.configure(points, seed=0)
    plain.start()
    plain.tick(budget_s=0.05)
    assert plain.n_classes == 0
    with pytest.raises(ValueError, match="unconditional"):
        plain.guided_velocity(0, 1.0)


def test_drawn_classes_travel_in_the_link_with_their_points_and_a_damaged_lab_is_reported():
    points, labels, _ = _clusters((1500, 1800, 1200))  # over URL_MAX_POINTS: the link keeps a subsample
    state = ViewState().with_points(points, labels)
    query = state.to_query()
    assert set(query) == {"data", "pts", "lab"}
    assert len(encode_labels(np.repeat([0, 1, 2, 3], 1000))) < 60  # strokes: runs of one class compress
    again, notices = ViewState.from_query(query)
    assert notices == [] and len(again.points) == URL_MAX_POINTS
    # each class's points come back with their class: the clusters are 4 apart along x
    for k in range(3):
        assert np.abs(again.points[again.point_labels == k][:, 0] - 4.0 * k).max() < 0.5
    unlabelled = ViewState().with_points(points)
    assert "lab" not in unlabelled.to_query() and unlabelled != state

    broken, notices = ViewState.from_query({**query, "lab": query["lab"][:-6]})
    assert broken.point_labels is None and len(broken.points) == URL_MAX_POINTS
    assert notices and "classes of the drawn points" in notices[0]
    short = dict(query, lab=encode_labels(np.zeros(10, np.int64)))
    assert "do not match its 4,000 points" in ViewState.from_query(short)[1][0]
    with pytest.raises(ValueError, match="damaged"):
        decode_labels("AAAA", 5)
