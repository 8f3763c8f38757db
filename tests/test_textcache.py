"""A text drawn from cached glyph bitmaps (kofukin.textcache) must be the pixels Agg draws itself — whatever
changes between two draws of a figure: the string, its place, size, angle, colour, alpha or font."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kofukin import figures, textcache
from kofukin.textcache import GlyphCachingCanvas

TEXTS = ["総合得点", "推進 目標Ⅰ", "全国平均", "甲市", "−12", "+3", "令和8年度", "A", "$x^2$"]

text_state = st.fixed_dictionaries(
    {
        "s": st.sampled_from(TEXTS),
        "x": st.sampled_from([0.1, 0.1003, 0.5, 0.77]),  # 0.1003: the same pixel, another sub-pixel offset
        "y": st.sampled_from([0.2, 0.5, 0.8]),
        "size": st.sampled_from([7, 8, 10.5]),
        "rotation": st.sampled_from([0, 90, 33]),
        # "anchor" turns the text about its own anchor: another angle at the very same drawing position
        "rotation_mode": st.sampled_from(["default", "anchor"]),
        "color": st.sampled_from(["black", "#c0392b", "0.4"]),
        "alpha": st.sampled_from([None, 0.5]),
        "weight": st.sampled_from(["normal", "bold"]),
    }
)


def _pixels(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _figure(states: list[dict]) -> tuple[Figure, list]:
    fig = Figure(figsize=(3, 2), dpi=96)
    texts = [fig.text(0, 0, "", fontfamily=figures.FONT) for _ in states]
    return fig, texts


def _apply(texts: list, states: list[dict]) -> None:
    for t, st_ in zip(texts, states, strict=True):
        t.set_text(st_["s"])
        t.set_position((st_["x"], st_["y"]))
        t.set_fontsize(st_["size"])
        t.set_rotation(st_["rotation"])
        t.set_rotation_mode(st_["rotation_mode"])
        t.set_color(st_["color"])
        t.set_alpha(st_["alpha"])
        t.set_fontweight(st_["weight"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(text_state, min_size=3, max_size=3), min_size=2, max_size=5))
def test_a_figure_redrawn_with_cached_glyphs_draws_what_agg_draws(frames):
    """One figure on a caching canvas, refilled frame after frame; each frame also drawn from scratch on a
    plain Agg canvas. Every frame is drawn twice on the caching canvas, so the second draw is all cache hits."""
    cached_fig, cached_texts = _figure(frames[0])
    cached = GlyphCachingCanvas(cached_fig)
    for states in frames:
        _apply(cached_texts, states)
        plain_fig, plain_texts = _figure(states)
        _apply(plain_texts, states)
        expected = _pixels(FigureCanvasAgg(plain_fig))
        assert np.array_equal(_pixels(cached), expected)
        assert np.array_equal(_pixels(cached), expected)
    assert cached.get_renderer().hits > 0


def test_a_cached_text_takes_the_colour_of_its_new_draw():
    fig = Figure(figsize=(2, 1), dpi=96)
    text = fig.text(0.1, 0.4, "全国平均", fontfamily=figures.FONT, color="black")
    canvas = GlyphCachingCanvas(fig)
    black = _pixels(canvas)
    text.set_color("#c0392b")
    red = _pixels(canvas)
    assert canvas.get_renderer().hits == 1, "the second draw reused the glyphs"
    assert not np.array_equal(black, red)
    assert np.array_equal(red, _pixels(FigureCanvasAgg(fig)))


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.set_rotation(33),  # rotation_mode="anchor": drawn at the same position, turned
        lambda t: t.set_antialiased(False),
        lambda t: t.set_fontsize(11),
        lambda t: t.set_text("全国平 A"),
        lambda t: t.set_fontfamily(["DejaVu Sans", figures.FONT]),  # "A" in DejaVu, 全国 by fallback
    ],
    ids=["angle", "antialiasing", "size", "string", "font"],
)
def test_a_text_changed_in_one_respect_is_drawn_again(change):
    fig = Figure(figsize=(2, 1), dpi=96)
    text = fig.text(0.1, 0.4, "全国 A", fontfamily=figures.FONT, rotation_mode="anchor")
    canvas = GlyphCachingCanvas(fig)
    before = _pixels(canvas)
    change(text)
    after = _pixels(canvas)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, _pixels(FigureCanvasAgg(fig)))
    assert canvas.get_renderer().misses == 2


def test_mathtext_is_drawn_by_agg_and_not_kept():
    fig = Figure(figsize=(2, 1), dpi=96)
    fig.text(0.1, 0.4, r"$\sqrt{x}$ 点")
    canvas = GlyphCachingCanvas(fig)
    first = _pixels(canvas)
    assert np.array_equal(_pixels(canvas), first)
    renderer = canvas.get_renderer()
    assert renderer.hits == renderer.misses == 0 and not renderer._texts


def test_the_cache_keeps_the_recent_texts_only(monkeypatch):
    monkeypatch.setattr(textcache, "MAX_TEXTS", 5)
    fig = Figure(figsize=(2, 1), dpi=96)
    fixed = fig.text(0.1, 0.7, "固定", fontfamily=figures.FONT)
    changing = fig.text(0.1, 0.2, "", fontfamily=figures.FONT)
    canvas = GlyphCachingCanvas(fig)
    for i in range(20):
        changing.set_text(f"市{i}")
        _pixels(canvas)
    renderer = canvas.get_renderer()
    assert len(renderer._texts) == 5
    assert renderer.hits == 19, "the fixed text, used in every draw, is never evicted"
    assert fixed.get_text() in {key[0] for key in renderer._texts}


@pytest.mark.parametrize("dpi", [72, 96])
def test_a_new_size_or_dpi_gets_a_new_renderer(dpi):
    fig = Figure(figsize=(2, 1), dpi=dpi)
    fig.text(0.1, 0.4, "全国", fontfamily=figures.FONT)
    canvas = GlyphCachingCanvas(fig)
    _pixels(canvas)
    first = canvas.get_renderer()
    fig.set_size_inches(3, 1)
    assert canvas.get_renderer() is not first
    assert np.array_equal(_pixels(canvas), _pixels(FigureCanvasAgg(fig)))
