"""The per-municipality figures reuse one frame per kernel (kofukin.figures.ReusableFigure): a frame refilled
after other municipalities must draw exactly the pixels of a fresh figure, or a report would show traces of
the previous one (a stale bar, an old legend name, the last report's axis range)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from kofukin import figures

GOALS = [f"{g}_{goal}" for g in ("suishin", "shien") for goal in ("I", "II", "III", "IV")]
GOAL_LABELS = [f"{'推進' if k.startswith('suishin') else '支援'} 目標{k.split('_')[1]} 小計" for k in GOALS]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def fresh_png(fig) -> bytes:
    """The figure drawn by matplotlib's own Agg canvas, as ``figures.png`` saves it: the reference every reused
    frame, cached background and cached glyph (kofukin.textcache) must match."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=figures.DPI, pil_kwargs={"compress_level": figures.PNG_COMPRESS_LEVEL})
    return buf.getvalue()


def scores(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mx = np.array([100, 100, 100, 100, 100, 100, 100, 100])
    return pd.DataFrame(
        {
            "key": [*GOALS, "grand_total"],
            "label_ja": [*GOAL_LABELS, "総合"],
            "max_points": [*mx, 800],
            "score": [*rng.integers(0, 101, 8), 400],
            "pref_mean": [*rng.uniform(0, 100, 8), 400.0],
            "national_mean": [*rng.uniform(0, 100, 8), 400.0],
        }
    )


def trend(seed: int, years=("R6", "R7", "R8")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(years)
    return pd.DataFrame(
        {
            "key": "grand_total",
            "fiscal_year": list(years),
            "score": rng.integers(0, 801, n),
            "national_mean": rng.uniform(200, 600, n),
            "rank_national": rng.integers(1, 1742, n),
        }
    )


def by_goal(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label_ja": GOAL_LABELS,
            "gained_points": rng.integers(0, 1 + 40 * (seed % 3), 8),
            "lost_points": -rng.integers(0, 30, 8),
            "kept_change": rng.integers(-5, 6, 8),
            "not_comparable_net": rng.integers(-3, 4, 8),
            "actual_change": rng.integers(-40, 41, 8),
        }
    )


def interval(seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    est = rng.uniform(10, 90)
    return pd.Series(
        {"observed": rng.uniform(0, 100), "estimate": est, "ci_low": est - 8, "ci_high": est + 11}
    )


CASES = {
    "goal_rates": (figures.GOAL_RATES, lambda s: (scores(s), f"市{s}" * (1 + s % 4), f"県{s}")),
    "trend": (figures.TREND, lambda s: (trend(s), f"町{s}" * (1 + s % 3))),
    "gains": (figures.GAINS_LOSSES, lambda s: (by_goal(s),)),
    "outcome": (figures.SHRINKAGE_INTERVAL, lambda s: (interval(s), 40.0 + s)),
}


@pytest.mark.parametrize("kind", CASES)
def test_a_refilled_frame_draws_what_a_fresh_figure_draws(kind):
    plot, args = CASES[kind]
    figures.setup()
    for seed in (1, 2, 3, 4):
        reused = pixels(plot.png(*args(seed)))
        fresh = pixels(fresh_png(plot.figure(*args(seed))))
        assert reused.shape == fresh.shape
        assert np.array_equal(reused, fresh), f"{kind}: seed {seed} differs from a fresh figure"
    # and the figures really differ between municipalities (the comparison is not vacuous)
    assert not np.array_equal(pixels(plot.png(*args(1))), pixels(plot.png(*args(2))))
    if kind in ("goal_rates", "outcome"):  # fixed axes: drawn over a cached background, tested above
        assert plot._backgrounds, f"{kind} draws only its changing artists"


@pytest.mark.parametrize("kind", CASES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(5, 10_000))
def test_a_reused_frame_draws_any_municipality_as_a_fresh_figure(kind, seed):
    """Bars, markers and the legend (whose size follows the names) drawn over the cached frame or background,
    fixed labels from the glyphs of earlier reports: the pixels of a figure drawn from scratch by Agg, whatever
    the numbers and the names."""
    plot, args = CASES[kind]
    figures.setup()
    assert np.array_equal(pixels(plot.png(*args(seed))), pixels(fresh_png(plot.figure(*args(seed)))))


def test_a_trend_with_fewer_years_gets_its_own_frame():
    figures.setup()
    three = pixels(figures.TREND.png(trend(5), "甲町"))
    two = pixels(figures.TREND.png(trend(5, ("R7", "R8")), "甲町"))
    fresh_two = pixels(fresh_png(figures.trend(trend(5, ("R7", "R8")), "甲町")))
    assert np.array_equal(two, fresh_two)
    assert not np.array_equal(three, two)


def test_a_frame_is_not_reused_under_another_style():
    import matplotlib

    figures.setup()
    before = figures.GOAL_RATES.png(scores(1), "甲市", "乙県")
    with matplotlib.rc_context({"axes.facecolor": "#ffeeee"}):
        pink = pixels(figures.GOAL_RATES.png(scores(1), "甲市", "乙県"))
        fresh = pixels(fresh_png(figures.goal_rates(scores(1), "甲市", "乙県")))
    assert np.array_equal(pink, fresh)
    assert not np.array_equal(pink, pixels(before))


def test_the_figures_show_this_municipalitys_numbers_and_names():
    """Fresh and refilled figures share the fill code, so the pixel test cannot see a fill that forgets
    something: this one reads the artists back."""
    s = scores(7)
    ax = figures.goal_rates(s, "甲市", "乙県").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["甲市", "乙県平均", "全国平均"]
    own = [round(p.get_width(), 6) for p in ax.containers[0]]
    assert own == [round(100 * v / 100, 6) for v in s["score"][:8]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [lab.replace(" 小計", "") for lab in GOAL_LABELS]

    t = trend(8)
    ax = figures.trend(t, "丙町").axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "丙町"
    assert [a.get_text() for a in ax.texts] == [f"全国{r:,}位" for r in t["rank_national"]]
    assert list(ax.lines[0].get_ydata()) == list(t["score"])
    assert ax.get_ylim() == (
        max(0, min(t["score"].min(), t["national_mean"].min()) - 60),
        min(800, max(t["score"].max(), t["national_mean"].max()) + 60),
    )

    b = by_goal(2)
    ax = figures.gains_losses(b).axes[0]
    assert [a.get_text() for a in ax.texts] == [f"{int(v):+d}" for v in b["actual_change"]]
    gained = b["gained_points"] + b["kept_change"].clip(lower=0) + b["not_comparable_net"].clip(lower=0)
    assert [p.get_width() for p in ax.containers[0]] == list(gained)
    assert ax.get_xlim()[1] >= gained.max()
    right = max(gained.max(), 1) * 1.05  # the net change is printed right of the longest bar
    assert [a.get_position() for a in ax.texts] == [(right, y) for y in range(8)]

    r = interval(3)
    ax = figures.shrinkage_interval(r, 55.0).axes[0]
    point = ax.containers[0].lines[0]
    assert point.get_xdata()[0] == pytest.approx(r["estimate"])
    (segment,) = ax.containers[0].lines[2][0].get_segments()
    assert segment[:, 0].tolist() == pytest.approx([r["ci_low"], r["ci_high"]])


# --- The cached seaborn theme (figures.setup) -----------------------------------------------------------------


def test_the_cached_theme_draws_what_seaborn_draws():
    """setup() applies seaborn's theme from a cache, without importing seaborn: every figure must come out
    pixel for pixel as under ``sns.set_theme`` itself (a setting the cache missed would show here)."""
    import matplotlib
    import seaborn as sns

    def draw_all() -> list[np.ndarray]:
        out = [pixels(figures.png(plot.figure(*args(3)))) for plot, args in CASES.values()]
        values = pd.Series(np.arange(40) * 20.0)
        out.append(pixels(figures.png(figures.distribution(values, values * 0.9, "甲県"))))
        return out

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        sns.set_theme(**figures.THEME)
        by_seaborn = draw_all()
        matplotlib.rcdefaults()
        with warnings.catch_warnings():  # matplotlib's default font has no Japanese glyphs
            warnings.simplefilter("ignore", UserWarning)
            unthemed = draw_all()
        figures.setup()
        by_cache = draw_all()
    for a, b, c in zip(by_seaborn, by_cache, unthemed, strict=True):
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)  # the theme changes every figure: the comparison is not vacuous


def test_a_torn_theme_cache_is_computed_again(tmp_path, monkeypatch):
    path = tmp_path / "theme.pickle"
    path.write_bytes(b"\x80\x04torn")
    monkeypatch.setattr(figures, "theme_cache_path", lambda: path)
    figures._cached_theme.cache_clear()
    try:
        figures.setup()
        import pickle

        cached = pickle.loads(path.read_bytes())
        assert cached["rc"] == figures.seaborn_theme()["rc"]
        assert cached["rc"]["font.family"] == [figures.FONT]
        assert cached["rc"]["axes.grid"] is True and cached["rc"]["axes.unicode_minus"] is False
        assert list(cached["colormaps"]) == [cached["rc"]["image.cmap"]]
    finally:
        figures._cached_theme.cache_clear()


def test_a_report_kernel_imports_neither_seaborn_nor_scipy():
    """Importing them cost a second of every cold ``kofukin report``: with the theme cached and the outcome fit
    persisted, a municipality template's imports must not pull them in."""
    import subprocess
    import sys

    figures.setup()  # the cache exists from here on
    code = (
        "import sys; from kofukin import display; from kofukin.figures import setup; setup();"
        "from kofukin.report import municipality_report;"
        "print(sorted(m for m in ('seaborn', 'scipy', 'statsmodels') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
