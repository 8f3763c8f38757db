"""Item gains and losses through the crosswalk: classes, renumbered and non-comparable items, per-goal effects."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_fixtures import codes_of, identity_crosswalk, items_table

from kofukin.gains import gains_losses, gains_losses_table, normalise_crosswalk
from kofukin.reference import load_catalogue

A, B = codes_of("01")[:2]


def _cw(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "from_year": "R6",
                "to_year": "R7",
                "from_item_id": f,
                "to_item_id": t,
                "relation": rel,
                "comparable": c,
                "note": "",
            }
            for f, t, rel, c in rows
        ]
    )


RESCORED = ("R6-shien-I-taisei-4-ウ", "R7-shien-I-taisei-4-ウ")

CROSSWALK = _cw(
    [
        ("R6-suishin-I-taisei-1-ア", "R7-suishin-I-taisei-1-ア", "same", "true"),
        ("R6-suishin-I-taisei-1-イ", "R7-suishin-I-taisei-1-イ", "same", "true"),
        ("R6-suishin-I-taisei-1-ウ", "R7-suishin-I-taisei-1-ウ", "same", "true"),
        ("R6-suishin-I-taisei-1-エ", "R7-suishin-I-taisei-1-エ", "same", "true"),
        ("R6-suishin-I-taisei-2-ア", "R7-suishin-I-taisei-4-ア", "renumbered", "true"),
        ("R6-suishin-I-taisei-4-ア", "R7-suishin-I-taisei-2-ア", "renumbered", "true"),
        ("R6-shien-II-taisei-1-ア", "R7-shien-II-taisei-1-ア", "split", "false"),
        ("R6-shien-II-taisei-1-ア", "R7-shien-II-taisei-1-イ", "split", "false"),
        ("R6-shien-III-taisei-1-ア", "", "dropped", "false"),
        ("", "R7-shien-III-taisei-1-ア", "new", "false"),
        (*RESCORED, "rescored", "true"),
    ]
)


def _maxima(*ids: str) -> list[int]:
    c = load_catalogue().set_index("item_id")["max_points"]
    return [int(c[i]) for i in ids]


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    r6_max, r7_max = _maxima(*RESCORED)
    assert r6_max != r7_max
    r6 = items_table(
        "R6",
        {
            A: {
                "suishin-I-taisei-1-ア": 4,
                "suishin-I-taisei-1-ウ": 4,
                "suishin-I-taisei-2-ア": 4,
                "shien-II-taisei-1-ア": 5,
                "shien-III-taisei-1-ア": 5,
                RESCORED[0]: r6_max,
            },
            B: {"suishin-I-taisei-1-イ": 0},
        },
        dense=False,
    )
    r7 = items_table(
        "R7",
        {
            A: {
                "suishin-I-taisei-1-ア": 4,
                "suishin-I-taisei-1-イ": 4,
                "suishin-I-taisei-4-ア": 4,
                "suishin-I-taisei-2-ア": 4,
                "shien-II-taisei-1-ア": 5,
                "shien-III-taisei-1-ア": 3,
                RESCORED[1]: r7_max,
                "suishin-II-taisei-1-ア": 8,
            },  # the last is not in the crosswalk: unmapped
            B: {"suishin-I-taisei-1-イ": 4},
        },
        dense=False,
    )
    r8_only = items_table("R8", {codes_of("01")[2]: {"suishin-I-taisei-1-ア": 4}}, dense=False)
    return pd.concat([r6, r7, r8_only], ignore_index=True)


@pytest.fixture(scope="module")
def g(items):
    return gains_losses(items, load_catalogue(), CROSSWALK, A, "R6", "R7")


def test_four_classes_and_renumbered_items(g):
    t = g.items.set_index("to_item_id")
    assert t.loc["R7-suishin-I-taisei-1-ア", "status"] == "kept"
    assert t.loc["R7-suishin-I-taisei-1-イ", ["status", "points_from", "points_to", "change"]].tolist() == [
        "gained",
        0,
        4,
        4,
    ]
    assert t.loc["R7-suishin-I-taisei-1-ウ", ["status", "change"]].tolist() == ["lost", -4]
    assert t.loc["R7-suishin-I-taisei-1-エ", "status"] == "never"
    # renumbered: R6 2-ア (4) is R7 4-ア (4) — kept, not a loss of 2-ア and a gain of 4-ア
    assert t.loc["R7-suishin-I-taisei-4-ア", ["from_item_id", "relation", "status"]].tolist() == [
        "R6-suishin-I-taisei-2-ア",
        "renumbered",
        "kept",
    ]
    assert t.loc["R7-suishin-I-taisei-2-ア", ["from_item_id", "status"]].tolist() == [
        "R6-suishin-I-taisei-4-ア",
        "gained",
    ]
    r6_max, r7_max = _maxima(*RESCORED)
    assert t.loc[RESCORED[1], ["status", "change", "max_from", "max_to"]].tolist() == [
        "kept",
        r7_max - r6_max,
        r6_max,
        r7_max,
    ]
    assert t.loc["R7-suishin-I-taisei-1-イ", "status_ja"] == "獲得"
    assert (
        t.loc["R7-suishin-I-taisei-1-イ", "item_label"]
        == "推進 目標Ⅰ 体制・取組 1 地域の介護保険事業の特徴 イ"
    )
    assert set(g.of_status("lost")["to_item_id"]) == {"R7-suishin-I-taisei-1-ウ"}


def test_items_that_cannot_be_compared_are_listed_never_matched(g):
    nc = g.not_comparable.set_index(["side", "item_id"])
    assert nc.loc[("from", "R6-shien-II-taisei-1-ア"), ["relation", "points"]].tolist() == ["split", 5]
    assert nc.loc[("from", "R6-shien-II-taisei-1-ア"), "paired_item_id"] == (
        "R7-shien-II-taisei-1-ア R7-shien-II-taisei-1-イ"
    )
    assert nc.loc[("to", "R7-shien-II-taisei-1-ア"), ["relation", "points"]].tolist() == ["split", 5]
    assert nc.loc[("from", "R6-shien-III-taisei-1-ア"), ["relation", "signed_points"]].tolist() == [
        "dropped",
        -5,
    ]
    assert nc.loc[("to", "R7-shien-III-taisei-1-ア"), ["relation", "signed_points"]].tolist() == ["new", 3]
    # an item the crosswalk does not name is "unmapped", even though an item with the same id suffix exists
    assert nc.loc[("to", "R7-suishin-II-taisei-1-ア"), ["relation", "points"]].tolist() == ["unmapped", 8]
    assert nc.loc[("from", "R6-suishin-II-taisei-1-ア"), "relation"] == "unmapped"
    assert "R7-suishin-II-taisei-1-ア" not in set(g.items["to_item_id"])
    assert not (
        set(g.items["to_item_id"]) & set(g.not_comparable.loc[g.not_comparable["side"] == "to", "item_id"])
    )


def test_net_effect_per_goal(g):
    b = g.by_goal.set_index(["grant", "goal"])
    s1 = b.loc[("suishin", "I")]
    assert (s1["kept_change"], s1["gained_points"], s1["lost_points"]) == (0, 8, -4)
    assert s1["items_net"] == 4 and s1["actual_change"] == 4 and s1["rule_effect"] == 0
    assert b.loc[("shien", "II"), ["not_comparable_net", "actual_change"]].tolist() == [0, 0]
    assert b.loc[("shien", "III"), ["not_comparable_net", "actual_change"]].tolist() == [-2, -2]
    assert b.loc[("suishin", "II"), ["not_comparable_net", "actual_change"]].tolist() == [8, 8]
    r6_max, r7_max = _maxima(*RESCORED)
    assert b.loc[("shien", "I"), "kept_change"] == r7_max - r6_max
    assert (b["rule_effect"] == 0).all()
    assert b.loc[("suishin", "I"), "label_ja"] == "推進 目標Ⅰ"


def test_rule_effect_when_a_capped_indicator_is_exceeded():
    cw = identity_crosswalk("R6", "R7")
    cap = [f"shien-I-katsudo-9-{b}" for b in ("ア-①", "ア-②", "ア-③", "ア-④", "イ-①")]
    items = pd.concat(
        [
            items_table("R6", {A: dict.fromkeys(cap[:4], 1)}, dense=False),
            items_table("R7", {A: dict.fromkeys(cap, 1)}, dense=False),  # five items, but the cap is 4 points
        ]
    )
    b = gains_losses(items, load_catalogue(), cw, A, "R6", "R7").by_goal.set_index(["grant", "goal"])
    assert b.loc[("shien", "I"), ["gained_points", "actual_change", "rule_effect"]].tolist() == [1, 0, -1]


def test_municipality_present_in_one_year_only(items):
    with pytest.raises(ValueError, match="no item points in R6"):
        gains_losses(items, load_catalogue(), CROSSWALK, codes_of("01")[2], "R6", "R7")
    with pytest.raises(ValueError, match="R7→R8"):
        gains_losses(items.assign(lg_code6=A), load_catalogue(), CROSSWALK, A, "R7", "R8")


def test_vectorised_table_equals_single_municipality(items):
    all_items, _ = gains_losses_table(items, load_catalogue(), CROSSWALK, "R6", "R7")
    assert set(all_items["lg_code6"]) == {A, B}
    one = gains_losses(items, load_catalogue(), CROSSWALK, B, "R6", "R7").items
    mine = all_items[all_items["lg_code6"] == B].drop(columns="lg_code6").reset_index(drop=True)
    pd.testing.assert_frame_equal(one, mine)
    assert one.set_index("to_item_id").loc["R7-suishin-I-taisei-1-イ", "status"] == "gained"


def test_crosswalk_validation():
    bad = _cw([("R6-suishin-I-taisei-1-ア", "R7-suishin-I-taisei-1-ア", "split", "true")])
    with pytest.raises(ValueError, match="marked comparable"):
        normalise_crosswalk(bad)
    with pytest.raises(ValueError, match="unknown crosswalk relations"):
        normalise_crosswalk(_cw([("a", "b", "moved", "false")]))
    dup = _cw(
        [
            ("R6-suishin-I-taisei-1-ア", "R7-suishin-I-taisei-1-ア", "same", "true"),
            ("R6-suishin-I-taisei-1-イ", "R7-suishin-I-taisei-1-ア", "same", "true"),
        ]
    )
    items = items_table("R6", {A: {}}, dense=False).iloc[0:0]
    with pytest.raises(ValueError, match="one-to-one"):
        gains_losses_table(items, load_catalogue(), dup, "R6", "R7")
    assert (
        normalise_crosswalk(CROSSWALK.assign(comparable=CROSSWALK["comparable"] == "true"))[
            "comparable"
        ].dtype
        == bool
    )


def test_every_municipality_at_once_equals_one_at_a_time(items):
    """The report kernel's vectorised pass gives each municipality exactly its single-municipality answer,
    with and without published subtotals; a municipality missing a year is simply absent."""
    from analysis_fixtures import default_attributes, panel_from_items

    from kofukin.gains import GainsByCode, gains_tables

    cat = load_catalogue()
    attrs = pd.concat([default_attributes(sorted(set(items["lg_code6"])), y) for y in ("R6", "R7")])
    panel = panel_from_items(items, attrs)
    for subtotals in (None, panel):
        every = GainsByCode(*gains_tables(items, cat, CROSSWALK, "R6", "R7", subtotals), "R6", "R7")
        assert set(every) == {A, B}  # codes_of("01")[2] has R7 only
        for code in (A, B):
            one = gains_losses(items, cat, CROSSWALK, code, "R6", "R7", subtotals)
            pd.testing.assert_frame_equal(every[code].items, one.items)
            pd.testing.assert_frame_equal(every[code].not_comparable, one.not_comparable)
            pd.testing.assert_frame_equal(every[code].by_goal, one.by_goal)
