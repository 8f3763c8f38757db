"""Items within reach: what a municipality scored 0 on that most comparable municipalities score.

Three tables for one municipality and year (:func:`within_reach`):

* **items** — items at 0 that at least ``threshold`` of the comparison group scores (default: the 同条件
  group, same 規模区分 and same 過疎 status; or a given peer set), sorted by *recoverable points*: the change
  of the indicator's points, after the scoring rules, if the item were gained. That is not the item's raw
  maximum: under 択一 (goal Ⅳ nos. 1, 3, 5) a measure that stays below the counting one adds nothing, and
  the capped indicator (支援 目標Ⅰ(ⅱ) 9) adds nothing once at 4.
* **persistent_zero** — items at 0 three years running, matched across years through the crosswalk.
* **bands** — for the rank-banded indicators (activity and outcome), which band the municipality reached.

Rank bands. Activity and outcome indicators score by national rank in cumulative bands — ① / ア 上位7割,
② / イ 上位5割, ③ / ウ 上位3割, ④ / エ 上位1割 (:data:`kofukin.layout.RANK_BANDS`) — so a municipality in the
top 30 % holds ①, ② and ③. We read the bands from the catalogue's structure: in the 活動 and 成果 groups,
sub-branches ①–④ are the bands of the measure named by the branch; an indicator whose branches are exactly
ア–エ without sub-branches is one measure banded ア–エ. Other items (e.g. 支援 Ⅰ(ⅱ) 9 エ) are not banded.
Because the bands are cumulative, *gaining* band k means gaining every lower band of the same measure too:
recoverable points count them (a municipality at 0 that reaches 上位3割 of a 3-point-per-band indicator gains
9, not 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kofukin.bycode import RowsByCode, rows_where
from kofukin.gains import crosswalk_pairs
from kofukin.layout import RANK_BAND_JA, RANK_BANDS
from kofukin.memo import by_identity
from kofukin.summary import PEER_KEYS, dense_item_points, item_labels, previous_year, scored_rows

BANDED_GROUPS = ("katsudo", "outcome")
_CIRCLED = {"①": 1, "②": 2, "③": 3, "④": 4}
_KANA = {"ア": 1, "イ": 2, "ウ": 3, "エ": 4}
IND_KEYS = ["grant", "goal", "group", "indicator_no"]
RANK_SHARE_TOLERANCE = 0.03
SAME_CONDITIONS_JA = "同条件（規模区分×過疎）"


@by_identity
def item_bands(catalogue: pd.DataFrame) -> pd.DataFrame:
    """``item_id, measure, band, band_basis`` for every catalogue item (band 1–4, 0 = not banded).

    ``band_basis`` is ``rank`` where the catalogue's national shares of the measure's bands are 0.7 / 0.5 /
    0.3 / 0.1 (within :data:`RANK_SHARE_TOLERANCE`) — 上位7/5/3/1割 — and always for goal Ⅳ (whose 択一
    measures split the shares between them); otherwise ``level``: nested levels scored on thresholds (推進 Ⅰ(ⅱ)3
    PFS委託事業数) or all at once (推進 Ⅱ(ⅱ)2 医療情報との突合: every band at 0.77), still cumulative.
    """
    c = catalogue[["item_id", "fiscal_year", *IND_KEYS, "branch", "sub_branch"]].copy()
    c["branch"] = c["branch"].fillna("").astype(str)
    c["sub_branch"] = c["sub_branch"].fillna("").astype(str)
    banded_group = c["group"].isin(BANDED_GROUPS)
    by_sub = banded_group & c["sub_branch"].isin(list(_CIRCLED))
    g = c.assign(
        has_sub=c["sub_branch"] != "", is_kana=c["branch"].isin(list(_KANA)) & (c["sub_branch"] == "")
    )
    grouped = g.groupby(["fiscal_year", *IND_KEYS], sort=False)
    one_kana_measure = (
        ~grouped["has_sub"].transform("any")
        & (grouped["item_id"].transform("size") == len(_KANA))
        & (grouped["is_kana"].transform("sum") == len(_KANA))
        & (grouped["branch"].transform("nunique") == len(_KANA))
    )
    by_kana = banded_group & one_kana_measure
    c["band"] = 0
    c.loc[by_sub, "band"] = c.loc[by_sub, "sub_branch"].map(_CIRCLED)
    c.loc[by_kana, "band"] = c.loc[by_kana, "branch"].map(_KANA)
    c["measure"] = np.where(by_sub, c["branch"], "")
    c["band"] = c["band"].astype("int64")
    # Rank bands or nested levels? The catalogue's national shares tell: 0.7 / 0.5 / 0.3 / 0.1 for rank bands.
    c["band_basis"] = ""
    banded = c["band"] > 0
    if "share_scoring" in catalogue.columns:
        expected = c["band"].map(dict(enumerate(RANK_BANDS, start=1)))
        close = (catalogue["share_scoring"] - expected).abs() <= RANK_SHARE_TOLERANCE
        c["_close"] = close.to_numpy() | ~banded.to_numpy()
        all_close = c.groupby(["fiscal_year", *IND_KEYS, "measure"], sort=False)["_close"].transform("all")
        rank = banded & (all_close | (c["group"] == "outcome"))
    else:
        rank = banded
    c.loc[banded, "band_basis"] = np.where(rank[banded], "rank", "level")
    return c[["item_id", "measure", "band", "band_basis"]]


def recoverable_points(
    dense: pd.DataFrame, bands: pd.DataFrame, cumulative_bands: bool = True
) -> pd.DataFrame:
    """For every (municipality, item) row: the indicator points gained if that item alone were gained.

    ``dense`` is :func:`kofukin.summary.dense_item_points` output (several municipalities allowed). Gaining an
    item sets it to its maximum — and, for a banded item with ``cumulative_bands``, every lower band of the
    same measure too (``raw_gain`` = the item points added). ``recoverable`` applies the indicator's rule:

    * additive: the raw gain;
    * capped: min(sum + gain, cap) − min(sum, cap);
    * 択一: max(branch + gain, best other branch) − max(branch, best other branch).
    """
    d = dense.merge(bands, on="item_id", how="left", validate="m:1")
    d["measure"] = d["measure"].fillna("")
    d["band"] = d["band"].fillna(0).astype("int64")
    if "band_basis" in d.columns:
        d["band_basis"] = d["band_basis"].fillna("")
    d["gap"] = d["max_points"] - d["points"]
    d["raw_gain"] = d["gap"]
    if cumulative_bands:
        banded = d["band"] > 0
        b = d[banded].sort_values("band", kind="stable")
        cum = b.groupby(["lg_code6", *IND_KEYS, "measure"], sort=False)["gap"].cumsum()
        d.loc[cum.index, "raw_gain"] = cum
    ind = ["lg_code6", *IND_KEYS]
    d["branch_key"] = d["branch"].fillna("").astype(str)
    branch_sum = d.groupby([*ind, "branch_key"], sort=False)["points"].transform("sum")
    raw_total = d.groupby(ind, sort=False)["points"].transform("sum")
    # best other branch (for 択一): the two largest branch sums per indicator and how many share the largest
    bs = d.groupby([*ind, "branch_key"], sort=False)["points"].sum().rename("bsum").reset_index()
    bs = bs.sort_values([*ind, "bsum"], ascending=[True] * len(ind) + [False], kind="stable")
    bs["r"] = bs.groupby(ind, sort=False).cumcount()
    top = bs[bs["r"] == 0].set_index(ind)["bsum"].rename("top1").to_frame()
    top["top2"] = bs[bs["r"] == 1].set_index(ind)["bsum"].reindex(top.index).fillna(0).astype("int64")
    bs = bs.join(top["top1"], on=ind)
    top["n_top"] = (bs["bsum"] == bs["top1"]).groupby([bs[k] for k in ind], sort=False).sum()
    d = d.join(top, on=ind)
    other = np.where((branch_sum == d["top1"]) & (d["n_top"] == 1), d["top2"], d["top1"])
    gain = d["raw_gain"].to_numpy()
    cap = d["indicator_effective_max"].to_numpy()
    rule = d["scoring_rule"].to_numpy()
    additive = gain
    capped = np.minimum(raw_total + gain, cap) - np.minimum(raw_total, cap)
    choose = np.maximum(branch_sum + gain, other) - np.maximum(branch_sum, other)
    d["recoverable"] = np.select(
        [rule == "capped_inferred", rule == "choose_one_of_branches"], [capped, choose], default=additive
    ).astype("int64")
    d["current_indicator_points"] = np.select(
        [rule == "capped_inferred", rule == "choose_one_of_branches"],
        [np.minimum(raw_total, cap), d["top1"].to_numpy()],
        default=raw_total,
    ).astype("int64")
    return d.drop(columns=["gap", "branch_key", "top1", "top2", "n_top"])


def _zero_gain_note(rule: str) -> str:
    return {
        "choose_one_of_branches": "加点なし（択一: 他方の測定値が上位）",
        "capped_inferred": "加点なし（上限到達）",
    }.get(rule, "")


@dataclass(frozen=True)
class WithinReach:
    """The three tables of :func:`within_reach` (see the module docstring)."""

    lg_code6: str
    year: str
    comparison: str
    n_comparison: int
    threshold: float
    items: pd.DataFrame
    persistent_zero: pd.DataFrame
    bands: pd.DataFrame


ITEM_COLUMNS = [
    "item_id",
    "grant",
    "goal",
    "group",
    "indicator_no",
    "indicator_name_ja",
    "branch",
    "sub_branch",
    "band",
    "band_basis",
    "max_points",
    "points",
    "peer_share",
    "n_peers",
    "national_share",
    "raw_gain",
    "recoverable",
    "scoring_rule",
    "item_label",
    "note",
]


@by_identity
def _scorers(item_points: pd.DataFrame, year: str) -> pd.DataFrame:
    """item × municipality, True where the municipality scores the item in ``year`` (built once per table)."""
    ip = rows_where(item_points, "fiscal_year", year)
    ip = ip[ip["points"] > 0]
    item_idx, items = pd.factorize(ip["item_id"])  # hashing, not crosstab: a second instead of ten
    code_idx, codes = pd.factorize(ip["lg_code6"])
    scores = np.zeros((len(items), len(codes)), dtype=bool)
    scores[item_idx, code_idx] = True
    return pd.DataFrame(
        scores, index=pd.Index(items, name="item_id"), columns=pd.Index(codes, name="lg_code6")
    )


def _share_scoring(item_points: pd.DataFrame, year: str, codes: Iterable[str]) -> pd.Series:
    """Share of ``codes`` with points > 0, per item (from the possibly sparse item table; 0 where none score)."""
    codes = set(codes)
    n = len(codes)
    if n == 0:
        return pd.Series(dtype=float)
    scorers = _scorers(item_points, year)
    cols = [c for c in scorers.columns if c in codes]
    return scorers[cols].sum(axis=1) / n


def comparison_group(
    panel: pd.DataFrame, year: str, lg_code6: str, peers: Iterable[str] | None = None
) -> list[str]:
    """The comparison municipalities (scored in ``year``, never the municipality itself).

    Default: the 同条件 group (same 規模区分 and 過疎 status); else the given ``peers`` that were scored.
    """
    rows = scored_rows(panel, year)
    me = rows[rows["lg_code6"] == lg_code6]
    if me.empty:
        raise ValueError(f"{lg_code6} has no scores in {year}")
    if peers is None:
        m = me.iloc[0]
        sel = (rows["size_class"] == m["size_class"]) & (rows["kaso"].astype(bool) == bool(m["kaso"]))
        codes = rows.loc[sel, "lg_code6"]
    else:
        codes = rows.loc[rows["lg_code6"].isin(set(peers)), "lg_code6"]
    return sorted(set(codes) - {lg_code6})


def within_reach(
    panel: pd.DataFrame,
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    lg_code6: str,
    year: str,
    peers: Iterable[str] | None = None,
    threshold: float = 0.30,
    crosswalk: pd.DataFrame | None = None,
    include_zero_gain: bool = False,
    own_items: pd.DataFrame | None = None,
) -> WithinReach:
    """Items ``lg_code6`` scored 0 in ``year`` that at least ``threshold`` of its comparison group scores.

    Parameters
    ----------
    panel, item_points, catalogue
        The store's panel and long item table, and the catalogue.
    lg_code6, year
        The municipality and the fiscal year.
    peers
        Codes of the comparison group; default the 同条件 group (same 規模区分 × 過疎). The municipality itself
        is never part of its comparison group.
    threshold
        Minimum share of the comparison group scoring the item (0 < threshold ≤ 1).
    crosswalk
        The item crosswalk; with it, ``persistent_zero`` lists the items at 0 in ``year`` and in the two
        years before (matched through comparable crosswalk pairs). Without it that table is empty.
    include_zero_gain
        Keep items whose gain would add nothing under the rules (択一 dominated, cap reached) — marked in
        ``note``; by default they are left out.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    group = comparison_group(panel, year, lg_code6, peers)
    all_codes = scored_rows(panel, year)["lg_code6"]
    labels = item_labels(catalogue)
    bands = item_bands(catalogue)
    if own_items is None:
        own_items = rows_where(item_points, "lg_code6", lg_code6)
    own = dense_item_points(own_items[own_items["fiscal_year"] == year], catalogue, year, [lg_code6])
    own = recoverable_points(own, bands)
    own["peer_share"] = own["item_id"].map(_share_scoring(item_points, year, group)).fillna(0.0)
    own["n_peers"] = len(group)
    own["national_share"] = own["item_id"].map(_share_scoring(item_points, year, all_codes)).fillna(0.0)
    own["item_label"] = own["item_id"].map(labels)
    own["note"] = [
        _zero_gain_note(r) if g == 0 else ""
        for r, g in zip(own["scoring_rule"], own["recoverable"], strict=True)
    ]
    cand = own[(own["points"] == 0) & (own["peer_share"].round(12) >= threshold)]
    if not include_zero_gain:
        cand = cand[cand["recoverable"] > 0]
    cand = cand.sort_values(
        ["recoverable", "peer_share", "item_id"], ascending=[False, False, True], kind="stable"
    )
    items = cand[ITEM_COLUMNS].reset_index(drop=True)

    persistent = no_persistent_zeros()
    if crosswalk is not None:
        found = persistent_zeros(own_items, crosswalk, lg_code6, year)
        if not found.empty:
            persistent = found
            info = own.set_index("item_id")[["recoverable", "peer_share", "item_label", "max_points"]]
            persistent = persistent.join(info, on="item_id")
            persistent = persistent.sort_values(
                ["recoverable", "item_id"], ascending=[False, True], kind="stable"
            )
            persistent = persistent.reset_index(drop=True)
    return WithinReach(
        lg_code6=lg_code6,
        year=year,
        comparison="peers" if peers is not None else SAME_CONDITIONS_JA,
        n_comparison=len(group),
        threshold=threshold,
        items=items,
        persistent_zero=persistent,
        bands=band_table(own),
    )


def no_persistent_zeros() -> pd.DataFrame:
    """``persistent_zero`` when there is none (fewer than three years, no crosswalk): still the columns a
    report shows."""
    return pd.DataFrame(columns=["item_id", "recoverable", "peer_share", "item_label", "max_points"])


def _comparable_map(crosswalk: pd.DataFrame, from_year: str, to_year: str) -> pd.Series | None:
    """to_item_id -> from_item_id over the comparable pairs of two years; None if the crosswalk lacks the pair."""
    try:
        cw = crosswalk_pairs(crosswalk, from_year, to_year)
    except ValueError as e:
        if "has no" in str(e):
            return None
        raise
    cw = cw[cw["comparable"]]
    return cw.set_index("to_item_id")["from_item_id"]


@by_identity
def _predecessors(crosswalk: pd.DataFrame, year: str, n_back: int) -> pd.DataFrame:
    """For each item of ``year``: its comparable predecessor id in each of the ``n_back`` years before.

    A direct crosswalk pair (e.g. R6→R8) is preferred; otherwise the chain through the year between.
    Items without a comparable predecessor in some year are dropped; too few earlier years give an empty table.
    """
    years = [year]
    for _ in range(n_back):
        p = previous_year(years[-1])
        if p is None:
            return pd.DataFrame(columns=["item_id"])
        years.append(p)
    first = _comparable_map(crosswalk, years[1], year)
    if first is None:
        raise ValueError(f"the crosswalk has no {years[1]}→{year} pairs")
    out = pd.DataFrame({"item_id": first.index.to_numpy(), f"item_id_{years[1]}": first.to_numpy()})
    for k in range(2, len(years)):
        y, y_next = years[k], years[k - 1]
        direct = _comparable_map(crosswalk, y, year)
        if direct is not None:
            out[f"item_id_{y}"] = out["item_id"].map(direct)
            continue
        chain = _comparable_map(crosswalk, y, y_next)
        if chain is None:
            raise ValueError(f"the crosswalk has neither {y}→{year} nor {y}→{y_next} pairs")
        out[f"item_id_{y}"] = out[f"item_id_{y_next}"].map(chain)
    return out.dropna().reset_index(drop=True)


def persistent_zeros(
    item_points: pd.DataFrame, crosswalk: pd.DataFrame, lg_code6: str, year: str, n_years: int = 3
) -> pd.DataFrame:
    """Items of ``year`` that ``lg_code6`` scored 0 on in each of the ``n_years`` years ending at ``year``.

    Matching is through comparable crosswalk pairs only; a year in which the municipality has no item points
    at all makes the list empty (three years running cannot be shown).
    """
    pred = _predecessors(crosswalk, year, n_years - 1)
    if pred.empty:
        return pred
    years = [year] + [c.removeprefix("item_id_") for c in pred.columns[1:]]
    mine = rows_where(item_points, "lg_code6", lg_code6)
    if not all((mine["fiscal_year"] == y).any() for y in years):
        return pd.DataFrame(columns=["item_id", *pred.columns[1:]])
    pts = mine.groupby("item_id")["points"].sum()
    zero = pred["item_id"].map(pts).fillna(0) == 0
    for c in pred.columns[1:]:
        zero &= pred[c].map(pts).fillna(0) == 0
    return pred[zero].reset_index(drop=True)


def _band_label(k: int, basis: str) -> str:
    if basis == "rank":
        return RANK_BAND_JA[k - 1] if k else "圏外"
    return f"第{k}段階" if k else "未達"


def band_table(own: pd.DataFrame, by_code: bool = False) -> pd.DataFrame:
    """Per banded indicator and measure: the highest band reached (0 = none) and what the next band adds.

    ``own`` is one municipality's :func:`recoverable_points` output; with ``by_code``, any number of
    municipalities', and the table starts with their ``lg_code6`` (each one's rows as it alone would give).
    """
    b = own[own["band"] > 0].copy()
    if b.empty:
        return pd.DataFrame()
    keys = [*(["lg_code6"] if by_code else []), *IND_KEYS, "indicator_name_ja", "measure"]
    b = b.sort_values([*keys, "band"], kind="stable")
    b["held_band"] = b["band"].where(b["points"] > 0, 0)
    b["held_label"] = np.where(
        b["points"] > 0,
        np.where(b["sub_branch"].astype(str) != "", b["sub_branch"].astype(str), b["branch"]),
        "",
    )
    g = b.groupby(keys, sort=False)
    out = g.agg(
        band_reached=("held_band", "max"),
        bands_held=("held_label", "sum"),
        points=("points", "sum"),
        max_points=("max_points", "sum"),
        scoring_rule=("scoring_rule", "first"),
        band_basis=("band_basis", "first"),
    ).reset_index()
    out["band_label"] = [
        _band_label(k, basis) for k, basis in zip(out["band_reached"], out["band_basis"], strict=True)
    ]
    nxt = b[[*keys, "band", "recoverable"]].rename(columns={"recoverable": "next_band_recoverable"})
    out = out.merge(
        nxt.assign(band=nxt["band"] - 1),
        left_on=[*keys, "band_reached"],
        right_on=[*keys, "band"],
        how="left",
    ).drop(columns="band")
    out["next_band_recoverable"] = out["next_band_recoverable"].fillna(0).astype("int64")
    return out[
        [
            *keys,
            "band_basis",
            "band_reached",
            "band_label",
            "bands_held",
            "points",
            "max_points",
            "next_band_recoverable",
            "scoring_rule",
        ]
    ]


def _reach_frame(
    panel: pd.DataFrame, item_points: pd.DataFrame, catalogue: pd.DataFrame, year: str
) -> pd.DataFrame:
    """Every scored municipality's items of ``year`` with their recoverable points, the share of its 同条件
    group (itself left out, as in :func:`comparison_group`) and of the nation scoring each — the table
    :func:`within_reach` builds for one municipality, for all of them in one pass."""
    rows = scored_rows(panel, year)[["lg_code6", *PEER_KEYS]].copy()
    rows["kaso"] = rows["kaso"].astype(bool)
    d = dense_item_points(item_points, catalogue, year, rows["lg_code6"])
    d = recoverable_points(d, item_bands(catalogue))
    d = d.merge(rows, on="lg_code6", how="left")
    d["scoring"] = (d["points"] > 0).astype("int64")
    grp = d.groupby([*PEER_KEYS, "item_id"], sort=False)["scoring"].transform("sum")
    n_group = d.groupby([*PEER_KEYS, "item_id"], sort=False)["scoring"].transform("size")
    d["n_peers"] = n_group - 1
    d["peer_share"] = ((grp - d["scoring"]) / d["n_peers"].where(d["n_peers"] > 0)).fillna(0.0)
    d["national_share"] = d.groupby("item_id", sort=False)["scoring"].transform("mean")
    d["item_label"] = d["item_id"].map(item_labels(catalogue))
    return d


def _reach_items(d: pd.DataFrame, threshold: float) -> pd.DataFrame:
    out = d[(d["points"] == 0) & (d["peer_share"].round(12) >= threshold) & (d["recoverable"] > 0)].copy()
    out["note"] = ""
    out = out.sort_values(
        ["lg_code6", "recoverable", "peer_share", "item_id"],
        ascending=[True, False, False, True],
        kind="stable",
    )
    return out[["fiscal_year", "lg_code6", *ITEM_COLUMNS]].reset_index(drop=True)


def within_reach_table(
    panel: pd.DataFrame,
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    year: str,
    threshold: float = 0.30,
) -> pd.DataFrame:
    """:func:`within_reach`'s ``items`` for every municipality of ``year`` at once (同条件 comparison; vectorised)."""
    return _reach_items(_reach_frame(panel, item_points, catalogue, year), threshold)


def persistent_zeros_table(
    item_points: pd.DataFrame, crosswalk: pd.DataFrame, year: str, n_years: int = 3
) -> pd.DataFrame:
    """:func:`persistent_zeros` of every municipality with item points in each of the ``n_years`` years, in one
    pass: ``lg_code6`` followed by that function's columns, each municipality's rows in its order."""
    pred = _predecessors(crosswalk, year, n_years - 1)
    columns = ["lg_code6", "item_id", *pred.columns[1:]]
    if pred.empty:
        return pd.DataFrame(columns=columns)
    years = [year] + [c.removeprefix("item_id_") for c in pred.columns[1:]]
    ip = item_points[item_points["fiscal_year"].isin(years)]
    n_years_held = ip.groupby("lg_code6", sort=False)["fiscal_year"].nunique()
    codes = np.array(sorted(n_years_held.index[n_years_held == len(years)]), dtype=object)
    ip = ip[ip["lg_code6"].isin(codes)]
    pts = ip.groupby(["lg_code6", "item_id"], sort=False)["points"].sum()
    held = pts[pts != 0].index
    ids = pd.Index(pd.unique(pred.to_numpy().ravel()))
    scored = np.zeros((len(ids), len(codes)), dtype=bool)  # item × municipality: points ≠ 0 in its year
    item_at = ids.get_indexer(held.get_level_values("item_id"))
    known = item_at >= 0
    scored[item_at[known], pd.Index(codes).get_indexer(held.get_level_values("lg_code6"))[known]] = True
    zero = np.ones((len(pred), len(codes)), dtype=bool)
    for c in pred.columns:
        zero &= ~scored[ids.get_indexer(pred[c])]
    code_at, row_at = np.nonzero(zero.T)  # municipality-major: each one's rows in the predecessors' order
    out = pred.iloc[row_at].reset_index(drop=True)
    out.insert(0, "lg_code6", codes[code_at])
    return out[columns]


@dataclass(frozen=True)
class ReachTables:
    """:func:`within_reach` of every scored municipality of one year (同条件 comparison, crosswalk given), as
    national tables that start with ``lg_code6``; :class:`ReachByCode` reads one municipality's back."""

    year: str
    threshold: float
    n_comparison: dict[str, int]
    items: pd.DataFrame
    persistent_zero: pd.DataFrame
    bands: pd.DataFrame


def within_reach_every(
    panel: pd.DataFrame,
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    year: str,
    crosswalk: pd.DataFrame,
    threshold: float = 0.30,
) -> ReachTables:
    """:func:`within_reach` (default comparison group, ``crosswalk`` given) for every municipality at once: one
    vectorised pass costs what ~25 single calls cost."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    d = _reach_frame(panel, item_points, catalogue, year)
    n = d.drop_duplicates("lg_code6")
    zeros = persistent_zeros_table(item_points, crosswalk, year)
    if len(zeros):
        info = d[["lg_code6", "item_id", "recoverable", "peer_share", "item_label", "max_points"]]
        zeros = zeros.merge(info, on=["lg_code6", "item_id"], how="left", validate="1:1")
        zeros = zeros.sort_values(
            ["lg_code6", "recoverable", "item_id"], ascending=[True, False, True], kind="stable"
        ).reset_index(drop=True)
    return ReachTables(
        year=year,
        threshold=threshold,
        n_comparison=dict(zip(n["lg_code6"], n["n_peers"].tolist(), strict=True)),
        items=_reach_items(d, threshold).drop(columns="fiscal_year"),
        persistent_zero=zeros,
        bands=band_table(d, by_code=True),
    )


class ReachByCode(Mapping[str, WithinReach]):
    """``code → within_reach(...)`` read from :class:`ReachTables`; equal to the single call, table for table."""

    def __init__(self, tables: ReachTables) -> None:
        self._tables = tables
        self._items = RowsByCode(tables.items, drop_code=True)
        self._zeros = RowsByCode(tables.persistent_zero, drop_code=True)
        self._bands = RowsByCode(tables.bands, drop_code=True)

    def __getitem__(self, code: str) -> WithinReach:
        t = self._tables
        n = t.n_comparison[code]
        return WithinReach(
            lg_code6=code,
            year=t.year,
            comparison=SAME_CONDITIONS_JA,
            n_comparison=n,
            threshold=t.threshold,
            items=self._items.get_or_empty(code),
            persistent_zero=self._zeros[code] if code in self._zeros else no_persistent_zeros(),
            bands=self._bands.get_or_empty(code),
        )

    def __contains__(self, code: object) -> bool:
        return code in self._tables.n_comparison

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables.n_comparison)

    def __len__(self) -> int:
        return len(self._tables.n_comparison)


__all__ = [
    "ReachByCode",
    "ReachTables",
    "WithinReach",
    "band_table",
    "comparison_group",
    "item_bands",
    "no_persistent_zeros",
    "persistent_zeros",
    "persistent_zeros_table",
    "recoverable_points",
    "within_reach",
    "within_reach_every",
    "within_reach_table",
]
