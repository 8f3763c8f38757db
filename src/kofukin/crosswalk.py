"""Item crosswalk across fiscal years (R6 ↔ R7 ↔ R8): which item of one year asks the same question later.

MHLW revises the indicator sheet every year. Most items carry over unchanged, but some indicators are
renumbered, re-branched or replaced, so an ``item_id`` (``R6-shien-II-taisei-3-ア``) cannot be compared with
the same-looking id of another year without checking. This module derives the crosswalk from the catalogue
(``data/reference/indicators.csv``) and writes ``data/reference/item_crosswalk.csv``. The CSV is committed so
that a reader sees every decision in one file; ``python -m kofukin.crosswalk`` regenerates it, and a test
checks that the committed file equals a fresh build.

How items are matched
---------------------
1. **Indicators** are matched on ``(grant, goal, group, indicator_name_ja)``. Names are identical across
   years where an indicator persists (verified for the whole catalogue), so no fuzzy matching is needed. An
   indicator found under another number is *renumbered*; one without a namesake is *dropped* / *new*.
2. **Items** of a matched indicator are matched on ``(branch, sub_branch)``. If the indicator's list of
   branches is identical in both years, every item is a 1:1 match: *same*, *renumbered* (indicator number
   changed) or *rescored* (same question, other ``max_points`` or scoring rule). Only these are comparable.
3. If the branch list differs, the change is **structural** and needs a reviewed entry in
   :data:`MANUAL_DECISIONS`; the build fails otherwise, so a new catalogue cannot be classified silently.

   * ``level="indicator"``: the branches were reorganised (another number of branches, or ア①..④
     against ア..エ). Every old item is linked to every new item of the indicator, relation *split* (more
     items than before) or *merged* (fewer): comparable at indicator level only.
   * ``level="branch"``: the branch letters are the same and only some branches changed their
     sub-branches (推進 Ⅱ(ⅰ)2: ア①②③ became one item ア). The changed branches are *split* /
     *merged*; the untouched branches stay 1:1 and comparable.

The 支援 copy of goal Ⅳ (``outcome_duplicate``) is matched like every other item, so it maps exactly as its
推進 twin. Each pair (R6→R7, R7→R8, R6→R8) is derived directly from the two catalogues, not by composing
the other two; a test checks that both ways agree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kofukin.paths import REFERENCE_DIR
from kofukin.reference import load_catalogue, load_crosswalk
from kofukin.scoring import FISCAL_YEARS, GOALS, GRANTS, GROUPS

PAIRS: tuple[tuple[str, str], ...] = (("R6", "R7"), ("R7", "R8"), ("R6", "R8"))
RELATIONS: tuple[str, ...] = ("same", "renumbered", "rescored", "split", "merged", "dropped", "new")
COMPARABLE_RELATIONS: frozenset[str] = frozenset({"same", "renumbered", "rescored"})
COLUMNS: tuple[str, ...] = (
    "from_year",
    "to_year",
    "from_item_id",
    "to_item_id",
    "relation",
    "comparable",
    "note",
)
CROSSWALK_FILE = "item_crosswalk.csv"

# Seen from the later year, a relation reads the other way round.
_REVERSED = {
    "same": "same",
    "renumbered": "renumbered",
    "rescored": "rescored",
    "split": "merged",
    "merged": "split",
    "dropped": "new",
    "new": "dropped",
}

_INDICATOR_KEY = ["grant", "goal", "group", "indicator_name_ja"]


class UnclassifiedChange(ValueError):
    """A structural change without an entry in :data:`MANUAL_DECISIONS`, or an entry that matches nothing."""


@dataclass(frozen=True)
class StructureDecision:
    """A reviewed decision about one indicator whose branch structure changed.

    ``changed_in`` is the first year with the new structure; the decision applies to every pair that spans it
    (for ``changed_in="R7"``: R6→R7 and R6→R8). ``why`` is the evidence, written into the CSV's note.
    """

    grant: str
    goal: str
    group: str
    indicator_name_ja: str
    changed_in: str
    level: str  # "indicator" or "branch"
    why: str

    def covers(self, key: tuple[str, str, str, str], from_year: str, to_year: str) -> bool:
        return (self.grant, self.goal, self.group, self.indicator_name_ja) == key and _spans(
            from_year, to_year, self.changed_in
        )


# Every structural change in indicators.csv (R6–R8), reviewed one by one against the catalogue: branch
# letters, points and national shares (該当率). Shares are circumstantial evidence only (the question texts
# of the indicator sheets are not in our sources), so the benefit of the doubt goes to "not comparable".
# The full reasoning is in data/reference/README.md; ``why`` is the short form written into the CSV's note.
MANUAL_DECISIONS: tuple[StructureDecision, ...] = (
    # R6 ア①②③ (2+2+2) → R7 ア (6). R7 ア's share (95.2%) is far above R6 ア③'s (76.3%), so the new
    # ア is not the three old questions combined. イ①–③ and ウ–オ keep letters, points and share trend.
    StructureDecision(
        grant="suishin",
        goal="II",
        group="taisei",
        indicator_name_ja="給付費適正化事業の取組状況",
        changed_in="R7",
        level="branch",
        why="R7 ア's share (95.2%) is far above R6 ア③'s (76.3%): not the three old questions "
        "combined; the other branches are unchanged and stay comparable",
    ),
    # ア(1) イ(2) ウ(2) エ(2) → ア(1) イ(2) ウ(1) エ(1) オ(2). Shares hint at R6 ウ → R7 ウ+エ and
    # R6 エ → R7 オ, which cannot be confirmed without the question texts.
    StructureDecision(
        grant="shien",
        goal="I",
        group="taisei",
        indicator_name_ja="通いの場参加者の健康状態の把握・分析",
        changed_in="R7",
        level="indicator",
        why="perhaps R6 ウ became R7 ウ+エ and R6 エ became オ; the question texts are not "
        "available to confirm it",
    ),
    # ア(1) イ(2) ウ(2) エ(2) → ア(1) イ(1) ウ(1) エ(1) オ(1) カ(2).
    StructureDecision(
        grant="shien",
        goal="I",
        group="taisei",
        indicator_name_ja="多様なサービスの活用推進",
        changed_in="R7",
        level="indicator",
        why="only ア keeps its points; the 2-point questions were divided up",
    ),
    # ア(1) イ(2) ウ(2) エ(2) オ(2) → ア(1) イ(1) ウ(1) エ(2) オ(2) カ(2).
    StructureDecision(
        grant="shien",
        goal="I",
        group="taisei",
        indicator_name_ja="介護予防・生活支援の体制整備",
        changed_in="R8",
        level="indicator",
        why="イ and ウ lost a point each and カ was added: the questions were redistributed",
    ),
    # ア–オ (5 each) → ア–オ (4 each) + カ (5). ア–オ keep their order and their shares continue the R7
    # trend, so they may be the same questions rescored; with a new branch we stay at indicator level.
    StructureDecision(
        grant="shien",
        goal="II",
        group="taisei",
        indicator_name_ja="認知症サポーター等を活用した地域支援体制の構築",
        changed_in="R8",
        level="indicator",
        why="ア–オ lost a point each and カ was added; ア–オ may be the old questions rescored, "
        "but that is unconfirmed",
    ),
)


def _year_index(fiscal_year: str) -> int:
    if fiscal_year not in FISCAL_YEARS:
        raise ValueError(f"unknown fiscal year {fiscal_year!r} (expected one of {FISCAL_YEARS})")
    return FISCAL_YEARS.index(fiscal_year)


def _spans(from_year: str, to_year: str, changed_in: str) -> bool:
    return _year_index(from_year) < _year_index(changed_in) <= _year_index(to_year)


def _structure(items: pd.DataFrame) -> str:
    """``ア(1) イ(2) ウ①(1)`` — an indicator's or branch's items with their points, for the notes."""
    return " ".join(f"{r.branch}{r.sub_branch}({r.max_points})" for r in items.itertuples())


def _row(from_year: str, to_year: str, a: str, b: str, relation: str, note: str) -> dict[str, str]:
    return {
        "from_year": from_year,
        "to_year": to_year,
        "from_item_id": a,
        "to_item_id": b,
        "relation": relation,
        "comparable": "true" if relation in COMPARABLE_RELATIONS else "false",
        "note": note,
    }


def _one_to_one(from_year: str, to_year: str, a: pd.Series, b: pd.Series) -> dict[str, str]:
    notes: list[str] = []
    relation = "same"
    if a["indicator_no"] != b["indicator_no"]:
        relation = "renumbered"
        notes.append(f"indicator {a['indicator_no']} → {b['indicator_no']} (name unchanged)")
    if a["max_points"] != b["max_points"] or a["scoring_rule"] != b["scoring_rule"]:
        relation = "rescored"
        if a["max_points"] != b["max_points"]:
            notes.append(f"max_points {a['max_points']} → {b['max_points']}")
        if a["scoring_rule"] != b["scoring_rule"]:
            notes.append(f"scoring rule {a['scoring_rule']} → {b['scoring_rule']}")
    if a["outcome_duplicate"]:
        notes.append("支援 copy of 目標Ⅳ (outcome_duplicate), mapped as its 推進 twin")
    return _row(from_year, to_year, a["item_id"], b["item_id"], relation, "; ".join(notes))


def _many_to_many(
    from_year: str, to_year: str, a: pd.DataFrame, b: pd.DataFrame, what: str, decision: StructureDecision
) -> list[dict[str, str]]:
    """Link every old item to every new item of a reorganised indicator or branch (comparable as a whole)."""
    if len(a) == len(b):
        raise UnclassifiedChange(
            f"{decision.indicator_name_ja} {what} {from_year}→{to_year}: same number of items but another "
            "structure, neither split nor merged; decide the mapping item by item"
        )
    relation = "split" if len(b) > len(a) else "merged"
    renumbered = ""
    if a["indicator_no"].iloc[0] != b["indicator_no"].iloc[0]:
        renumbered = f"indicator {a['indicator_no'].iloc[0]} → {b['indicator_no'].iloc[0]}; "
    note = (
        f"{renumbered}{what} {relation}: {_structure(a)} → {_structure(b)} "
        f"({a['max_points'].sum()} → {b['max_points'].sum()} points); not comparable item by item, only at "
        f"indicator level ({decision.why})"
    )
    return [_row(from_year, to_year, ia, ib, relation, note) for ia in a["item_id"] for ib in b["item_id"]]


def _indicator_rows(
    from_year: str,
    to_year: str,
    key: tuple[str, str, str, str],
    a: pd.DataFrame,
    b: pd.DataFrame,
    used: set[StructureDecision],
) -> list[dict[str, str]]:
    keys_a = list(zip(a["branch"], a["sub_branch"], strict=True))
    keys_b = list(zip(b["branch"], b["sub_branch"], strict=True))
    if keys_a == keys_b:
        return [
            _one_to_one(from_year, to_year, ra, rb)
            for (_, ra), (_, rb) in zip(a.iterrows(), b.iterrows(), strict=True)
        ]

    decisions = [d for d in MANUAL_DECISIONS if d.covers(key, from_year, to_year)]
    if len(decisions) != 1:
        raise UnclassifiedChange(
            f"{from_year}→{to_year} {'/'.join(key)}: branches changed ({_structure(a)} → {_structure(b)}); "
            f"{len(decisions)} entries of MANUAL_DECISIONS cover it, exactly one is needed"
        )
    decision = decisions[0]
    used.add(decision)
    if decision.level == "indicator":
        return _many_to_many(from_year, to_year, a, b, "indicator restructured", decision)
    if decision.level != "branch":
        raise UnclassifiedChange(f"unknown decision level {decision.level!r}")
    if list(dict.fromkeys(a["branch"])) != list(dict.fromkeys(b["branch"])):
        raise UnclassifiedChange(
            f"{from_year}→{to_year} {'/'.join(key)}: a branch-level decision needs the same branch letters "
            f"({_structure(a)} → {_structure(b)})"
        )
    rows: list[dict[str, str]] = []
    for branch in dict.fromkeys(a["branch"]):
        ba, bb = a[a["branch"] == branch], b[b["branch"] == branch]
        if list(ba["sub_branch"]) == list(bb["sub_branch"]):
            rows += [
                _one_to_one(from_year, to_year, ra, rb)
                for (_, ra), (_, rb) in zip(ba.iterrows(), bb.iterrows(), strict=True)
            ]
        else:
            rows += _many_to_many(from_year, to_year, ba, bb, f"branch {branch}", decision)
    return rows


def _order(df: pd.DataFrame) -> pd.Series:
    """Sort key of an indicator: grant, goal, group in MHLW's order."""
    return (
        df["grant"].map(GRANTS.index) * 100 + df["goal"].map(GOALS.index) * 10 + df["group"].map(GROUPS.index)
    )


def build_pair(catalogue: pd.DataFrame, from_year: str, to_year: str) -> pd.DataFrame:
    """The crosswalk rows of one ordered pair of years (``from_year`` earlier than ``to_year``)."""
    return _build([(from_year, to_year)], catalogue, check_stale=False)


def build_crosswalk(catalogue: pd.DataFrame | None = None) -> pd.DataFrame:
    """All rows for :data:`PAIRS`, as strings, in the committed file's order.

    Raises :class:`UnclassifiedChange` if a structural change has no decision, or a decision matches nothing.
    """
    if catalogue is None:
        catalogue = load_catalogue()
    return _build(PAIRS, catalogue, check_stale=True)


def _build(pairs: Iterable[tuple[str, str]], catalogue: pd.DataFrame, check_stale: bool) -> pd.DataFrame:
    used: set[StructureDecision] = set()
    out: list[dict[str, str]] = []
    for from_year, to_year in pairs:
        if _year_index(from_year) >= _year_index(to_year):
            raise ValueError(f"pairs run forward in time, got {from_year}→{to_year}")
        out += _pair_rows(catalogue, from_year, to_year, used)
    if check_stale:
        stale = [d for d in MANUAL_DECISIONS if d not in used]
        if stale:
            raise UnclassifiedChange(
                "MANUAL_DECISIONS entries that match no change in the catalogue: "
                + ", ".join(
                    f"{d.grant}/{d.goal}/{d.group}/{d.indicator_name_ja} ({d.changed_in})" for d in stale
                )
            )
    return pd.DataFrame(out, columns=list(COLUMNS), dtype=str)


def _pair_rows(
    catalogue: pd.DataFrame, from_year: str, to_year: str, used: set[StructureDecision]
) -> list[dict[str, str]]:
    cat = catalogue.reset_index(drop=True)
    cat = cat.assign(_pos=range(len(cat)), _block=_order(cat))
    a_all = cat[cat["fiscal_year"] == from_year]
    b_all = cat[cat["fiscal_year"] == to_year]
    a_groups = {k: g.sort_values("_pos") for k, g in a_all.groupby(_INDICATOR_KEY, sort=False)}
    b_groups = {k: g.sort_values("_pos") for k, g in b_all.groupby(_INDICATOR_KEY, sort=False)}

    # Sort key (block, 0 = old item / 1 = new, position): each grant × goal × group together, old items first.
    keyed: list[tuple[tuple[int, int, int], list[dict[str, str]]]] = []
    for key, a in a_groups.items():
        block, pos = int(a["_block"].iloc[0]), int(a["_pos"].iloc[0])
        b = b_groups.get(key)
        if b is None:
            note = f"indicator {a['indicator_no'].iloc[0]} {key[3]} not in {to_year}"
            rows = [_row(from_year, to_year, i, "", "dropped", note) for i in a["item_id"]]
        else:
            rows = _indicator_rows(from_year, to_year, key, a, b, used)
        keyed.append(((block, 0, pos), rows))
    for key, b in b_groups.items():
        if key in a_groups:
            continue
        block, pos = int(b["_block"].iloc[0]), int(b["_pos"].iloc[0])
        note = f"indicator {b['indicator_no'].iloc[0]} {key[3]} not in {from_year}"
        keyed.append(((block, 1, pos), [_row(from_year, to_year, "", i, "new", note) for i in b["item_id"]]))
    keyed.sort(key=lambda kv: kv[0])
    return [row for _, rows in keyed for row in rows]


def to_csv_text(crosswalk: pd.DataFrame) -> str:
    """The CSV exactly as committed (UTF-8, LF, no index) — the regeneration test compares this text."""
    return crosswalk.to_csv(index=False, lineterminator="\n")


def write_crosswalk(path: Path | None = None) -> Path:
    """Rebuild ``item_crosswalk.csv`` from the catalogue and write it."""
    target = path or REFERENCE_DIR / CROSSWALK_FILE
    target.write_text(to_csv_text(build_crosswalk()), encoding="utf-8", newline="")
    return target


# --- access for the analysis code (reads the committed file) ----------------------------------------------


def _crosswalk() -> pd.DataFrame:
    return load_crosswalk()


def _pair(from_year: str, to_year: str) -> tuple[tuple[str, str], bool]:
    """The stored pair for two years and whether it must be read backwards."""
    if (from_year, to_year) in PAIRS:
        return (from_year, to_year), False
    if (to_year, from_year) in PAIRS:
        return (to_year, from_year), True
    raise ValueError(f"no crosswalk for {from_year}→{to_year}; pairs are {PAIRS} (either direction)")


def comparable_pairs(from_year: str, to_year: str) -> pd.DataFrame:
    """Item pairs that ask the same question in both years (relation same / renumbered / rescored).

    Works in either direction (``comparable_pairs("R8", "R6")`` swaps the columns). Columns:
    ``from_year, to_year, from_item_id, to_item_id, relation, note``. Items in split/merged, dropped or new
    indicators are absent: compare those at indicator level, if at all.
    """
    (fy, ty), backwards = _pair(from_year, to_year)
    cw = _crosswalk()
    rows = cw[(cw["from_year"] == fy) & (cw["to_year"] == ty) & (cw["comparable"] == "true")]
    rows = rows.drop(columns="comparable").reset_index(drop=True)
    if backwards:
        rows = rows.rename(columns={"from_item_id": "to_item_id", "to_item_id": "from_item_id"})
        rows = rows.assign(from_year=from_year, to_year=to_year)[[c for c in COLUMNS if c != "comparable"]]
    return rows


def crosswalk_status(item_id: str, to_year: str) -> str:
    """What became of ``item_id`` in ``to_year``: one of :data:`RELATIONS`.

    The item's own year is read from its id. Looking backwards (an R8 item, ``to_year="R6"``), the relation is
    reversed: an item new in R8 reads ``dropped`` (it has no R6 counterpart), a split reads ``merged``.
    Raises ``KeyError`` for an item that is not in the crosswalk.
    """
    from_year = item_id.split("-", 1)[0]
    if from_year == to_year:
        if item_id not in set(load_catalogue()["item_id"]):
            raise KeyError(f"{item_id} is not in the catalogue")
        return "same"
    (fy, ty), backwards = _pair(from_year, to_year)
    cw = _crosswalk()
    cw = cw[(cw["from_year"] == fy) & (cw["to_year"] == ty)]
    col = "to_item_id" if backwards else "from_item_id"
    relations = cw.loc[cw[col] == item_id, "relation"].unique()
    if len(relations) == 0:
        raise KeyError(f"{item_id} is not in the {fy}→{ty} crosswalk")
    if len(relations) > 1:  # cannot happen in a valid crosswalk (tests check it); be loud if it does
        raise ValueError(f"{item_id}: several relations {sorted(relations)} in {fy}→{ty}")
    relation = str(relations[0])
    return _REVERSED[relation] if backwards else relation


def indicator_crosswalk(from_year: str, to_year: str) -> pd.DataFrame:
    """One row per linked pair of indicators, for comparisons at indicator level (forward pairs only).

    Columns: ``grant, goal, group, indicator_name_ja, from_indicator_no, to_indicator_no`` (empty on the
    missing side of a dropped / new indicator), ``from_max, to_max`` (sums of item ``max_points``; 0 when
    missing), ``relations`` (the item relations, ``|``-joined) and ``items_comparable`` (every item is a 1:1
    match). A split/merged indicator has ``items_comparable = False``: its items cannot be compared, its total
    can (when ``from_max == to_max``).
    """
    (fy, ty), backwards = _pair(from_year, to_year)
    if backwards:
        raise ValueError(f"indicator_crosswalk runs forward in time: use ({ty!r}, {fy!r})")
    cat = load_catalogue()
    ind = cat[["item_id", *_INDICATOR_KEY, "indicator_no"]]
    maxima = cat.groupby("item_id")["max_points"].first()
    cw = _crosswalk()
    cw = cw[(cw["from_year"] == fy) & (cw["to_year"] == ty)]
    a = ind.rename(columns={"item_id": "from_item_id", "indicator_no": "from_indicator_no"})
    b = ind.rename(columns={"item_id": "to_item_id", "indicator_no": "to_indicator_no"})
    links = cw.merge(a, on="from_item_id", how="left").merge(
        b, on="to_item_id", how="left", suffixes=("", "_to")
    )
    for col in _INDICATOR_KEY:  # a new item has its names on the "to" side only
        links[col] = links[col].fillna(links[f"{col}_to"])
    for side in ("from", "to"):
        links[f"{side}_indicator_no"] = links[f"{side}_indicator_no"].map(
            lambda v: "" if pd.isna(v) else str(int(v))
        )
    key = [*_INDICATOR_KEY, "from_indicator_no", "to_indicator_no"]
    out = links.groupby(key, sort=False).agg(
        relations=("relation", lambda r: "|".join(sorted(set(r)))),
        items_comparable=("relation", lambda r: bool(r.isin(list(COMPARABLE_RELATIONS)).all())),
        from_items=("from_item_id", lambda i: sorted({x for x in i if x})),
        to_items=("to_item_id", lambda i: sorted({x for x in i if x})),
    )
    out = out.reset_index()
    out["from_max"] = out["from_items"].map(lambda ids: int(maxima[ids].sum()) if ids else 0)
    out["to_max"] = out["to_items"].map(lambda ids: int(maxima[ids].sum()) if ids else 0)
    return out[[*key, "from_max", "to_max", "relations", "items_comparable"]]


def main(argv: list[str] | None = None) -> int:
    """``python -m kofukin.crosswalk [--check]``: regenerate the CSV, or only check that it is up to date."""
    parser = argparse.ArgumentParser(prog="python -m kofukin.crosswalk", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed CSV differs from a build"
    )
    args = parser.parse_args(argv)
    path = REFERENCE_DIR / CROSSWALK_FILE
    if args.check:
        fresh = to_csv_text(build_crosswalk())
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if fresh != current:
            print(f"{path} is out of date: run python -m kofukin.crosswalk", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    written = write_crosswalk(path)
    counts = pd.read_csv(written, dtype=str).groupby(["from_year", "to_year", "relation"]).size()
    print(f"wrote {written}\n{counts.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
