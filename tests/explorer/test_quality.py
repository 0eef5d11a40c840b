"""The Playground's quality number: samples against independent data, over the noise floor."""

import math

import numpy as np
import pytest

from explorer.core import data, quality
from fmcore import datasets, metrics


def test_fresh_data_scores_one_floor_in_root_mean_square(monkeypatch):
    """What a sampler that draws from the preset itself shows, over many Playground data sets
    (with a smaller reference than the app's, so that a thousand of them take seconds)."""
    monkeypatch.setattr(data, "REFERENCE_POINTS", 300)
    n, trials = 150, 1000
    ratios = []
    for seed in range(trials):
        dataset = data.preset_dataset("swissroll", seed)
        fresh = datasets.sample("swissroll", n, seed=100_000 + seed).numpy()
        ratios.append(
            quality.energy_distance(fresh, quality.reference_for(dataset, n))
            / quality.noise_floor(dataset, n)
        )
    squares = np.square(ratios)
    # 4 standard errors of the root mean square (delta method on the mean square).
    tolerance = 4 * squares.std() / math.sqrt(trials) / 2
    assert math.sqrt(squares.mean()) == pytest.approx(1.0, abs=tolerance)
    assert tolerance < 0.2


def test_floor_is_at_the_sizes_compared():
    dataset = data.preset_dataset("moons", 0)
    for n in (100, 2000, 5000):
        m = len(quality.reference_for(dataset, n))
        assert m == min(n, data.REFERENCE_POINTS)
        assert quality.noise_floor(dataset, n) == pytest.approx(
            metrics.energy_distance_floor(dataset.reference, n, m), rel=1e-12
        )
    # More samples than reference points still shrink the floor, by the closed form's factor.
    ratio = quality.noise_floor(dataset, 5000) / quality.noise_floor(dataset, 2000)

    def variance_factor(n, m):
        return 2 / (n * (n - 1)) + 2 / (m * (m - 1)) + 4 / (n * m)

    expected = math.sqrt(variance_factor(5000, 2000) / variance_factor(2000, 2000))
    assert ratio == pytest.approx(expected, rel=1e-9)


def test_too_few_points_have_no_floor():
    tiny = data.custom_dataset(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "three")
    assert quality.noise_floor(tiny, 100) is None
    assert quality.energy_distance(np.zeros((1, 2)), tiny.reference) is None


def test_a_lessons_floor_is_the_rms_of_n_samples_against_the_whole_reference():
    """``reference_floor(reference, n)``: what n fresh points of the data show against all of a
    (m, d) reference, the lessons' comparison (n and m differ, as in lessons 3 and 10)."""
    n, m, trials = 60, 200, 1000
    ratios = []
    for seed in range(trials):
        reference = datasets.sample("8gaussians", m, seed=seed).numpy()
        fresh = datasets.sample("8gaussians", n, seed=100_000 + seed).numpy()
        ratios.append(metrics.energy_distance(fresh, reference) / quality.reference_floor(reference, n))
    squares = np.square(ratios)
    tolerance = 4 * squares.std() / math.sqrt(trials) / 2  # 4 standard errors of the RMS
    assert math.sqrt(squares.mean()) == pytest.approx(1.0, abs=tolerance)
    assert tolerance < 0.2
    reference = datasets.sample("8gaussians", m, seed=0).numpy()
    assert quality.reference_floor(reference, n) == metrics.energy_distance_floor(reference, n, m)
    with pytest.raises(ValueError, match="at least 4 points"):
        quality.reference_floor(reference[:3], n)
