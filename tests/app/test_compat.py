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


def test_a_sessions_first_run_pauses_once_after_the_figure(monkeypatch):
    """A new visitor's run waits FIRST_PAINT_PAUSE_S once, with the figure already sent and the
    training panel not yet; its reruns never wait; another visitor waits again."""
    import types

    import streamlit as st

    from explorer import compat
    from explorer.core.state import widget_key
    from explorer.playground.keys import LAST_FIGURE_KEY
    from tests.app.apptest import start

    monkeypatch.setenv("FME_TRAINING", "inline")
    monkeypatch.setattr(compat, "FIRST_PAINT_PAUSE_S", 0.05)
    pauses = []

    def sleep(seconds):
        pauses.append((seconds, LAST_FIGURE_KEY in st.session_state, widget_key("train") in st.session_state))

    monkeypatch.setattr(compat, "time", types.SimpleNamespace(sleep=sleep))
    at = start()
    assert pauses == [(0.05, True, False)]
    at.run()
    assert len(pauses) == 1
    start()  # another visitor: a session of its own
    assert len(pauses) == 2
