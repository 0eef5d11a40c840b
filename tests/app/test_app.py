"""The Playground as a user drives it, through Streamlit's AppTest (no browser).

AppTest runs a ``run_every`` fragment once per ``at.run()``, so "train some steps" is a few runs.
"""

import base64
import json
import re

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.apptest import start


@pytest.fixture(autouse=True)
def inline_training(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # no engine process in tests


def flow_spec(at: AppTest) -> dict:
    """The main animated figure (the one with frames)."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec.get("frames"):
            return spec
    raise AssertionError("no animated figure on the page")


def particles_at_end(spec: dict) -> str:
    """The final frame's particle positions, as sent (base64 float32)."""
    names = [trace.get("name") for trace in spec["data"]]
    index = names.index("particles z_t")
    last = spec["frames"][-1]
    return json.dumps(last["data"][last["traces"].index(index)]["x"])


def html(at: AppTest, testid: str) -> str:
    found = [m.value for m in at.markdown if f"data-testid='{testid}'" in m.value]
    assert found, f"nothing marked {testid} on the page"
    return re.sub(r"<[^>]+>", "", found[0])


def test_first_run_shows_the_exact_flow_with_steps_and_nfe():
    at = start()
    spec = flow_spec(at)
    assert len(spec["frames"]) == 51
    assert spec["frames"][0]["name"] == "0.00" and spec["frames"][-1]["name"] == "1.00"
    assert html(at, "fm-nfe").startswith("20 steps · 20 NFE")  # Euler: one evaluation a step
    assert "exact" in html(at, "fm-caption")
    assert dict(at.query_params) == {}  # the default view keeps a clean URL


def test_preset_solver_and_steps_change_the_figure_and_the_nfe():
    at = start()
    before = particles_at_end(flow_spec(at))
    at.pills(key="fme_w_data").set_value("circles").run()
    assert not at.exception
    after_preset = particles_at_end(flow_spec(at))
    assert after_preset != before
    assert at.query_params["data"] == "circles"

    at.selectbox(key="fme_w_solver").set_value("heun")
    at.slider(key="fme_w_steps").set_value(7)
    at.run()
    assert not at.exception
    assert html(at, "fm-nfe").startswith("7 steps · 14 NFE")
    spec = flow_spec(at)
    assert particles_at_end(spec) != after_preset
    assert "heun" in json.dumps(spec["layout"]["annotations"]) and "14 NFE" in html(at, "fm-metrics")
    assert at.query_params["solver"] == "heun" and at.query_params["steps"] == "7"


def test_training_runs_then_a_schedule_change_reuses_the_model_without_retraining():
    at = start()
    at.button(key="fme_w_train").click().run()
    for _ in range(3):
        at.run()  # each run ticks the live fragment once
    assert not at.exception
    stats = html(at, "fm-train-stats")
    step = int(re.search(r"step ([\d,]+)", stats).group(1).replace(",", ""))
    assert step > 0 and "cpu" in stats and "steps/s" in stats
    assert len([c for c in at.get("plotly_chart") if '"log"' in c.proto.spec]) == 1  # the loss curve

    at.button(key="fme_w_pause").click().run()
    paused = int(re.search(r"step ([\d,]+)", html(at, "fm-train-stats")).group(1).replace(",", ""))
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    assert "network" in html(at, "fm-caption")
    learned_linear = particles_at_end(flow_spec(at))
    at.selectbox(key="fme_w_schedule").set_value("cosine").run()
    assert not at.exception
    assert particles_at_end(flow_spec(at)) != learned_linear  # re-integrated under the new schedule
    again = int(re.search(r"step ([\d,]+)", html(at, "fm-train-stats")).group(1).replace(",", ""))
    assert again == paused  # ...by the same network: no retraining

    at.pills(key="fme_w_layers").set_value(["paths", "density"]).run()
    assert flow_spec(at)["data"][0]["type"] == "heatmap"  # the exact p_t first
    at.toggle(key="fme_w_model_density").set_value(True).run()
    assert not at.exception
    heatmap = flow_spec(at)["data"][0]
    assert heatmap["type"] == "heatmap" and "network's" in html(at, "fm-caption")


def test_bad_csv_upload_shows_an_error_and_keeps_the_data(open_panel):
    at = open_panel(start({"data": "spirals"}), "upload")
    before = particles_at_end(flow_spec(at))
    at.file_uploader(key="fme_w_upload").upload("bad.csv", b"x,y\n1,2\n3,nan\n", "text/csv").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "bad.csv" in errors and "not a finite number" in errors and "Nothing was changed" in errors
    assert particles_at_end(flow_spec(at)) == before
    assert at.query_params["data"] == "spirals"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1,2,3,4\n5,6,7,8\n", "expected two columns x, y or three"),
        ("1\n2\n", "two numbers"),
        ("", "No data rows"),
    ],
)
def test_bad_pasted_points_explain_themselves(text, needle, open_panel):
    at = open_panel(start(), "upload")
    at.text_area(key="fme_w_paste").input(text)
    at.button(key="fme_w_use_paste").click().run()
    assert not at.exception
    assert needle in " ".join(e.value for e in at.error)
    assert "data" not in at.query_params  # still the default preset


def test_good_csv_becomes_the_data_and_the_link_carries_it(open_panel):
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 400)
    ring = np.stack([100 + 5 * np.cos(angle), -20 + 5 * np.sin(angle)], 1)
    csv = "x,y\n" + "\n".join(f"{x:.4f},{y:.4f}" for x, y in ring)
    at = open_panel(start(), "upload")
    at.file_uploader(key="fme_w_upload").upload("ring.csv", csv.encode(), "text/csv").run()
    assert not at.exception and not at.error
    assert at.query_params["data"] == "custom" and len(at.query_params["pts"]) > 100
    shared = dict(at.query_params)
    # the shared link alone reproduces the view in a new session
    other = start(shared)
    assert particles_at_end(flow_spec(other)) == particles_at_end(flow_spec(at))


def test_invalid_link_parameters_give_a_notice_and_the_rest_still_applies():
    at = start({"solver": "warp-drive", "steps": "-3", "data": "rings", "nonsense": "1"})
    notices = " ".join(w.value for w in at.warning)
    assert "solver" in notices and "steps" in notices and "nonsense" in notices
    assert html(at, "fm-nfe").startswith("20 steps · 20 NFE")
    assert at.pills(key="fme_w_data").value == "rings"


def test_compare_mode_shows_both_settings_with_their_nfe_and_energy():
    at = start({"compare": "1", "solver": "rk4", "solver_b": "euler", "steps_b": "3"})
    spec = flow_spec(at)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert len(titles) == 2
    assert "80 NFE" in titles[0] and "3 steps · 3 NFE" in titles[1]
    assert all("energy distance" in t for t in titles)
    assert "xaxis2" in spec["layout"]


def test_classroom_link_hides_the_controls_but_keeps_training():
    at = start({"classroom": "1", "data": "8gaussians"})
    assert len(at.sidebar.selectbox) == 0 and len(at.selectbox) == 0 and len(at.pills) == 0
    assert [b.label for b in at.button] == ["Train", "Pause", "Reset"]
    assert flow_spec(at)["layout"]["height"] >= 700
    at.button(key="fme_w_train").click().run()
    at.run()
    assert not at.exception and "step 0 ·" not in html(at, "fm-train-stats")
    assert at.query_params["classroom"] == "1"


def test_a_saved_model_loads_back_and_a_bad_file_is_refused(tmp_path, open_panel):
    from fmcore import datasets
    from fmcore.trainer import Trainer

    trainer = Trainer(datasets.sample("moons", 500, 0), schedule="cosine", seed=0)
    trainer.step(30)
    trainer.save(tmp_path / "model.safetensors")
    at = start()
    open_panel(at, "export")
    at.file_uploader(key="fme_w_model_upload").upload("junk.safetensors", b"\x00" * 64).run()
    assert not at.exception
    assert "junk.safetensors was not loaded" in " ".join(e.value for e in at.error)
    assert "exact" in html(at, "fm-caption")  # nothing changed

    blob = (tmp_path / "model.safetensors").read_bytes()
    at.file_uploader(key="fme_w_model_upload").set_value(
        ("model.safetensors", blob, "application/octet-stream")
    ).run()
    assert not at.exception and not at.error
    assert "network" in html(at, "fm-caption")  # the figure switched to the loaded model's field
    assert at.segmented_control(key="fme_w_field").value == "learned"


def test_an_adaptive_solver_reports_the_nfe_it_counted():
    at = start({"solver": "dopri5", "steps": "4"})
    caption = html(at, "fm-nfe")
    nfe = int(re.search(r"(\d+) NFE", caption).group(1))
    assert caption.startswith("adaptive, 4 outputs") and nfe > 4 * 6  # >= 6 stages per accepted step
    assert f"{nfe} NFE" in html(at, "fm-metrics")


def test_a_solve_that_blows_up_is_reported_not_crashed(monkeypatch):
    # A solver whose steps overflow (registered for this test only): the page warns, never crashes.
    from fmcore import solvers

    def overflow(v, z, t, t_next, state):
        return z * float("inf")

    # Under a name the page already knows (its option lists are built once per process), and
    # with the caches cleared so that no earlier test's euler solve is reused.
    monkeypatch.setitem(solvers.SOLVERS, "euler", solvers.SolverInfo(overflow, 1, 1, "Overflow (test)"))
    st.cache_data.clear()
    at = start({"solver": "euler", "steps": "7"})
    st.cache_data.clear()
    assert not at.exception
    assert "non-finite" in " ".join(w.value for w in at.warning)


def test_dpm_solver_on_the_polynomial_path_is_finite():
    # d_alpha = d_sigma = 0 at t=0 on the t^2 path: the solver reads its prediction just inside.
    at = start({"solver": "dpm++2m", "schedule": "polynomial", "steps": "5"})
    assert not at.exception and "non-finite" not in " ".join(w.value for w in at.warning)


def test_lazy_panels_are_built_only_when_opened(open_panel):
    at = start({"data": "circles", "solver": "heun", "steps": "12"})
    assert not at.get("file_uploader")  # neither the CSV nor the model uploader on the first paint
    assert not at.get("code")  # nor the code highlighter
    open_panel(at, "upload")
    assert [u.key for u in at.get("file_uploader")] == ["fme_w_upload"]
    open_panel(at, "export")
    assert [u for u in at.get("file_uploader") if u.key == "fme_w_model_upload"]
    (link,) = at.get("code")
    assert "data=circles" in link.value and "solver=heun" in link.value and "steps=12" in link.value
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"GIF", "HTML", "PNG", "Samples CSV", "Save model"} <= labels


def test_the_sidebars_folded_groups_keep_a_links_values_while_closed(open_panel):
    # Particles, Compare and Training options are lazy: no widget of theirs on the first paint,
    # yet the link's values hold, show when a group opens, and outlive closing it again.
    link = {"n": "500", "seed": "3", "compare": "1", "steps_b": "3", "lr": "0.003", "target": "marginal"}
    at = start(link)
    lazy = {"fme_w_n", "fme_w_seed", "fme_w_compare", "fme_w_steps_b", "fme_w_lr", "fme_w_target"}
    assert not lazy & {w.key for w in at.sidebar if getattr(w, "key", None)}
    assert dict(at.query_params) == link
    assert "3 steps · 3 NFE" in flow_spec(at)["layout"]["annotations"][1]["text"]  # compare mode is on
    for panel in ("particles", "compare", "training"):
        open_panel(at, panel)
    assert (at.select_slider(key="fme_w_n").value, at.number_input(key="fme_w_seed").value) == (500, 3)
    assert at.toggle(key="fme_w_compare").value and at.slider(key="fme_w_steps_b").value == 3
    assert (at.select_slider(key="fme_w_lr").value, at.selectbox(key="fme_w_target").value) == (
        0.003,
        "marginal",
    )
    at.select_slider(key="fme_w_n").set_value(2000).run()
    before = particles_at_end(flow_spec(at))
    at.session_state["fme_w_particles_panel"] = False  # fold it again: its widgets go, the value stays
    at.run()
    at.run()  # the second folded run once fell back to the value the link had seeded (500)
    assert not at.exception and not [w for w in at.select_slider if w.key == "fme_w_n"]
    assert at.query_params["n"] == "2000" and particles_at_end(flow_spec(at)) == before
    open_panel(at, "particles")
    assert at.select_slider(key="fme_w_n").value == 2000


def test_a_big_class_slows_the_live_redraws_and_says_so(monkeypatch):
    from explorer import training
    from explorer.training import sessions

    monkeypatch.setattr(sessions, "_TICKS", {})  # alone: runners of earlier tests ticked seconds ago
    at = start()
    at.button(key="fme_w_train").click().run()
    assert "redrawn every" not in html(at, "fm-train-stats")  # alone: the fast period, not mentioned
    monkeypatch.setattr(training, "active_sessions", lambda window_s=training.ACTIVE_WINDOW_S: 30)
    at.run()  # the fragment sees the class, reruns the page, and the new period is shown
    assert not at.exception
    assert "redrawn every 3 s: a busy server" in html(at, "fm-train-stats")


def test_a_rerun_the_live_part_asks_for_keeps_the_latest_settings(monkeypatch):
    # A fragment run carries the URL the page had when its timer fired, which can predate the
    # last change. The page rerun it asks for (here: the class grew) must not take that URL for
    # a newly opened link and put the controls back (found with 30 browsers, bench/classroom.py).
    from explorer import training

    at = start({"data": "circles"})
    at.button(key="fme_w_train").click().run()
    at.slider(key="fme_w_steps").set_value(21).run()
    assert at.query_params["steps"] == "21"
    at.query_params.pop("steps")  # the live part's timer fired before the URL said steps=21
    monkeypatch.setattr(training, "active_sessions", lambda window_s=training.ACTIVE_WINDOW_S: 30)
    at.run()
    assert not at.exception
    assert "redrawn every 3 s" in html(at, "fm-train-stats")  # the rerun did happen
    assert at.slider(key="fme_w_steps").value == 21
    assert at.query_params["steps"] == "21"


def test_each_control_offers_its_session_value_as_its_default(open_panel):
    # A browser that first draws a widget from a later run than the one that set it takes the
    # widget's default: with Streamlit's own defaults a slow page sent back its sliders at their
    # minimum (Steps 1, Particles 250, learning rate 1e-4; bench/classroom.py, 30 sessions).
    at = start({"steps": "7", "n": "500", "lr": "0.003", "solver": "heun", "seed": "5"})
    open_panel(open_panel(at, "particles"), "training")
    at.slider(key="fme_w_steps").set_value(9).run()
    at.run()  # a run that sets nothing: what the browser falls back to now
    assert list(at.slider(key="fme_w_steps").proto.default) == [9]
    n = at.select_slider(key="fme_w_n")
    assert n.options[int(n.proto.default[0])] == "500"
    lr = at.select_slider(key="fme_w_lr")
    assert lr.options[int(lr.proto.default[0])] == "0.003"
    solver = at.selectbox(key="fme_w_solver")
    assert solver.options[solver.proto.default] == solver.format_func("heun")
    assert at.number_input(key="fme_w_seed").proto.default == 5
    at.button_group(key="fme_w_layers").set_value(["paths", "density"]).run()
    at.run()
    layers = at.button_group(key="fme_w_layers")
    assert sorted(layers.options[i] for i in layers.proto.default) == sorted(
        layers.format_func(name) for name in ("paths", "density")
    )


def test_the_back_button_restores_the_view_its_url_names(monkeypatch):
    from explorer import compat

    at = start({"data": "circles"})
    at.slider(key="fme_w_steps").set_value(21).run()
    at.query_params.pop("steps")  # back to the URL before the change
    monkeypatch.setattr(compat, "history_navigation", lambda: True)
    at.run()
    assert at.slider(key="fme_w_steps").value == 20 and "steps" not in at.query_params


def test_live_figures_are_rebuilt_only_when_the_network_changed():
    at = start()
    at.button(key="fme_w_train").click().run()
    at.run()
    at.button(key="fme_w_pause").click().run()
    key, (loss, snapshot, samples) = at.session_state["fme_live_figures"]
    assert loss is not None and snapshot is not None and samples.shape == (600, 2)
    at.run()
    again_key, (again_loss, again_snapshot, _) = at.session_state["fme_live_figures"]
    assert again_key == key and again_loss is loss and again_snapshot is snapshot  # paused: reused
    at.button(key="fme_w_train").click().run()  # resume: new steps, new figures
    at.run()
    new_key, (new_loss, _, _) = at.session_state["fme_live_figures"]
    assert new_key != key and new_loss is not loss


def test_the_snapshot_particle_count_is_one_setting_for_the_link_the_slider_and_the_snapshot(open_panel):
    at = open_panel(start({"snapshot_n": "1000"}), "training")
    assert at.slider(key="fme_w_snapshot_n").value == 1000
    at.button(key="fme_w_train").click().run()
    at.run()  # one tick of the live fragment: a network to draw
    assert not at.exception
    assert any("1000 particles" in c.value for c in at.caption) and snapshot_samples(at) == 1000
    at.slider(key="fme_w_snapshot_n").set_value(300).run()
    assert at.query_params["snapshot_n"] == "300"
    assert any("300 particles" in c.value for c in at.caption) and snapshot_samples(at) == 300


def snapshot_samples(at: AppTest) -> int:
    """How many samples the live snapshot draws (its last trace, sent as base64 float32)."""
    (spec,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"snapshot"' in c.proto.spec]
    return len(base64.b64decode(spec["data"][-1]["x"]["bdata"])) // 4


def _in_page_order(node):
    """The elements under ``node`` in the order the page shows them (blocks depth first)."""
    for _, child in sorted(getattr(node, "children", {}).items()):
        yield child
        yield from _in_page_order(child)


def test_the_toolbar_and_class_row_stay_above_the_figure_drawn_before_them():
    # main() draws the figure first (it reaches a new visitor's browser first) and fills the
    # container made above it afterwards: the page must still read toolbar, class row, figure.
    at = start()  # the default data, moons, has classes: the class row shows
    assert not at.exception
    order = [
        "chart" if node.type == "plotly_chart" else getattr(node, "key", None)
        for node in _in_page_order(at.main)
    ]
    field, classes, chart = (order.index(name) for name in ("fme_w_field", "fme_w_class_label", "chart"))
    assert field < classes < chart
    assert at.sidebar.selectbox(key="fme_w_schedule").value == "linear"  # the sidebar after it
