"""An Agg canvas that draws a text again from the glyph bitmaps it rendered the last time.

A report kernel draws the same figures for ~900 municipalities, on frames it keeps
(:class:`kofukin.figures.ReusableFigure`): the goal labels, the axis titles, the fixed legend entries come back
at the same place in every report. Agg renders every text glyph by glyph with FreeType each time — laying the
string out, rasterising each glyph at its sub-pixel position — which is about a tenth of a report kernel's time;
more than half of those texts were drawn identically in the report before.

:class:`GlyphCachingRenderer` keeps, per renderer (that is, per canvas size and dpi), the glyph bitmaps and
their pixel positions of the texts it drew, keyed on everything that decides them: the string, the font
objects and size, the angle, the exact position, hinting and antialiasing, font features and language. A text
drawn again with the same key is copied from those bitmaps with the same ``draw_text_image`` calls Agg made the
first time; its colour, alpha and clipping still come from the current graphics context. The pixels are
therefore the ones Agg draws itself (``tests/test_textcache.py`` compares them on generated figures).
Mathtext and anything drawn with boxes are never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag

# Texts kept per renderer. A frame's fixed texts (~30 per figure) are drawn in every report and stay at the
# recent end; names and numbers seen once age out, so a kernel's memory stays flat over a thousand reports.
MAX_TEXTS = 512


class _Recorder:
    """Stands in for the C++ renderer while one text is drawn: forwards every call, keeps the glyph draws."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.glyphs: list[tuple[np.ndarray, int, int, float]] = []
        self.cacheable = True

    def draw_text_image(self, image, x, y, angle, gc) -> None:
        self.glyphs.append((np.array(image, copy=True), x, y, angle))
        self.target.draw_text_image(image, x, y, angle, gc)

    def __getattr__(self, name: str) -> Any:
        self.cacheable = False  # a box (underline, mathtext rule) or anything else: draw it, keep nothing
        return getattr(self.target, name)


class GlyphCachingRenderer(RendererAgg):
    """``RendererAgg`` that replays the glyph bitmaps of a text drawn before with the same key."""

    def __init__(self, width, height, dpi) -> None:
        super().__init__(width, height, dpi)
        self._texts: OrderedDict[tuple, tuple] = OrderedDict()
        self.hits = self.misses = 0

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None) -> None:
        if ismath:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        key = (
            s,
            self._prepare_font(prop),  # the FT2Font with its fallbacks, as findfont resolves prop now
            prop.get_size_in_points(),
            angle,
            x,
            y,
            bool(gc.get_antialiased()),
            get_hinting_flag(),
            _hashable(mtext.get_fontfeatures()) if mtext is not None else None,
            mtext.get_language() if mtext is not None else None,
        )
        glyphs = self._texts.get(key)
        if glyphs is not None:
            self._texts.move_to_end(key)
            self.hits += 1
            for image, gx, gy, gangle in glyphs:
                self._renderer.draw_text_image(image, gx, gy, gangle, gc)
            return None
        self.misses += 1
        recorder = _Recorder(self._renderer)
        self._renderer = recorder
        try:
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        finally:
            self._renderer = recorder.target
        if recorder.cacheable:
            self._texts[key] = tuple(recorder.glyphs)
            if len(self._texts) > MAX_TEXTS:
                self._texts.popitem(last=False)
        return None


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class GlyphCachingCanvas(FigureCanvasAgg):
    """``FigureCanvasAgg`` whose renderer is a :class:`GlyphCachingRenderer` (a new one, as Agg makes, whenever
    the size or dpi changes)."""

    def get_renderer(self) -> GlyphCachingRenderer:
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key or not isinstance(getattr(self, "renderer", None), GlyphCachingRenderer):
            self.renderer = GlyphCachingRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer
