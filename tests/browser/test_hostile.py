"""Hostile and careless input in a real browser (issue 12): what reaches the DOM, and the server's memory."""

import base64
import re
import struct
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fmcore import io
from fmcore.models import FlowModel, ModelConfig, VelocityMLP

from .conftest import assert_no_exception, open_app, wait_for_app

pytestmark = pytest.mark.browser

EVIL = "evil.example"
FLOW = ".st-key-fme_flow_chart .js-plotly-plot"


def assert_nothing_from(page, where: str) -> None:
    """No link to, image from, or tag made by the hostile strings anywhere in the page."""
    page.wait_for_timeout(500)  # toasts and notices are drawn after the run
    found = page.evaluate(
        f"""() => ({{
            links: [...document.querySelectorAll('a')].map(a => a.href).filter(h => h.includes('{EVIL}') || h.startsWith('javascript')),
            images: [...document.querySelectorAll('img')].map(i => i.getAttribute('src') || '').filter(s => s.includes('{EVIL}') || s === 'x'),
            maths: document.querySelectorAll('.katex').length,
        }})"""
    )
    assert found == {"links": [], "images": [], "maths": 0}, (where, found)


def test_hostile_link_parameters_reach_the_page_as_text(app, page):
    query = urllib.parse.urlencode(
        {
            f"[click to log in](http://{EVIL}/login)": "1",
            "solver": f"![x](http://{EVIL}/p.png)",
            "schedule": "<img src=x onerror=alert(1)>",
            "steps": "$x^2$",
        }
    )
    open_app(page, app.url("/?" + query))
    assert_no_exception(page)
    body = page.inner_text("body").replace("\u2060", "")  # the invisible joiner of explorer.core.text
    assert "[click to log in](http://evil.example/login)" in body  # shown, as the characters it is
    assert_nothing_from(page, "link parameters")


def test_hostile_file_names_reach_the_page_as_text(app, page):
    open_app(page, app.url("/?data=moons"))
    page.get_by_role("tab", name=re.compile("Upload")).click()
    wait_for_app(page)
    for name in (
        f"[click](http://{EVIL}).csv",
        f"![x](http://{EVIL}/p.png).csv",
        "<img src=x onerror=alert(1)>.csv",
    ):
        page.locator(".st-key-fme_w_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(
            {"name": name, "mimeType": "text/csv", "buffer": f"0,0\n{name},1\n".encode()}
        )
        page.wait_for_selector("[data-testid='stAlertContentError']", timeout=30_000)
        wait_for_app(page)
        assert_no_exception(page)
        assert_nothing_from(page, name)


def test_training_then_the_network_density_layer(app, page):
    """Item 2: under the default process backend, Train and then the network's density."""
    open_app(page, app.url("/?data=moons&field=learned"))
    page.get_by_role("button", name=re.compile("Train")).click()
    page.wait_for_function(
        "() => /step [1-9]/.test((document.querySelector(\"[data-testid='fm-train-stats']\")?.innerText ?? ''))",
        timeout=90_000,
    )
    page.get_by_role("button", name=re.compile("Pause")).click()
    wait_for_app(page)
    page.get_by_role("button", name="Density").click()
    wait_for_app(page, 120)
    page.get_by_text("Density of the network").click()
    page.wait_for_function(
        "() => /network's/.test((document.querySelector(\"[data-testid='fm-caption']\")?.innerText ?? ''))",
        timeout=180_000,
    )
    wait_for_app(page, 180)
    assert_no_exception(page)
    assert page.evaluate(f"() => document.querySelector('{FLOW}')._fullData[0].type") == "heatmap"


# -- memory ------------------------------------------------------------------------------------------


def _vm_hwm_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def _largest_csv() -> bytes:
    """20,000 points (the cap) with every digit a float64 has, padded by comment lines to just under 2 MB."""
    points = np.random.default_rng(0).normal(size=(20_000, 2)).tolist()
    text = "x,y\n" + "\n".join(f"{x!r},{y!r}" for x, y in points) + "\n"
    padding = 2 * 10**6 - 1024 - len(text)  # Streamlit's uploader counts MB of 10^6 bytes
    return (text + ("# " + "-" * 97 + "\n") * (padding // 100)).encode()


def _largest_model(path) -> bytes:
    """A model near the 2 MB upload cap (hidden 256, depth 7: 1.6 MB), far larger than the Playground trains."""
    net = VelocityMLP(ModelConfig(hidden=256, depth=7))
    io.save(FlowModel(net, "linear", "velocity"), path)
    return path.read_bytes()


def _bomb_link() -> str:
    bomb = zlib.compress(struct.pack("<BI4f", 1, 20_000, 0, 0, 1, 1) + bytes(50 * 2**20), 9)
    return "/?data=custom&pts=" + base64.urlsafe_b64encode(bomb).decode().rstrip("=")


@pytest.mark.slow
def test_the_servers_peak_memory_stays_bounded_under_the_largest_inputs(fresh_app, page, tmp_path):
    torch.set_num_threads(1)
    csv, model = _largest_csv(), _largest_model(tmp_path / "big.safetensors")
    assert 1.9e6 < len(csv) < 2e6 and len(model) < 2e6
    open_app(page, fresh_app.url(_bomb_link()), 90)
    assert_no_exception(page)
    assert "20,000 points" in page.inner_text("body")
    page.get_by_role("tab", name=re.compile("Upload")).click()
    wait_for_app(page)
    page.locator(".st-key-fme_w_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(
        {"name": "largest.csv", "mimeType": "text/csv", "buffer": csv}
    )
    page.wait_for_function(
        "() => location.search.includes('data=custom') || document.querySelector(\"[data-testid='stAlertContentError']\")",
        timeout=60_000,
    )
    wait_for_app(page, 120)
    assert_no_exception(page)
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0 and "data=custom" in page.url, errors.all_inner_texts()
    page.get_by_text("Share & export").click()
    wait_for_app(page)
    page.locator(".st-key-fme_w_model_upload [data-testid='stFileUploaderDropzoneInput']").set_input_files(
        {"name": "largest.safetensors", "mimeType": "application/octet-stream", "buffer": model}
    )
    page.wait_for_selector("text=Loaded largest.safetensors", timeout=60_000)
    wait_for_app(page, 120)
    assert_no_exception(page)
    peak = _vm_hwm_mb(fresh_app.process.pid)
    print(f"server VmHWM {peak:.0f} MB")
    assert peak < 1500
