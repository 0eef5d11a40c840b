"""The numbers behind lessons 8 (one flow, many SDEs) and 9 (guidance): what each page claims, measured."""

import numpy as np
import pytest
import torch

import fmcore
from explorer.core.flows import EXACT_BANDWIDTH
from explorer.lessons import l8_sdes as sdes
from explorer.lessons import l9_guidance as guidance
from explorer.lessons import l10_one_step as one_step
from fmcore import datasets
from fmcore.sde import renoise_decay


@pytest.fixture(scope="module")
def family():
    return sdes.sde_family("8gaussians")


def test_every_member_of_the_family_keeps_the_odes_clouds(family):
    # Energy distance to the ODE's cloud within a few noise floors, the RMS between two independent
    # clouds of p_t (Euler-Maruyama at 100 steps adds a small bias on top of the sampling noise).
    # Measured on the page's four presets: at most 3.6x at t = 0.5 and 4.8x at t = 1 (4.4x here).
    assert [run.noise for run in family.runs] == list(sdes.NOISE_LEVELS)
    assert 0 < family.floor_half < family.floor_end < 0.003
    ode, *noisy = family.runs
    assert ode.distance_half == ode.distance_end == 0.0
    for run in noisy:
        assert abs(run.distance_half) < 4 * family.floor_half, run.noise
        assert abs(run.distance_end) < 6 * family.floor_end, run.noise
    # What the page says: "within {excess_end:.1f}x the noise floor".
    assert family.excess_end == max(abs(run.distance_end) for run in noisy) / family.floor_end
    assert 1 < family.excess_end < 6
    for run in family.runs:
        assert run.nfe == run.steps == sdes.STEPS
        assert run.paths.shape == (sdes.STEPS + 1, sdes.SHOWN_PATHS, 2)
        assert run.end.shape == run.half.shape == (sdes.SHOWN_POINTS, 2)


def test_paths_get_rougher_with_the_noise(family):
    roughness = [run.roughness for run in family.runs]
    assert roughness == sorted(roughness) and roughness[1] > 100 * roughness[0]
    # Quadratic variation, d per point: each noisy step moves the noise direction (spread sigma') by
    # sigma'^2 ((1 - keep)^2 + 1 - keep^2) on average (fmcore.renoise_decay; the drift adds O(h) more).
    schedule = fmcore.Blurred("linear", EXACT_BANDWIDTH)
    ts = torch.linspace(0.0, 1.0, sdes.STEPS + 1, dtype=torch.float64)[:-1]  # the last step is noiseless
    for run in family.runs[1:]:
        keep = renoise_decay(schedule, ts[:-1], ts[1:], run.noise)
        expected = 2 * float((schedule(ts[1:]).sigma ** 2 * ((1 - keep) ** 2 + 1 - keep**2)).sum())
        assert 0.95 <= run.roughness / expected < 1.25, (
            run.noise,
            run.roughness / expected,
        )  # SHOWN_PATHS paths


def test_dropping_the_score_term_blurs_the_cloud(family):
    _, right, wrong = sdes.no_score_cases("8gaussians")
    assert wrong.wrong and not right.wrong
    distance = {p.title: float(p.note.rsplit(": ", 1)[1]) for p in (right, wrong)}
    assert distance[wrong.title] > 10 * max(distance[right.title], family.floor_end)
    # Blurred: the wrong cloud spreads further from the centre of each Gaussian than the right one.
    centre = datasets.sample("8gaussians", 4000, seed=3)
    nearest = [torch.cdist(torch.from_numpy(p.points), centre).min(1).values.mean() for p in (right, wrong)]
    assert nearest[1] > 1.5 * nearest[0]


@pytest.fixture(scope="module")
def per_class():
    return [guidance.guided_samples(k) for k in range(guidance.CLASS_COUNT)]


def test_off_support_marks_about_one_percent_of_fresh_data():
    fresh = datasets.sample(guidance.DATA, 4000, seed=21)
    assert 0.003 < float(guidance.off_support(fresh).float().mean()) < 0.03
    far = torch.tensor([[0.0, 0.0], [3.0, 3.0]])  # the ring's empty centre, and far outside
    assert guidance.off_support(far).all()


def test_w0_is_unconditional_and_w1_is_the_class(per_class):
    for k, (w0, w1, _) in enumerate(per_class):
        assert (w0.guidance, w1.guidance) == (0.0, 1.0) and w0.label == w1.label == k
        assert w1.in_class >= 0.9, k  # the criterion
        assert w0.in_class < 0.3, k  # about 1/8: every class
        assert w0.spread > 4 * w1.spread
    assert all(np.array_equal(per_class[0][0].points, c[0].points) for c in per_class)  # w = 0 ignores c


def test_w3_moves_every_class_outward_past_the_ring(per_class):
    # The page's revealed answer: from w = 1 to w = 3 each class moves away from the others (outward).
    ring = guidance.data_radius()
    for k, (_, w1, w3) in enumerate(per_class):
        assert abs(w1.radius - ring) < 0.05, k
        assert w3.radius > ring + 0.1, k
        assert w3.in_class == 1.0, k
    assert sum(w3.spread < w1.spread for _, w1, w3 in per_class) >= 6  # most classes concentrate


def test_large_w_pushes_samples_off_the_data():
    w1, w5, w10 = guidance.all_classes()
    assert (w1.guidance, w5.guidance, w10.guidance) == guidance.PITFALL_GUIDANCE
    # measured (Philox streams, seed 0): 2%, 18%, 58% off the data
    assert w1.off_share < 0.05 and w5.off_share > max(0.1, 3 * w1.off_share) and w10.off_share > 0.4
    assert w10.radius > w5.radius > w1.radius
    assert len(w1.points) == guidance.SAMPLES and w1.label is None and w1.in_class == 1.0


@pytest.mark.parametrize("label", [-1, 8, 2.5, True, None])
def test_a_label_outside_the_classes_is_refused(label):
    with pytest.raises(ValueError, match="label must be a class from 0 to 7"):
        guidance.guided_samples(label)


@pytest.mark.parametrize("preset", ["moons", "8gaussians"])
def test_one_euler_step_lands_every_sample_on_the_data_mean(preset):
    step = one_step.one_step(preset)
    # v(z, 0) = E[z_1] - z on the linear path from noise: the closed form, and its one-step consequence.
    assert np.allclose(step.instantaneous, step.data_mean - step.z0, atol=1e-5)
    assert step.euler_spread < 1e-5
    # The average velocity is the chord: one step with it is the ODE's sample, close to the data.
    assert np.allclose(step.z0 + step.average, step.ode, atol=1e-5)
    assert step.oracle_nfe == 4 * one_step.ORACLE_STEPS
    assert step.energy_ode < 0.02 < 0.5 < step.energy_euler
    # The chord differs from the tangent: the exact paths are curved.
    assert np.linalg.norm(step.average - step.instantaneous, axis=1).mean() > 0.3


def test_the_last_euler_step_returns_the_posterior_mean():
    # Two steps: the second, from t = 1/2, lands on E[z_1 | z_1/2], computed here from the posterior
    # weights of the blurred data: z_t = t z_1' + (1 - t) z_0 with z_1' = x_j + b xi, so given x_j
    # z_t ~ N(t x_j, s^2), s^2 = t^2 b^2 + (1 - t)^2, and E[z_1' | z_t, x_j] = x_j + (t b^2 / s^2)(z_t - t x_j).
    data = datasets.sample("moons", one_step.DATA_POINTS, seed=0)
    z0 = one_step.lesson_noise(one_step.PARTICLES, 0)
    half = z0 + 0.5 * (data.mean(0) - z0)  # the first Euler step: v(z, 0) = E[z_1] - z
    variance = 0.25 + EXACT_BANDWIDTH**2 / 4
    weights = torch.softmax(-torch.cdist(half, 0.5 * data).square() / (2 * variance), dim=1)
    mean = weights @ data
    blurred_mean = mean + (0.5 * EXACT_BANDWIDTH**2 / variance) * (half - 0.5 * mean)
    two = one_step.euler_cases("moons")[1]
    assert two.title == "Euler, 2 steps = 2 NFE" and two.wrong
    assert np.allclose(two.points, blurred_mean.numpy(), atol=1e-4)
    energies = [float(p.note.rsplit(": ", 1)[1]) for p in one_step.euler_cases("moons")]
    assert energies == sorted(energies, reverse=True) and energies[-1] < 0.02


def test_the_null_field_is_rougher_than_an_unlabelled_model_trained_as_long(per_class):
    # The page's caption: the null label sees 10% of the rows, so at w = 0 far more samples land
    # off the data than from a model trained without labels for the same steps.
    points = datasets.sample(guidance.DATA, guidance.TRAIN_POINTS, seed=0)
    plain = fmcore.Trainer(points, seed=0)
    plain.step(guidance.TRAIN_STEPS)
    z = fmcore.integrate(
        plain.velocity, one_step.lesson_noise(guidance.SAMPLES, 3), guidance.SOLVER, guidance.SOLVER_STEPS
    )
    unlabelled = float(guidance.off_support(z.z_end).float().mean())
    assert unlabelled < 0.5 * per_class[0][0].off_share


def test_a_mean_flow_in_one_step_beats_a_flow_in_one_euler_step():
    race = one_step.few_step_race()
    rows = {(row.model, row.steps): row for row in race.rows}
    assert sorted(rows) == sorted(
        [("mean flow", k) for k in one_step.MEANFLOW_STEPS] + [("flow", k) for k in one_step.FLOW_STEPS]
    )
    assert all(row.nfe == row.steps for row in race.rows)  # one network evaluation per step, both models
    assert 0 < race.floor < 0.005
    # The bar: 1-NFE mean-flow samples within 8x the noise floor (measured: 2.3x at 2,000 steps).
    assert rows["mean flow", 1].energy < 8 * race.floor
    assert rows["flow", 1].energy > 50 * rows["mean flow", 1].energy
    # The learned flow's one Euler step collapses near the data mean too (the exact field's: exactly).
    mean = datasets.sample(one_step.MEANFLOW_PRESET, 2000, seed=0).mean(0).numpy()
    assert np.linalg.norm(rows["flow", 1].points - mean, axis=1).mean() < 0.25
    assert rows["flow", 100].energy < 4 * race.floor
