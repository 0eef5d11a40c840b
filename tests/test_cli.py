"""The command line: a tiny run end to end in a subprocess, and clean refusals (exit 2)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmcore import load
from fmcore.cli import main

ROOT = Path(__file__).resolve().parents[1]


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


def test_a_mean_flow_trains_and_samples_in_k_steps(tmp_path):
    model, samples = tmp_path / "f.safetensors", tmp_path / "s.csv"
    trained = run_cli(
        "train",
        "--data",
        "moons",
        "--n",
        "300",
        "--objective",
        "meanflow",
        "--seconds",
        "2",
        "--out",
        str(model),
    )
    assert trained.returncode == 0, trained.stderr
    assert "meanflow objective, marginal target" in trained.stdout
    assert load(model).objective == "meanflow"
    for steps in (1, 2, 4):
        sampled = run_cli(
            "sample", "--model", str(model), "--steps", str(steps), "--n", "40", "--out", str(samples)
        )
        assert sampled.returncode == 0, sampled.stderr
        assert f"{steps} mean-flow steps: NFE {steps};" in sampled.stdout
        points = np.loadtxt(samples, delimiter=",", skiprows=1)
        # Trained for 2 s, the jumps already land on the data's scale (unit variance), not far off.
        assert points.shape == (40, 2) and np.isfinite(points).all() and np.abs(points).max() < 5


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
