"""National and prefectural summaries in the shape of the published tables, and the item helpers they share.

* :func:`national_summary` mirrors MHLW's 評価結果の概要 (seed 000, R7): per column of the 26 — 配点, 平均点,
  平均得点率, 中央値, and the previous year's mean — plus the top municipality and the goals with the highest and
  lowest score rate.
* :func:`prefecture_summary` mirrors 東京都's R6 analysis (seed 004): the same columns for a prefecture and its
  sub-areas (区部 / 市部 / 町村部, 規模区分, 過疎/非過疎), each score rate compared with the national rate and
  flagged where it lies 10 percentage points or more above or below it.
* :func:`national_item_aggregates` gives the workbook's per-item statistics rows (配点, 平均点, 平均得点率,
  該当市町村数, 該当率) and shows that the column means follow from the item means under the scoring rules.

Every table uses English snake_case column keys (stable for code and exports); :data:`HEADERS_JA` holds the
Japanese header of every key and :func:`to_japanese` renames a table for the reader.

This module is the base of the analysis layer: the other analysis modules import the target metadata, the
item helpers (:func:`dense_item_points`, :func:`item_labels`) and the header labels from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kofukin.bycode import RowsByCode
from kofukin.layout import SIZE_CLASS_JA
from kofukin.memo import by_identity
from kofukin.scoring import (
    FISCAL_YEARS,
    GOAL_JA,
    GRANT_SHORT_JA,
    GROUP_JA,
    TARGET_KEYS,
    TARGET_MAX,
    TARGETS,
    competition_rank,
    subtotals_from_items,
)

# ---------------------------------------------------------------------------------------------------------
# Vocabulary shared by the analysis tables
# ---------------------------------------------------------------------------------------------------------

#: Goal names as MHLW's R7 summary table heads them (seed 000); used in reader-facing sentences.
GOAL_THEME_JA: dict[tuple[str, str], str] = {
    ("suishin", "I"): "持続可能な地域のあるべき姿",
    ("suishin", "II"): "公平・公正な給付を行う体制の構築",
    ("suishin", "III"): "介護人材の確保その他のサービス提供基盤の整備",
    ("shien", "I"): "介護予防/日常生活支援の推進",
    ("shien", "II"): "認知症総合支援の推進",
    ("shien", "III"): "在宅医療・在宅介護連携の構築",
    ("both", "IV"): "高齢者の状況に応じた自立した日常生活（アウトカム指標群）",
}

#: The columns whose ranks the reports quote (seed 001 総括: 推進, 支援, 合算).
RANK_KEYS: tuple[str, ...] = ("suishin_total", "shien_total", "grand_total")

#: ±10 percentage points: seed 004's 「全国平均の得点率を、10%以上、上回っている／下回っている指標」.
FLAG_THRESHOLD_PT = 10.0
FLAG_ABOVE = "上回る"
FLAG_BELOW = "下回る"

KIND_AREA_JA = {"ku": "区部", "shi": "市部", "machi": "町村部", "mura": "町村部"}
KASO_JA = {True: "過疎", False: "非過疎"}

#: Japanese header of every column key used by the analysis tables (and the exports).
HEADERS_JA: dict[str, str] = {
    # identifiers and attributes
    "fiscal_year": "年度",
    "lg_code6": "市町村コード",
    "pref_code": "都道府県コード",
    "pref_name": "都道府県名",
    "name": "市町村名",
    "kind": "市区町村種別",
    "population": "人口",
    "n_insured_1go": "第1号被保険者数",
    "share_1go": "第1号被保険者割合",
    "size_class": "規模区分",
    "size_class_ja": "規模区分（名称）",
    "kaso": "過疎地域",
    "union_name": "所属広域連合",
    "synthetic": "合成データ",
    # target metadata
    "key": "指標キー",
    "label_ja": "区分",
    "grant": "交付金",
    "goal": "目標",
    "level": "集計区分",
    "max_points": "配点",
    # national / area statistics
    "n": "市町村数",
    "mean": "平均点",
    "rate": "平均得点率",
    "median": "中央値",
    "prev_year": "前年度",
    "prev_mean": "前年度平均",
    "prev_rate": "前年度平均得点率",
    "national_mean": "全国平均",
    "national_rate": "全国平均得点率",
    "pref_mean": "県内平均",
    "peer_mean": "同条件平均",
    "diff_pt": "全国との差（ポイント）",
    "flag": "判定（±10ポイント）",
    "group_national_rate": "全国同区分の得点率",
    "group_diff_pt": "全国同区分との差（ポイント）",
    "area_type": "区域の種類",
    "area": "区域",
    "score": "得点",
    "score_rate": "得点率",
    "measure": "集計対象",
    "domain": "分野",
    # ranks
    "rank_national": "全国順位",
    "n_national": "全国団体数",
    "rank_pref": "県内順位",
    "n_pref": "県内団体数",
    "rank_peer": "同条件順位",
    "n_peer": "同条件団体数",
    # items
    "item_id": "項目ID",
    "item_label": "項目",
    "indicator_no": "指標番号",
    "indicator_name_ja": "指標名",
    "branch": "枝番",
    "sub_branch": "枝番2",
    "group": "指標群",
    "scoring_rule": "採点ルール",
    "item_max": "項目配点",
    "points": "得点",
    "n_scoring": "該当市町村数",
    "share_scoring": "該当率",
}
for _t in TARGETS:
    HEADERS_JA.setdefault(_t.key, _t.label_ja)
    for _prefix, _ja in (
        ("rank_national_", "全国順位"),
        ("rank_pref_", "県内順位"),
        ("rank_peer_", "同条件順位"),
    ):
        HEADERS_JA.setdefault(_prefix + _t.key, f"{_t.label_ja} {_ja}")


def to_japanese(df: pd.DataFrame, extra: dict[str, str] | None = None) -> pd.DataFrame:
    """The table with Japanese headers (keys without a label keep their name), for display in the book."""
    labels = {**HEADERS_JA, **(extra or {})}
    return df.rename(columns={c: labels.get(c, c) for c in df.columns})


@by_identity
def target_table() -> pd.DataFrame:
    """The 26 columns of MHLW's tables as rows: key, grant, goal, level, max_points, label_ja (MHLW's order)."""
    return pd.DataFrame(
        [
            {
                "key": t.key,
                "grant": t.grant,
                "goal": t.goal,
                "level": t.level,
                "max_points": t.max_points,
                "label_ja": t.label_ja,
            }
            for t in TARGETS
        ]
    )


@by_identity
def scored_rows(panel: pd.DataFrame, year: str) -> pd.DataFrame:
    """The panel's scored municipalities in ``year`` (rows with a grand total); a clear error if there are none."""
    if year not in FISCAL_YEARS:
        raise ValueError(f"unknown fiscal year {year!r}; expected one of {FISCAL_YEARS}")
    rows = panel[(panel["fiscal_year"] == year) & panel["grand_total"].notna()]
    if rows.empty:
        raise ValueError(f"the panel has no scored municipalities in {year}")
    return rows


def previous_year(year: str) -> str | None:
    """The fiscal year before ``year`` (R7 -> R6), None for the first."""
    i = FISCAL_YEARS.index(year)
    return FISCAL_YEARS[i - 1] if i > 0 else None


def _stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and score rate of each target over ``rows`` (one row per target, MHLW's order)."""
    values = rows[list(TARGET_KEYS)].astype(float)
    out = target_table()
    out["n"] = len(rows)
    out["mean"] = values.mean().to_numpy()
    out["rate"] = out["mean"] / out["max_points"]
    out["median"] = values.median().to_numpy()
    return out


PEER_KEYS: tuple[str, ...] = ("size_class", "kaso")


@by_identity
def rank_table(panel: pd.DataFrame, year: str, keys: Iterable[str] = RANK_KEYS) -> pd.DataFrame:
    """Competition ranks (1, 2, 2, 4; highest first) of every scored municipality of ``year``.

    For each key: ``rank_national_<key>`` among all scored municipalities, ``rank_pref_<key>`` within the
    prefecture and ``rank_peer_<key>`` among the 同条件 group (same 規模区分 and same 過疎 status, as in the
    municipal reports). The group sizes are ``n_national``, ``n_pref`` and ``n_peer`` — the N of 「x/N位」.
    """
    rows = scored_rows(panel, year).copy()
    rows["kaso"] = rows["kaso"].astype(bool)
    pref = rows.groupby("pref_code", sort=False)
    peer = rows.groupby(list(PEER_KEYS), sort=False)
    for k in keys:
        rows[f"rank_national_{k}"] = competition_rank(rows[k])
        rows[f"rank_pref_{k}"] = pref[k].rank(method="min", ascending=False).astype("int64")
        rows[f"rank_peer_{k}"] = peer[k].rank(method="min", ascending=False).astype("int64")
    rows["n_national"] = len(rows)
    rows["n_pref"] = pref["lg_code6"].transform("size").astype("int64")
    rows["n_peer"] = peer["lg_code6"].transform("size").astype("int64")
    return rows.reset_index(drop=True)


@by_identity
def rank_rows(panel: pd.DataFrame, year: str) -> RowsByCode:
    """:func:`rank_table` by municipality: a report reads its own row without copying the national table
    (what the memoised :func:`rank_table` hands every caller) and scanning it for the code."""
    return RowsByCode(rank_table(panel, year))


# ---------------------------------------------------------------------------------------------------------
# National summary (seed 000)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NationalSummary:
    """MHLW's national summary of one year, as tidy tables.

    Attributes
    ----------
    columns
        One row per target (26): key, grant, goal, level, label_ja, max_points, n, mean, rate, median,
        prev_year, prev_mean, prev_rate.
    top
        The top municipality (several on a tie): lg_code6, name, pref_name, grand_total, rate.
    domains
        The seven fields of the 「分野別に見ると」 sentence — goals Ⅰ–Ⅲ of each grant and goal Ⅳ once (it is
        the same outcome set in both grants) — with their score rate, sorted from highest to lowest.
    sentence_ja
        「…の得点率が最も高く、…の得点率が最も低い。」 as in seed 000.
    """

    year: str
    n: int
    columns: pd.DataFrame
    top: pd.DataFrame
    domains: pd.DataFrame
    sentence_ja: str
    prev_year: str | None = None
    prev_top: pd.DataFrame | None = None

    def headline(self) -> dict[str, float | str | None]:
        """The headline figures: 平均点 and 平均得点率 of the 800, this year and the previous year."""
        g = self.columns.set_index("key").loc["grand_total"]
        return {
            "fiscal_year": self.year,
            "mean": float(g["mean"]),
            "rate": float(g["rate"]),
            "prev_year": self.prev_year,
            "prev_mean": None if pd.isna(g["prev_mean"]) else float(g["prev_mean"]),
            "prev_rate": None if pd.isna(g["prev_rate"]) else float(g["prev_rate"]),
        }

    def mhlw_table(self, decimals: int = 1) -> pd.DataFrame:
        """The published shape: rows 配点 / 平均点 / 平均得点率 (%) / 中央値 / 前年度平均, one column per target."""
        c = self.columns.set_index("label_ja")
        table = pd.DataFrame(
            {
                "配点": c["max_points"],
                "平均点": c["mean"].round(decimals),
                "平均得点率": (100 * c["rate"]).round(decimals),
                "中央値": c["median"],
                "前年度平均": c["prev_mean"].round(decimals),
            }
        ).T
        table.columns.name = None
        return table


def national_summary(panel: pd.DataFrame, year: str, prev_year: str | None = None) -> NationalSummary:
    """MHLW's national summary (seed 000) of ``year`` from the panel.

    Parameters
    ----------
    panel
        :meth:`kofukin.store.Store.panel` (or any table with ``fiscal_year``, names and the 26 targets).
    year
        Fiscal year (``R7``).
    prev_year
        The year whose means fill 前年度平均; by default the year before ``year`` when the panel has it.

    Every scored municipality of the year counts once (MHLW's 1,741). Means and rates are unrounded; the
    published table rounds to one decimal (:meth:`NationalSummary.mhlw_table`).
    """
    rows = scored_rows(panel, year)
    cols = _stats(rows)
    if prev_year is None:
        cand = previous_year(year)
        has_prev = cand is not None and ((panel["fiscal_year"] == cand) & panel["grand_total"].notna()).any()
        prev_year = cand if has_prev else None
    prev_top = None
    if prev_year is not None:
        prev_rows = scored_rows(panel, prev_year)
        prev = _stats(prev_rows)
        cols["prev_year"] = prev_year
        cols["prev_mean"] = prev["mean"].to_numpy()
        cols["prev_rate"] = prev["rate"].to_numpy()
        prev_top = _top(prev_rows)
    else:
        cols["prev_year"] = None
        cols["prev_mean"] = np.nan
        cols["prev_rate"] = np.nan
    domains = _domains(cols)
    return NationalSummary(
        year=year,
        n=len(rows),
        columns=cols,
        top=_top(rows),
        domains=domains,
        sentence_ja=_domain_sentence(domains),
        prev_year=prev_year,
        prev_top=prev_top,
    )


def _top(rows: pd.DataFrame) -> pd.DataFrame:
    best = rows["grand_total"].max()
    top = rows.loc[rows["grand_total"] == best, ["lg_code6", "name", "pref_name", "grand_total"]].copy()
    top["rate"] = top["grand_total"] / TARGET_MAX["grand_total"]
    return top.sort_values("lg_code6").reset_index(drop=True)


def _domains(cols: pd.DataFrame) -> pd.DataFrame:
    c = cols.set_index("key")
    recs = []
    for grant in ("suishin", "shien"):
        for goal in ("I", "II", "III"):
            key = f"{grant}_{goal}"
            recs.append(
                {
                    "key": key,
                    "domain": f"{GRANT_SHORT_JA[grant]}の{GOAL_JA[goal]}",
                    "theme": GOAL_THEME_JA[(grant, goal)],
                    "rate": float(c.loc[key, "rate"]),
                }
            )
    recs.append(
        {
            "key": "suishin_IV",
            "domain": GOAL_JA["IV"],
            "theme": GOAL_THEME_JA[("both", "IV")],
            "rate": float(c.loc["suishin_IV", "rate"]),
        }
    )
    out = pd.DataFrame(recs).sort_values(["rate", "key"], ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)


def _domain_sentence(domains: pd.DataFrame) -> str:
    hi = domains[np.isclose(domains["rate"], domains["rate"].max())]
    lo = domains[np.isclose(domains["rate"], domains["rate"].min())]

    def names(d: pd.DataFrame) -> str:
        return "・".join(f"{r.domain}（{r.theme}）" for r in d.itertuples())

    return f"分野別に見ると、{names(hi)}の得点率が最も高く、{names(lo)}の得点率が最も低い。"


# ---------------------------------------------------------------------------------------------------------
# Prefecture summary (seed 004)
# ---------------------------------------------------------------------------------------------------------

AREA_TYPES: tuple[str, ...] = ("prefecture", "kind", "size_class", "kaso")
AREA_TYPE_JA = {"prefecture": "都道府県", "kind": "区・市・町村部", "size_class": "規模区分", "kaso": "過疎"}


def _area_assignments(rows: pd.DataFrame) -> pd.DataFrame:
    """Each municipality's areas: one row per (lg_code6, area_type, area) — a municipality sits in four areas."""
    base = rows[["lg_code6", "pref_code"]]
    size = rows["size_class"].astype(int)
    parts = [
        base.assign(area_type="prefecture", area=rows["pref_name"].to_numpy(), area_order=0),
        base.assign(
            area_type="kind",
            area=rows["kind"].map(KIND_AREA_JA).to_numpy(),
            area_order=rows["kind"].map({"ku": 1, "shi": 2, "machi": 3, "mura": 3}).to_numpy(),
        ),
        base.assign(
            area_type="size_class",
            area=[f"規模区分{s}（{SIZE_CLASS_JA[s]}）" for s in size],
            area_order=(10 + size).to_numpy(),
        ),
        base.assign(
            area_type="kaso",
            area=rows["kaso"].astype(bool).map(KASO_JA).to_numpy(),
            area_order=np.where(rows["kaso"].astype(bool), 20, 21),
        ),
    ]
    return pd.concat(parts, ignore_index=True)


def area_cells(panel: pd.DataFrame, year: str) -> pd.DataFrame:
    """Mean and score rate of every target in every prefecture's areas, compared with the nation (all prefectures).

    Returns one row per (pref_code, area_type, area, target key) with n, mean, rate, national_mean,
    national_rate, diff_pt (percentage points), flag (:data:`FLAG_ABOVE` / :data:`FLAG_BELOW` / ``""``),
    and the rate of the same kind of area nationally (``group_national_rate``: all 町村部 of Japan, all of
    規模区分 3 …) for a like-for-like reading. :func:`prefecture_summary` selects one prefecture from it.
    """
    rows = scored_rows(panel, year)
    national = _stats(rows).set_index("key")
    areas = _area_assignments(rows)
    long = rows[["lg_code6", *TARGET_KEYS]].melt(id_vars="lg_code6", var_name="key", value_name="value")
    long["value"] = long["value"].astype(float)
    merged = areas.merge(long, on="lg_code6", how="inner")
    keys = ["pref_code", "area_type", "area", "area_order", "key"]
    cells = merged.groupby(keys, sort=False)["value"].agg(["size", "mean"]).reset_index()
    cells = cells.rename(columns={"size": "n"})
    group = merged.groupby(["area_type", "area", "key"], sort=False)["value"].mean().rename("group_mean")
    cells = cells.merge(group.reset_index(), on=["area_type", "area", "key"], how="left")
    cells["max_points"] = cells["key"].map(TARGET_MAX)
    cells["label_ja"] = cells["key"].map({t.key: t.label_ja for t in TARGETS})
    cells["rate"] = cells["mean"] / cells["max_points"]
    cells["national_mean"] = cells["key"].map(national["mean"])
    cells["national_rate"] = cells["key"].map(national["rate"])
    cells["diff_pt"] = (100 * (cells["rate"] - cells["national_rate"])).round(9)
    cells["flag"] = flag_series(cells["diff_pt"])
    cells["group_national_rate"] = cells["group_mean"] / cells["max_points"]
    cells["group_diff_pt"] = (100 * (cells["rate"] - cells["group_national_rate"])).round(9)
    cells.loc[cells["area_type"] == "prefecture", ["group_national_rate", "group_diff_pt"]] = np.nan
    pref_names = rows.drop_duplicates("pref_code").set_index("pref_code")["pref_name"]
    cells["pref_name"] = cells["pref_code"].map(pref_names)
    cells["fiscal_year"] = year
    key_order = {k: i for i, k in enumerate(TARGET_KEYS)}
    cells["_k"] = cells["key"].map(key_order)
    cells = cells.sort_values(["pref_code", "area_order", "_k"], kind="stable")
    cols = [
        "fiscal_year",
        "pref_code",
        "pref_name",
        "area_type",
        "area",
        "n",
        "key",
        "label_ja",
        "max_points",
        "mean",
        "rate",
        "national_mean",
        "national_rate",
        "diff_pt",
        "flag",
        "group_national_rate",
        "group_diff_pt",
    ]
    return cells[cols].reset_index(drop=True)


def flag_series(diff_pt: pd.Series, threshold: float = FLAG_THRESHOLD_PT) -> pd.Series:
    """Seed 004's marks: 上回る where the rate is ≥ threshold points above the nation, 下回る where ≤ −threshold."""
    d = diff_pt.round(9)
    out = pd.Series("", index=diff_pt.index, dtype=object)
    out[d >= threshold] = FLAG_ABOVE
    out[d <= -threshold] = FLAG_BELOW
    return out


@dataclass(frozen=True)
class PrefectureSummary:
    """A prefecture's summary: its areas' means and rates against the nation, and its top municipalities.

    Attributes
    ----------
    cells
        Long table from :func:`area_cells` for this prefecture (areas: the prefecture, 区部/市部/町村部,
        each 規模区分 present, 過疎/非過疎).
    headline
        Per grant and in total: national and prefectural mean and rate, and whether the prefecture is above.
    top
        The prefecture's top municipalities (competition rank ≤ ``top_n``, so a tie at the boundary stays in).
    top_area_counts
        How many of ``top`` fall in each of 区部/市部/町村部 (seed 004: 「上位10保険者のうち、市部が8保険者」).
    """

    year: str
    pref_code: str
    pref_name: str
    cells: pd.DataFrame
    headline: pd.DataFrame
    top: pd.DataFrame
    top_area_counts: pd.Series
    sentences_ja: list[str] = field(default_factory=list)

    def flags(self) -> pd.DataFrame:
        """Only the flagged cells (≥ 10 points above or below the national rate)."""
        return self.cells[self.cells["flag"] != ""].reset_index(drop=True)

    def wide(self, value: str = "rate") -> pd.DataFrame:
        """Seed 004's layout: one row per area, one column per target (``value`` = mean, rate, diff_pt or flag)."""
        w = self.cells.pivot_table(
            index=["area_type", "area"], columns="key", values=value, aggfunc="first", sort=False
        )
        w = w[[k for k in TARGET_KEYS if k in w.columns]]
        w.columns = [HEADERS_JA.get(k, k) for k in w.columns]
        return w


def resolve_pref_code(panel: pd.DataFrame, pref: str | int) -> str:
    """A 2-digit prefecture code from a code (13, "13") or a name (東京都)."""
    text = str(pref).strip()
    prefs = panel[["pref_code", "pref_name"]].drop_duplicates()
    if text.isdigit():
        code = text.zfill(2)
        if code in set(prefs["pref_code"]):
            return code
    hit = prefs.loc[prefs["pref_name"] == text, "pref_code"]
    if len(hit) == 1:
        return str(hit.iloc[0])
    raise ValueError(f"都道府県が見つかりません: {pref!r}")


def prefecture_summary(
    panel: pd.DataFrame, year: str, pref_code: str | int, top_n: int = 10
) -> PrefectureSummary:
    """The prefecture's summary in the shape of seed 004 (東京都, R6).

    Parameters
    ----------
    panel, year
        The panel and the fiscal year.
    pref_code
        Two-digit code (``"13"``), an int, or the prefecture's name.
    top_n
        How many top municipalities to list (competition ranks, so ties may add rows).

    The national rate is over every scored municipality of the year; the flag compares each cell's score
    rate with it in percentage points, as seed 004 does (its 「10%以上」 is a difference of rates).
    """
    code = resolve_pref_code(panel, pref_code)
    cells = area_cells(panel, year)
    cells = cells[cells["pref_code"] == code].reset_index(drop=True)
    rows = scored_rows(panel, year)
    pref_rows = rows[rows["pref_code"] == code]
    pref_name = str(pref_rows["pref_name"].iloc[0])
    whole = cells[cells["area_type"] == "prefecture"].set_index("key")
    headline = pd.DataFrame(
        [
            {
                "key": k,
                "label_ja": whole.loc[k, "label_ja"],
                "national_mean": whole.loc[k, "national_mean"],
                "national_rate": whole.loc[k, "national_rate"],
                "pref_mean": whole.loc[k, "mean"],
                "pref_rate": whole.loc[k, "rate"],
                "above": bool(whole.loc[k, "mean"] > whole.loc[k, "national_mean"]),
            }
            for k in RANK_KEYS
        ]
    )
    ranks = rank_table(panel, year)
    top = ranks[(ranks["pref_code"] == code) & (ranks["rank_pref_grand_total"] <= top_n)].copy()
    top["area"] = top["kind"].map(KIND_AREA_JA)
    top["rate"] = top["grand_total"] / TARGET_MAX["grand_total"]
    top = top.sort_values(["rank_pref_grand_total", "lg_code6"])[
        [
            "rank_pref_grand_total",
            "rank_national_grand_total",
            "lg_code6",
            "name",
            "area",
            "suishin_total",
            "shien_total",
            "grand_total",
            "rate",
        ]
    ].reset_index(drop=True)
    counts = top["area"].value_counts()
    short = pref_name[-1] if pref_name[-1] in "都道府県" else ""
    sentences = _prefecture_sentences(headline, short, pref_name, len(top), counts)
    return PrefectureSummary(
        year=year,
        pref_code=code,
        pref_name=pref_name,
        cells=cells,
        headline=headline,
        top=top,
        top_area_counts=counts,
        sentences_ja=sentences,
    )


def _prefecture_sentences(
    headline: pd.DataFrame, short: str, pref_name: str, n_top: int, counts: pd.Series
) -> list[str]:
    h = headline.set_index("key")
    out = []
    both = [k for k in ("suishin_total", "shien_total")]
    if all(h.loc[k, "above"] for k in both):
        out.append(f"両交付金ともに、{short}の平均点は全国平均を上回った。")
    elif not any(h.loc[k, "above"] for k in both):
        out.append(f"両交付金ともに、{short}の平均点は全国平均を下回った。")
    for k, name in (("suishin_total", "推進交付金"), ("shien_total", "努力支援交付金")):
        r = h.loc[k]
        out.append(
            f"{name} 全国平均点{r['national_mean']:.1f}点（得点率{100 * r['national_rate']:.2f}%） → "
            f"{short}平均点{r['pref_mean']:.1f}点（得点率{100 * r['pref_rate']:.2f}%）"
        )
    if len(counts):
        area, n = counts.index[0], int(counts.iloc[0])
        out.append(f"{pref_name}内得点上位{n_top}団体のうち、{area}が{n}団体")
    return out


# ---------------------------------------------------------------------------------------------------------
# Item-level helpers (shared by profile, gains, reach and whatif)
# ---------------------------------------------------------------------------------------------------------

ITEM_META = [
    "item_id",
    "grant",
    "goal",
    "group",
    "indicator_no",
    "indicator_name_ja",
    "branch",
    "sub_branch",
    "max_points",
    "scoring_rule",
    "indicator_effective_max",
]


@by_identity
def _catalogue_of_year(catalogue: pd.DataFrame, year: str) -> pd.DataFrame:
    return catalogue.loc[catalogue["fiscal_year"] == year, ITEM_META]


def dense_item_points(
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    year: str,
    lg_codes: Iterable[str] | None = None,
    meta: bool = True,
) -> pd.DataFrame:
    """Every catalogue item of ``year`` for every municipality, points filled with 0 where the table has no row.

    The store may keep item points sparse (only scored items); the statistics need the zeros. Municipalities
    are ``lg_codes`` if given, else those with any item row in the year. Returns ``fiscal_year, lg_code6``
    plus the catalogue columns in :data:`ITEM_META` (only ``item_id`` with ``meta=False``, which is much
    faster on the full panel) and ``points`` (int64).
    """
    cat = _catalogue_of_year(catalogue, year)
    if cat.empty:
        raise ValueError(f"the catalogue has no items for {year}")
    ip = item_points[item_points["fiscal_year"] == year]
    if lg_codes is None:
        codes = sorted(ip["lg_code6"].unique())
    else:
        codes = sorted(set(lg_codes))
        ip = ip[ip["lg_code6"].isin(codes)]
    unknown = set(ip["item_id"].unique()) - set(cat["item_id"])
    if unknown:
        raise KeyError(f"item_id not in the {year} catalogue: {sorted(unknown)[:5]}")
    grid = pd.MultiIndex.from_product([codes, cat["item_id"].tolist()], names=["lg_code6", "item_id"])
    pts = ip.groupby(["lg_code6", "item_id"])["points"].sum()
    dense = pd.DataFrame(index=grid).join(pts).fillna({"points": 0}).reset_index()
    dense["points"] = dense["points"].astype("int64")
    if meta:
        dense = dense.merge(cat, on="item_id", how="left", validate="m:1")
    dense.insert(0, "fiscal_year", year)
    return dense


@by_identity
def item_labels(catalogue: pd.DataFrame) -> pd.Series:
    """A readable label per item_id: 推進 目標Ⅰ 体制・取組 1 地域の介護保険事業の特徴 ア（①）."""
    c = catalogue
    group_short = {"taisei": "体制・取組", "katsudo": "活動", "outcome": "成果"}
    branch = c["branch"].fillna("").astype(str)
    sub = c["sub_branch"].fillna("").astype(str)
    branch_text = branch + np.where(sub != "", "-" + sub, "")
    labels = (
        c["grant"].map(GRANT_SHORT_JA)
        + " "
        + c["goal"].map(GOAL_JA)
        + " "
        + c["group"].map(group_short)
        + " "
        + c["indicator_no"].astype(str)
        + " "
        + c["indicator_name_ja"].astype(str)
        + " "
        + branch_text
    )
    return pd.Series(labels.str.strip().to_numpy(), index=c["item_id"].to_numpy(), name="item_label")


def targets_from_parts(parts: pd.DataFrame, value: str = "points") -> pd.Series:
    """Add item- or indicator-level values up into the 26 targets, without the scoring rules.

    Each row (``grant, goal, group`` and ``value``) adds to its group column (goals Ⅰ–Ⅲ), its goal, its
    grant's total and the cross-grant column of its group; goal Ⅳ rows add to ``<grant>_IV`` and
    アウトカム計. Used for the plain sum of item means and for changes of indicator points (which already
    went through the rules).
    """
    sums = parts.groupby(["grant", "goal", "group"])[value].sum()
    out = pd.Series(0.0, index=list(TARGET_KEYS))
    for (grant, goal, group), v in sums.items():
        if goal == "IV":
            keys = [f"{grant}_IV", "all_outcome"]
        else:
            keys = [f"{grant}_{goal}_{group}", f"{grant}_{goal}", f"all_{group}"]
        for k in [*keys, f"{grant}_total", "grand_total"]:
            out[k] += v
    return out


@dataclass(frozen=True)
class ItemAggregates:
    """Item-level statistics of one year and the column means they add up to.

    Attributes
    ----------
    items
        One row per catalogue item: the workbook's statistics rows (配点 ``max_points``, 平均点 ``mean``,
        平均得点率 ``rate``, 該当市町村数 ``n_scoring``, 該当率 ``share_scoring``).
    targets
        One row per target: ``mean`` under the scoring rules (what :func:`national_summary` reports when the
        panel's subtotals come from these items), ``item_mean_sum`` (the plain sum of the item means) and
        ``rule_effect`` = mean − item_mean_sum (0 when the file records 択一 points only in the counting branch
        and capped items already post-cap, as MHLW's files do).
    """

    year: str
    n: int
    items: pd.DataFrame
    targets: pd.DataFrame


def national_item_aggregates(
    item_points: pd.DataFrame, catalogue: pd.DataFrame, year: str, lg_codes: Iterable[str] | None = None
) -> ItemAggregates:
    """The workbook's per-item statistic rows, and the 26 column means rebuilt from the items under the rules."""
    dense = dense_item_points(item_points, catalogue, year, lg_codes)
    n = dense["lg_code6"].nunique()
    g = dense.groupby("item_id", sort=False)
    items = g[
        [
            "grant",
            "goal",
            "group",
            "indicator_no",
            "indicator_name_ja",
            "branch",
            "sub_branch",
            "max_points",
            "scoring_rule",
        ]
    ].first()
    items["mean"] = g["points"].mean()
    items["rate"] = items["mean"] / items["max_points"]
    items["n_scoring"] = g["points"].apply(lambda s: int((s > 0).sum()))
    items["share_scoring"] = items["n_scoring"] / n
    items = items.reset_index()
    items.insert(0, "fiscal_year", year)

    wide = subtotals_from_items(dense[["fiscal_year", "lg_code6", "item_id", "points"]], catalogue)
    targets = target_table()
    targets["mean"] = wide[list(TARGET_KEYS)].mean().to_numpy()
    naive = targets_from_parts(items, "mean")
    targets["item_mean_sum"] = targets["key"].map(naive)
    targets["rule_effect"] = targets["mean"] - targets["item_mean_sum"]
    targets.insert(0, "fiscal_year", year)
    return ItemAggregates(year=year, n=n, items=items, targets=targets)


__all__ = [
    "AREA_TYPES",
    "FLAG_THRESHOLD_PT",
    "GOAL_THEME_JA",
    "GROUP_JA",
    "HEADERS_JA",
    "RANK_KEYS",
    "ItemAggregates",
    "NationalSummary",
    "PrefectureSummary",
    "area_cells",
    "dense_item_points",
    "flag_series",
    "item_labels",
    "national_item_aggregates",
    "national_summary",
    "prefecture_summary",
    "rank_table",
    "target_table",
    "targets_from_parts",
    "to_japanese",
]
