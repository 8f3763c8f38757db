"""PNG files written with zlib alone (kofukin.pngwrite) must decode to exactly their pixels, carry the dpi and
text savefig records, and stay no larger than Pillow's for the report figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from kofukin import figures, pngwrite

pixel_arrays = st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([3, 4])).flatmap(
    lambda shape: arrays(np.uint8, shape)
)


@settings(max_examples=80, deadline=None)
@given(pixels=pixel_arrays, level=st.sampled_from([0, 1, 9]))
def test_the_file_decodes_to_its_pixels(pixels, level):
    image = Image.open(io.BytesIO(pngwrite.encode(pixels, level=level)))
    assert image.mode == ("RGBA" if pixels.shape[2] == 4 else "RGB")
    assert np.array_equal(np.asarray(image), pixels)


def test_dpi_and_text_are_recorded_as_pillow_reads_them():
    data = pngwrite.encode(np.zeros((2, 3, 4), np.uint8), dpi=96, text={"Software": "Matplotlib version3"})
    image = Image.open(io.BytesIO(data))
    assert image.info["dpi"] == pytest.approx((96, 96), abs=0.02)  # whole pixels per metre, as Pillow writes
    assert image.info["Software"] == "Matplotlib version3"
    assert data.startswith(pngwrite.SIGNATURE) and data.endswith(b"IEND\xaeB`\x82")


@pytest.mark.parametrize(
    "pixels", [np.zeros((2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 4), np.float32)]
)
def test_other_arrays_are_refused(pixels):
    with pytest.raises(ValueError, match="uint8"):
        pngwrite.encode(pixels)


def test_a_report_figure_is_savefigs_image_in_a_smaller_file():
    """The same pixels, dpi and Software text as ``savefig(format="png")`` writes through Pillow at the same
    zlib level; the file is smaller (unfiltered rows suit flat colours)."""
    from test_figures import CASES, fresh_png

    figures.setup()
    for kind, (plot, args) in CASES.items():
        ours = figures.png(plot.figure(*args(7)))
        pillow = fresh_png(plot.figure(*args(7)))
        a, b = Image.open(io.BytesIO(ours)), Image.open(io.BytesIO(pillow))
        assert np.array_equal(np.asarray(a), np.asarray(b)), kind
        assert a.info["dpi"] == pytest.approx(b.info["dpi"], abs=0.01)
        assert a.info["Software"] == b.info["Software"]
        assert len(ours) < len(pillow), (kind, len(ours), len(pillow))
