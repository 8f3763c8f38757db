"""How close the synthetic panel comes to the published national figures: the calibration table.

Every target is a published number (``indicator_subtotals.csv``, ``indicators.csv``, ``golden_published.csv``)
or a structural requirement of the generator (exact class counts, 38 union rows, the cap of 4). The table is
printed by ``kofukin demo-data``, pasted into data/README.md, and asserted row by row in the tests.

Tolerances:

* subtotal means within 2 % (they follow from the item shares, which are exact by construction);
* standard deviations within 15 %;
* medians within 5 %, but never tighter than the smallest item of a group subtotal or of goal Ⅳ (a median
  of sums of 4-point items moves in steps of 4, goal Ⅳ's in steps of 5);
* item shares within 2 percentage points (the largest deviation per year and group is shown);
* R8 means by 規模区分 and by 過疎 within 15 points of the published ones;
* year-to-year correlation of the grand total at least 0.7 (a lower bound: tolerance is empty).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kofukin.reference import load_catalogue, load_published, load_subtotal_catalogue
from kofukin.synthetic.attributes import N_KASO, SIZE_CLASS_COUNTS_R8
from kofukin.synthetic.items import YEARS
from kofukin.synthetic.unions import N_MEMBERS, N_UNIONS

MEAN_TOL = 0.02
SD_TOL = 0.15
MEDIAN_TOL = 0.05
SHARE_TOL_PP = 2.0
GROUP_MEAN_TOL = 15.0
PERSISTENCE_MIN = 0.7
COLUMNS = ["metric", "fiscal_year", "target", "achieved", "tolerance", "ok"]


@dataclass
class CalibrationReport:
    """The calibration table (``metric, fiscal_year, target, achieved, tolerance, ok``)."""

    table: pd.DataFrame

    @property
    def ok(self) -> bool:
        return bool(self.table["ok"].all())

    def failures(self) -> pd.DataFrame:
        return self.table[~self.table["ok"]]

    def to_string(self) -> str:
        """Two blocks (≤ 80 columns, no square brackets: safe for rich's console): the subtotal statistics side
        by side, then every other check. Each pair is 公表 (published target) / 合成 (achieved)."""
        t = self.table
        is_sub = t["metric"].str.match(r"^(mean|sd|median):[a-z_IV]+$")
        sub = t[is_sub].copy()
        sub[["stat", "key"]] = sub["metric"].str.split(":", n=1, expand=True)
        wide = sub.pivot_table(
            index=["fiscal_year", "key"], columns="stat", values=["target", "achieved"], sort=False
        )
        ok = sub.groupby(["fiscal_year", "key"], sort=False)["ok"].all()
        lines = [
            "【合成データ】較正表  各欄 = 公表値 (target) / 合成データ (achieved)",
            "",
            "年度 小計                  平均 mean       標準偏差 sd     中央値 median  ok",
        ]
        for (year, key), r in wide.iterrows():
            lines.append(
                f"{year:<4} {key:<20} {r[('target', 'mean')]:>6.1f}/{r[('achieved', 'mean')]:<6.1f}"
                f"  {r[('target', 'sd')]:>6.1f}/{r[('achieved', 'sd')]:<6.1f}"
                f"  {r[('target', 'median')]:>6.0f}/{r[('achieved', 'median')]:<6.1f}"
                f"  {'✓' if ok[(year, key)] else '✗'}"
            )
        lines += ["", f"{'check':<34} {'年度':<4} {'target':>8} {'achieved':>8} {'許容':>5}  ok"]
        for r in t[~is_sub].itertuples():
            tol = "下限" if pd.isna(r.tolerance) else f"{r.tolerance:g}"
            lines.append(
                f"{r.metric:<34} {r.fiscal_year:<4} {r.target:>8.2f} {r.achieved:>8.2f} {tol:>5}"
                f"  {'✓' if r.ok else '✗'}"
            )
        n_bad = int((~t["ok"]).sum())
        lines += ["", f"{len(t)} checks, {n_bad} outside tolerance"]
        return "\n".join(lines)


def calibration_report(panel) -> CalibrationReport:
    """Compare ``panel`` (a :class:`~kofukin.synthetic.panel.SyntheticPanel`) with every published target."""
    rows: list[tuple] = []
    rows += _subtotal_rows(panel.subtotals)
    rows += _share_rows(panel.item_points)
    rows += _structure_rows(panel)
    rows += _group_mean_rows(panel)
    rows += _persistence_rows(panel.subtotals)
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    table["ok"] = [_ok(r) for r in table.itertuples()]
    return CalibrationReport(table)


def _ok(r) -> bool:
    if pd.isna(r.tolerance):
        return bool(r.achieved >= r.target)
    return bool(abs(r.achieved - r.target) <= r.tolerance + 1e-9)


def _subtotal_rows(subtotals: pd.DataFrame) -> list[tuple]:
    subs = load_subtotal_catalogue()
    step = _smallest_item(load_catalogue())
    rows = []
    for r in subs.itertuples():
        v = subtotals.loc[subtotals["fiscal_year"] == r.fiscal_year, r.target].to_numpy(float)
        med_tol = max(MEDIAN_TOL * r.national_median, step.get((r.fiscal_year, r.target), 0))
        rows += [
            (f"mean:{r.target}", r.fiscal_year, r.national_mean, v.mean(), MEAN_TOL * r.national_mean),
            (f"sd:{r.target}", r.fiscal_year, r.national_sd, v.std(), SD_TOL * r.national_sd),
            (f"median:{r.target}", r.fiscal_year, float(r.national_median), float(np.median(v)), med_tol),
        ]
    return rows


def _smallest_item(cat: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Smallest item of each group subtotal and of goal Ⅳ: the step in which its median moves."""
    level = cat["group"].where(cat["goal"] != "IV", "")
    key = (cat["grant"] + "_" + cat["goal"] + "_" + level).str.rstrip("_")
    return cat.groupby([cat["fiscal_year"], key])["max_points"].min().to_dict()


def _share_rows(items: pd.DataFrame) -> list[tuple]:
    """Largest |share − published share| in percentage points, per year and group."""
    cat = load_catalogue().set_index("item_id")
    share = items["points"].gt(0).groupby(items["item_id"]).mean()
    dev = (share - cat.loc[share.index, "share_scoring"]).abs() * 100
    grp = cat.loc[share.index, ["fiscal_year", "group"]]
    worst = dev.groupby([grp["fiscal_year"], grp["group"]]).max()
    return [(f"share_max_dev_pp:{g}", y, 0.0, float(v), SHARE_TOL_PP) for (y, g), v in worst.items()]


def _structure_rows(panel) -> list[tuple]:
    a = panel.attributes[panel.attributes["fiscal_year"] == "R8"]
    counts = a["size_class"].value_counts()
    rows = [
        (f"count:size_class={k}", "R8", float(n), float(counts.get(k, 0)), 0.0)
        for k, n in SIZE_CLASS_COUNTS_R8.items()
    ]
    rows.append(("count:kaso", "R8", float(N_KASO), float(a["kaso"].sum()), 0.0))
    rows.append(
        ("count:union_rows", "R8", float(N_UNIONS), float(panel.unions["union_insurer_no"].nunique()), 0.0)
    )
    rows.append(("count:union_members", "R8", float(N_MEMBERS), float(len(panel.unions)), 0.0))
    ind9 = panel.item_points[panel.item_points["item_id"].str.contains("-shien-I-katsudo-9-", regex=False)]
    excess = (
        (ind9.groupby(["fiscal_year", "lg_code6"])["points"].sum() - 4).clip(lower=0).groupby(level=0).max()
    )
    rows += [("excess_over_cap:shien_I_katsudo_9", y, 0.0, float(excess[y]), 0.0) for y in YEARS]
    return rows


def _group_mean_rows(panel) -> list[tuple]:
    """R8 grand-total means by 規模区分 and 過疎 against the published ones."""
    pub = load_published()
    pub = pub[(pub["fiscal_year"] == "R8") & (pub["measure"] == "mean:grand_total")]
    pub = pub.set_index("municipality_name")["value"]
    p = panel.subtotals[panel.subtotals["fiscal_year"] == "R8"].merge(
        panel.attributes[panel.attributes["fiscal_year"] == "R8"], on=["fiscal_year", "lg_code6"]
    )
    rows = []
    for k, m in p.groupby("size_class")["grand_total"].mean().items():
        rows.append((f"mean:grand_total|size_class={k}", "R8", pub[f"[size_class={k}]"], m, GROUP_MEAN_TOL))
    for k, m in p.groupby("kaso")["grand_total"].mean().items():
        rows.append((f"mean:grand_total|kaso={int(k)}", "R8", pub[f"[kaso={int(k)}]"], m, GROUP_MEAN_TOL))
    return rows


def _persistence_rows(subtotals: pd.DataFrame) -> list[tuple]:
    wide = subtotals.pivot(index="lg_code6", columns="fiscal_year", values="grand_total")
    return [
        (f"corr:grand_total {a}–{b} (≥)", b, PERSISTENCE_MIN, float(wide[a].corr(wide[b])), np.nan)
        for a, b in itertools.pairwise(YEARS)
    ]
