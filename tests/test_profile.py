"""Municipality profiles, ranks, items achieved, trends and the CLI summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from analysis_fixtures import (
    AGEO,
    ageo_r7_panel,
    codes_of,
    items_table,
    make_panel,
    published,
    store_from_panel,
    uniform_values,
)

from kofukin.codes import AmbiguousMunicipality, UnknownMunicipality
from kofukin.profile import (
    SCORE_HELD_RANK_FELL_JA,
    SCORE_ROSE_RANK_FELL_JA,
    items_achieved_table,
    municipality_profile,
    municipality_summary,
    profiles_table,
    rank_table,
)
from kofukin.reference import load_catalogue
from kofukin.scoring import TARGET_KEYS


@pytest.fixture(scope="module")
def ageo_panel() -> pd.DataFrame:
    return ageo_r7_panel()


def test_profile_reproduces_ageos_report(ageo_panel):
    """Seed 001 総括: 254/400 (486/1,741位, 16/63位), 228/400 (762/1,741, 31/63), 482/800 (583/1,741, 24/63)."""
    p = municipality_profile(ageo_panel, "R7", AGEO)
    assert p.info["name"] == "上尾市" and p.info["pref_name"] == "埼玉県"
    r = p.ranks.set_index("key")
    expected = {
        "suishin_total": (254, "486/1,741", "16/63", 219.25, 222.87),
        "shien_total": (228, "762/1,741", "31/63", 215.74, 226.71),
        "grand_total": (482, "583/1,741", "24/63", 434.99, 449.59),
    }
    for k, (score, nat, pref, nat_mean, pref_mean) in expected.items():
        assert r.loc[k, "score"] == score
        assert r.loc[k, "rank_national_label"] == nat and r.loc[k, "rank_pref_label"] == pref
        assert round(r.loc[k, "national_mean"], 2) == nat_mean
        assert round(r.loc[k, "pref_mean"], 2) == pref_mean
    s = p.scores.set_index("key")
    for k, v in published("score:", "R7", who="上尾市", pref="埼玉県").items():
        assert s.loc[k, "score"] == v, k
    assert s["max_points"].tolist()[-1] == 800
    wide = p.wide()
    assert wide.index.tolist() == ["配点", "全国平均", "県内平均", "上尾市"]
    assert wide.loc["上尾市", "総合計"] == 482


def test_cli_summary_for_ageo(ageo_panel):
    store = store_from_panel(ageo_panel)
    for query in ("上尾市", "埼玉県上尾市", "11219", AGEO):
        res = municipality_summary(store, query)
        assert res["lg_code6"] == AGEO and res["fiscal_year"] == "R7"
        assert (res["rank_national"], res["n_national"], res["rank_pref"], res["n_pref"]) == (
            583,
            1741,
            24,
            63,
        )
        assert (res["suishin_total"], res["shien_total"], res["grand_total"]) == (254, 228, 482)
        assert res["rank_national_suishin_total"] == 486 and res["rank_pref_shien_total"] == 31
        assert res["synthetic"] is True
    json.dumps(res, ensure_ascii=False)  # serialisable as is
    with pytest.raises(UnknownMunicipality):
        municipality_summary(store, "存在しない市")
    with pytest.raises(AmbiguousMunicipality):
        municipality_summary(store, "府中市")


def _four(year: str, totals: list[int], codes: list[str] | None = None) -> pd.DataFrame:
    codes = codes or codes_of("01")[:4]
    p = make_panel(uniform_values(codes), year)
    p["grand_total"] = totals
    p["suishin_total"] = [t // 2 for t in totals]
    p["shien_total"] = [t - t // 2 for t in totals]
    return p


def test_competition_ranks_with_ties():
    p = _four("R7", [500, 400, 400, 300])
    r = rank_table(p, "R7").set_index("lg_code6")
    assert r["rank_national_grand_total"].tolist() == [1, 2, 2, 4]
    assert r["rank_pref_grand_total"].tolist() == [1, 2, 2, 4]
    assert (r["n_national"] == 4).all() and (r["n_pref"] == 4).all()
    peers = rank_table(p.assign(size_class=[1, 1, 2, 1], kaso=False), "R7")
    assert peers["rank_peer_grand_total"].tolist() == [1, 2, 1, 3]
    assert peers["n_peer"].tolist() == [3, 3, 1, 3]


def test_peer_group_is_size_class_and_kaso():
    p = _four("R7", [500, 400, 400, 300]).assign(size_class=2, kaso=[True, False, True, True])
    prof = municipality_profile(p, "R7", p["lg_code6"].iloc[3])
    g = prof.ranks.set_index("key").loc["grand_total"]
    assert (g["rank_peer"], g["n_peer"], g["peer_mean"]) == (3, 3, 400.0)


def test_municipality_scored_in_one_year_only():
    codes = codes_of("01")[:4]
    r6 = _four("R6", [400, 300, 200], codes[:3])  # codes[3] joins in R7
    r7 = _four("R7", [500, 400, 400, 300], codes)
    panel = pd.concat([r6, r7], ignore_index=True)
    p = municipality_profile(panel, "R7", codes[3])
    assert p.trend["fiscal_year"].unique().tolist() == ["R7"]
    assert p.trend["score_change"].isna().all() and p.notes == []
    with pytest.raises(ValueError, match="R6"):
        municipality_profile(panel, "R6", codes[3])
    store = store_from_panel(panel)
    with pytest.raises(ValueError, match="得点のある年度: R7"):
        municipality_summary(store, codes[3], "R6")
    assert municipality_summary(store, codes[3])["fiscal_year"] == "R7"
    with pytest.raises(ValueError, match="unknown fiscal year"):
        municipality_summary(store, codes[3], "R9")


def test_trend_flags_a_fall_caused_by_the_nation_rising():
    codes = codes_of("01")[:4]
    r6 = _four("R6", [400, 420, 300, 200], codes)  # codes[0] 2nd
    r7 = _four("R7", [400, 420, 410, 200], codes)  # same 400 but 3rd; national mean 330 -> 357.5
    r8 = _four("R8", [430, 440, 435, 200], codes)  # rose to 430 but still 3rd: no fall
    panel = pd.concat([r6, r7, r8], ignore_index=True)
    p = municipality_profile(panel, "R8", codes[0])
    t = p.trend.set_index(["key", "fiscal_year"])
    assert t.loc[("grand_total", "R7"), "flag_nation_rose"]
    assert not t.loc[("grand_total", "R8"), "flag_nation_rose"]
    assert t.loc[("grand_total", "R7"), "rank_change"] == 1
    assert t.loc[("grand_total", "R7"), "national_mean"] == pytest.approx(357.5)
    assert any(SCORE_HELD_RANK_FELL_JA in n and "R6→R7" in n for n in p.notes)
    # a score that rose while the rank fell
    r7b = _four("R7", [410, 420, 415, 200], codes)
    q = municipality_profile(pd.concat([r6, r7b]), "R7", codes[0])
    assert any(SCORE_ROSE_RANK_FELL_JA in n for n in q.notes)
    # a rank that fell while the national mean fell is not blamed on the nation
    r7c = _four("R7", [400, 420, 410, 0], codes)
    assert municipality_profile(pd.concat([r6, r7c]), "R7", codes[0]).notes == []


def test_prefecture_with_one_municipality():
    codes = codes_of("01")[:3] + codes_of("47")[:1]
    p = _four("R7", [500, 400, 400, 300], codes)
    prof = municipality_profile(p, "R7", codes[3])
    g = prof.ranks.set_index("key").loc["grand_total"]
    assert (g["rank_pref"], g["n_pref"], g["rank_national"], g["n_national"]) == (1, 1, 4, 4)
    assert g["pref_mean"] == 300


def test_items_achieved_count_choose_one_once_and_capped_items_all():
    code = codes_of("01")[0]
    items = items_table(
        "R7",
        {
            code: {
                "suishin-I-taisei-1-ア": 4,
                "suishin-IV-outcome-1-ア-①": 5,
                "suishin-IV-outcome-1-ア-②": 5,
                "suishin-IV-outcome-1-ア-③": 5,
                "shien-I-katsudo-9-ア-①": 1,
                "shien-I-katsudo-9-ア-②": 1,
                "shien-I-katsudo-9-イ-①": 1,
                "shien-I-katsudo-9-イ-②": 1,
                "shien-I-katsudo-9-エ": 1,
            }
        },
    )
    t = items_achieved_table(items, load_catalogue(), "R7").set_index(["grant", "scope"])
    cat = load_catalogue()
    r7 = cat[cat["fiscal_year"] == "R7"]
    for grant in ("suishin", "shien"):
        n_all = (r7["grant"] == grant).sum() - 3 * 4  # three 択一 indicators count one measure of four items
        n_taisei = ((r7["grant"] == grant) & (r7["group"] == "taisei")).sum()
        assert t.loc[(grant, "all"), "n_items"] == n_all
        assert t.loc[(grant, "taisei"), "n_items"] == n_taisei
    assert (t.loc[("suishin", "all"), "n_items"], t.loc[("suishin", "taisei"), "n_items"]) == (105, 53)
    assert t.loc[("suishin", "all"), "n_achieved"] == 4 and t.loc[("suishin", "taisei"), "n_achieved"] == 1
    assert t.loc[("shien", "all"), "n_achieved"] == 5  # the capped indicator: five achieved, 4 points
    # the measure that counts: イ has more points than ア
    items2 = items_table(
        "R7",
        {
            code: {
                "suishin-IV-outcome-1-ア-①": 5,
                "suishin-IV-outcome-1-イ-①": 5,
                "suishin-IV-outcome-1-イ-②": 5,
            }
        },
    )
    t2 = items_achieved_table(items2, load_catalogue(), "R7").set_index(["grant", "scope"])
    assert t2.loc[("suishin", "all"), "n_achieved"] == 2


def test_profile_with_items_and_profiles_table(ageo_panel):
    codes = codes_of("01")[:2]
    items = items_table("R7", {codes[0]: {"suishin-I-taisei-1-ア": 4}, codes[1]: {}})
    from analysis_fixtures import panel_from_items

    panel = panel_from_items(items)
    p = municipality_profile(panel, "R7", codes[0], items, load_catalogue())
    assert p.items.set_index(["grant", "scope"]).loc[("suishin", "taisei"), "label"] == "1/53"
    t = profiles_table(ageo_panel)
    assert len(t) == 1741 and t["lg_code6"].str.len().eq(6).all()
    assert {"rank_peer_grand_total", "n_peer", *TARGET_KEYS} <= set(t.columns)
    assert t.set_index("lg_code6").loc[AGEO, "rank_national_suishin_total"] == 486


def test_precomputed_items_achieved_give_the_same_profile():
    """A report kernel counts every municipality's items at once and hands each profile its rows."""
    from analysis_fixtures import panel_from_items

    codes = codes_of("01")[:3]
    items = items_table(
        "R7",
        {
            codes[0]: {"suishin-I-taisei-1-ア": 4, "suishin-IV-outcome-1-イ-①": 5},
            codes[1]: {"shien-I-katsudo-9-ア-①": 1},
            codes[2]: {},
        },
    )
    panel = panel_from_items(items)
    every = items_achieved_table(items, load_catalogue(), "R7")
    for code in codes:
        rows = every[every["lg_code6"] == code].reset_index(drop=True)
        one = municipality_profile(panel, "R7", code, items, load_catalogue())
        fast = municipality_profile(panel, "R7", code, achieved=rows)
        pd.testing.assert_frame_equal(one.items, fast.items)
    assert fast.items.set_index(["grant", "scope"]).loc[("suishin", "all"), "n_achieved"] == 0
