"""The command line: a tiny run end to end in a subprocess, and clean refusals (exit 2)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmcore import datasets, load
from fmcore.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fmcore", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_train_then_sample_end_to_end(tmp_path):
    model = tmp_path / "m.safetensors"
    samples = tmp_path / "s.csv"
    trained = run_cli("train", "--data", "moons", "--n", "300", "--steps", "60", "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert "done: 60 steps" in trained.stdout and "saved" in trained.stdout
    sampled = run_cli(
        "sample",
        "--model",
        str(model),
        "--solver",
        "heun",
        "--steps",
        "5",
        "--n",
        "30",
        "--out",
        str(samples),
    )
    assert sampled.returncode == 0, sampled.stderr
    assert "NFE 10" in sampled.stdout
    points = np.loadtxt(samples, delimiter=",", skiprows=1)
    assert points.shape == (30, 2) and np.isfinite(points).all()
    refused = run_cli("sample", "--model", str(model), "--solver", "magic", "--out", str(samples))
    assert refused.returncode == 2
    assert "invalid choice: 'magic'" in refused.stderr and "Traceback" not in refused.stderr


def test_csv_data_comes_back_in_its_own_coordinates(tmp_path, capsys):
    rng = np.random.default_rng(0)
    points = np.array([1000.0, -50.0]) + rng.normal(size=(200, 2)) * [10.0, 1.0]
    data = tmp_path / "points.csv"
    np.savetxt(data, points, delimiter=",", header="x,y", comments="")
    model, samples = tmp_path / "m.safetensors", tmp_path / "s.csv"
    assert main(["train", "--data", str(data), "--steps", "200", "--out", str(model)]) == 0
    assert load(model).metadata["normalisation"]["scale"] > 1
    assert main(["sample", "--model", str(model), "--n", "200", "--out", str(samples)]) == 0
    out = np.loadtxt(samples, delimiter=",", skiprows=1)
    assert np.allclose(out.mean(0), [1000.0, -50.0], atol=3.0)
    assert "NFE 80" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "nowhere", "--steps", "5", "--out", "x"], "neither a preset"),
        (["train", "--data", "moons", "--steps", "0", "--out", "x"], "must be >= 1"),
        (["train", "--data", "moons", "--lr", "nan", "--steps", "5", "--out", "x"], "finite number > 0"),
        (["train", "--data", "moons", "--out", "x"], "one of the arguments --steps --seconds is required"),
        (["sample", "--model", "missing.safetensors", "--out", "s.csv"], "cannot read"),
        (["sample", "--model", "m", "--noise", "-1", "--out", "s.csv"], "finite number >= 0"),
    ],
)
def test_errors_exit_2_in_one_line(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_csv_and_not_a_model(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,banana\n")
    assert main(["train", "--data", str(bad), "--steps", "5", "--out", str(tmp_path / "m")]) == 2
    assert "Line 3" in capsys.readouterr().err
    assert main(["sample", "--model", str(bad), "--out", str(tmp_path / "s.csv")]) == 2
    assert "not a safetensors model file" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "train" in out and "sample" in out


def test_sample_with_noise_runs_the_sde_and_noise_zero_is_euler(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    assert main(["train", "--data", "8gaussians", "--n", "300", "--steps", "100", "--out", str(model)]) == 0
    out = {name: tmp_path / f"{name}.csv" for name in ("sde", "euler", "ode0")}
    common = ["sample", "--model", str(model), "--steps", "50", "--n", "400"]
    assert main([*common, "--noise", "1.0", "--out", str(out["sde"])]) == 0
    assert "Euler-Maruyama (noise 1), 50 steps (uniform grid): NFE 50" in capsys.readouterr().out
    assert main([*common, "--solver", "euler", "--out", str(out["euler"])]) == 0
    assert main([*common, "--solver", "euler", "--noise", "0", "--out", str(out["ode0"])]) == 0
    sde, euler, ode0 = (np.loadtxt(out[k], delimiter=",", skiprows=1) for k in ("sde", "euler", "ode0"))
    assert np.array_equal(euler, ode0) and sde.shape == (400, 2) and np.isfinite(sde).all()
    # Same start noise, different paths: the SDE's samples are not the ODE's, but land as close to them.
    assert not np.allclose(sde, euler)
    assert abs(np.sqrt((sde**2).mean()) - np.sqrt((euler**2).mean())) < 0.1


def test_labelled_training_then_guided_sampling_of_one_class(tmp_path, capsys):
    """The issue's two lines, in process (the subprocess path is covered end to end above)."""
    model = tmp_path / "c.safetensors"
    assert main(["train", "--data", "8gaussians", "--labels", "--seconds", "2", "--out", str(model)]) == 0
    assert "8 classes" in capsys.readouterr().out and load(model).n_classes == 8
    points, labels = datasets.sample("8gaussians", 2000, seed=0, labels=True)
    centroids = np.stack([points[labels == k].mean(0).numpy() for k in range(8)])
    for label in ("3", "6"):
        samples = tmp_path / f"s{label}.csv"
        args = ["--label", label, "--guidance", "1.0", "--n", "1000", "--out", str(samples)]
        assert main(["sample", "--model", str(model), *args]) == 0
        assert f"of class {label} (guidance w=1)" in capsys.readouterr().out
        out = np.loadtxt(samples, delimiter=",", skiprows=1)
        nearest = np.linalg.norm(out[:, None] - centroids[None], axis=-1).argmin(1)
        assert out.shape == (1000, 2) and (nearest == int(label)).mean() >= 0.9


def test_labels_from_a_csv_and_the_refusals(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    points = np.stack([labels * 10.0, np.zeros(300)], axis=1) + rng.normal(size=(300, 2))
    data = tmp_path / "labelled.csv"
    np.savetxt(
        data, np.column_stack([points, labels]), delimiter=",", header="x,y,label", comments="", fmt="%g"
    )
    model = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(data), "--labels", "--steps", "300", "--out", str(model)]) == 0
    assert load(model).n_classes == 3
    samples = tmp_path / "s.csv"
    assert main(["sample", "--model", str(model), "--label", "2", "--n", "200", "--out", str(samples)]) == 0
    # Back in the CSV's coordinates, around class 2's centre (20, 0).
    assert np.allclose(np.loadtxt(samples, delimiter=",", skiprows=1).mean(0), [20.0, 0.0], atol=1.5)
    capsys.readouterr()
    unlabelled = tmp_path / "u.safetensors"
    assert (
        main(["train", "--data", str(data), "--steps", "5", "--out", str(unlabelled)]) == 0
    )  # label column ignored
    for args, message in [
        (
            ["sample", "--model", str(model), "--label", "3", "--out", str(samples)],
            "label must be a class from 0 to 2",
        ),
        (["sample", "--model", str(unlabelled), "--label", "0", "--out", str(samples)], "unconditional"),
        (
            ["train", "--data", "swissroll", "--labels", "--steps", "5", "--out", str(model)],
            "no natural classes",
        ),
    ]:
        assert main(args) == 2
        assert message in capsys.readouterr().err


def test_a_mean_flow_trains_and_samples_in_k_steps(tmp_path, capsys):
    model, samples = tmp_path / "f.safetensors", tmp_path / "s.csv"
    train = ["train", "--data", "moons", "--n", "300", "--objective", "meanflow", "--seconds", "2"]
    assert main([*train, "--out", str(model)]) == 0
    assert "meanflow objective, marginal target" in capsys.readouterr().out
    assert load(model).objective == "meanflow"
    for steps in (1, 2, 4):
        sample = ["sample", "--model", str(model), "--steps", str(steps), "--n", "40"]
        assert main([*sample, "--out", str(samples)]) == 0
        assert f"{steps} mean-flow step{'s' if steps != 1 else ''}: NFE {steps};" in capsys.readouterr().out
        points = np.loadtxt(samples, delimiter=",", skiprows=1)
        # Trained for 2 s, the jumps already land on the data's scale (unit variance), not far off.
        assert points.shape == (40, 2) and np.isfinite(points).all() and np.abs(points).max() < 5
