"""The preset gallery's thumbnails: a palette PNG each, the same picture at a fraction of the bytes."""

import base64
import io

import numpy as np
from PIL import Image

from explorer.figures import export
from explorer.playground import data_panel
from fmcore import datasets


def _full_colour_png(name: str) -> bytes:
    return export.png_bytes(export.scatter_image(datasets.sample(name, 700, 0).numpy(), 96, box=3.2))


def test_each_thumbnail_is_its_preset_in_a_small_palette_at_under_a_third_of_the_bytes():
    uris = data_panel._preset_thumbnails(0)
    assert len(uris) == len(datasets.NAMES)
    sent = full = 0
    for name, uri in zip(datasets.NAMES, uris, strict=True):
        png = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
        image = Image.open(io.BytesIO(png))
        assert image.mode == "P" and image.size == (96, 96)
        assert len(image.getcolors()) <= data_panel.THUMBNAIL_COLORS
        reference = Image.open(io.BytesIO(_full_colour_png(name)))
        error = np.abs(np.asarray(image.convert("RGB"), float) - np.asarray(reference, float))
        assert error.mean() < 1.0, name  # under one level of 255 on average: the same picture
        sent, full = sent + len(png), full + len(_full_colour_png(name))
    assert sent < full / 3
    css = data_panel._gallery_css(0, None)
    assert css.count("data:image/png;base64,") == len(datasets.NAMES) and len(css) < 30_000
