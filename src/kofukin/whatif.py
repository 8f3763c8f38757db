"""What-if ranks: where a municipality would rank with more points, or with a chosen set of items gained.

Everyone else is held at their actual score, so the answer is the competition rank (1, 2, 2, 4) the new
score would take among the others — nationally, in the prefecture and among 同条件 peers, for each grant
total and the grand total. Items are gained *through the scoring rules* (:mod:`kofukin.scoring`): a gained
item is set to its maximum (with the lower bands of a rank-banded measure, see :mod:`kofukin.reach`), and the
indicator's points are recomputed under 択一 and the cap, so an item that cannot count adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from kofukin.profile import rank_label
from kofukin.reach import item_bands
from kofukin.scoring import GRANTS, TARGET_KEYS, TARGET_LABEL_JA, TARGET_MAX, indicator_points
from kofukin.summary import (
    PEER_KEYS,
    RANK_KEYS,
    dense_item_points,
    item_labels,
    scored_rows,
    targets_from_parts,
)


@dataclass(frozen=True)
class WhatIf:
    """Ranks before and after.

    Attributes
    ----------
    ranks
        One row per grant total and the grand total: score, new_score, change, and for each of national /
        pref / peer: rank, new rank, N, and labels 「x/N」.
    target_changes
        The change of each of the 26 columns (from the items gained and the extra points).
    indicators
        Per indicator touched by the items: points before and after the rules, and the items set.
    """

    lg_code6: str
    year: str
    ranks: pd.DataFrame
    target_changes: pd.Series
    indicators: pd.DataFrame | None = None


INDICATOR = ["grant", "goal", "group", "indicator_no"]


def _with_bands(items: pd.DataFrame, bands: pd.DataFrame) -> pd.DataFrame:
    """``items`` with each item's rank-banded ``measure`` and ``band`` (:func:`kofukin.reach.item_bands`); an
    item that is not banded gets band 0 and measure ""."""
    d = items.merge(bands[["item_id", "measure", "band"]], on="item_id", how="left", validate="m:1")
    d["band"] = d["band"].fillna(0).astype("int64")
    d["measure"] = d["measure"].fillna("")
    return d


def with_lower_bands(d: pd.DataFrame, asked: pd.Series, by: list[str]) -> pd.Series:
    """``asked`` and, within each banded measure (``by`` + ``measure``) where an item is asked, every band up to
    the highest one asked: reaching 上位3割 means being in the 上位5割 and 7割 too.

    ``d`` is a :func:`_with_bands` table and ``asked`` a boolean Series on its index."""
    measure = [*by, "measure"]
    banded = d["band"] > 0
    top = d[asked & banded].groupby(measure, sort=False)["band"].max().rename("top_band")
    return asked | (banded & (d["band"] <= d.join(top, on=measure)["top_band"]))


def gain_items(
    dense_one: pd.DataFrame,
    item_ids: Iterable[str],
    bands: pd.DataFrame | None = None,
    cumulative_bands: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """One municipality's dense item table with ``item_ids`` set to their maximum.

    With ``cumulative_bands`` a banded item brings the lower bands of its measure with it (reaching 上位3割
    means being in the 上位5割 and 7割 too). Returns the new table and every item id actually set.
    """
    ids = list(dict.fromkeys(item_ids))
    unknown = set(ids) - set(dense_one["item_id"])
    if unknown:
        raise ValueError(f"items not in this year's catalogue: {sorted(unknown)[:5]}")
    out = dense_one.copy()
    chosen = set(ids)
    if cumulative_bands and bands is not None:
        b = _with_bands(out[["item_id", *INDICATOR]], bands)
        chosen |= set(b.loc[with_lower_bands(b, b["item_id"].isin(chosen), INDICATOR), "item_id"])
    mask = out["item_id"].isin(chosen)
    out.loc[mask, "points"] = out.loc[mask, "max_points"]
    return out, sorted(chosen)


def what_if_rank(
    panel: pd.DataFrame,
    year: str,
    lg_code6: str,
    extra_points: int | Mapping[str, int] | None = None,
    items: Iterable[str] | None = None,
    item_points: pd.DataFrame | None = None,
    catalogue: pd.DataFrame | None = None,
) -> WhatIf:
    """National, prefecture and 同条件 ranks of ``lg_code6`` with more points, others held fixed.

    Parameters
    ----------
    panel, year, lg_code6
        The panel, the fiscal year and the municipality.
    extra_points
        ``{"suishin": x, "shien": y}`` adds to the grant totals (and so to the grand total). A bare int adds to
        the grand total only — which grant the points would come from is unknown, so the grant ranks are left
        as they are.
    items
        Item ids (of ``year``) the municipality would gain; needs ``item_points`` and ``catalogue``. Their
        effect is computed through the scoring rules.

    A score above the maximum (400 per grant, 800 in total) raises ValueError.
    """
    rows = scored_rows(panel, year)
    me = rows[rows["lg_code6"] == lg_code6]
    if me.empty:
        raise ValueError(f"{lg_code6} has no scores in {year}")
    me = me.iloc[0]
    delta = pd.Series(0, index=list(TARGET_KEYS), dtype="int64")
    indicators = None
    if items is not None:
        if item_points is None or catalogue is None:
            raise ValueError("gaining items needs item_points and catalogue")
        item_list = list(items)
        mine = item_points[(item_points["lg_code6"] == lg_code6) & (item_points["fiscal_year"] == year)]
        dense = dense_item_points(mine, catalogue, year, [lg_code6])
        after, set_ids = gain_items(dense, item_list, item_bands(catalogue))
        indicators = _indicator_changes(dense, after, catalogue, item_list, set_ids)
        delta += targets_from_parts(indicators, "gain").astype("int64")
    if extra_points is not None:
        if isinstance(extra_points, Mapping):
            bad = set(extra_points) - set(GRANTS)
            if bad:
                raise ValueError(f"extra_points keys must be suishin/shien, got {sorted(bad)}")
            for grant, x in extra_points.items():
                delta[f"{grant}_total"] += int(x)
                delta["grand_total"] += int(x)
        else:
            delta["grand_total"] += int(extra_points)

    others = (rows["lg_code6"] != lg_code6).to_numpy()
    scopes = {
        "national": others,
        "pref": others & (rows["pref_code"] == me["pref_code"]).to_numpy(),
        "peer": others
        & (rows[PEER_KEYS[0]] == me[PEER_KEYS[0]]).to_numpy()
        & (rows[PEER_KEYS[1]].astype(bool) == bool(me[PEER_KEYS[1]])).to_numpy(),
    }
    recs = []
    for k in RANK_KEYS:
        score = int(me[k])
        new = score + int(delta[k])
        if not 0 <= new <= TARGET_MAX[k]:
            raise ValueError(f"{TARGET_LABEL_JA[k]}: {new} is outside 0..{TARGET_MAX[k]}")
        rec = {
            "key": k,
            "label_ja": TARGET_LABEL_JA[k],
            "score": score,
            "new_score": new,
            "change": new - score,
        }
        values = rows[k].to_numpy()
        for scope, mask in scopes.items():
            v = values[mask]
            r0 = 1 + int((v > score).sum())
            r1 = 1 + int((v > new).sum())
            n = int(mask.sum()) + 1
            rec.update(
                {
                    f"rank_{scope}": r0,
                    f"new_rank_{scope}": r1,
                    f"n_{scope}": n,
                    f"rank_{scope}_label": rank_label(r0, n),
                    f"new_rank_{scope}_label": rank_label(r1, n),
                }
            )
        recs.append(rec)
    return WhatIf(
        lg_code6=lg_code6, year=year, ranks=pd.DataFrame(recs), target_changes=delta, indicators=indicators
    )


def grant_changes(
    dense: pd.DataFrame, chosen: pd.DataFrame, catalogue: pd.DataFrame, bands: pd.DataFrame | None = None
) -> pd.DataFrame:
    """What :func:`what_if_rank` with ``items`` adds to the grant totals, for many municipalities in one pass.

    ``dense`` is :func:`kofukin.summary.dense_item_points` output of one year, ``chosen`` the items each
    municipality would gain (``lg_code6, item_id``). As in :func:`gain_items`, a banded item brings the lower
    bands of its measure, and every indicator touched is recomputed under the scoring rules. Returns one row
    per municipality of ``chosen``: ``lg_code6, suishin_total, shien_total, grand_total`` (the changes).
    """
    bands = item_bands(catalogue) if bands is None else bands
    keys = ["lg_code6", *INDICATOR]
    d = _with_bands(dense[["fiscal_year", *keys, "item_id", "points", "max_points"]], bands)
    pairs = pd.MultiIndex.from_frame(d[["lg_code6", "item_id"]])
    asked = pairs.isin(pd.MultiIndex.from_frame(chosen[["lg_code6", "item_id"]]))
    unknown = len(chosen) - int(asked.sum())
    if unknown:
        raise ValueError(f"{unknown} chosen item(s) are not in the year's catalogue for their municipality")
    d["set"] = with_lower_bands(d, pd.Series(asked, index=d.index), keys)
    touched = d.loc[d["set"], keys].drop_duplicates()
    t = d.merge(touched, on=keys)
    cols = ["fiscal_year", "lg_code6", "item_id", "points"]
    after = t.assign(points=t["points"].where(~t["set"], t["max_points"]))
    # One pass of the scoring rules over both states, told apart by the fiscal_year column.
    both = pd.concat([t[cols].assign(fiscal_year="before"), after[cols].assign(fiscal_year="after")])
    ind = indicator_points(both, catalogue)
    sign = ind["fiscal_year"].map({"before": -1, "after": 1})
    change = (ind["points"] * sign).groupby([ind["lg_code6"], ind["grant"]]).sum().unstack("grant")
    out = pd.DataFrame(index=pd.Index(chosen["lg_code6"].unique(), name="lg_code6"))
    for grant in GRANTS:
        values = change[grant] if grant in change.columns else pd.Series(dtype="int64")
        out[f"{grant}_total"] = values.reindex(out.index).fillna(0).astype("int64")
    out["grand_total"] = out[[f"{g}_total" for g in GRANTS]].sum(axis=1)
    return out.reset_index()


def _indicator_changes(
    before: pd.DataFrame, after: pd.DataFrame, catalogue: pd.DataFrame, asked: list[str], set_ids: list[str]
) -> pd.DataFrame:
    """Points before and after of every indicator holding a gained item (only those indicators change)."""
    keys = ["grant", "goal", "group", "indicator_no"]
    cols = ["fiscal_year", "lg_code6", "item_id", "points"]
    touched = before.loc[before["item_id"].isin(set_ids), keys].drop_duplicates()
    # One pass of the scoring rules over both states (told apart by a "side" code) costs half of two.
    both = pd.concat(
        [
            before.merge(touched, on=keys)[cols].assign(lg_code6="before"),
            after.merge(touched, on=keys)[cols].assign(lg_code6="after"),
        ]
    )
    ind = indicator_points(both, catalogue)
    code = before["lg_code6"].iloc[0]
    b, a = (ind[ind["lg_code6"] == side].assign(lg_code6=code) for side in ("before", "after"))
    t = b.merge(a, on=["fiscal_year", "lg_code6", *keys], suffixes=("_before", "_after"))
    t["gain"] = t["points_after"] - t["points_before"]
    chosen = before[before["item_id"].isin(set_ids)]
    labels = item_labels(catalogue)
    sets = chosen.groupby(keys)["item_id"].agg(lambda s: " ".join(sorted(s))).rename("items_set")
    names = chosen.groupby(keys)["indicator_name_ja"].first()
    t = t.join(sets, on=keys).join(names, on=keys)
    asked_set = set(asked)
    t["items_asked"] = t["items_set"].map(lambda s: " ".join(i for i in s.split() if i in asked_set))
    t["labels"] = t["items_set"].map(lambda s: "／".join(labels[i] for i in s.split()))
    return t[
        [
            *keys,
            "indicator_name_ja",
            "items_asked",
            "items_set",
            "points_before",
            "points_after",
            "gain",
            "labels",
        ]
    ].reset_index(drop=True)


__all__ = ["WhatIf", "gain_items", "grant_changes", "what_if_rank"]
