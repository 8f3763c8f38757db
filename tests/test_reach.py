"""Items within reach: peer shares, recoverable points under 択一 / the cap / cumulative bands, three-year zeros."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_fixtures import codes_of, default_attributes, identity_crosswalk, items_table, panel_from_items
from hypothesis import given, settings
from hypothesis import strategies as st

from kofukin.reach import (
    ReachByCode,
    item_bands,
    persistent_zeros,
    recoverable_points,
    within_reach,
    within_reach_every,
    within_reach_table,
)
from kofukin.reference import load_catalogue
from kofukin.scoring import indicator_points
from kofukin.summary import dense_item_points
from kofukin.whatif import gain_items, what_if_rank

CODES = codes_of("01")[:7]
M, PEERS, OUTSIDER = CODES[0], CODES[1:6], CODES[6]

CARE_PLAN = [f"suishin-II-katsudo-1-{b}" for b in "アイウエ"]  # ケアプラン点検, bands ア–エ, 4 points each
OUT1_A = [f"suishin-IV-outcome-1-ア-{b}" for b in "①②③④"]
OUT1_I = [f"suishin-IV-outcome-1-イ-{b}" for b in "①②③④"]
CAP9 = [f"shien-I-katsudo-9-{b}" for b in ("ア-①", "ア-②", "ア-③", "ア-④", "イ-①")]


def _attributes(year: str) -> pd.DataFrame:
    a = default_attributes(CODES, year)
    a["size_class"] = 2
    a["kaso"] = False
    a.loc[a["lg_code6"] == OUTSIDER, "size_class"] = 5
    return a


def _points_r7() -> dict[str, dict[str, int]]:
    pts: dict[str, dict[str, int]] = {
        M: {**dict.fromkeys(OUT1_A[:3], 5), **dict.fromkeys(CAP9[:4], 1), "suishin-I-taisei-2-ア": 4},
    }
    for i, c in enumerate(PEERS):
        p: dict[str, int] = {}
        if i < 3:
            p["suishin-I-taisei-1-ア"] = 4  # 3 of 5 peers: 0.6
            p[OUT1_I[0]] = 5  # 択一: the other measure, which cannot beat M's 15
            p[CAP9[4]] = 1  # capped indicator: M is already at 4
        if i < 1:
            p["suishin-I-taisei-1-イ"] = 4  # 1 of 5: 0.2
        if i < 2:
            p[OUT1_A[3]] = 5  # 2 of 5 reach band ④ of ア: 0.4
        for band, n in zip(CARE_PLAN[:3], (4, 3, 2), strict=True):
            if i < n:
                p[band] = 4
        pts[c] = p
    pts[OUTSIDER] = dict.fromkeys(["suishin-I-taisei-1-ア", "suishin-I-taisei-1-イ"], 4)
    return pts


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.concat(
        [
            items_table("R6", {M: {"suishin-I-taisei-1-エ": 4}, **{c: {} for c in PEERS}}),
            items_table("R7", _points_r7()),
            items_table("R8", {M: {}}),
        ],
        ignore_index=True,
    )
    attrs = pd.concat([_attributes(y) for y in ("R6", "R7", "R8")], ignore_index=True)
    return items, panel_from_items(items, attrs)


def test_bands_are_read_from_the_catalogue():
    b = item_bands(load_catalogue()).set_index("item_id")
    assert (
        b.loc["R7-suishin-II-katsudo-1-ウ", "band"] == 3
        and b.loc["R7-suishin-II-katsudo-1-ウ", "measure"] == ""
    )
    assert b.loc["R7-suishin-IV-outcome-1-イ-②", ["measure", "band"]].tolist() == ["イ", 2]
    assert b.loc["R7-shien-I-katsudo-9-エ", "band"] == 0  # not a band: a lone エ beside banded ア–ウ
    assert b.loc["R7-suishin-I-taisei-1-ア", "band"] == 0  # 体制・取組 items are not banded
    assert b.loc["R7-suishin-I-taisei-3-ア-①", "band"] == 0
    # rank bands (national shares 0.7/0.5/0.3/0.1) or nested levels (医療情報との突合: all four at once)
    assert b.loc["R7-suishin-II-katsudo-1-ウ", "band_basis"] == "rank"
    assert b.loc["R7-suishin-II-katsudo-2-ウ", "band_basis"] == "level"
    assert b.loc["R7-suishin-IV-outcome-1-イ-②", "band_basis"] == "rank"
    assert b.loc["R7-suishin-I-taisei-1-ア", "band_basis"] == ""


def test_within_reach_items_sorted_by_recoverable_points(data):
    items, panel = data
    r = within_reach(panel, items, load_catalogue(), M, "R7")
    assert r.n_comparison == 5  # the 同条件 group without M itself, without the size-5 outsider
    t = r.items.set_index("item_id")
    assert t.index.tolist() == [
        "R7-suishin-II-katsudo-1-ウ",  # cumulative: ア+イ+ウ = 12 points, 2 of 5 peers
        "R7-suishin-II-katsudo-1-イ",  # 8, 3 of 5
        "R7-suishin-IV-outcome-1-ア-④",  # 5 (15 -> 20), 0.4
        "R7-suishin-II-katsudo-1-ア",  # 4, 0.8 (ties on points: the larger peer share first)
        "R7-suishin-I-taisei-1-ア",  # 4, 0.6
    ]
    assert t.loc["R7-suishin-II-katsudo-1-ウ", ["raw_gain", "recoverable", "peer_share"]].tolist() == [
        12,
        12,
        0.4,
    ]
    assert t.loc["R7-suishin-I-taisei-1-ア", "national_share"] == pytest.approx(4 / 7)
    # 1 of 5 peers: below the default threshold, in at 0.2
    assert "R7-suishin-I-taisei-1-イ" not in t.index
    low = within_reach(panel, items, load_catalogue(), M, "R7", threshold=0.2).items
    assert "R7-suishin-I-taisei-1-イ" in set(low["item_id"])


def test_choose_one_and_cap_add_nothing(data):
    items, panel = data
    r = within_reach(panel, items, load_catalogue(), M, "R7", include_zero_gain=True)
    t = r.items.set_index("item_id")
    assert t.loc["R7-suishin-IV-outcome-1-イ-①", ["raw_gain", "recoverable"]].tolist() == [5, 0]
    assert t.loc["R7-suishin-IV-outcome-1-イ-①", "note"].startswith("加点なし（択一")
    assert t.loc["R7-shien-I-katsudo-9-イ-①", ["raw_gain", "recoverable", "note"]].tolist() == [
        1,
        0,
        "加点なし（上限到達）",
    ]
    default = within_reach(panel, items, load_catalogue(), M, "R7").items
    assert not ({"R7-suishin-IV-outcome-1-イ-①", "R7-shien-I-katsudo-9-イ-①"} & set(default["item_id"]))


def test_recoverable_points_equal_what_if_through_the_rules(data):
    items, panel = data
    r = within_reach(panel, items, load_catalogue(), M, "R7", include_zero_gain=True, threshold=0.2)
    picks = {
        "R7-suishin-II-katsudo-1-ウ",
        "R7-suishin-IV-outcome-1-ア-④",
        "R7-suishin-IV-outcome-1-イ-①",
        "R7-shien-I-katsudo-9-イ-①",
        "R7-suishin-I-taisei-1-イ",
    }
    assert picks <= set(r.items["item_id"])
    for row in r.items[r.items["item_id"].isin(picks)].itertuples():
        w = what_if_rank(panel, "R7", M, items=[row.item_id], item_points=items, catalogue=load_catalogue())
        assert w.target_changes[f"{row.grant}_total"] == row.recoverable, row.item_id


def test_given_peer_set(data):
    items, panel = data
    r = within_reach(panel, items, load_catalogue(), M, "R7", peers=[PEERS[0], OUTSIDER, M])
    assert r.n_comparison == 2 and r.comparison == "peers"
    t = r.items.set_index("item_id")
    assert t.loc["R7-suishin-I-taisei-1-イ", "peer_share"] == 1.0  # both PEERS[0] and the outsider score it


def test_band_table(data):
    items, panel = data
    b = within_reach(panel, items, load_catalogue(), M, "R7").bands.set_index(
        ["grant", "goal", "group", "indicator_no", "measure"]
    )
    care = b.loc[("suishin", "II", "katsudo", 1, "")]
    assert (care["band_reached"], care["band_label"], care["next_band_recoverable"]) == (0, "圏外", 4)
    out_a = b.loc[("suishin", "IV", "outcome", 1, "ア")]
    assert (out_a["band_reached"], out_a["band_label"], out_a["bands_held"]) == (3, "上位3割", "①②③")
    assert out_a["next_band_recoverable"] == 5
    assert b.loc[("suishin", "IV", "outcome", 1, "イ"), "next_band_recoverable"] == 0  # イ① cannot beat ア


def test_zero_three_years_running_through_the_crosswalk(data):
    items, _ = data
    cw = pd.concat([identity_crosswalk("R6", "R7"), identity_crosswalk("R7", "R8")])
    z = persistent_zeros(items, cw, M, "R8")
    ids = set(z["item_id"])
    assert "R8-suishin-I-taisei-1-ア" in ids  # 0 in R6, R7, R8
    assert "R8-suishin-I-taisei-2-ア" not in ids  # scored in R7
    assert "R8-suishin-I-taisei-1-エ" not in ids  # scored in R6
    assert z.set_index("item_id").loc["R8-suishin-I-taisei-1-ア", "item_id_R6"] == "R6-suishin-I-taisei-1-ア"
    # a direct R6→R8 pair wins over the chain: map R8 1-ア to R6 1-エ (scored in R6) and it is no longer at 0
    direct = identity_crosswalk("R6", "R8")
    direct = direct[direct["from_item_id"] != "R6-suishin-I-taisei-1-エ"].copy()
    sel = direct["to_item_id"] == "R8-suishin-I-taisei-1-ア"
    direct.loc[sel, ["from_item_id", "relation"]] = ["R6-suishin-I-taisei-1-エ", "renumbered"]
    z2 = persistent_zeros(items, pd.concat([cw, direct]), M, "R8")
    assert "R8-suishin-I-taisei-1-ア" not in set(z2["item_id"])
    # too few years, or a year without the municipality: nothing to show
    assert persistent_zeros(items, cw, M, "R7").empty
    assert persistent_zeros(items, cw, PEERS[0], "R8").empty  # PEERS[0] has no R8 items
    # within_reach carries the table, joined with this year's recoverable points
    r8 = within_reach(data[1], items, load_catalogue(), M, "R8", crosswalk=cw, threshold=1.0)
    assert "R8-suishin-I-taisei-1-ア" in set(r8.persistent_zero["item_id"])
    assert {"recoverable", "item_label"} <= set(r8.persistent_zero.columns)


def test_too_few_years_still_gives_the_columns_a_report_shows(data):
    """R7 has only one earlier year: no three-year zeros, but the (empty) table keeps its columns — a report of
    R6 or R7 used to fail selecting them."""
    items, panel = data
    cw = pd.concat([identity_crosswalk("R6", "R7"), identity_crosswalk("R7", "R8")])
    r7 = within_reach(panel, items, load_catalogue(), M, "R7", crosswalk=cw)
    assert r7.persistent_zero.empty
    assert {"item_label", "max_points", "peer_share", "recoverable"} <= set(r7.persistent_zero.columns)


def test_own_items_give_the_same_answer(data):
    """A report kernel passes the municipality's own rows instead of scanning the national table for them."""
    items, panel = data
    cw = pd.concat([identity_crosswalk("R6", "R7"), identity_crosswalk("R7", "R8")])
    cat = load_catalogue()
    plain = within_reach(panel, items, cat, M, "R8", crosswalk=cw, threshold=0.2)
    fast = within_reach(
        panel, items, cat, M, "R8", crosswalk=cw, threshold=0.2, own_items=items[items["lg_code6"] == M]
    )
    pd.testing.assert_frame_equal(plain.items, fast.items)
    pd.testing.assert_frame_equal(plain.persistent_zero, fast.persistent_zero)
    pd.testing.assert_frame_equal(plain.bands, fast.bands)


def test_errors(data):
    items, panel = data
    with pytest.raises(ValueError, match="threshold"):
        within_reach(panel, items, load_catalogue(), M, "R7", threshold=0)
    with pytest.raises(ValueError, match="no scores"):
        within_reach(panel, items, load_catalogue(), OUTSIDER, "R6")


def test_vectorised_table_matches(data):
    items, panel = data
    t = within_reach_table(panel, items, load_catalogue(), "R7")
    mine = t[t["lg_code6"] == M]
    one = within_reach(panel, items, load_catalogue(), M, "R7").items
    assert mine["item_id"].tolist() == one["item_id"].tolist()
    assert mine["recoverable"].tolist() == one["recoverable"].tolist()
    assert mine["peer_share"].tolist() == pytest.approx(one["peer_share"].tolist())


@pytest.mark.parametrize("year", ["R6", "R7", "R8"])
def test_every_municipality_at_once_equals_one_at_a_time(data, year):
    """The tables a build persists (one pass over every municipality) give each one exactly its own call."""
    items, panel = data
    cat = load_catalogue()
    cw = pd.concat([identity_crosswalk("R6", "R7"), identity_crosswalk("R7", "R8")])
    every = ReachByCode(within_reach_every(panel, items, cat, year, cw, threshold=0.2))
    scored = sorted(panel.loc[(panel["fiscal_year"] == year) & panel["grand_total"].notna(), "lg_code6"])
    assert sorted(every) == scored and len(every) == len(scored)
    for code in scored:
        a, b = every[code], within_reach(panel, items, cat, code, year, crosswalk=cw, threshold=0.2)
        assert (a.comparison, a.n_comparison, a.threshold) == (b.comparison, b.n_comparison, b.threshold)
        pd.testing.assert_frame_equal(a.items, b.items)
        pd.testing.assert_frame_equal(a.persistent_zero, b.persistent_zero)
        pd.testing.assert_frame_equal(a.bands, b.bands)
    if year == "R8":  # M alone is scored in R8: its zeros of three years
        assert "R8-suishin-I-taisei-1-ア" in set(every[M].persistent_zero["item_id"])
        assert PEERS[0] not in every
    if year == "R7":
        assert every[M].items["item_id"].tolist()[:1] == ["R7-suishin-II-katsudo-1-ウ"]
        assert every[M].n_comparison == 5 and every[OUTSIDER].n_comparison == 0


PROPERTY_ITEMS = [
    i
    for i in load_catalogue()["item_id"]
    if i.startswith(("R7-suishin-IV-outcome-1-", "R7-shien-I-katsudo-9-", "R7-suishin-II-katsudo-1-"))
]
BANDS = item_bands(load_catalogue())


@settings(max_examples=12, deadline=None)
@given(
    held=st.lists(st.booleans(), min_size=len(PROPERTY_ITEMS), max_size=len(PROPERTY_ITEMS)),
    pick=st.integers(min_value=0, max_value=len(PROPERTY_ITEMS) - 1),
)
def test_recoverable_points_match_the_scoring_rules(held, pick):
    """For any holding of 択一, capped and banded items (even ones MHLW's files would not show), the vectorised
    recoverable points equal the change of the indicator's points recomputed by kofukin.scoring."""
    cat = load_catalogue()
    maxima = cat.set_index("item_id")["max_points"]
    points = [int(maxima[i]) if h else 0 for i, h in zip(PROPERTY_ITEMS, held, strict=True)]
    items = pd.DataFrame({"fiscal_year": "R7", "lg_code6": M, "item_id": PROPERTY_ITEMS, "points": points})
    dense = dense_item_points(items, cat, "R7", [M])
    dense = dense[dense["item_id"].isin(PROPERTY_ITEMS)].reset_index(drop=True)
    rec = recoverable_points(dense, BANDS).set_index("item_id")
    target = PROPERTY_ITEMS[pick]
    after, _ = gain_items(dense, [target], BANDS)
    cols = ["fiscal_year", "lg_code6", "item_id", "points"]
    keys = ["grant", "goal", "group", "indicator_no"]
    row = tuple(dense.set_index("item_id").loc[target, keys])
    before = indicator_points(dense[cols], cat).set_index(keys)["points"]
    gained = indicator_points(after[cols], cat).set_index(keys)["points"]
    assert rec.loc[target, "recoverable"] == gained[row] - before[row]
