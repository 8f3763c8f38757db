"""The basic-frame approximation and its comparison with 八王子市's published amounts (seed 002)."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_fixtures import HACHIOJI, codes_of, make_panel, uniform_values

from kofukin.grants import (
    BASIS_JA,
    HACHIOJI_PUBLISHED,
    basic_allocation_estimate,
    compare_published,
    published_amounts,
)
from kofukin.reference import load_budgets, load_master, load_published

OTHERS = codes_of("01")[:2]


def _panel(year: str, suishin: list[int], shien: list[int], n1: list[int], codes: list[str]) -> pd.DataFrame:
    attrs = pd.DataFrame({"lg_code6": codes, "n_insured_1go": n1, "population": [x * 3 for x in n1]})
    p = make_panel(uniform_values(codes), year, attrs)
    p["suishin_total"], p["shien_total"] = suishin, shien
    p["grand_total"] = p["suishin_total"] + p["shien_total"]
    return p


def test_estimate_by_hand():
    codes = [*OTHERS, HACHIOJI]
    p = _panel("R7", [200, 100, 300], [100, 100, 200], [1000, 2000, 1000], codes)
    e = basic_allocation_estimate(p, "R7", load_budgets()).set_index("lg_code6")
    # 推進: s·n = 200k, 200k, 300k of 700k; 基本配分枠 7,220,000千円 (seed 000)
    assert e.loc[OTHERS[0], "suishin_estimate_kyen"] == pytest.approx(7_220_000 * 2 / 7)
    assert e.loc[HACHIOJI, "suishin_share"] == pytest.approx(3 / 7)
    # 支援: s·n = 100k, 200k, 200k of 500k; 18,050,000千円
    assert e.loc[OTHERS[1], "shien_estimate_kyen"] == pytest.approx(18_050_000 * 2 / 5)
    assert e["suishin_estimate_kyen"].sum() == pytest.approx(7_220_000)
    assert e["total_estimate_kyen"].sum() == pytest.approx(7_220_000 + 18_050_000)
    assert (e["suishin_budget_status"] == "published").all()
    assert (e["basis"] == BASIS_JA).all() and "基本配分枠のみ" in BASIS_JA and "概算" in BASIS_JA


def test_assumed_r6_frames_are_labelled_and_missing_frames_raise():
    codes = [*OTHERS, HACHIOJI]
    p = _panel("R6", [200, 100, 300], [100, 100, 200], [1000, 2000, 1000], codes)
    e = basic_allocation_estimate(p, "R6", load_budgets())
    assert set(e["suishin_budget_status"]) == {"assumed"} and set(e["shien_budget_status"]) == {"assumed"}
    with pytest.raises(ValueError, match="R6 suishin"):
        basic_allocation_estimate(p, "R6", load_budgets()[lambda b: b["fiscal_year"] != "R6"])


def test_compare_with_hachiojis_published_amounts_on_a_synthetic_panel():
    codes = [*OTHERS, HACHIOJI]
    n1 = [3_000_000, 2_000_000, 160_000]  # 八王子: about 16万 第1号
    panels = pd.concat(
        [
            _panel(
                "R6", [200, 250, 111], [200, 220, 111], n1, codes
            ),  # 八王子's synthetic scores are made up
            _panel("R7", [210, 240, 111], [190, 230, 111], n1, codes),
        ]
    )
    c = compare_published(panels, load_budgets())
    r = c.set_index(["fiscal_year", "grant"])
    # R6 推進: 八王子 published 310 replaces the panel's 111 in its own weight and in the sum
    w_h = 310 * 160_000
    total = 200 * 3_000_000 + 250 * 2_000_000 + w_h
    est = 7_220_000 * w_h / total
    assert r.loc[("R6", "suishin"), "estimate_kyen"] == pytest.approx(est)
    assert r.loc[("R6", "suishin"), "ratio"] == pytest.approx(est / 45_195)
    assert r.loc[("R6", "suishin"), ["published_score", "panel_score"]].tolist() == [310, 111]
    assert r.loc[("R6", "suishin"), "budget_status"] == "assumed"
    assert (
        r.loc[("R7", "shien"), "published_kyen"] == 82_935
        and r.loc[("R7", "shien"), "budget_status"] == "published"
    )
    w_h = 269 * 160_000
    est = 18_050_000 * w_h / (190 * 3_000_000 + 230 * 2_000_000 + w_h)
    assert r.loc[("R7", "shien"), "ratio"] == pytest.approx(est / 82_935)
    tot = r.loc[("R7", "total")]
    assert tot["published_kyen"] == 40_676 + 82_935 and tot["published_score"] == 578
    assert tot["ratio"] == pytest.approx(tot["estimate_kyen"] / tot["published_kyen"])
    assert "公表得点に置き換え" in c.attrs["method"]


def test_published_table_default_and_errors():
    assert HACHIOJI_PUBLISHED["amount_kyen"].tolist() == [45_195, 90_749, 40_676, 82_935]
    assert HACHIOJI_PUBLISHED["score"].tolist() == [310, 308, 309, 269]
    p = pd.concat([_panel(y, [200, 100], [100, 100], [1000, 2000], OTHERS) for y in ("R6", "R7")])
    with pytest.raises(ValueError, match="132012 has no scores in R6"):
        compare_published(p, load_budgets())


def test_published_amounts_from_the_reference_table():
    t = published_amounts(load_published(), load_master())
    furano = t[(t["name"] == "富良野市") & (t["grant"] == "suishin")].set_index("kind")
    assert furano.loc["plan", "amount_kyen"] == 1932 and furano.loc["plan", "lg_code6"] == "012297"
    assert furano["score"].isna().all()
    # a published amount with no score falls back to the panel's score
    code = furano.loc["plan", "lg_code6"]
    p = _panel("R6", [200, 100, 300], [100, 100, 200], [1000, 2000, 1000], [*OTHERS, code])
    c = compare_published(p, load_budgets(), furano.reset_index().loc[lambda d: d["kind"] == "plan"])
    assert c["score_source"].tolist() == ["panel"] and c["published_score"].iloc[0] == 300
