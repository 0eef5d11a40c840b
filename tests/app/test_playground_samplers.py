"""The Playground's "Sampler: ODE | SDE" switch and "Model: flow | mean flow" choice, through AppTest."""

import json

import pytest

from tests.app.apptest import start
from tests.app.test_app import flow_spec, html, particles_at_end


@pytest.fixture(autouse=True)
def inline_training(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # no engine process in tests


def titles(at) -> str:
    return json.dumps([a["text"] for a in flow_spec(at)["layout"]["annotations"]], ensure_ascii=False)


def test_the_sde_switch_changes_the_figure_and_says_steps_and_nfe():
    at = start()
    euler = particles_at_end(flow_spec(at))
    assert at.segmented_control(key="fme_w_sampler").value == "ode"
    assert not [w for w in at.select_slider if w.key == "fme_w_noise"]  # drawn only for the SDE
    at.segmented_control(key="fme_w_sampler").set_value("sde").run()
    assert not at.exception
    assert at.query_params["sampler"] == "sde"
    assert html(at, "fm-nfe").startswith("20 steps · 20 NFE (Euler-Maruyama SDE: 1 network evaluation")
    assert "Euler-Maruyama SDE, noise 1" in titles(at) and "20 NFE" in html(at, "fm-metrics")
    assert "SDE" in html(at, "fm-caption") and "Jagged" in html(at, "fm-caption")
    assert at.selectbox(key="fme_w_solver").disabled  # the solver is the ODE's
    sde = particles_at_end(flow_spec(at))
    assert sde != euler
    at.run()
    assert particles_at_end(flow_spec(at)) == sde  # a fixed Brownian seed: the same figure again

    at.select_slider(key="fme_w_noise").set_value(0.0).run()
    assert at.query_params["noise"] == "0"
    assert particles_at_end(flow_spec(at)) == euler  # noise 0 is Euler, bit for bit
    at.segmented_control(key="fme_w_sampler").set_value("ode").run()
    assert not at.exception and "sampler" not in at.query_params
    assert not at.selectbox(key="fme_w_solver").disabled


def test_a_shared_sde_link_reproduces_the_figure():
    at = start({"sampler": "sde", "noise": "1.5", "steps": "30"})
    assert at.select_slider(key="fme_w_noise").value == 1.5
    assert "noise 1.5" in titles(at) and html(at, "fm-nfe").startswith("30 steps · 30 NFE")
    assert particles_at_end(flow_spec(start(dict(at.query_params)))) == particles_at_end(flow_spec(at))


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"sampler": "xyz"}, "Ignored sampler='xyz': sampler must be one of ode, sde"),
        ({"noise": "99"}, "Ignored noise='99': must be between 0 and 2"),
        ({"objective": "gan"}, "Ignored objective='gan': model must be one of flow, meanflow"),
        ({"nfe": "9"}, "Ignored nfe='9': must be between 1 and 8"),
    ],
)
def test_a_bad_sampler_or_model_in_a_link_gives_the_usual_notice(params, needle):
    at = start({"data": "circles", **params})
    assert needle in " ".join(w.value for w in at.warning).replace("\\", "")  # plain() escapes markdown
    assert at.pills(key="fme_w_data").value == "circles"  # the rest of the link still applies
    assert html(at, "fm-nfe").startswith("20 steps · 20 NFE")


def test_a_mean_flow_trains_and_draws_its_jumps_at_the_nfe_the_slider_says(open_panel):
    at = start({"objective": "meanflow", "nfe": "2"})
    assert at.slider(key="fme_w_nfe").value == 2  # shown while the Training options are folded
    open_panel(at, "training")
    assert at.selectbox(key="fme_w_objective").value == "meanflow"
    assert at.selectbox(key="fme_w_target").disabled and at.select_slider(key="fme_w_lr").disabled
    exact = particles_at_end(flow_spec(at))
    at.button(key="fme_w_train").click().run()
    for _ in range(2):
        at.run()  # each run ticks the live fragment once
    at.button(key="fme_w_pause").click().run()
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    assert not at.exception
    assert html(at, "fm-nfe").startswith("2 steps · 2 NFE (mean flow: 1 network evaluation")
    assert "mean flow" in titles(at) and "2 NFE" in html(at, "fm-metrics")
    assert "mean-flow" in html(at, "fm-caption")
    two = particles_at_end(flow_spec(at))
    assert two != exact
    at.slider(key="fme_w_nfe").set_value(1).run()
    assert html(at, "fm-nfe").startswith("1 step · 1 NFE") and particles_at_end(flow_spec(at)) != two
    assert "mean flow, 1 step" in " ".join(c.value for c in at.caption)  # the live snapshot too

    at.segmented_control(key="fme_w_field").set_value("difference").run()
    assert not at.exception
    assert "average" in " ".join(i.value for i in at.info)  # no error picture for jumps: the learned one
    assert "mean flow" in titles(at)

    at.segmented_control(key="fme_w_field").set_value("exact").run()
    at.segmented_control(key="fme_w_sampler").set_value("sde").run()
    assert "Euler-Maruyama SDE" in titles(at)  # the exact field keeps the ODE | SDE sampler


def test_the_hidden_noise_slider_keeps_its_value_until_the_sde_comes_back():
    at = start({"sampler": "sde", "noise": "0.5"})
    at.segmented_control(key="fme_w_sampler").set_value("ode").run()
    at.run()
    assert at.query_params["noise"] == "0.5"
    at.segmented_control(key="fme_w_sampler").set_value("sde").run()
    assert at.select_slider(key="fme_w_noise").value == 0.5 and "noise 0.5" in titles(at)


def test_the_sde_samples_a_learned_flow_too():
    at = start()
    at.button(key="fme_w_train").click().run()
    at.run()
    at.button(key="fme_w_pause").click().run()
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    ode = particles_at_end(flow_spec(at))
    at.segmented_control(key="fme_w_sampler").set_value("sde").run()
    assert not at.exception
    assert "Euler-Maruyama SDE, noise 1" in titles(at) and "network" in html(at, "fm-caption")
    assert particles_at_end(flow_spec(at)) != ode


def test_a_saved_mean_flow_loads_in_the_export_panel_and_draws_its_jumps(open_panel, tmp_path):
    from fmcore import Trainer, datasets

    trainer = Trainer(datasets.sample("moons", 256, seed=0), objective="meanflow", seed=0)
    trainer.step(5)
    trainer.save(tmp_path / "mean.safetensors")
    at = open_panel(start({"nfe": "3"}), "export")
    upload = (tmp_path / "mean.safetensors").read_bytes()
    at.file_uploader(key="fme_w_model_upload").upload(
        "mean.safetensors", upload, "application/octet-stream"
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.segmented_control(key="fme_w_field").value == "learned"
    assert at.slider(key="fme_w_nfe").value == 3  # shown for the loaded mean flow, the link's value
    assert "mean flow" in titles(at) and html(at, "fm-nfe").startswith("3 steps · 3 NFE")
