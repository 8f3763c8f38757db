"""The scoring rules and the 26-column subtotal structure of MHLW's tables.

Item points are stored as published, per item branch. Turning them into indicator, group, goal and grant totals
needs three rules that the catalogue records per item (``scoring_rule``):

* ``additive`` — the indicator's points are the sum of its items;
* ``choose_one_of_branches`` (択一, goal Ⅳ indicators 1, 3, 5) — only the better of branches ア/イ counts;
* ``capped_inferred`` (支援 目標Ⅰ(ⅱ) indicator 9) — the sum is capped at the indicator's effective maximum (4).

Every aggregate the book shows comes from :func:`subtotals_from_items`, so the rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

FISCAL_YEARS: tuple[str, ...] = ("R6", "R7", "R8")
GRANTS: tuple[str, ...] = ("suishin", "shien")
GOALS: tuple[str, ...] = ("I", "II", "III", "IV")
GROUPS: tuple[str, ...] = ("taisei", "katsudo", "outcome")

GRANT_JA = {"suishin": "保険者機能強化推進交付金", "shien": "介護保険保険者努力支援交付金"}
GRANT_SHORT_JA = {"suishin": "推進", "shien": "支援", "both": "合計"}
GOAL_JA = {"I": "目標Ⅰ", "II": "目標Ⅱ", "III": "目標Ⅲ", "IV": "目標Ⅳ"}
GROUP_JA = {"taisei": "体制・取組指標群", "katsudo": "活動指標群", "outcome": "成果指標群"}
FY_AD = {"R6": 2024, "R7": 2025, "R8": 2026}


@dataclass(frozen=True)
class Target:
    """One of the 26 columns of MHLW's summary table."""

    key: str
    grant: str  # suishin / shien / both
    goal: str | None
    level: str  # taisei / katsudo / goal_total / grant_total / all_taisei / all_katsudo / all_outcome / grand_total
    max_points: int
    label_ja: str


def _grant_targets(grant: str) -> list[Target]:
    short = GRANT_SHORT_JA[grant]
    maxima = {
        "suishin": {"I": (64, 36), "II": (68, 32), "III": (64, 36)},
        "shien": {"I": (52, 48), "II": (64, 36), "III": (68, 32)},
    }[grant]
    out: list[Target] = []
    for goal in ("I", "II", "III"):
        taisei, katsudo = maxima[goal]
        out += [
            Target(
                f"{grant}_{goal}_taisei", grant, goal, "taisei", taisei, f"{short} {GOAL_JA[goal]} 体制・取組"
            ),
            Target(
                f"{grant}_{goal}_katsudo", grant, goal, "katsudo", katsudo, f"{short} {GOAL_JA[goal]} 活動"
            ),
            Target(f"{grant}_{goal}", grant, goal, "goal_total", 100, f"{short} {GOAL_JA[goal]} 小計"),
        ]
    out.append(Target(f"{grant}_IV", grant, "IV", "goal_total", 100, f"{short} {GOAL_JA['IV']} 成果"))
    out.append(Target(f"{grant}_total", grant, None, "grant_total", 400, f"{short} 合計"))
    return out


TARGETS: tuple[Target, ...] = tuple(
    _grant_targets("suishin")
    + _grant_targets("shien")
    + [
        Target("all_taisei", "both", None, "all_taisei", 380, "体制・取組指標群 計"),
        Target("all_katsudo", "both", None, "all_katsudo", 220, "活動指標群 計"),
        Target("all_outcome", "both", None, "all_outcome", 200, "アウトカム指標群 計"),
        Target("grand_total", "both", None, "grand_total", 800, "総合計"),
    ]
)
TARGET_KEYS: tuple[str, ...] = tuple(t.key for t in TARGETS)
TARGET_MAX: dict[str, int] = {t.key: t.max_points for t in TARGETS}
TARGET_LABEL_JA: dict[str, str] = {t.key: t.label_ja for t in TARGETS}
# The file's own subtotal columns (23 per year): every target except the three cross-grant group sums.
FILE_SUBTOTAL_KEYS: tuple[str, ...] = tuple(
    k for k in TARGET_KEYS if k not in ("all_taisei", "all_katsudo", "all_outcome")
)

ITEM_KEY = ["fiscal_year", "grant", "goal", "group", "indicator_no"]


def indicator_points(items: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Points per municipality and indicator, after the scoring rules.

    Parameters
    ----------
    items
        Long table ``fiscal_year, lg_code6, item_id, points``.
    catalogue
        The indicator catalogue (:func:`kofukin.reference.load_catalogue`).

    Returns
    -------
    ``fiscal_year, lg_code6, grant, goal, group, indicator_no, points`` — one row per indicator.
    """
    cat = catalogue[
        [
            "item_id",
            "grant",
            "goal",
            "group",
            "indicator_no",
            "branch",
            "scoring_rule",
            "indicator_effective_max",
        ]
    ]
    df = items[["fiscal_year", "lg_code6", "item_id", "points"]].merge(
        cat, on="item_id", how="left", validate="m:1"
    )
    missing = df["grant"].isna()
    if missing.any():
        raise KeyError(f"item_id not in the catalogue: {sorted(df.loc[missing, 'item_id'].unique())[:5]}")
    keys = ["fiscal_year", "lg_code6", "grant", "goal", "group", "indicator_no"]
    # Branch sums first: 択一 compares whole branches (ア①..④ against イ①..④).
    branch = df.groupby(
        [*keys, "branch", "scoring_rule", "indicator_effective_max"], observed=True, sort=False
    )["points"].sum()
    branch = branch.reset_index()
    choose = branch["scoring_rule"] == "choose_one_of_branches"
    per_ind = pd.concat(
        [
            branch[~choose]
            .groupby([*keys, "scoring_rule", "indicator_effective_max"], observed=True)["points"]
            .sum(),
            branch[choose]
            .groupby([*keys, "scoring_rule", "indicator_effective_max"], observed=True)["points"]
            .max(),
        ]
    ).reset_index()
    capped = per_ind["scoring_rule"] == "capped_inferred"
    per_ind.loc[capped, "points"] = per_ind.loc[capped, ["points", "indicator_effective_max"]].min(axis=1)
    return per_ind[[*keys, "points"]].sort_values(keys, kind="stable").reset_index(drop=True)


def subtotals_from_items(items: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """The 26 MHLW columns per municipality and year, computed from item points under the scoring rules.

    Returns a wide table indexed by ``(fiscal_year, lg_code6)`` with one integer column per target key, in
    MHLW's order. The 支援 copy of goal Ⅳ is computed from its own items (the file repeats them), so a file
    whose two copies disagree shows up as ``suishin_IV != shien_IV``.
    """
    ind = indicator_points(items, catalogue)
    ind["col"] = _group_column(ind)
    wide = ind.pivot_table(index=["fiscal_year", "lg_code6"], columns="col", values="points", aggfunc="sum")
    wide = wide.fillna(0)
    out = pd.DataFrame(index=wide.index)
    for grant in GRANTS:
        for goal in ("I", "II", "III"):
            t = wide.get(f"{grant}_{goal}_taisei", 0)
            k = wide.get(f"{grant}_{goal}_katsudo", 0)
            out[f"{grant}_{goal}_taisei"] = t
            out[f"{grant}_{goal}_katsudo"] = k
            out[f"{grant}_{goal}"] = t + k
        out[f"{grant}_IV"] = wide.get(f"{grant}_IV_outcome", 0)
        out[f"{grant}_total"] = sum(out[f"{grant}_{g}"] for g in GOALS)
    return add_cross_grant_columns(out).astype("int64")


def add_cross_grant_columns(wide: pd.DataFrame) -> pd.DataFrame:
    """Add 体制・取組計, 活動計, アウトカム計 and 総合計 (the last four of the 26) from the per-grant columns."""
    out = wide.copy()
    out["all_taisei"] = sum(out[f"{g}_{goal}_taisei"] for g in GRANTS for goal in ("I", "II", "III"))
    out["all_katsudo"] = sum(out[f"{g}_{goal}_katsudo"] for g in GRANTS for goal in ("I", "II", "III"))
    out["all_outcome"] = out["suishin_IV"] + out["shien_IV"]
    out["grand_total"] = out["suishin_total"] + out["shien_total"]
    return out[list(TARGET_KEYS)]


def _group_column(df: pd.DataFrame) -> pd.Series:
    return df["grant"] + "_" + df["goal"] + "_" + df["group"]


def competition_rank(values: pd.Series) -> pd.Series:
    """Competition ranking, highest first (1, 2, 2, 4), as MHLW and the municipalities' reports rank."""
    return values.rank(method="min", ascending=False).astype("int64")
