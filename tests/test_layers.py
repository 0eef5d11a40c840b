"""The import direction fmcore <- explorer <- pages (and the apps) is part of the design."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "fmcore": {"streamlit", "plotly", "explorer", "pages", "streamlit_app"},
    "explorer": {"pages", "streamlit_app"},
    # The numbers and the view state: usable from a notebook or a script, without a server.
    "explorer/core": {"streamlit", "plotly"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    wrong = {
        str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package])
        for f in files
        if imported_roots(f) & FORBIDDEN[package]
    }
    assert not wrong, f"wrong-way imports: {wrong}"


def test_the_checker_sees_imports(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import streamlit as st\nfrom plotly import graph_objects\nfrom . import local\n")
    assert imported_roots(bad) == {"streamlit", "plotly"}
