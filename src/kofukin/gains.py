"""Which items a municipality gained and lost between two years, matched through the item crosswalk.

Items change between years — renumbered, rescored, split, merged, dropped, new — so a comparison by item id
or by position would pair the wrong questions. Items are matched only through the crosswalk
(``data/reference/item_crosswalk.csv``, built by :mod:`kofukin.crosswalk`; the functions take it as an
argument), and only pairs the crosswalk marks comparable (relation same / renumbered / rescored with
``comparable == true``) are classed:

* **kept** (維持) — points in both years (the change may be non-zero: a rescored item or another band);
* **gained** (獲得) — 0 in the first year, points in the second;
* **lost** (喪失) — points in the first year, 0 in the second;
* **never** (未獲得) — 0 in both.

Everything else — new, dropped, split, merged items, and catalogue items the crosswalk does not mention — is
listed separately as not comparable, with its points in the year where it exists; it is never matched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pandas as pd

from kofukin.bycode import RowsByCode, rows_where
from kofukin.memo import by_identity
from kofukin.scoring import GOAL_JA, GRANT_SHORT_JA, GRANTS, subtotals_from_items
from kofukin.summary import dense_item_points, item_labels

COMPARABLE_RELATIONS = frozenset({"same", "renumbered", "rescored"})
NON_COMPARABLE_RELATIONS = frozenset({"split", "merged", "dropped", "new"})
UNMAPPED = "unmapped"
STATUS_JA = {"kept": "維持", "gained": "獲得", "lost": "喪失", "never": "未獲得"}
RELATION_JA = {
    "same": "同一",
    "renumbered": "番号変更",
    "rescored": "配点変更",
    "split": "分割",
    "merged": "統合",
    "dropped": "廃止",
    "new": "新設",
    UNMAPPED: "対応表になし",
}
CROSSWALK_COLUMNS = ["from_year", "to_year", "from_item_id", "to_item_id", "relation", "comparable", "note"]


@by_identity
def normalise_crosswalk(crosswalk: pd.DataFrame) -> pd.DataFrame:
    """The crosswalk with ``comparable`` as bool and empty ids as ``""``; inconsistent rows raise ValueError.

    A row marked comparable must be same / renumbered / rescored and name both items: a split or merged
    item is not comparable whatever the flag says.
    """
    missing = set(CROSSWALK_COLUMNS) - {"note"} - set(crosswalk.columns)
    if missing:
        raise ValueError(f"crosswalk columns missing: {sorted(missing)}")
    cw = crosswalk.copy()
    if "note" not in cw.columns:
        cw["note"] = ""
    for c in ("from_item_id", "to_item_id", "note"):
        cw[c] = cw[c].fillna("").astype(str)
    comp = cw["comparable"]
    if comp.dtype != bool:
        comp = (
            comp.astype(str)
            .str.strip()
            .str.lower()
            .map({"true": True, "false": False, "1": True, "0": False})
        )
        if comp.isna().any():
            raise ValueError("crosswalk 'comparable' must be true/false")
    cw["comparable"] = comp.astype(bool)
    bad_rel = set(cw["relation"]) - COMPARABLE_RELATIONS - NON_COMPARABLE_RELATIONS
    if bad_rel:
        raise ValueError(f"unknown crosswalk relations: {sorted(bad_rel)}")
    wrong = cw["comparable"] & (
        ~cw["relation"].isin(COMPARABLE_RELATIONS) | (cw["from_item_id"] == "") | (cw["to_item_id"] == "")
    )
    if wrong.any():
        r = cw[wrong].iloc[0]
        raise ValueError(
            f"crosswalk row marked comparable but {r['relation']}: {r['from_item_id']} -> {r['to_item_id']}"
        )
    return cw


@by_identity
def crosswalk_pairs(crosswalk: pd.DataFrame, from_year: str, to_year: str) -> pd.DataFrame:
    """The crosswalk rows for one pair of years (normalised); none raises ValueError."""
    cw = normalise_crosswalk(crosswalk)
    cw = cw[(cw["from_year"] == from_year) & (cw["to_year"] == to_year)]
    if cw.empty:
        raise ValueError(f"the crosswalk has no {from_year}→{to_year} pairs")
    comp = cw[cw["comparable"]]
    for col in ("from_item_id", "to_item_id"):
        dup = comp[col].duplicated(keep=False)
        if dup.any():
            raise ValueError(
                f"comparable crosswalk pairs must be one-to-one; {col} repeats: "
                f"{sorted(set(comp.loc[dup, col]))[:3]}"
            )
    return cw.reset_index(drop=True)


@dataclass(frozen=True)
class GainsLosses:
    """One municipality's item changes from ``from_year`` to ``to_year``.

    Attributes
    ----------
    items
        Comparable pairs: from/to item ids, relation, ``status`` (kept / gained / lost / never) and
        ``status_ja``, points in each year and the change, the to-year item's grant/goal/indicator and label.
    not_comparable
        Items that cannot be compared (new, dropped, split, merged, unmapped) with their points where they
        exist; ``side`` says whether the row is about the from-year or the to-year item.
    by_goal
        Net effect per grant and goal: points kept-changed, gained, lost, from not-comparable items, their
        sum (``items_net``), the actual change of the goal total after the scoring rules, and the
        difference (``rule_effect``: 択一 and the cap can make item changes count for less).
    """

    lg_code6: str
    from_year: str
    to_year: str
    items: pd.DataFrame
    not_comparable: pd.DataFrame
    by_goal: pd.DataFrame

    def of_status(self, status: str) -> pd.DataFrame:
        return self.items[self.items["status"] == status].reset_index(drop=True)


def _status(points_from: pd.Series, points_to: pd.Series) -> pd.Series:
    out = pd.Series("never", index=points_from.index, dtype=object)
    out[(points_from > 0) & (points_to > 0)] = "kept"
    out[(points_from == 0) & (points_to > 0)] = "gained"
    out[(points_from > 0) & (points_to == 0)] = "lost"
    return out


def gains_losses_table(
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    crosswalk: pd.DataFrame,
    from_year: str,
    to_year: str,
    lg_codes: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Comparable and not-comparable item tables for every municipality scored in both years (vectorised).

    Returns ``(items, not_comparable)`` as described in :class:`GainsLosses`, with ``lg_code6`` columns.
    """
    cw = crosswalk_pairs(crosswalk, from_year, to_year)
    cat_from = catalogue[catalogue["fiscal_year"] == from_year]
    cat_to = catalogue[catalogue["fiscal_year"] == to_year]
    unknown = (set(cw["from_item_id"]) - {""} - set(cat_from["item_id"])) | (
        set(cw["to_item_id"]) - {""} - set(cat_to["item_id"])
    )
    if unknown:
        raise KeyError(f"crosswalk items not in the catalogue: {sorted(unknown)[:5]}")
    both = set(item_points.loc[item_points["fiscal_year"] == from_year, "lg_code6"].unique()) & set(
        item_points.loc[item_points["fiscal_year"] == to_year, "lg_code6"].unique()
    )
    codes = sorted(both if lg_codes is None else both & set(lg_codes))
    d_from = dense_item_points(item_points, catalogue, from_year, codes, meta=False)[
        ["lg_code6", "item_id", "points"]
    ]
    d_to = dense_item_points(item_points, catalogue, to_year, codes, meta=False)[
        ["lg_code6", "item_id", "points"]
    ]
    labels = item_labels(catalogue)
    meta = catalogue.set_index("item_id")[["grant", "goal", "group", "indicator_no", "max_points"]]

    comp = cw[cw["comparable"]][["from_item_id", "to_item_id", "relation", "note"]]
    items = comp.merge(
        d_from.rename(columns={"item_id": "from_item_id", "points": "points_from"}), on="from_item_id"
    ).merge(
        d_to.rename(columns={"item_id": "to_item_id", "points": "points_to"}),
        on=["lg_code6", "to_item_id"],
    )
    items["change"] = items["points_to"] - items["points_from"]
    items["status"] = _status(items["points_from"], items["points_to"])
    items["status_ja"] = items["status"].map(STATUS_JA)
    items["relation_ja"] = items["relation"].map(RELATION_JA)
    items = items.join(meta, on="to_item_id").rename(columns={"max_points": "max_to"})
    items["max_from"] = items["from_item_id"].map(meta["max_points"])
    items["item_label"] = items["to_item_id"].map(labels)
    items["from_label"] = items["from_item_id"].map(labels)
    items.insert(1, "from_year", from_year)
    items.insert(2, "to_year", to_year)
    items = (
        items[
            [
                "lg_code6",
                "from_year",
                "to_year",
                "grant",
                "goal",
                "group",
                "indicator_no",
                "from_item_id",
                "to_item_id",
                "relation",
                "relation_ja",
                "status",
                "status_ja",
                "points_from",
                "points_to",
                "change",
                "max_from",
                "max_to",
                "item_label",
                "from_label",
                "note",
            ]
        ]
        .sort_values(["lg_code6", "to_item_id"], kind="stable")
        .reset_index(drop=True)
    )

    # Not comparable: crosswalk rows not marked comparable, and catalogue items the crosswalk never names.
    matched_from = set(comp["from_item_id"])
    matched_to = set(comp["to_item_id"])
    nc = cw[~cw["comparable"]][["from_item_id", "to_item_id", "relation", "note"]]
    unm_from = sorted(set(cat_from["item_id"]) - set(cw["from_item_id"]))
    unm_to = sorted(set(cat_to["item_id"]) - set(cw["to_item_id"]))
    side_rows = [
        pd.DataFrame(
            {
                "side": "from",
                "item_id": nc["from_item_id"],
                "relation": nc["relation"],
                "note": nc["note"],
                "paired_item_id": nc["to_item_id"],
            }
        ),
        pd.DataFrame(
            {
                "side": "to",
                "item_id": nc["to_item_id"],
                "relation": nc["relation"],
                "note": nc["note"],
                "paired_item_id": nc["from_item_id"],
            }
        ),
        pd.DataFrame(
            {"side": "from", "item_id": unm_from, "relation": UNMAPPED, "note": "", "paired_item_id": ""}
        ),
        pd.DataFrame(
            {"side": "to", "item_id": unm_to, "relation": UNMAPPED, "note": "", "paired_item_id": ""}
        ),
    ]
    sides = pd.concat(side_rows, ignore_index=True)
    sides = sides[sides["item_id"] != ""]
    # An item that also sits in a comparable pair is compared there; it is not counted twice.
    sides = sides[
        ~(
            ((sides["side"] == "from") & sides["item_id"].isin(matched_from))
            | ((sides["side"] == "to") & sides["item_id"].isin(matched_to))
        )
    ]
    # One row per item and side (a split source appears once even if it has several targets).
    sides = (
        sides.groupby(["side", "item_id"], sort=False)
        .agg(
            relation=("relation", "first"),
            paired_item_id=("paired_item_id", lambda s: " ".join(x for x in s if x)),
            note=("note", "first"),
        )
        .reset_index()
    )
    pts = pd.concat([d_from.assign(side="from"), d_to.assign(side="to")], ignore_index=True)
    not_comp = sides.merge(pts, on=["side", "item_id"], how="inner")
    not_comp["fiscal_year"] = not_comp["side"].map({"from": from_year, "to": to_year})
    not_comp["relation_ja"] = not_comp["relation"].map(RELATION_JA)
    not_comp = not_comp.join(meta, on="item_id")
    not_comp["item_label"] = not_comp["item_id"].map(labels)
    not_comp["signed_points"] = not_comp["points"].where(not_comp["side"] == "to", -not_comp["points"])
    not_comp = (
        not_comp[
            [
                "lg_code6",
                "side",
                "fiscal_year",
                "grant",
                "goal",
                "group",
                "indicator_no",
                "item_id",
                "relation",
                "relation_ja",
                "paired_item_id",
                "points",
                "signed_points",
                "max_points",
                "item_label",
                "note",
            ]
        ]
        .sort_values(["lg_code6", "side", "item_id"], kind="stable")
        .reset_index(drop=True)
    )
    return items, not_comp


def goal_effects(
    items: pd.DataFrame,
    not_comparable: pd.DataFrame,
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    from_year: str,
    to_year: str,
    subtotals: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Net effect per municipality, grant and goal (see :class:`GainsLosses`.by_goal).

    Comparable pairs count under the to-year item's goal; not-comparable items under their own goal (a
    dropped item's points as a loss, a new item's as a gain). The actual change of each goal total comes
    from ``subtotals`` (``fiscal_year, lg_code6`` and the goal columns, e.g. the store's panel) when given,
    else it is recomputed from the items under the scoring rules.
    """
    codes = sorted(set(items["lg_code6"].unique()) | set(not_comparable["lg_code6"].unique()))
    keys = ["lg_code6", "grant", "goal"]
    parts = {
        "kept_change": items[items["status"] == "kept"].groupby(keys)["change"].sum(),
        "gained_points": items[items["status"] == "gained"].groupby(keys)["change"].sum(),
        "lost_points": items[items["status"] == "lost"].groupby(keys)["change"].sum(),
        "not_comparable_net": not_comparable.groupby(keys)["signed_points"].sum(),
    }
    grid = pd.MultiIndex.from_product([codes, list(GRANTS), ["I", "II", "III", "IV"]], names=keys)
    out = pd.DataFrame(index=grid)
    for name, s in parts.items():
        out[name] = s.reindex(grid).fillna(0).astype("int64")
    out["items_net"] = out[list(parts)].sum(axis=1)
    actual = {}
    for year in (from_year, to_year):
        if subtotals is not None:
            sub = subtotals[subtotals["fiscal_year"] == year].set_index("lg_code6").reindex(codes)
        else:
            d = dense_item_points(item_points, catalogue, year, codes, meta=False)
            sub = subtotals_from_items(d[["fiscal_year", "lg_code6", "item_id", "points"]], catalogue)
            sub = sub.droplevel("fiscal_year")
        goal_cols = [(g, goal) for g in GRANTS for goal in ("I", "II", "III", "IV")]
        wide = sub[[f"{g}_{goal}" for g, goal in goal_cols]]
        wide.columns = pd.MultiIndex.from_tuples(goal_cols, names=["grant", "goal"])
        actual[year] = wide.stack(["grant", "goal"])
    out["actual_change"] = (actual[to_year] - actual[from_year]).reindex(grid).astype("int64")
    out["rule_effect"] = out["actual_change"] - out["items_net"]
    out = out.reset_index()
    out["label_ja"] = out["grant"].map(GRANT_SHORT_JA) + " " + out["goal"].map(GOAL_JA)
    out.insert(1, "from_year", from_year)
    out.insert(2, "to_year", to_year)
    return out


def gains_losses(
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    crosswalk: pd.DataFrame,
    lg_code6: str,
    from_year: str,
    to_year: str,
    subtotals: pd.DataFrame | None = None,
) -> GainsLosses:
    """Items of ``lg_code6`` kept, gained, lost or never scored from ``from_year`` to ``to_year``.

    Parameters
    ----------
    item_points
        The store's long item table (``fiscal_year, lg_code6, item_id, points``; zeros may be absent).
    catalogue
        :func:`kofukin.reference.load_catalogue`.
    crosswalk
        Item crosswalk (``from_year, to_year, from_item_id, to_item_id, relation, comparable, note``) with
        rows for this pair of years (R6→R7, R7→R8 or R6→R8).
    lg_code6, from_year, to_year
        The municipality and the two years; a municipality without item points in either year raises
        ValueError.
    subtotals
        The goal totals as published (e.g. the store's panel), for the actual change per goal; without them
        the totals are recomputed from the items under the scoring rules (see :func:`goal_effects`).
    """
    mine = rows_where(item_points, "lg_code6", lg_code6)  # one pass over the big table
    for y in (from_year, to_year):
        if not (mine["fiscal_year"] == y).any():
            raise ValueError(f"{lg_code6} has no item points in {y}")
    items, nc = gains_losses_table(mine, catalogue, crosswalk, from_year, to_year, [lg_code6])
    by_goal = goal_effects(items, nc, mine, catalogue, from_year, to_year, subtotals)
    return GainsLosses(
        lg_code6=lg_code6,
        from_year=from_year,
        to_year=to_year,
        items=items.drop(columns="lg_code6"),
        not_comparable=nc.drop(columns="lg_code6"),
        by_goal=by_goal.drop(columns="lg_code6"),
    )


def gains_tables(
    item_points: pd.DataFrame,
    catalogue: pd.DataFrame,
    crosswalk: pd.DataFrame,
    from_year: str,
    to_year: str,
    subtotals: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The national tables behind :class:`GainsByCode`: comparable items, not-comparable items and the
    effect per goal, every municipality scored in both years, each row keyed by ``lg_code6``."""
    both = item_points[item_points["fiscal_year"].isin([from_year, to_year])]
    items, nc = gains_losses_table(both, catalogue, crosswalk, from_year, to_year)
    by_goal = goal_effects(items, nc, both, catalogue, from_year, to_year, subtotals)
    return items, nc, by_goal


class GainsByCode(Mapping[str, GainsLosses]):
    """``code → GainsLosses`` over the national tables of :func:`gains_tables`, each built when asked.

    Building all 1,741 at once cost more than computing the tables; a report needs one. Each value equals
    ``gains_losses(item_points, …, code, …)`` (``tests/test_gains.py``)."""

    def __init__(
        self,
        items: pd.DataFrame,
        not_comparable: pd.DataFrame,
        by_goal: pd.DataFrame,
        from_year: str,
        to_year: str,
    ) -> None:
        self.from_year, self.to_year = from_year, to_year
        self._items = RowsByCode(items, drop_code=True)
        self._nc = RowsByCode(not_comparable, drop_code=True)
        self._by_goal = RowsByCode(by_goal, drop_code=True)

    def __getitem__(self, code: str) -> GainsLosses:
        return GainsLosses(
            lg_code6=code,
            from_year=self.from_year,
            to_year=self.to_year,
            items=self._items[code],
            not_comparable=self._nc.get_or_empty(code),
            by_goal=self._by_goal[code],
        )

    def __contains__(self, code: object) -> bool:
        return code in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


__all__ = [
    "COMPARABLE_RELATIONS",
    "NON_COMPARABLE_RELATIONS",
    "STATUS_JA",
    "GainsByCode",
    "GainsLosses",
    "crosswalk_pairs",
    "gains_losses",
    "gains_losses_table",
    "gains_tables",
    "goal_effects",
    "normalise_crosswalk",
]
