"""The notebooks in examples/ run from top to bottom and show what their text says they show."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120  # per cell; the slowest trains for 3 s
ENERGY = re.compile(r"energy distance (?P<what>[\w ]+?) to data (?P<value>-?\d+\.\d+)")


@pytest.fixture(scope="module")
def quickstart():
    """examples/quickstart.ipynb after a run, as Jupyter would run it with the project importable."""
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit the notebook without outputs"
    NotebookClient(notebook, timeout=TIMEOUT_S, resources={"metadata": {"path": str(ROOT)}}).execute()
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


@pytest.mark.slow
def test_every_cell_runs_without_error(quickstart):
    errors = [output for cell in quickstart for output in cell.outputs if output.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert all(cell.execution_count for cell in quickstart)


@pytest.mark.slow
def test_the_exact_field_and_the_trained_model_both_carry_noise_onto_the_data(quickstart):
    energy = {
        match["what"]: float(match["value"]) for cell in quickstart for match in ENERGY.finditer(_text(cell))
    }
    assert set(energy) == {"noise", "exact field", "model"}, energy
    assert all(math.isfinite(value) for value in energy.values())
    # Two samples of moons itself are ~0.001 apart, noise ~0.05; 100 training steps already give ~0.01.
    assert energy["exact field"] < energy["noise"] / 10
    assert energy["model"] < energy["noise"] / 4


@pytest.mark.slow
def test_training_ran_for_its_three_seconds(quickstart):
    (line,) = [
        match for cell in quickstart if (match := re.search(r"(\d+) steps in (\d+\.\d) s", _text(cell)))
    ]
    assert int(line[1]) > 0 and float(line[2]) >= 3.0


@pytest.mark.slow
def test_the_last_cell_shows_the_models_samples_over_the_data(quickstart):
    (figure,) = [o for o in quickstart[-1].outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    traces = figure["data"]["application/vnd.plotly.v1+json"]["data"]
    data, samples = traces[0], traces[-1]
    assert all(trace["type"] == "scatter" and trace["mode"] == "markers" for trace in (data, samples))
    for trace, n in ((data, 2000), (samples, 1000)):
        points = np.stack([_values(trace, "x"), _values(trace, "y")], axis=1)
        assert points.shape == (n, 2) and np.isfinite(points).all()
    assert "NFE" in figure["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]


def _values(trace, axis: str) -> np.ndarray:
    """A trace's coordinates, sent as a list or as plotly's typed array ({"dtype", "bdata"})."""
    values = trace[axis]
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=np.float64)
