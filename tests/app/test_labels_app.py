"""Labelled data in the Playground, through AppTest: the class picker, guidance, training with labels.

AppTest runs the live fragment once per ``at.run()``: "train a little" is a few runs.
"""

import base64

import numpy as np
import pytest

from explorer.core.state import ALL_CLASSES
from fmcore import datasets
from tests.app.apptest import start
from tests.app.test_app import flow_spec


@pytest.fixture(autouse=True)
def inline_training(monkeypatch):
    monkeypatch.setenv("FME_TRAINING", "inline")  # no engine process in tests


def _floats(value) -> np.ndarray:
    if isinstance(value, dict):  # plotly's binary arrays
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=np.float64)


def samples(at) -> np.ndarray:
    """(n, 2) where the figure's particles end, at t = 1."""
    spec = flow_spec(at)
    index = [trace.get("name") for trace in spec["data"]].index("particles z_t")
    last = spec["frames"][-1]
    trace = last["data"][last["traces"].index(index)]
    return np.stack([_floats(trace["x"]), _floats(trace["y"])], axis=1)


def share_nearest(points: np.ndarray, name: str, k: int) -> float:
    """Share of ``points`` nearest class k's centroid among the preset's class centroids (fresh data)."""
    data, labels = datasets.sample(name, 4000, seed=11, labels=True)
    centroids = np.stack([data[labels == c].mean(0).numpy() for c in range(datasets.CLASSES[name])])
    return float((np.linalg.norm(points[:, None] - centroids[None], axis=2).argmin(1) == k).mean())


def test_a_labelled_preset_shows_the_class_picker_and_an_unlabelled_one_says_why_not():
    at = start({"data": "8gaussians"})
    picker = at.pills(key="fme_w_class_label")
    assert list(picker.options) == ["all", *(f"● {k}" for k in range(8))]
    assert picker.value == ALL_CLASSES
    assert any("Eight Gaussians on a circle · 8 classes" in c.value for c in at.caption)
    guidance = at.slider(key="fme_w_guidance")
    assert guidance.disabled and "w = 1 is the conditional field" in guidance.help  # it needs a class

    at.pills(key="fme_w_data").set_value("swissroll").run()
    assert not at.exception
    assert "fme_w_class_label" not in [p.key for p in at.pills]
    assert "fme_w_guidance" not in [s.key for s in at.slider]
    assert not any("classes" in c.value for c in at.caption)


def test_picking_a_class_and_training_moves_the_learned_samples_to_that_class():
    at = start({"data": "8gaussians"})
    assert share_nearest(samples(at), "8gaussians", 3) < 0.3  # all classes: an eighth each
    at.pills(key="fme_w_class_label").set_value(3).run()
    assert share_nearest(samples(at), "8gaussians", 3) >= 0.9  # the exact field of class 3's points
    assert not at.slider(key="fme_w_guidance").disabled
    said = " ".join(c.value for c in at.caption)
    assert "Class 3" in said and "w = 0 the unconditional one, w > 1 sharpens the class" in said
    at.button(key="fme_w_train").click().run()
    for _ in range(5):
        at.run()  # each run trains one slice of the live fragment
    at.button(key="fme_w_pause").click().run()
    at.segmented_control(key="fme_w_field").set_value("learned").run()
    assert not at.exception
    from explorer.training import session_runner

    runner = session_runner(at.session_state)
    assert runner.n_classes == 8 and runner.step > 0
    learned = samples(at)
    assert share_nearest(learned, "8gaussians", 3) >= 0.9
    assert dict(at.query_params) == {"data": "8gaussians", "class_label": "3", "field": "learned"}

    # w = 0 is the unconditional field: the same network spreads over every class again.
    at.slider(key="fme_w_guidance").set_value(0.0).run()
    assert not at.exception
    assert share_nearest(samples(at), "8gaussians", 3) < 0.4
    assert at.query_params["guidance"] == "0"


def test_a_bad_class_in_a_link_gives_the_usual_notice_and_a_class_the_data_lacks_is_refused_in_words():
    at = start({"data": "moons", "class_label": "purple", "guidance": "-2"})
    warnings = " ".join(w.value for w in at.warning)
    assert "Some link parameters were ignored" in warnings
    assert "'purple': not a whole number" in warnings and "'-2': must be between 0 and 5" in warnings
    assert at.pills(key="fme_w_class_label").value == ALL_CLASSES

    at = start({"data": "moons", "class_label": "5"})
    assert not at.exception
    assert "this data has the classes 0, 1. Showing all classes" in " ".join(w.value for w in at.warning)
    assert at.pills(key="fme_w_class_label").value == ALL_CLASSES
    at.run()
    assert "class_label" not in at.query_params


def test_a_csv_label_column_makes_classes_and_bad_labels_change_nothing(open_panel):
    rng = np.random.default_rng(0)
    rows = [
        (3 * k + 0.2 * rng.standard_normal(), 0.2 * rng.standard_normal(), k)
        for k in (0, 1, 2)
        for _ in range(60)
    ]
    csv = "x,y,label\n" + "\n".join(f"{x:.4f},{y:.4f},{k}" for x, y, k in rows)
    at = open_panel(start(), "upload")
    at.file_uploader(key="fme_w_upload").upload("three.csv", csv.encode(), "text/csv").run()
    assert not at.exception and not at.error
    assert at.query_params["data"] == "custom"
    assert list(at.pills(key="fme_w_class_label").options) == ["all", "● 0", "● 1", "● 2"]
    before = samples(at)
    at.pills(key="fme_w_class_label").set_value(2).run()
    shared = dict(at.query_params)
    assert "lab" in shared and shared["class_label"] == "2"
    other = start(shared)  # the link alone: the same points, classes and picked class
    assert list(other.pills(key="fme_w_class_label").options) == ["all", "● 0", "● 1", "● 2"]
    np.testing.assert_array_equal(samples(other), samples(at))
    at.pills(key="fme_w_class_label").set_value(ALL_CLASSES).run()
    np.testing.assert_array_equal(samples(at), before)

    bad = csv + "\n1.0,2.0,1.5\n"
    at.file_uploader(key="fme_w_upload").upload("bad.csv", bad.encode(), "text/csv").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert (
        "bad.csv" in errors
        and "label '1.5' is not a whole number" in errors
        and "Nothing was changed" in errors
    )
    np.testing.assert_array_equal(samples(at), before)

    many = "x,y,label\n" + "\n".join(f"{k},{k % 3},{k}" for k in range(12))
    at.text_area(key="fme_w_paste").input(many)
    at.button(key="fme_w_use_paste").click().run()
    assert "at most 8 classes" in " ".join(e.value for e in at.error)
    np.testing.assert_array_equal(samples(at), before)
