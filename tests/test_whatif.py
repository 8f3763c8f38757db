"""What-if ranks: extra points and items gained through the rules, ties, prefecture and 同条件 ranks."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_fixtures import (
    codes_of,
    default_attributes,
    items_table,
    make_panel,
    panel_from_items,
    uniform_values,
)

from kofukin.reference import load_catalogue
from kofukin.summary import dense_item_points
from kofukin.whatif import grant_changes, what_if_rank

CODES = codes_of("01")[:3] + codes_of("47")[:1]  # the Okinawa municipality is alone in its prefecture


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    p = make_panel(uniform_values(CODES), "R7")
    p["suishin_total"] = [250, 200, 200, 150]
    p["shien_total"] = [250, 200, 200, 150]
    p["grand_total"] = [500, 400, 400, 300]
    p["size_class"] = [3, 3, 3, 3]
    p["kaso"] = [False, False, True, False]
    return p


def test_extra_points_and_ties(panel):
    last = CODES[3]
    w = what_if_rank(panel, "R7", last).ranks.set_index("key")
    assert w.loc["grand_total", ["rank_national", "new_rank_national", "n_national"]].tolist() == [4, 4, 4]
    w = what_if_rank(panel, "R7", last, extra_points=100).ranks.set_index("key")
    g = w.loc["grand_total"]
    assert (g["new_score"], g["new_rank_national"], g["new_rank_national_label"]) == (
        400,
        2,
        "2/4",
    )  # ties at 400
    assert w.loc["suishin_total", "change"] == 0  # an int moves the grand total only
    assert (
        what_if_rank(panel, "R7", last, extra_points=101)
        .ranks.set_index("key")
        .loc["grand_total", "new_rank_national"]
        == 2
    )
    assert (
        what_if_rank(panel, "R7", last, extra_points=200)
        .ranks.set_index("key")
        .loc["grand_total", "new_rank_national"]
        == 1
    )  # ties with the first
    # the prefecture of one: 1/1 before and after
    assert (g["rank_pref"], g["new_rank_pref"], g["n_pref"]) == (1, 1, 1)
    # 同条件 (規模区分 3, not 過疎): CODES[0], CODES[1], CODES[3]
    assert (g["rank_peer"], g["new_rank_peer"], g["n_peer"]) == (3, 2, 3)


def test_extra_points_per_grant(panel):
    w = what_if_rank(panel, "R7", CODES[1], extra_points={"suishin": 51}).ranks.set_index("key")
    assert w.loc["suishin_total", ["new_score", "new_rank_national"]].tolist() == [251, 1]
    assert w.loc["shien_total", "change"] == 0
    assert w.loc["grand_total", ["new_score", "new_rank_national", "new_rank_pref"]].tolist() == [451, 2, 2]
    with pytest.raises(ValueError, match="outside"):
        what_if_rank(panel, "R7", CODES[0], extra_points={"suishin": 151})
    with pytest.raises(ValueError, match="suishin/shien"):
        what_if_rank(panel, "R7", CODES[0], extra_points={"both": 1})
    with pytest.raises(ValueError, match="no scored municipalities in R8"):
        what_if_rank(panel, "R8", CODES[0], extra_points=1)
    with pytest.raises(ValueError, match="no scores in R7"):
        what_if_rank(panel, "R7", codes_of("05")[0], extra_points=1)


@pytest.fixture(scope="module")
def items_data():
    a, b = codes_of("02")[:2]
    pts = {
        a: {
            "suishin-IV-outcome-1-ア-①": 5,
            "suishin-IV-outcome-1-ア-②": 5,
            "suishin-IV-outcome-1-ア-③": 5,
            **{f"shien-I-katsudo-9-ア-{c}": 1 for c in "①②③"},
        },
        b: {"suishin-I-taisei-1-ア": 4, "suishin-II-katsudo-1-ア": 4},
    }
    items = items_table("R7", pts)
    attrs = default_attributes([a, b], "R7").assign(size_class=2, kaso=False)
    return a, b, items, panel_from_items(items, attrs)


def test_items_gained_through_the_rules(items_data):
    a, _b, items, panel = items_data
    cat = load_catalogue()

    def change(ids):
        w = what_if_rank(panel, "R7", a, items=ids, item_points=items, catalogue=cat)
        return w.target_changes, w.indicators

    d, ind = change(["R7-suishin-IV-outcome-1-イ-①"])  # 択一: イ① (5) cannot beat ア (15)
    assert d["suishin_total"] == 0 and ind["gain"].tolist() == [0]
    d, _ = change(
        [
            "R7-suishin-IV-outcome-1-イ-①",
            "R7-suishin-IV-outcome-1-イ-②",
            "R7-suishin-IV-outcome-1-イ-③",
            "R7-suishin-IV-outcome-1-イ-④",
        ]
    )  # イ reaches 20 > 15: +5
    assert d["suishin_total"] == 5 and d["suishin_IV"] == 5 and d["all_outcome"] == 5
    d, _ = change(["R7-shien-I-katsudo-9-イ-①", "R7-shien-I-katsudo-9-イ-②"])  # cap 4 with 3 held: +1
    assert d["shien_I_katsudo"] == 1 and d["shien_total"] == 1
    d, ind = change(["R7-suishin-II-katsudo-1-ウ"])  # band ウ brings ア and イ: 3 × 4
    assert d["suishin_II_katsudo"] == 12 and d["all_katsudo"] == 12 and d["grand_total"] == 12
    assert ind.iloc[0]["items_asked"] == "R7-suishin-II-katsudo-1-ウ"
    assert ind.iloc[0]["items_set"].split() == [f"R7-suishin-II-katsudo-1-{k}" for k in "アイウ"]
    w = what_if_rank(
        panel,
        "R7",
        a,
        items=["R7-suishin-I-taisei-1-ア"],
        extra_points={"shien": 2},
        item_points=items,
        catalogue=cat,
    )
    assert w.ranks.set_index("key").loc["grand_total", "change"] == 6


def test_grant_changes_of_many_municipalities_equal_what_if_one_at_a_time(items_data):
    """One pass for every municipality (what a build persists) gives what_if_rank's changes, rule for rule."""
    a, b, items, panel = items_data
    cat = load_catalogue()
    asked = {
        a: [f"R7-suishin-IV-outcome-1-イ-{k}" for k in "①②③④"]  # 択一: イ 20 beats ア 15, +5
        + ["R7-shien-I-katsudo-9-イ-①", "R7-shien-I-katsudo-9-イ-②"],  # cap 4 with 3 held: +1
        b: [
            "R7-suishin-II-katsudo-1-ウ",
            "R7-suishin-I-taisei-1-ア",
        ],  # ウ brings イ (ア held): +8; ア held: 0
    }
    chosen = pd.DataFrame([(c, i) for c, ids in asked.items() for i in ids], columns=["lg_code6", "item_id"])
    dense = dense_item_points(items, cat, "R7", [a, b])
    got = grant_changes(dense, chosen, cat).set_index("lg_code6")
    assert got.loc[a].tolist() == [5, 1, 6] and got.loc[b].tolist() == [8, 0, 8]
    for code, ids in asked.items():
        one = what_if_rank(panel, "R7", code, items=ids, item_points=items, catalogue=cat).target_changes
        assert got.loc[code].tolist() == [
            int(one[k]) for k in ("suishin_total", "shien_total", "grand_total")
        ]
    with pytest.raises(ValueError, match="not in the year's catalogue"):
        grant_changes(dense, pd.DataFrame({"lg_code6": [a], "item_id": ["R8-suishin-I-taisei-1-ア"]}), cat)


def test_items_need_the_item_tables_and_known_ids(items_data):
    a, _, items, panel = items_data
    with pytest.raises(ValueError, match="item_points"):
        what_if_rank(panel, "R7", a, items=["R7-suishin-I-taisei-1-ア"])
    with pytest.raises(ValueError, match="catalogue"):
        what_if_rank(
            panel, "R7", a, items=["R6-suishin-I-taisei-1-ア"], item_points=items, catalogue=load_catalogue()
        )
