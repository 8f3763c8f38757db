"""One municipality's results: its 26 columns against the nation and the prefecture, its ranks, items achieved
and a three-year trend — the content of a municipal report such as 上尾市's 総括 (seed 001).

Ranks are competition ranks (1, 2, 2, 4) of the grant totals and the grand total, highest first, as MHLW and
the municipal reports rank; N is the number of scored municipalities in the group (nation 1,741; prefecture;
同条件 = same 規模区分 and same 過疎 status). :func:`municipality_summary` is the ``kofukin summary`` command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kofukin.codes import resolve_municipality
from kofukin.layout import SIZE_CLASS_JA
from kofukin.scoring import FISCAL_YEARS, GRANT_SHORT_JA, GRANTS, TARGET_KEYS, TARGET_LABEL_JA, TARGET_MAX
from kofukin.summary import (
    PEER_KEYS,
    RANK_KEYS,
    dense_item_points,
    rank_rows,
    rank_table,
    scored_rows,
    target_table,
)

if TYPE_CHECKING:
    from kofukin.store import Store

SCORE_HELD_RANK_FELL_JA = "得点は横ばいでも全国平均の上昇で順位が下がった"
SCORE_ROSE_RANK_FELL_JA = "得点は上がったが、全国平均の上昇で順位が下がった"

ID_COLUMNS = ["fiscal_year", "lg_code6", "pref_code", "pref_name", "name", "kind"]
ATTRIBUTE_COLUMNS = ["population", "n_insured_1go", "size_class", "kaso", "union_name"]


def rank_label(rank: int, n: int) -> str:
    """「486/1,741」 — the municipal reports' 「x/N位」 without the 位."""
    return f"{int(rank):,}/{int(n):,}"


# ---------------------------------------------------------------------------------------------------------
# Items achieved
# ---------------------------------------------------------------------------------------------------------


def items_achieved_table(
    item_points: pd.DataFrame, catalogue: pd.DataFrame, year: str, lg_codes: list[str] | None = None
) -> pd.DataFrame:
    """Items achieved 「n of N」 per municipality and grant, for all items and for 体制・取組 only.

    Definition (ours; MHLW publishes no item count):

    * an *item* is one catalogue item of the grant and year — one scored branch or sub-branch column (goal Ⅳ
      counts in each grant, as its points do); *achieved* means points > 0;
    * 択一 indicators (goal Ⅳ nos. 1, 3, 5) offer two alternative measures ア/イ of which only the better
      counts, so the indicator contributes one measure's items to N (4, not 8) and to n the achieved items of
      the measure that counts (the one with more points; on a tie, more achieved items) — the file records
      points only there anyway;
    * the capped indicator (支援 目標Ⅰ(ⅱ) 9) counts all its items: an item achieved beyond the cap of 4 points is
      still achieved though it earns nothing more.

    ``scope == "taisei"`` restricts to the 体制・取組指標群: the yes/no questions that municipal reports count
    (上尾市: 「R6 55項目中32項目達成」). Their totals come close to but need not equal the catalogue's (R7 推進:
    the report says 55, the catalogue has 53 体制・取組 items), since each report counts in its own way.

    Returns ``fiscal_year, lg_code6, grant, scope, n_achieved, n_items, share``.
    """
    d = dense_item_points(item_points, catalogue, year, lg_codes)
    d["achieved"] = (d["points"] > 0).astype("int64")
    ind_keys = ["lg_code6", "grant", "goal", "group", "indicator_no"]
    choose = d["scoring_rule"] == "choose_one_of_branches"
    plain = (
        d[~choose]
        .groupby([*ind_keys], sort=False)
        .agg(n_achieved=("achieved", "sum"), n_items=("item_id", "size"))
    )
    branch = (
        d[choose]
        .groupby([*ind_keys, "branch"], sort=False)
        .agg(points=("points", "sum"), n_achieved=("achieved", "sum"), n_items=("item_id", "size"))
        .reset_index()
        .sort_values([*ind_keys, "points", "n_achieved"], ascending=[True] * 5 + [False, False])
    )
    counting = branch.groupby(ind_keys, sort=False).agg(
        n_achieved=("n_achieved", "first"), n_items=("n_items", "max")
    )
    ind = pd.concat([plain, counting]).reset_index()
    parts = []
    for scope, sel in (("all", ind), ("taisei", ind[ind["group"] == "taisei"])):
        g = sel.groupby(["lg_code6", "grant"], sort=True)[["n_achieved", "n_items"]].sum().reset_index()
        g["scope"] = scope
        parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    out["share"] = out["n_achieved"] / out["n_items"]
    out.insert(0, "fiscal_year", year)
    out["n_achieved"] = out["n_achieved"].astype("int64")
    out["n_items"] = out["n_items"].astype("int64")
    return out[["fiscal_year", "lg_code6", "grant", "scope", "n_achieved", "n_items", "share"]]


# ---------------------------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MunicipalityProfile:
    """One municipality in one year.

    Attributes
    ----------
    info
        Code, names and attributes (population, 第1号, 規模区分, 過疎).
    scores
        26 rows: key, label_ja, max_points, national_mean, pref_mean, peer_mean, score, score_rate,
        diff_national (score − national mean) — seed 001's 配点 / 全国平均 / 県内平均 / own row.
    ranks
        One row per grant total and the grand total: score, means, and competition ranks with group sizes
        nationally, in the prefecture and among 同条件 peers (``*_label`` = 「x/N」).
    items
        Items achieved 「n of N」 per grant (:func:`items_achieved_table`); None without item points.
    trend
        Up to three years ending at ``year``: per measure and year the score, the national mean, ranks,
        and the changes from the previous year; ``flag_nation_rose`` marks a score that held or rose while
        the national rank fell as the national mean rose.
    notes
        Reader-facing sentences for the flagged trend rows.
    """

    info: dict[str, Any]
    scores: pd.DataFrame
    ranks: pd.DataFrame
    trend: pd.DataFrame
    items: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def wide(self) -> pd.DataFrame:
        """Seed 001's table: rows 配点 / 全国平均 / 県内平均 / <name>, one column per target."""
        s = self.scores.set_index("label_ja")
        out = pd.DataFrame(
            {
                "配点": s["max_points"],
                "全国平均": s["national_mean"],
                "県内平均": s["pref_mean"],
                str(self.info["name"]): s["score"],
            }
        ).T
        out.columns.name = None
        return out


def _row(panel: pd.DataFrame, lg_code6: str, year: str) -> pd.Series:
    """The municipality's row of :func:`kofukin.summary.rank_table`."""
    rows = rank_rows(panel, year)
    if lg_code6 not in rows:
        raise ValueError(f"{lg_code6} has no scores in {year} (not in the panel for that year)")
    return rows[lg_code6].iloc[0]


def municipality_profile(
    panel: pd.DataFrame,
    year: str,
    lg_code6: str,
    item_points: pd.DataFrame | None = None,
    catalogue: pd.DataFrame | None = None,
    n_trend_years: int = 3,
    achieved: pd.DataFrame | None = None,
) -> MunicipalityProfile:
    """The profile of ``lg_code6`` in ``year``.

    Parameters
    ----------
    panel
        :meth:`kofukin.store.Store.panel`.
    year, lg_code6
        The fiscal year and the municipality; a municipality not scored that year raises ValueError.
    item_points, catalogue
        Optional; with both, the profile counts items achieved (:func:`items_achieved_table`).
    n_trend_years
        How many years the trend covers (ending at ``year``; years the municipality was not scored are left
        out).
    achieved
        The municipality's rows of :func:`items_achieved_table` when the caller has them already (a report
        kernel computes every municipality's at once); replaces ``item_points``/``catalogue`` for the count.
    """
    me = _row(panel, lg_code6, year)
    rows = scored_rows(panel, year)
    pref = rows[rows["pref_code"] == me["pref_code"]]
    peer = rows[(rows["size_class"] == me["size_class"]) & (rows["kaso"].astype(bool) == bool(me["kaso"]))]
    keys = list(TARGET_KEYS)
    scores = target_table()[["key", "label_ja", "max_points"]]
    scores["national_mean"] = rows[keys].astype(float).mean().to_numpy()
    scores["pref_mean"] = pref[keys].astype(float).mean().to_numpy()
    scores["peer_mean"] = peer[keys].astype(float).mean().to_numpy()
    scores["score"] = me[keys].astype("int64").to_numpy()
    scores["score_rate"] = scores["score"] / scores["max_points"]
    scores["diff_national"] = scores["score"] - scores["national_mean"]

    rank_rows = []
    for k in RANK_KEYS:
        rec = {
            "key": k,
            "label_ja": TARGET_LABEL_JA[k],
            "score": int(me[k]),
            "max_points": TARGET_MAX[k],
            "national_mean": float(rows[k].mean()),
            "pref_mean": float(pref[k].mean()),
            "peer_mean": float(peer[k].mean()),
        }
        for scope in ("national", "pref", "peer"):
            r, n = int(me[f"rank_{scope}_{k}"]), int(me[f"n_{scope}"])
            rec[f"rank_{scope}"], rec[f"n_{scope}"], rec[f"rank_{scope}_label"] = r, n, rank_label(r, n)
        rank_rows.append(rec)

    info = {c: _plain(me[c]) for c in [*ID_COLUMNS, *ATTRIBUTE_COLUMNS] if c in me.index}
    info["size_class_ja"] = SIZE_CLASS_JA.get(int(me["size_class"]), "")
    items = achieved.copy() if achieved is not None else None
    if items is None and item_points is not None and catalogue is not None:
        mine = item_points[(item_points["lg_code6"] == lg_code6) & (item_points["fiscal_year"] == year)]
        items = items_achieved_table(mine, catalogue, year, [lg_code6])
    if items is not None:
        items["label"] = items["n_achieved"].astype(str) + "/" + items["n_items"].astype(str)
    trend, notes = trend_table(panel, year, lg_code6, n_trend_years)
    return MunicipalityProfile(
        info=info, scores=scores, ranks=pd.DataFrame(rank_rows), trend=trend, items=items, notes=notes
    )


def trend_table(
    panel: pd.DataFrame, year: str, lg_code6: str, n_years: int = 3
) -> tuple[pd.DataFrame, list[str]]:
    """Totals and national ranks of ``lg_code6`` over the last ``n_years`` years up to ``year``.

    Rank changes are read with the national mean beside them: a rank can fall while the score holds because
    every other municipality rose. That case is flagged (``flag_nation_rose``: score ≥ last year's, national
    rank worse, national mean higher) and explained in a sentence (:data:`SCORE_HELD_RANK_FELL_JA`).
    """
    upto = FISCAL_YEARS[: FISCAL_YEARS.index(year) + 1]
    present = set(panel.loc[(panel["lg_code6"] == lg_code6) & panel["grand_total"].notna(), "fiscal_year"])
    years = [y for y in upto if y in present][-n_years:]
    recs = []
    for y in years:
        me = _row(panel, lg_code6, y)
        scored = scored_rows(panel, y)
        for k in RANK_KEYS:
            recs.append(
                {
                    "fiscal_year": y,
                    "key": k,
                    "label_ja": TARGET_LABEL_JA[k],
                    "score": int(me[k]),
                    "national_mean": float(scored[k].mean()),
                    "rank_national": int(me[f"rank_national_{k}"]),
                    "n_national": int(me["n_national"]),
                    "rank_pref": int(me[f"rank_pref_{k}"]),
                    "n_pref": int(me["n_pref"]),
                }
            )
    trend = pd.DataFrame(recs)
    notes: list[str] = []
    if trend.empty:
        return trend, notes
    g = trend.groupby("key", sort=False)
    trend["prev_year"] = g["fiscal_year"].shift()
    trend["score_change"] = trend["score"] - g["score"].shift()
    trend["national_mean_change"] = trend["national_mean"] - g["national_mean"].shift()
    trend["rank_change"] = trend["rank_national"] - g["rank_national"].shift()  # positive = fell
    trend["flag_nation_rose"] = (
        (trend["score_change"] >= 0) & (trend["rank_change"] > 0) & (trend["national_mean_change"] > 0)
    )
    for r in trend[trend["flag_nation_rose"]].itertuples():
        what = SCORE_HELD_RANK_FELL_JA if r.score_change == 0 else SCORE_ROSE_RANK_FELL_JA
        prev = trend[(trend["key"] == r.key) & (trend["fiscal_year"] == r.prev_year)].iloc[0]
        notes.append(
            f"{r.label_ja}（{r.prev_year}→{r.fiscal_year}）: {what}"
            f"（{int(prev['score'])}点→{r.score}点、全国平均{prev['national_mean']:.1f}点→{r.national_mean:.1f}点、"
            f"全国{int(prev['rank_national'])}位→{r.rank_national}位）"
        )
    trend = trend.sort_values(["key", "fiscal_year"], key=_trend_sort_key, kind="stable").reset_index(
        drop=True
    )
    return trend, notes


def _trend_sort_key(s: pd.Series) -> pd.Series:
    if s.name == "key":
        return s.map({k: i for i, k in enumerate(RANK_KEYS)})
    return s.map({y: i for i, y in enumerate(FISCAL_YEARS)})


def _plain(v: object) -> object:
    """A JSON-friendly Python scalar."""
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if np.isnan(v) else float(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


# ---------------------------------------------------------------------------------------------------------
# Profiles of every municipality (the export's municipality_profiles.csv)
# ---------------------------------------------------------------------------------------------------------


def profiles_table(panel: pd.DataFrame, years: list[str] | None = None) -> pd.DataFrame:
    """One row per municipality and year: ids, attributes, the 26 columns, and national / prefecture / 同条件
    ranks of both grant totals and the grand total with their group sizes."""
    years = years or [y for y in FISCAL_YEARS if (panel["fiscal_year"] == y).any()]
    parts = [rank_table(panel, y) for y in years]
    t = pd.concat(parts, ignore_index=True)
    rank_cols = [f"rank_{s}_{k}" for k in RANK_KEYS for s in ("national", "pref", "peer")]
    cols = [c for c in [*ID_COLUMNS, *ATTRIBUTE_COLUMNS] if c in t.columns]
    out = t[[*cols, *TARGET_KEYS, *rank_cols, "n_national", "n_pref", "n_peer"]].copy()
    out["kaso"] = out["kaso"].astype(bool)
    return out.sort_values(["fiscal_year", "lg_code6"], key=_year_key, kind="stable").reset_index(drop=True)


def _year_key(s: pd.Series) -> pd.Series:
    return s.map({y: i for i, y in enumerate(FISCAL_YEARS)}) if s.name == "fiscal_year" else s


# ---------------------------------------------------------------------------------------------------------
# The CLI's `kofukin summary`
# ---------------------------------------------------------------------------------------------------------


def municipality_summary(store: Store, query: str, year: str | None = None) -> dict[str, Any]:
    """Totals and competition ranks of one municipality, for ``kofukin summary`` (JSON-serialisable).

    ``query`` is a 5/6-digit JIS code, an insurer number or a name (上尾市, 埼玉県上尾市), resolved with
    :func:`kofukin.codes.resolve_municipality`; ``year`` defaults to the store's latest. Ranks are competition
    ranks of ``grand_total`` (descending) nationally and in the prefecture; the grant-level and 同条件 ranks are
    given under their own keys. A municipality without scores in the year raises ValueError naming the years
    it has.
    """
    code = resolve_municipality(query, store.municipalities)
    years = store.years
    if not years:
        raise ValueError("the store has no scored year")
    if year is None:
        year = years[-1]
    if year not in FISCAL_YEARS:
        raise ValueError(f"unknown fiscal year {year!r}; expected one of {', '.join(FISCAL_YEARS)}")
    panel = store.panel()
    m = store.municipalities.set_index("lg_code6").loc[code]
    scored_years = sorted(
        set(panel.loc[(panel["lg_code6"] == code) & panel["grand_total"].notna(), "fiscal_year"]),
        key=FISCAL_YEARS.index,
    )
    if year not in scored_years:
        have = "、".join(scored_years) if scored_years else "なし"
        raise ValueError(
            f"{m['pref_name']}{m['name']}（{code}）は {year} の評価結果にありません（得点のある年度: {have}）"
        )
    ranks = rank_table(panel, year)
    me = ranks[ranks["lg_code6"] == code].iloc[0]
    out: dict[str, Any] = {
        "lg_code6": code,
        "name": str(me["name"]),
        "pref_name": str(me["pref_name"]),
        "fiscal_year": year,
        "synthetic": year in store.synthetic_years,
        "suishin_total": int(me["suishin_total"]),
        "shien_total": int(me["shien_total"]),
        "grand_total": int(me["grand_total"]),
        "rank_national": int(me["rank_national_grand_total"]),
        "n_national": int(me["n_national"]),
        "rank_pref": int(me["rank_pref_grand_total"]),
        "n_pref": int(me["n_pref"]),
        "rank_peer": int(me["rank_peer_grand_total"]),
        "n_peer": int(me["n_peer"]),
        "national_mean": round(float(ranks["grand_total"].mean()), 2),
    }
    for grant in GRANTS:
        k = f"{grant}_total"
        out[f"rank_national_{k}"] = int(me[f"rank_national_{k}"])
        out[f"rank_pref_{k}"] = int(me[f"rank_pref_{k}"])
    out["size_class"] = int(me["size_class"])
    out["kaso"] = bool(me["kaso"])
    return out


__all__ = [
    "GRANT_SHORT_JA",
    "PEER_KEYS",
    "SCORE_HELD_RANK_FELL_JA",
    "MunicipalityProfile",
    "items_achieved_table",
    "municipality_profile",
    "municipality_summary",
    "profiles_table",
    "rank_label",
    "rank_table",
    "trend_table",
]
