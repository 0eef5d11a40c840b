"""Presets, user point clouds and CSV parsing: what the app relies on and what a person is told."""

import numpy as np
import pytest
import torch

from fmcore import datasets


@pytest.mark.parametrize("name", datasets.NAMES)
def test_every_preset_is_a_centred_unit_scale_sample(name):
    z_1 = datasets.sample(name, 4000, seed=1)
    assert z_1.shape == (4000, 2) and z_1.dtype == torch.float32
    # Standardised by population constants, so the sample moments are off by sampling noise only:
    # the standard error of a mean of unit-variance points is 1 / sqrt(4000) ~ 0.016.
    assert z_1.mean(0).abs().max() < 0.08
    assert abs(z_1.square().mean().sqrt().item() - 1.0) < 0.05
    assert z_1.abs().max() < 3.5
    assert name in datasets.DESCRIPTIONS and name in datasets.GENERATORS


def test_registry_has_the_required_presets():
    required = {"moons", "circles", "8gaussians", "checkerboard", "spirals", "swissroll", "pinwheel", "rings"}
    assert required <= set(datasets.NAMES)
    assert tuple(datasets.GENERATORS) == datasets.NAMES


def test_sample_is_deterministic_per_seed_and_differs_across_seeds():
    first = datasets.sample("moons", 500, seed=3)
    assert torch.equal(first, datasets.sample("moons", 500, seed=3))
    assert not torch.allclose(first, datasets.sample("moons", 500, seed=4))


def test_scaling_is_a_constant_of_the_distribution_not_of_the_sample():
    # Rescaling each sample by its own moments would make every small sample exactly unit RMS
    # (and a single point 0 / 0); population constants make small samples scatter around 1.
    assert torch.isfinite(datasets.sample("8gaussians", 1)).all()
    small = [datasets.sample("rings", 5, seed=seed) for seed in range(400)]
    rms = torch.stack([z_1.square().mean().sqrt() for z_1 in small])
    assert rms.std() > 0.05
    assert torch.cat(small).square().mean().sqrt().item() == pytest.approx(1.0, abs=0.05)


def test_sample_rejects_unknown_names_and_bad_counts():
    with pytest.raises(ValueError, match=r"Unknown data set 'mooons'.*moons.*circles"):
        datasets.sample("mooons", 10)
    for n in (0, -5, 2.5, "10", True):
        with pytest.raises(ValueError, match="positive integer"):
            datasets.sample("moons", n)
    assert datasets.sample("moons", np.int64(3)).shape == (3, 2)


@pytest.mark.parametrize("convert", [lambda p: p.tolist(), np.asarray, torch.tensor])
def test_from_points_normalises_lists_arrays_and_tensors(convert):
    user = np.random.default_rng(0).normal([100.0, -50.0], [3.0, 1.0], size=(300, 2))
    cloud = datasets.from_points(convert(user))
    assert cloud.data.shape == (300, 2) and cloud.data.dtype == torch.float32
    assert torch.allclose(cloud.data.mean(0), torch.zeros(2), atol=1e-5)
    assert cloud.data.square().mean().item() == pytest.approx(1.0, rel=1e-5)
    # One scalar for both axes: the aspect ratio of the cloud survives.
    ratio = (cloud.data.std(0)[0] / cloud.data.std(0)[1]).item()
    assert ratio == pytest.approx(user.std(0)[0] / user.std(0)[1], rel=1e-4)
    assert torch.allclose(cloud.center, torch.tensor(user.mean(0), dtype=torch.float64))


def test_user_and_model_coordinates_round_trip():
    user = np.array([[1e6, 2e6], [1e6 + 3.0, 2e6 - 1.0], [1e6 - 2.0, 2e6 + 5.0]])
    cloud = datasets.from_points(user)
    assert torch.allclose(cloud.to_user(cloud.data), torch.tensor(user), rtol=0, atol=1e-5)
    x = torch.tensor([[1e6 + 0.5, 2e6 + 0.25]], dtype=torch.float64)
    assert torch.allclose(cloud.to_user(cloud.from_user(x)), x, rtol=0, atol=1e-5)
    z = np.array([[0.3, -1.2]])
    assert torch.allclose(cloud.from_user(cloud.to_user(z)), torch.tensor(z).float())
    assert cloud.to_user(z).dtype == torch.float64


def test_a_line_of_points_is_accepted():
    # One axis with zero spread is fine: the scale is shared by both axes.
    cloud = datasets.from_points([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    assert torch.allclose(cloud.data[:, 1], torch.zeros(3))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "No points given"),
        (np.zeros((0, 2)), "No points given"),
        ([[1.0, 2.0]], "Only one point.*at least 2 distinct"),
        ([[1.0, 2.0]] * 5, r"All 5 points are identical at \(1, 2\).*at least 2 distinct"),
        ([[0.0, 0.0], [1.0, float("nan")]], "Point 1 .*NaN"),
        ([[0.0, 0.0], [float("inf"), 1.0], [2.0, 2.0]], "Point 1 .*infinite"),
        ([[0.0, 0.0], [1e13, 1.0]], "magnitude 1e\\+13.*limit.*rescale"),
        ([1.0, 2.0, 3.0], r"shape \(n, 2\).*\(3,\)"),
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], r"shape \(n, 2\).*\(2, 3\)"),
        (np.zeros((4, 2, 1)), r"shape \(n, 2\)"),
        ([[0.0, 1.0], [2.0]], "could not read them as numbers"),
        ([["a", "b"], ["c", "d"]], "could not read them as numbers"),
        (np.zeros((datasets.MAX_POINTS + 1, 2)), "Too many points: 20,001 given, the limit is 20,000"),
    ],
)
def test_from_points_refuses_what_is_not_a_distribution(points, message):
    with pytest.raises(ValueError, match=message):
        datasets.from_points(points)


def test_subsample_keeps_distinct_rows_in_order_under_the_cap():
    points = np.stack([np.arange(50_000.0), np.zeros(50_000)], axis=1)
    kept = datasets.subsample(points, seed=2)
    assert kept.shape == (datasets.MAX_POINTS, 2)
    assert np.all(np.diff(kept[:, 0]) > 0)
    assert np.array_equal(kept, datasets.subsample(points, seed=2))
    assert not np.array_equal(kept, datasets.subsample(points, seed=3))
    assert datasets.from_points(kept).data.shape == (datasets.MAX_POINTS, 2)
    small = np.ones((10, 2))
    assert np.array_equal(datasets.subsample(small, max_points=10), small)
    with pytest.raises(ValueError, match="at least 1"):
        datasets.subsample(small, max_points=0)


@pytest.mark.parametrize(
    "text",
    [
        "x,y\n1,2\n3.5,-4e-1\n",
        "1,2\n3.5,-4e-1",
        "  x ; y \n\n 1 ; 2 \n3,5;-0,4\n\n",
        "\ufeff# my points\n1 2\n3.5\t-0.4\n",
        '"x","y"\n"1","2"\n"3.5","-0.4"\n',
        "1,2,\n3.5,-0.4,\n",
    ],
)
def test_parse_csv_reads_common_layouts(text):
    assert np.array_equal(datasets.parse_csv(text), np.array([[1.0, 2.0], [3.5, -0.4]]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "No data rows"),
        ("x,y\n\n", "No data rows"),
        ("x,y\n1,2\n3\n", r"Line 3 has only one value \('3'\)"),
        ("1,2\n3,4,5\n", "Line 2 has 3 values.*expected 2 like the first data row"),
        ("1,2,0\n3,4\n", "Line 2 has 2 values.*expected 3 like the first data row"),
        ("1,2,3,4\n", "Line 1 has 4 values.*x, y, label"),
        ("1,2,0\n3,4,1.5\n", "Line 2: label '1.5' is not a whole number"),
        ("1,2,-1\n", "Line 1: label '-1' is not a whole number"),
        ("1,2,red\n", "Line 1: label 'red' is not a whole number"),
        ("1,2\n3,abc\n", "Line 2: 'abc' is not a number"),
        ("1,abc\n3,4\n", "Line 1: 'abc' is not a number"),
        ("x,y\nx,y\n", "Line 2: 'x' is not a number"),
        ("1,2\n,2\n", "Line 2: an empty value is not a number"),
        ("1,2\nnan,3\n", "Line 2: 'nan' is not a finite number"),
        ("1,2\n\n4,-inf\n", "Line 3: '-inf' is not a finite number"),
    ],
)
def test_parse_csv_names_the_bad_line(text, message):
    with pytest.raises(ValueError, match=message):
        datasets.parse_csv(text)


@pytest.mark.parametrize(
    ("name", "classes"),
    [("moons", 2), ("8gaussians", 8), ("circles", 2), ("spirals", 2), ("checkerboard", 8), ("pinwheel", 5)],
)
def test_labelled_presets_give_the_same_points_and_every_class(name, classes):
    points, labels = datasets.sample(name, 2000, seed=5, labels=True)
    assert torch.equal(points, datasets.sample(name, 2000, seed=5))
    assert labels.dtype == torch.int64 and labels.shape == (2000,)
    assert datasets.CLASSES[name] == classes
    # Every class drawn about equally often: 2000 / classes each, within 5 standard errors.
    counts = torch.bincount(labels, minlength=classes)
    expected = 2000 / classes
    assert len(counts) == classes and (counts - expected).abs().max() < 5 * np.sqrt(expected)


def test_a_class_is_one_piece_of_the_picture():
    # 8gaussians: class k sits at angle 2 pi k / 8; checkerboard: class c fills one dark square.
    points, labels = datasets.GENERATORS["8gaussians"](4000, np.random.default_rng(0))
    angles = np.arctan2(points[:, 1], points[:, 0]) % (2 * np.pi)
    assert np.all(np.abs((angles - 2 * np.pi * labels / 8 + np.pi) % (2 * np.pi) - np.pi) < 0.6)
    points, labels = datasets.GENERATORS["checkerboard"](4000, np.random.default_rng(0))
    squares = {c: set(map(tuple, np.floor(points[labels == c]).astype(int))) for c in range(8)}
    assert all(len(cells) == 1 for cells in squares.values())
    assert len(set().union(*squares.values())) == 8


def test_presets_without_classes_refuse_labels():
    for name in set(datasets.NAMES) - set(datasets.CLASSES):
        with pytest.raises(ValueError, match="no natural classes; labelled presets are: moons"):
            datasets.sample(name, 10, labels=True)


def test_parse_csv_reads_an_optional_label_column():
    text = "x,y,label\n1,2,0\n3.5,-0.4,3\n"
    points, labels = datasets.parse_csv(text, labels=True)
    assert np.array_equal(points, [[1.0, 2.0], [3.5, -0.4]]) and labels.tolist() == [0, 3]
    assert labels.dtype == np.int64
    assert np.array_equal(datasets.parse_csv(text), points)  # callers that want points only
    points, labels = datasets.parse_csv("1;2;1\n3,5;-0,4;0,0\n", labels=True)
    assert labels.tolist() == [1, 0] and points[1, 0] == 3.5
    assert datasets.parse_csv("1,2\n", labels=True)[1] is None
