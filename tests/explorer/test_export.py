"""Exports are real files: a GIF, a PNG, a standalone HTML page and a CSV that parses back."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from explorer import figures
from explorer.core import fields, flows
from explorer.figures import export, theme
from fmcore import datasets

F = flows.N_FRAMES


@pytest.fixture(scope="module")
def flow():
    rng = np.random.default_rng(0)
    times = flows.frame_times()
    z0, z1 = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) * 0.2 + [1.5, 0.0]
    particles = ((1 - times)[:, None, None] * z0 + times[:, None, None] * z1).astype(np.float32)
    return times, particles, z1.astype(np.float32)


def test_gif_is_an_animated_gif89a_with_one_frame_per_time(flow):
    times, particles, data = flow
    field = np.ones((F, fields.ARROW_GRID**2, 2), dtype=np.float32)
    blob = export.gif_bytes(particles[::5], times[::5], data, field[::5], "test", size=160)
    assert blob[:6] == b"GIF89a"
    image = Image.open(io.BytesIO(blob))
    assert image.n_frames == len(times[::5]) and image.size == (160, 160)
    assert image.info.get("loop") == 0


def test_png_shows_the_particles_in_the_time_colour(flow):
    _, particles, data = flow
    blob = export.png_bytes(export.render_frame(particles[-1], 1.0, data, title="t=1", size=240))
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")).astype(int)
    assert image.shape == (240, 240, 3)
    # at t=1 the particles sit around (1.5, 0): right of centre, in the data colour (amber: red > blue)
    right = image[100:140, 165:190].reshape(-1, 3)
    assert (right[:, 0] - right[:, 2]).max() > 100
    left = image[100:140, 40:70].reshape(-1, 3)
    assert (left[:, 0] - left[:, 2]).max() < 60


def test_html_is_standalone_and_contains_the_animation(flow):
    times, particles, _ = flow
    rng = np.random.default_rng(1)
    nodes = np.linspace(0, 1, 5, dtype=np.float32)
    flow_ = flows.Flow(
        times, particles, nodes, particles[::12][:5, :20], particles[-1], 4, "euler", 4, "uniform", 0.1
    )
    fig = figures.flow_figure([figures.Panel(flow=flow_, data=rng.normal(size=(50, 2)).astype(np.float32))])
    html = export.html_bytes(fig).decode("utf-8")
    assert html.lstrip().lower().startswith("<html") or html.lstrip().lower().startswith("<!doctype")
    assert "plotly" in html.lower() and "Plotly.newPlot" in html
    assert re.search(r"<script[^>]*\bsrc=", html) is None  # plotly.js is inline: plays offline
    assert len(html) > 1_000_000  # plotly.js itself is ~3.5 MB
    assert '"frames"' in html or "addFrames" in html


def test_csv_parses_back_with_the_apps_own_parser():
    points = np.random.default_rng(2).normal(size=(123, 2)) * 1e3
    text = export.csv_bytes(points).decode("utf-8")
    assert text.splitlines()[0] == "x,y"
    np.testing.assert_allclose(datasets.parse_csv(text), points, rtol=1e-5)


def test_scatter_image_is_square_and_marks_the_points():
    image = export.scatter_image(np.array([[0.0, 0.0]]), 64)
    pixels = np.asarray(image).astype(int)
    assert image.size == (64, 64)
    assert pixels[30:34, 30:34, 0].max() > 150  # the amber dot in the middle
    assert pixels[2:6, 2:6, 0].max() < 40  # dark background in the corner


CLUSTERS = np.array([[-1.5, 1.5], [1.5, 1.5], [0.5, -1.5]])
"""Three tight classes of data far from the particles (which sit at the origin)."""


def labelled_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(len(CLUSTERS)), 200)
    return (CLUSTERS[labels] + 0.03 * rng.normal(size=(len(labels), 2))).astype(np.float32), labels


def colour_at(image: Image.Image, point) -> np.ndarray:
    """The RGB pixel under a model point of a ``VIEW_BOX`` square image (y up)."""
    box, scale = flows.VIEW_BOX, image.size[0] / (2 * flows.VIEW_BOX)
    x, y = (point[0] + box) * scale, (box - point[1]) * scale
    return np.asarray(image.convert("RGB")).astype(int)[int(y), int(x)]


def nearest_class(pixel: np.ndarray) -> int:
    """Which of the palette's class colours (``theme.CLASS_COLORS``) a pixel is closest to."""
    palette = np.array([theme.hex_to_rgb(c) for c in theme.CLASS_COLORS])
    return int(np.argmin(np.linalg.norm(palette - pixel, axis=1)))


def test_png_and_gif_colour_labelled_data_by_class_and_unlabelled_data_amber():
    data, labels = labelled_data()
    particles = np.zeros((10, 2), np.float32)
    png = Image.open(
        io.BytesIO(export.png_bytes(export.render_frame(particles, 1.0, data, size=240, data_labels=labels)))
    )
    times = np.array([0.0, 1.0], np.float32)
    blob = export.gif_bytes(np.stack([particles, particles]), times, data, size=240, data_labels=labels)
    gif = Image.open(io.BytesIO(blob))
    frames = [png]
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(gif.convert("RGB"))
    for image in frames:
        for k, centre in enumerate(CLUSTERS):
            pixel = colour_at(image, centre)
            # 200 overlapping dots of opacity 0.4 saturate to the class colour itself
            assert nearest_class(pixel) == k
            assert np.abs(pixel - theme.hex_to_rgb(theme.class_color(k))).max() < 30, (k, pixel)
    # The class being sampled stays bright; the others fade towards the background, as on screen.
    picked = export.render_frame(particles, 1.0, data, size=240, data_labels=labels, picked=1, supersample=1)
    shown = export.render_frame(particles, 1.0, data, size=240, data_labels=labels, supersample=1)
    assert colour_at(picked, CLUSTERS[0]).sum() < colour_at(shown, CLUSTERS[0]).sum()
    np.testing.assert_allclose(
        colour_at(picked, CLUSTERS[1]), theme.hex_to_rgb(theme.class_color(1)), atol=30
    )
    # Unlabelled data: every cluster in the data's amber.
    plain = export.render_frame(particles, 1.0, data, size=240)
    for centre in CLUSTERS:
        assert nearest_class(colour_at(plain, centre)) == 0  # class 0's colour is the data's amber
        np.testing.assert_allclose(colour_at(plain, centre), theme.hex_to_rgb(theme.DATA), atol=30)


def test_the_playgrounds_gif_and_png_buttons_colour_moons_by_class():
    """``export_panel.downloads``: what the GIF and PNG buttons hand over, for labelled data (moons,
    2 classes) and for the same points unlabelled. Class 1 is teal; no other mark is (particles go
    from blue to amber, arrows are grey), so teal pixels are class 1's data."""
    from dataclasses import replace

    from explorer.core import data
    from explorer.core.state import ViewState
    from explorer.playground.export_panel import downloads

    dataset = data.preset_dataset("moons", seed=0)
    source = flows.exact_source(dataset, "linear")
    flow = flows.compute_flow(source, data.noise_particles(300, 0), "euler", 5, "uniform")
    field = np.zeros((F, fields.ARROW_GRID**2, 2), np.float32)

    def pictures(dataset) -> list[np.ndarray]:
        files = {f.label: f for f in downloads(flow, None, dataset, field, ViewState(), 0)}
        gif = Image.open(io.BytesIO(files["GIF"].data()))
        png = Image.open(io.BytesIO(files["PNG"].data()))
        return [np.asarray(gif.convert("RGB")).astype(int), np.asarray(png.convert("RGB")).astype(int)]

    def teal(image: np.ndarray) -> int:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return int(((g > r + 30) & (abs(g - b) < 25)).sum())

    def amber(image: np.ndarray) -> int:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return int(((r > b + 30) & (r > g)).sum())

    for image in pictures(dataset):  # frame 0 (t = 0): the particles are blue, amber is class 0's data
        assert teal(image) > 100 and amber(image) > 100
    unlabelled = replace(dataset, shown_labels=None, train_labels=None, reference_labels=None)
    for image in pictures(unlabelled):
        assert teal(image) < 5 and amber(image) > 100
