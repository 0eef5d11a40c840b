"""The CLI never drops an option silently: what a mean-flow model cannot do is refused in one line."""

import re

import pytest

from fmcore.cli import main


@pytest.fixture(scope="module")
def mean_flow(tmp_path_factory):
    model = tmp_path_factory.mktemp("cli") / "f.safetensors"
    train = ["train", "--data", "moons", "--n", "300", "--objective", "meanflow", "--steps", "5"]
    assert main([*train, "--out", str(model)]) == 0
    return model


def test_a_mean_flow_has_no_loss_floor_and_says_so_in_words(tmp_path, capsys):
    model = tmp_path / "f.safetensors"
    main(
        [
            "train",
            "--data",
            "moons",
            "--n",
            "300",
            "--objective",
            "meanflow",
            "--steps",
            "5",
            "--out",
            str(model),
        ]
    )
    done = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("done:"))
    assert "nan" not in done and "no closed-form loss floor here" in done
    assert main(["train", "--data", "moons", "--n", "300", "--steps", "5", "--out", str(model)]) == 0
    # A flow with the conditional target has one: E |u_t(z|z_1) - u_t(z)|^2, a number.
    assert re.search(r"\(irreducible floor \d+\.\d{4}\)", capsys.readouterr().out)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--noise", "1.0"], "--noise 1: a mean-flow model samples by jumps"),
        (["--label", "1"], "--label 1: this mean-flow model is unconditional"),
    ],
)
def test_an_sde_or_a_class_asked_of_a_mean_flow_is_refused(mean_flow, tmp_path, capsys, extra, message):
    out = tmp_path / "s.csv"
    assert (
        main(["sample", "--model", str(mean_flow), "--steps", "2", "--n", "10", *extra, "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_noise_zero_on_a_mean_flow_is_its_jumps(mean_flow, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert (
        main(
            [
                "sample",
                "--model",
                str(mean_flow),
                "--steps",
                "2",
                "--noise",
                "0",
                "--n",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "2 mean-flow steps: NFE 2" in capsys.readouterr().out


@pytest.fixture(scope="module")
def flow_model(tmp_path_factory):
    model = tmp_path_factory.mktemp("cli") / "v.safetensors"
    assert main(["train", "--data", "moons", "--n", "300", "--steps", "5", "--out", str(model)]) == 0
    return model


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--guidance", "2"], "--guidance 2: guidance weighs a class against the unconditional field"),
        (["--noise", "1", "--solver", "heun"], "--solver heun: --noise > 0 samples by Euler-Maruyama"),
    ],
)
def test_an_option_the_sampler_would_not_read_is_refused(flow_model, tmp_path, capsys, extra, message):
    out = tmp_path / "s.csv"
    command = ["sample", "--model", str(flow_model), "--steps", "2", "--n", "10", *extra, "--out", str(out)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_solver_asked_of_a_mean_flow_is_refused(mean_flow, tmp_path, capsys):
    out = tmp_path / "s.csv"
    command = ["sample", "--model", str(mean_flow), "--solver", "rk4", "--n", "10", "--out", str(out)]
    assert main(command) == 2
    assert "--solver rk4: a mean-flow model samples by its jumps" in capsys.readouterr().err
    assert not out.exists()


def test_without_solver_the_ode_is_rk4_and_the_line_says_so(flow_model, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["sample", "--model", str(flow_model), "--steps", "3", "--n", "10", "--out", str(out)]) == 0
    assert "with rk4, 3 steps (uniform grid): NFE 12" in capsys.readouterr().out
