"""compat.WORKAROUNDS: every entry names a test that exists, so none can lose its pin unnoticed."""

import ast
from pathlib import Path

import pytest

from explorer.compat import WORKAROUNDS

ROOT = Path(__file__).resolve().parents[2]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("workaround", WORKAROUNDS, ids=lambda w: w.name)
def test_every_workaround_is_pinned_by_a_test_that_exists(workaround):
    path, _, name = workaround.test.partition("::")
    assert (ROOT / path).is_file(), workaround.test
    assert name in _test_names(ROOT / path), workaround.test
    assert workaround.symptom and workaround.delete_when and workaround.version.startswith("streamlit ")


def test_every_code_workaround_is_a_function_of_compat():
    from explorer import compat

    for workaround in WORKAROUNDS:
        if workaround.name.startswith("compat."):
            assert callable(getattr(compat, workaround.name.removeprefix("compat.")))


def _frames(at) -> int:
    import json

    return len(json.loads(at.get("plotly_chart")[0].proto.spec)["frames"])


def test_a_sessions_first_run_is_the_figure_then_the_whole_page(monkeypatch):
    """A new visitor's first run sends the header, a figure of every 5th frame (the first and the
    last kept) and the toolbar's room above it (the widgets' code would delay the paint), asks the
    browser to rerun once it is drawn, and nothing else: no sidebar, no toolbar widgets, no training
    or data panel. The run after it is the whole page with every frame, and the link's notices
    appear there. Later runs, and the next visitor's, behave as they should; a room's link (a class
    opening it together on one server) has no first view."""
    from explorer import compat
    from explorer.core import flows
    from explorer.core.state import widget_key
    from tests.app.apptest import start

    monkeypatch.setenv("FME_TRAINING", "inline")
    monkeypatch.setattr(compat, "FIRST_VIEW", True)
    at = start({"steps": "7", "bogus": "1"})
    assert _frames(at) == len(range(0, flows.N_FRAMES, compat.FIRST_VIEW_STRIDE)) == 11
    assert [b.proto.component_name for b in at.get("bidi_component")] == ["fme_figure_drawn"]
    assert not at.sidebar.children and not at.button and not at.tabs
    assert not at.get("button_group") and not at.slider
    assert [space.size for space in at.get("space")] == [88]  # two rows for labelled data: no jump later
    assert not at.warning  # the notices wait for the whole page
    at.run()  # what the drawn figure's trigger asks for
    assert _frames(at) == flows.N_FRAMES
    assert not at.get("bidi_component") and not at.get("space")
    assert widget_key("field") in {b.key for b in at.get("button_group")}  # the toolbar in its room
    assert at.slider(key=widget_key("steps")).value == 7  # the link's view, kept
    assert "bogus" in at.warning[0].value  # and what it got wrong
    assert at.button(key=widget_key("train"))
    at.run()
    assert _frames(at) == flows.N_FRAMES and not at.warning
    unlabelled = start({"data": "swissroll"})  # another visitor: a first view of its own
    assert _frames(unlabelled) == 11 and [space.size for space in unlabelled.get("space")] == [32]
    joining = start({"room": "ABC234"})  # a room's link: the whole page and its join form at once
    assert _frames(joining) == flows.N_FRAMES and not joining.get("bidi_component")
    assert joining.button(key=widget_key("train")) and joining.text_input(key="fme_room_name")
