"""Figures of the reports: each function takes tidy tables and returns a new matplotlib Figure.

No pyplot state is used, so a warm kernel can draw thousands of figures without leaking memory, and the
Japanese font is set explicitly (``sns.set_theme`` resets the font family, which would turn labels into
empty boxes: a missing glyph is a ``UserWarning`` that the tests turn into an error).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib_fontja  # noqa: F401  (registers IPAexGothic)
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

FONT = "IPAexGothic"
DPI = 96
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


def setup() -> None:
    """Seaborn's theme with the Japanese font; call at the top of every report (kernels are reused)."""
    sns.set_theme(style="whitegrid", font=FONT, rc={"axes.unicode_minus": False})


def png(fig: Figure) -> bytes:
    """PNG bytes of a figure (the notebook displays them with IPython.display.Image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # layout is fixed beforehand: a "tight" bbox would draw twice
    return buf.getvalue()


def goal_rates(scores: pd.DataFrame, name: str, pref_name: str) -> Figure:
    """Score rate by grant × goal: the municipality against its prefecture and the nation.

    ``scores`` is :attr:`kofukin.profile.MunicipalityProfile.scores` (26 rows with score, means, max)."""
    keys = [f"{g}_{goal}" for g in ("suishin", "shien") for goal in ("I", "II", "III", "IV")]
    s = scores.set_index("key").loc[keys]
    labels = s["label_ja"].str.replace(" 小計", "").str.replace(" 成果", "").tolist()
    y = np.arange(len(keys))
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    h = 0.26
    ax.barh(y - h, 100 * s["score"] / s["max_points"], h, color=OWN, label=name)
    ax.barh(y, 100 * s["pref_mean"] / s["max_points"], h, color=PREF, label=f"{pref_name}平均")
    ax.barh(y + h, 100 * s["national_mean"] / s["max_points"], h, color=NATION, label="全国平均")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("得点率（%）")
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.subplots_adjust(**MARGINS["goal_rates"])
    return fig


def trend(trend_table: pd.DataFrame, name: str) -> Figure:
    """Grand total by year with the national mean, and the national rank printed at each point."""
    t = trend_table[trend_table["key"] == "grand_total"].sort_values("fiscal_year")
    fig = Figure(figsize=(5.6, 3.0))
    ax = fig.subplots()
    x = np.arange(len(t))
    ax.plot(x, t["score"], marker="o", color=OWN, label=name)
    ax.plot(x, t["national_mean"], marker="s", color=NATION, linestyle="--", label="全国平均")
    for xi, (score, rank) in enumerate(zip(t["score"], t["rank_national"], strict=True)):
        ax.annotate(
            f"全国{int(rank):,}位",
            (xi, score),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(x, [f"令和{y[1:]}年度" for y in t["fiscal_year"]])
    ax.set_ylabel("総合得点（800点満点）")
    lo = min(t["score"].min(), t["national_mean"].min())
    hi = max(t["score"].max(), t["national_mean"].max())
    ax.set_ylim(max(0, lo - 60), min(800, hi + 60))
    ax.legend(fontsize=8, loc="lower right")
    fig.subplots_adjust(**MARGINS["trend"])
    return fig


def gains_losses(by_goal: pd.DataFrame) -> Figure:
    """Diverging bars per grant × goal: points gained (right) and lost (left), with the net change."""
    b = by_goal.reset_index(drop=True)
    y = np.arange(len(b))
    fig = Figure(figsize=(6.0, 3.4))
    ax = fig.subplots()
    gained = b["gained_points"] + b["kept_change"].clip(lower=0) + b["not_comparable_net"].clip(lower=0)
    lost = b["lost_points"] + b["kept_change"].clip(upper=0) + b["not_comparable_net"].clip(upper=0)
    ax.barh(y, gained, color=GAIN, label="獲得")
    ax.barh(y, lost, color=LOSS, label="喪失")
    for yi, net in zip(y, b["actual_change"], strict=True):
        ax.annotate(f"{int(net):+d}", (max(gained.max(), 1) * 1.05, yi), va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, b["label_ja"])
    ax.invert_yaxis()
    ax.set_xlabel("点数の増減（右端は目標の純増減）")
    ax.legend(fontsize=8, loc="lower left")
    fig.subplots_adjust(**MARGINS["gains"])
    return fig


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
    """The observed goal Ⅳ score and its empirical-Bayes estimate with the 95 % interval."""
    fig = Figure(figsize=(5.6, 2.0))
    ax = fig.subplots()
    ax.errorbar(
        [row["estimate"]],
        [0],
        xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
        fmt="o",
        color=PREF,
        capsize=4,
        label="推定値（95%区間）",
    )
    ax.plot([row["observed"]], [0], marker="D", color=OWN, linestyle="none", label="実際の得点")
    ax.axvline(national_mean, color=NATION, linestyle="--", linewidth=1, label="全国平均")
    ax.set_xlim(0, 100)
    ax.set_ylim(-1, 1.4)
    ax.set_yticks([])
    ax.set_xlabel("目標Ⅳ（アウトカム）得点（100点満点）")
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    fig.subplots_adjust(**MARGINS["outcome"])
    return fig
