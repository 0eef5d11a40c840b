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
