"""Nearest peers on standardised covariates and the official 同条件 group."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from analysis_fixtures import codes_of, make_panel, uniform_values

from kofukin.peers import nearest_peers, nearest_peers_table, official_peer_group, peer_covariates

A = codes_of("01")[:4]
B = codes_of("02")[:2]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    codes = A + B
    attrs = pd.DataFrame(
        {
            "lg_code6": codes,
            # A: 10^3 .. 10^6 people, 30 % 第1号 everywhere (so the share does not vary)
            "population": [1_000, 10_000, 100_000, 1_000_000, 10_000, 100_000],
            "n_insured_1go": [300, 3_000, 30_000, 300_000, 3_000, 30_000],
            "size_class": [1, 2, 3, 5, 2, 3],
            "kaso": [False] * 6,
        }
    )
    p = make_panel(uniform_values(codes), "R7", attrs)
    p["grand_total"] = [400, 500, 450, 300, 500, 420]
    return p


def test_distances_by_hand(panel):
    # ln population takes 6 values (3,4,5,6,4,5)·ln10: mean 4.5, SD √(5.5/6) in units of ln10.
    sd = math.sqrt(sum((x - 4.5) ** 2 for x in (3, 4, 5, 6, 4, 5)) / 6)
    step = 1 / sd  # one decade in z units; ln 第1号 moves the same, share and 過疎 not at all
    r = nearest_peers(panel, "R7", A[1], k=3)
    assert r["lg_code6"].tolist()[0] == B[0]  # identical covariates: distance 0
    assert r["distance"].iloc[0] == pytest.approx(0.0)
    # next: A[0] and A[2], one decade away on two covariates, tied; the tie goes by code
    assert r["lg_code6"].tolist()[1:] == sorted([A[0], A[2]])
    assert r["distance"].iloc[1] == pytest.approx(step * math.sqrt(2))
    assert A[1] not in set(r["lg_code6"])
    assert r["peer_rank"].tolist() == [1, 2, 3]
    assert r["same_official_group"].tolist()[0]
    cov = peer_covariates(panel, "R7")
    assert (cov["z_share_1go"] == 0).all() and (cov["z_kaso01"] == 0).all()


def test_kaso_counts_as_a_covariate(panel):
    p = panel.copy()
    p.loc[p["lg_code6"] == B[0], "kaso"] = True
    r = nearest_peers(p, "R7", A[1], k=6)
    assert r["lg_code6"].iloc[0] != B[0]
    assert len(r) == 5  # everyone but itself


def test_within_prefecture(panel):
    r = nearest_peers(panel, "R7", A[1], k=10, within_prefecture=True)
    assert set(r["lg_code6"]) == {A[0], A[2], A[3]}
    with pytest.raises(ValueError, match="no scored municipalities in R8"):
        nearest_peers(panel, "R8", A[1])
    with pytest.raises(ValueError, match="no scores in R7"):
        nearest_peers(panel, "R7", codes_of("03")[0])
    with pytest.raises(ValueError, match="k must"):
        nearest_peers(panel, "R7", A[1], k=0)


def test_vectorised_table_matches(panel):
    t = nearest_peers_table(panel, "R7", k=3)
    assert len(t) == 6 * 3
    for code in A + B:
        one = nearest_peers(panel, "R7", code, k=3)
        mine = t[t["of_lg_code6"] == code]
        assert mine["lg_code6"].tolist() == one["lg_code6"].tolist()
        assert mine["distance"].tolist() == pytest.approx(one["distance"].tolist())


def test_official_peer_group_with_ties(panel):
    g = official_peer_group(panel, "R7", A[1])
    assert set(g["lg_code6"]) == {A[1], B[0]}
    assert g["rank_peer"].tolist() == [1, 1] and (g["n_peer"] == 2).all()
    assert g.set_index("lg_code6").loc[A[1], "is_self"]
    solo = official_peer_group(panel, "R7", A[3])
    assert len(solo) == 1 and solo["rank_peer"].tolist() == [1]
