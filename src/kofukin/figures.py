"""Figures of the reports: each function takes tidy tables and returns a new matplotlib Figure.

No pyplot state is used, so a warm kernel can draw thousands of figures without leaking memory, and the
Japanese font is set explicitly (``sns.set_theme`` resets the font family, which would turn labels into
empty boxes: a missing glyph is a ``UserWarning`` that the tests turn into an error).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import pickle
from importlib.metadata import version
from operator import attrgetter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib_fontja  # noqa: F401  (registers IPAexGothic)
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kofukin import pngwrite
from kofukin.paths import write_bytes_atomic
from kofukin.textcache import GlyphCachingCanvas

FONT = "IPAexGothic"
DPI = 96
PNG_COMPRESS_LEVEL = 1  # zlib level 1: see kofukin.pngwrite
OWN, PREF, NATION = "#c0392b", "#2e86c1", "#7f8c8d"
GAIN, LOSS = "#27ae60", "#c0392b"


# Margins of the per-municipality figures. Their tick labels are the same fixed Japanese labels on every page,
# so tight_layout found the same margins for every municipality sampled (R7 and R8, 28 of them); it costs a
# third of each figure, 1,741 times, so its result is written down here instead (a little looser where
# annotations sit near the edge: the trend's rank labels, the net change printed right of the gains bars).
MARGINS = {
    "goal_rates": {"left": 0.1722, "right": 0.9508, "bottom": 0.1808, "top": 0.9526},
    "trend": {"left": 0.1436, "right": 0.9415, "bottom": 0.1549, "top": 0.91},
    "gains": {"left": 0.1837, "right": 0.93, "bottom": 0.202, "top": 0.9471},
    "outcome": {"left": 0.0402, "right": 0.9438, "bottom": 0.3435, "top": 0.91},
}


THEME = {"style": "whitegrid", "font": FONT, "rc": {"axes.unicode_minus": False}}


def setup() -> None:
    """Seaborn's theme with the Japanese font; call at the top of every report (kernels are reused).

    The theme is a set of rcParams (and seaborn's default colormap) that depends only on the versions of
    seaborn and matplotlib, yet importing seaborn (which imports scipy.stats) cost a second of every cold
    ``kofukin report`` — a fifth of it. So what :func:`seaborn_theme` yields is kept in matplotlib's own cache
    directory, keyed on those versions and :data:`THEME`, and seaborn is imported only to compute it again.
    ``tests/test_figures.py`` checks that the cached theme draws the same pixels as ``sns.set_theme`` itself.
    """
    theme = _cached_theme()
    for name, cmap in theme["colormaps"].items():
        if name not in matplotlib.colormaps:
            matplotlib.colormaps.register(cmap, name=name)
    matplotlib.rcParams.update(theme["rc"])


def seaborn_theme() -> dict:
    """What ``sns.set_theme(**THEME)`` changes from matplotlib's defaults (the global rcParams are kept):
    ``rc``, the changed rcParams, and ``colormaps``, seaborn's colormap that ``image.cmap`` names (registered
    by importing seaborn, so it must travel with the theme)."""
    import seaborn as sns

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        before = dict(matplotlib.rcParams)
        sns.set_theme(**THEME)
        rc = {k: v for k, v in matplotlib.rcParams.items() if before[k] != v}
    cmap = rc.get("image.cmap")
    return {"rc": rc, "colormaps": {cmap: matplotlib.colormaps[cmap]} if cmap else {}}


def theme_cache_path() -> Path:
    versions = [version(p) for p in ("matplotlib", "seaborn", "matplotlib-fontja")]
    key = hashlib.sha256(repr((versions, THEME)).encode()).hexdigest()[:16]
    return Path(matplotlib.get_cachedir()) / f"kofukin-theme-{key}.pickle"


@functools.cache
def _cached_theme() -> dict:
    path = theme_cache_path()
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # absent, torn or from an incompatible pickle: compute it again
        pass
    theme = seaborn_theme()
    with contextlib.suppress(OSError):  # a cache: a read-only or full disk only costs the import next time
        write_bytes_atomic(path, pickle.dumps(theme))
    return theme


def png(fig: Figure) -> bytes:
    """PNG bytes of a figure (the notebook displays them with IPython.display.Image)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        # A figure made without pyplot has a bare canvas, and savefig would make a new Agg canvas — a new renderer
        # — for every call: every text would be measured afresh (matplotlib caches text extents per renderer).
        # Kept on the figure, a reused frame measures its fixed labels once per kernel (~40 ms of every report),
        # and draws them from the glyphs it rendered the report before (kofukin.textcache).
        GlyphCachingCanvas(fig)
    # savefig draws as for a PNG (dpi, colours, layout fixed beforehand: a "tight" bbox would draw twice) and
    # writes the raw pixels, which are thrown away: the canvas still holds them, for kofukin.pngwrite.
    fig.savefig(_Discard(), format="rgba", dpi=DPI)
    return _encode(fig.canvas.buffer_rgba())


class _Discard(io.RawIOBase):
    """A file that keeps nothing (savefig wants one)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _encode(rgba: Any) -> bytes:
    """The PNG file of an Agg buffer, with the dpi and the Software text savefig records."""
    return pngwrite.encode(np.asarray(rgba), level=PNG_COMPRESS_LEVEL, dpi=DPI, text=_PNG_TEXT)


_PNG_TEXT = {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"}


class ReusableFigure:
    """A per-municipality figure whose frame is built once per kernel and refilled for every report.

    Building a figure (axes, ticks, fixed Japanese labels, legend) and drawing it the first time cost about
    two thirds of each figure, 1,741 times over, while only bar lengths, points and a few texts differ
    between municipalities. A subclass says how to build the frame for a *shape* (``shape``: whatever
    fixes ticks and artists, e.g. the row labels) and how to ``fill`` it; :meth:`figure` builds a fresh
    frame and fills it, :meth:`png` refills a cached frame. Both run the same code, and
    ``tests/test_figures.py`` checks that a refilled frame draws the same pixels as a fresh one.
    """

    CACHE_SIZE = 8

    def __init__(self) -> None:
        self._frames: dict[tuple, tuple[Figure, dict]] = {}
        self._backgrounds: dict[tuple, tuple[Any, list[Artist]]] = {}

    def shape(self, *args) -> tuple:
        return ()

    def changing(self, parts: dict) -> list[Artist] | None:
        """The artists ``fill`` changes, when nothing else does (fixed axis limits and ticks); None when the
        whole figure changes. See :meth:`_drawn_over_background`."""
        return None

    def build(self, shape: tuple) -> tuple[Figure, dict]:
        raise NotImplementedError

    def fill(self, parts: dict, *args) -> None:
        raise NotImplementedError

    def figure(self, *args) -> Figure:
        """A new figure (for callers that keep or change it)."""
        fig, parts = self.build(self.shape(*args))
        self.fill(parts, *args)
        return fig

    def png(self, *args) -> bytes:
        """PNG bytes, drawn on this kernel's frame of the same shape and style."""
        key = (_style_key(), self.shape(*args))
        if key not in self._frames:
            if len(self._frames) >= self.CACHE_SIZE:
                self._frames.clear()
                self._backgrounds.clear()
            self._frames[key] = self.build(key[1])
        fig, parts = self._frames[key]
        self.fill(parts, *args)
        changing = self.changing(parts)
        if changing is None:
            return png(fig)
        return self._drawn_over_background(key, fig, changing)

    def _drawn_over_background(self, key: tuple, fig: Figure, changing: list[Artist]) -> bytes:
        """PNG bytes of a figure drawn as a cached background plus what is drawn from its first changing
        artist on.

        Of a figure whose axes and labels never change (goal rates, the outcome interval) only the bars,
        markers and legend differ between reports, yet a full draw renders every tick label and axis title
        again. The axes' artists are drawn in z-order; everything before the first artist that ``fill`` changes
        is drawn once, kept as pixels, and every report draws the rest over a copy, in the same order — the same
        pixels as a full draw (``tests/test_figures.py`` compares them with a fresh figure's).
        """
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else GlyphCachingCanvas(fig)
        if key not in self._backgrounds:
            fig.set_dpi(DPI)
            (ax,) = fig.axes
            drawn = sorted((a for a in ax.get_children() if a is not ax.patch), key=attrgetter("zorder"))
            first = min(i for i, a in enumerate(drawn) if any(a is c for c in changing))
            redrawn = drawn[first:]
            for artist in redrawn:
                artist.set_animated(True)  # left out of the background
            canvas.draw()
            self._backgrounds[key] = (canvas.copy_from_bbox(fig.bbox), redrawn)
        background, redrawn = self._backgrounds[key]
        canvas.restore_region(background)
        renderer = canvas.get_renderer()
        for artist in redrawn:
            artist.draw(renderer)
        return _encode(canvas.buffer_rgba())


def _style_key() -> int:
    """The style a frame was built under: a frame is reused only under the same rcParams."""
    return hash(tuple((k, repr(v)) for k, v in matplotlib.rcParams.items()))


class _GoalRates(ReusableFigure):
    """Score rate by grant × goal: the municipality against its prefecture and the nation.

    Arguments: :attr:`kofukin.profile.MunicipalityProfile.scores` (26 rows with score, means, max), the
    municipality's and the prefecture's names."""

    KEYS = tuple(f"{g}_{goal}" for g in ("suishin", "shien") for goal in ("I", "II", "III", "IV"))

    def shape(self, scores: pd.DataFrame, name: str, pref_name: str) -> tuple:
        labels = scores.set_index("key").loc[list(self.KEYS), "label_ja"]
        return tuple(labels.str.replace(" 小計", "").str.replace(" 成果", ""))

    def build(self, shape: tuple) -> tuple[Figure, dict]:
        y = np.arange(len(shape))
        fig = Figure(figsize=(6.4, 3.8))
        ax = fig.subplots()
        h = 0.26
        zeros = np.zeros(len(shape))
        bars = [
            ax.barh(y + dy, zeros, h, color=color, label=" ")
            for dy, color in ((-h, OWN), (0, PREF), (h, NATION))
        ]
        ax.set_yticks(y, list(shape))
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("得点率（%）")
        legend = ax.legend(loc="lower right", fontsize=8, frameon=True)
        fig.subplots_adjust(**MARGINS["goal_rates"])
        return fig, {"bars": bars, "legend": legend.get_texts(), "legend_box": legend}

    def changing(self, parts: dict) -> list[Artist]:
        return [*(bar for bars in parts["bars"] for bar in bars), parts["legend_box"]]

    def fill(self, parts: dict, scores: pd.DataFrame, name: str, pref_name: str) -> None:
        s = scores.set_index("key").loc[list(self.KEYS)]
        for bars, column in zip(parts["bars"], ("score", "pref_mean", "national_mean"), strict=True):
            for bar, rate in zip(bars, 100 * s[column] / s["max_points"], strict=True):
                bar.set_width(rate)
        for text, label in zip(parts["legend"], (name, f"{pref_name}平均", "全国平均"), strict=True):
            text.set_text(label)


class _Trend(ReusableFigure):
    """Grand total by year with the national mean, and the national rank printed at each point.

    Arguments: the profile's trend table and the municipality's name."""

    @staticmethod
    def _rows(trend_table: pd.DataFrame) -> pd.DataFrame:
        return trend_table[trend_table["key"] == "grand_total"].sort_values("fiscal_year")

    def shape(self, trend_table: pd.DataFrame, name: str) -> tuple:
        return tuple(self._rows(trend_table)["fiscal_year"])

    def build(self, shape: tuple) -> tuple[Figure, dict]:
        fig = Figure(figsize=(5.6, 3.0))
        ax = fig.subplots()
        x = np.arange(len(shape))
        zeros = np.zeros(len(shape))
        own = ax.plot(x, zeros, marker="o", color=OWN, label=" ")[0]
        nat = ax.plot(x, zeros, marker="s", color=NATION, linestyle="--", label="全国平均")[0]
        notes = [
            ax.annotate("", (xi, 0), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
            for xi in x
        ]
        ax.set_xticks(x, [f"令和{y[1:]}年度" for y in shape])
        ax.set_ylabel("総合得点（800点満点）")
        legend = ax.legend(fontsize=8, loc="lower right")
        fig.subplots_adjust(**MARGINS["trend"])
        return fig, {"ax": ax, "own": own, "nat": nat, "notes": notes, "legend": legend.get_texts()[0]}

    def fill(self, parts: dict, trend_table: pd.DataFrame, name: str) -> None:
        t = self._rows(trend_table)
        parts["own"].set_ydata(t["score"].to_numpy())
        parts["nat"].set_ydata(t["national_mean"].to_numpy())
        for xi, (note, score, rank) in enumerate(
            zip(parts["notes"], t["score"], t["rank_national"], strict=True)
        ):
            note.set_text(f"全国{int(rank):,}位")
            note.xy = (xi, score)
        lo = min(t["score"].min(), t["national_mean"].min())
        hi = max(t["score"].max(), t["national_mean"].max())
        parts["ax"].set_ylim(max(0, lo - 60), min(800, hi + 60))
        parts["legend"].set_text(name)


class _GainsLosses(ReusableFigure):
    """Diverging bars per grant × goal: points gained (right) and lost (left), with the net change.

    Argument: :attr:`kofukin.gains.GainsLosses.by_goal`."""

    def shape(self, by_goal: pd.DataFrame) -> tuple:
        return tuple(by_goal["label_ja"])

    def build(self, shape: tuple) -> tuple[Figure, dict]:
        y = np.arange(len(shape))
        zeros = np.zeros(len(shape))
        fig = Figure(figsize=(6.0, 3.4))
        ax = fig.subplots()
        gained = ax.barh(y, zeros, color=GAIN, label="獲得")
        lost = ax.barh(y, zeros, color=LOSS, label="喪失")
        notes = [ax.annotate("", (0, yi), va="center", fontsize=8) for yi in y]
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, list(shape))
        ax.invert_yaxis()
        ax.set_xlabel("点数の増減（右端は目標の純増減）")
        ax.legend(fontsize=8, loc="lower left")
        fig.subplots_adjust(**MARGINS["gains"])
        return fig, {"ax": ax, "gained": gained, "lost": lost, "notes": notes}

    def fill(self, parts: dict, by_goal: pd.DataFrame) -> None:
        b = by_goal.reset_index(drop=True)
        gained = b["gained_points"] + b["kept_change"].clip(lower=0) + b["not_comparable_net"].clip(lower=0)
        lost = b["lost_points"] + b["kept_change"].clip(upper=0) + b["not_comparable_net"].clip(upper=0)
        for bars, widths in ((parts["gained"], gained), (parts["lost"], lost)):
            for bar, w in zip(bars, widths, strict=True):
                bar.set_width(w)
        right = max(gained.max(), 1) * 1.05
        for yi, (note, net) in enumerate(zip(parts["notes"], b["actual_change"], strict=True)):
            note.set_text(f"{int(net):+d}")
            note.xy = note.xyann = (right, yi)  # the text sits at xy itself (no offset)
        ax = parts["ax"]
        ax.relim()
        ax.autoscale_view()


class _ShrinkageInterval(ReusableFigure):
    """The observed goal Ⅳ score and its empirical-Bayes estimate with the 95 % interval.

    Arguments: a row of the shrinkage table (observed, estimate, ci_low, ci_high) and the national mean."""

    def build(self, shape: tuple) -> tuple[Figure, dict]:
        fig = Figure(figsize=(5.6, 2.0))
        ax = fig.subplots()
        est = ax.errorbar(
            [50.0], [0], xerr=[[1.0], [1.0]], fmt="o", color=PREF, capsize=4, label="推定値（95%区間）"
        )
        observed = ax.plot([50.0], [0], marker="D", color=OWN, linestyle="none", label="実際の得点")[0]
        national = ax.axvline(50.0, color=NATION, linestyle="--", linewidth=1, label="全国平均")
        ax.set_xlim(0, 100)
        ax.set_ylim(-1, 1.4)
        ax.set_yticks([])
        ax.set_xlabel("目標Ⅳ（アウトカム）得点（100点満点）")
        ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
        fig.subplots_adjust(**MARGINS["outcome"])
        point, caps, (bar,) = est.lines
        return fig, {"point": point, "caps": caps, "bar": bar, "observed": observed, "national": national}

    def changing(self, parts: dict) -> list[Artist]:
        return [parts["point"], *parts["caps"], parts["bar"], parts["observed"], parts["national"]]

    def fill(self, parts: dict, row: pd.Series, national_mean: float) -> None:
        lo, mid, hi = float(row["ci_low"]), float(row["estimate"]), float(row["ci_high"])
        parts["point"].set_data([mid], [0])
        low_cap, high_cap = parts["caps"]
        low_cap.set_data([lo], [0])
        high_cap.set_data([hi], [0])
        parts["bar"].set_segments([[[lo, 0], [hi, 0]]])
        parts["observed"].set_data([float(row["observed"])], [0])
        parts["national"].set_xdata([national_mean, national_mean])


GOAL_RATES = _GoalRates()
TREND = _Trend()
GAINS_LOSSES = _GainsLosses()
SHRINKAGE_INTERVAL = _ShrinkageInterval()


def goal_rates(scores: pd.DataFrame, name: str, pref_name: str) -> Figure:
    """A new goal-rates figure (see :class:`_GoalRates`)."""
    return GOAL_RATES.figure(scores, name, pref_name)


def trend(trend_table: pd.DataFrame, name: str) -> Figure:
    """A new trend figure (see :class:`_Trend`)."""
    return TREND.figure(trend_table, name)


def gains_losses(by_goal: pd.DataFrame) -> Figure:
    """A new gains-and-losses figure (see :class:`_GainsLosses`)."""
    return GAINS_LOSSES.figure(by_goal)


def distribution(values: pd.Series, national: pd.Series, label: str, max_points: int = 800) -> Figure:
    """Histogram of a group's totals over the national distribution (densities, same bins)."""
    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.subplots()
    bins = np.linspace(0, max_points, 33)
    ax.hist(national, bins=bins, density=True, color=NATION, alpha=0.45, label=f"全国（{len(national):,}）")
    ax.hist(values, bins=bins, density=True, color=PREF, alpha=0.75, label=f"{label}（{len(values):,}）")
    ax.axvline(national.mean(), color=NATION, linestyle="--", linewidth=1)
    ax.axvline(values.mean(), color=PREF, linestyle="--", linewidth=1)
    ax.set_xlabel("総合得点")
    ax.set_ylabel("密度")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def by_group(panel_year: pd.DataFrame, column: str, order: list, labels: list[str], title: str) -> Figure:
    """Box plots of the grand total by a grouping column (規模区分, 過疎)."""
    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.subplots()
    data = [panel_year.loc[panel_year[column] == g, "grand_total"].to_numpy() for g in order]
    ax.boxplot(data, tick_labels=[f"{lab}\n({len(d):,})" for lab, d in zip(labels, data, strict=True)])
    ax.set_ylabel("総合得点")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def shrinkage_interval(row: pd.Series, national_mean: float) -> Figure:
    """A new shrinkage-interval figure (see :class:`_ShrinkageInterval`)."""
    return SHRINKAGE_INTERVAL.figure(row, national_mean)
