"""The item crosswalk R6 ↔ R7 ↔ R8 (``kofukin.crosswalk`` and ``data/reference/item_crosswalk.csv``).

The committed CSV must equal a fresh build, every item of every year must be accounted for, and the decisions
documented in ``data/reference/README.md`` (including its counts table) must be what the file says.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd
import pytest

from kofukin import crosswalk, reference
from kofukin.crosswalk import (
    COLUMNS,
    COMPARABLE_RELATIONS,
    MANUAL_DECISIONS,
    PAIRS,
    RELATIONS,
    UnclassifiedChange,
    build_crosswalk,
    comparable_pairs,
    crosswalk_status,
    indicator_crosswalk,
    to_csv_text,
)
from kofukin.paths import REFERENCE_DIR

EXPECTED_COUNTS = {
    ("R6", "R7"): {"same": 276, "renumbered": 5, "split": 44, "merged": 3, "dropped": 4, "new": 4},
    ("R7", "R8"): {"same": 287, "split": 60},
    ("R6", "R8"): {"same": 271, "split": 104, "merged": 3, "dropped": 4, "new": 4},
}


@pytest.fixture(scope="module")
def cw() -> pd.DataFrame:
    return reference.load_crosswalk()


@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return reference.load_catalogue().set_index("item_id")


def _pair(cw: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    return cw[(cw["from_year"] == a) & (cw["to_year"] == b)]


def _rows(cw: pd.DataFrame, a: str, b: str, from_item: str) -> pd.DataFrame:
    p = _pair(cw, a, b)
    return p[p["from_item_id"] == from_item]


# --- the file ------------------------------------------------------------------------------------------


def test_committed_file_equals_a_fresh_build() -> None:
    committed = (REFERENCE_DIR / crosswalk.CROSSWALK_FILE).read_text(encoding="utf-8")
    assert committed == to_csv_text(build_crosswalk()), (
        "stale item_crosswalk.csv: run python -m kofukin.crosswalk"
    )


def test_cli_check_reports_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert crosswalk.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_schema(cw: pd.DataFrame, cat: pd.DataFrame) -> None:
    assert tuple(cw.columns) == COLUMNS
    assert set(zip(cw["from_year"], cw["to_year"], strict=True)) == set(PAIRS)
    assert set(cw["relation"]) <= set(RELATIONS)
    assert (cw["comparable"] == cw["relation"].isin(list(COMPARABLE_RELATIONS)).map(str).str.lower()).all()
    assert ((cw["from_item_id"] == "") == (cw["relation"] == "new")).all()
    assert ((cw["to_item_id"] == "") == (cw["relation"] == "dropped")).all()
    assert not cw.duplicated(["from_year", "to_year", "from_item_id", "to_item_id"]).any()
    for side in ("from", "to"):
        ids = cw.loc[cw[f"{side}_item_id"] != "", [f"{side}_year", f"{side}_item_id"]]
        assert ids[f"{side}_item_id"].isin(cat.index).all()
        assert (ids[f"{side}_item_id"].str[:2] == ids[f"{side}_year"]).all()
    # every non-trivial row explains itself
    plain = (cw["relation"] == "same") & ~cw["from_item_id"].str.contains("-shien-IV-")
    assert (cw.loc[~plain, "note"] != "").all()
    assert (cw.loc[plain, "note"] == "").all()


@pytest.mark.parametrize("pair", PAIRS)
def test_every_item_is_accounted_for_once_per_side(cw: pd.DataFrame, cat: pd.DataFrame, pair: tuple) -> None:
    a, b = pair
    p = _pair(cw, a, b)
    for year, col in ((a, "from_item_id"), (b, "to_item_id")):
        expected = set(cat.index[cat["fiscal_year"] == year])
        assert set(p.loc[p[col] != "", col]) == expected, (pair, col)
        # one relation per item: a split item has several links, all "split"
        assert p[p[col] != ""].groupby(col)["relation"].nunique().eq(1).all()
    comparable = p[p["comparable"] == "true"]
    assert comparable["from_item_id"].is_unique and comparable["to_item_id"].is_unique


@pytest.mark.parametrize("pair", PAIRS)
def test_counts_per_relation(cw: pd.DataFrame, pair: tuple) -> None:
    got = _pair(cw, *pair)["relation"].value_counts().to_dict()
    assert got == EXPECTED_COUNTS[pair]


def test_readme_counts_table_matches_the_file(cw: pd.DataFrame) -> None:
    text = (REFERENCE_DIR / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- crosswalk-counts", 1)[1].split("\n\n", 1)[0]
    header, rows = None, {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "pair":
            header = cells
        elif re.fullmatch(r"R\d→R\d", cells[0]):
            rows[tuple(cells[0].split("→"))] = dict(zip(header[1:], map(int, cells[1:]), strict=True))
    assert set(rows) == set(PAIRS)
    for pair, documented in rows.items():
        p = _pair(cw, *pair)
        counts = p["relation"].value_counts()
        for rel in RELATIONS:
            assert documented[rel] == counts.get(rel, 0), (pair, rel)
        assert documented["rows"] == len(p)
        assert documented["comparable"] == (p["comparable"] == "true").sum()


# --- matching rules ------------------------------------------------------------------------------------


def test_comparable_pairs_are_the_same_question(cw: pd.DataFrame, cat: pd.DataFrame) -> None:
    comp = cw[cw["comparable"] == "true"]
    a = cat.loc[comp["from_item_id"]].reset_index()
    b = cat.loc[comp["to_item_id"]].reset_index()
    for col in ("grant", "goal", "group", "indicator_name_ja", "branch", "sub_branch", "max_points"):
        assert (a[col] == b[col]).all(), col
    renumbered = (comp["relation"] == "renumbered").to_numpy()
    assert ((a["indicator_no"] != b["indicator_no"]).to_numpy() == renumbered).all()


def test_suishin_goal_ii_taisei_branch_a_merged_and_the_rest_same(
    cw: pd.DataFrame, cat: pd.DataFrame
) -> None:
    """R6 has 6 sub-branch items in 推進Ⅱ(ⅰ)2 (ア①–③, イ①–③), R7 only 3: ア①②③ merged into ア."""
    ind = cat[(cat["grant"] == "suishin") & (cat["goal"] == "II") & (cat["group"] == "taisei")]
    subs = ind[ind["sub_branch"] != ""].groupby("fiscal_year").size().to_dict()
    assert subs == {"R6": 6, "R7": 3, "R8": 3}
    for to in ("R7", "R8"):
        for sub in "①②③":
            rows = _rows(cw, "R6", to, f"R6-suishin-II-taisei-2-ア-{sub}")
            assert rows[["to_item_id", "relation", "comparable"]].values.tolist() == [
                [f"{to}-suishin-II-taisei-2-ア", "merged", "false"]
            ]
        for branch in ("イ-①", "イ-②", "イ-③", "ウ", "エ", "オ"):
            rows = _rows(cw, "R6", to, f"R6-suishin-II-taisei-2-{branch}")
            assert rows[["to_item_id", "relation"]].values.tolist() == [
                [f"{to}-suishin-II-taisei-2-{branch}", "same"]
            ]
    assert crosswalk_status("R7-suishin-II-taisei-2-ア", "R8") == "same"


def test_restructured_shien_indicators_are_split_not_comparable(cw: pd.DataFrame) -> None:
    r6_4 = _rows(cw, "R6", "R7", "R6-shien-I-taisei-4-ウ")
    assert len(r6_4) == 5 and set(r6_4["relation"]) == {"split"} and set(r6_4["comparable"]) == {"false"}
    assert "only at indicator level" in r6_4["note"].iloc[0]
    assert len(_rows(cw, "R6", "R7", "R6-shien-I-taisei-7-ア")) == 6
    assert len(_rows(cw, "R7", "R8", "R7-shien-I-taisei-6-オ")) == 6
    # R7→R8 認知症サポーター等: ア–オ 5 points each → ア–オ 4 each + カ 5
    r7 = _rows(cw, "R7", "R8", "R7-shien-II-taisei-1-ア")
    assert sorted(r7["to_item_id"]) == [f"R8-shien-II-taisei-1-{b}" for b in "アイウエオカ"]
    assert set(r7["relation"]) == {"split"}
    # R6→R8 goes through a renumbering (3 → 1) and the R8 split
    r6 = _rows(cw, "R6", "R8", "R6-shien-II-taisei-3-ア")
    assert len(r6) == 6 and set(r6["relation"]) == {"split"} and "indicator 3 → 1" in r6["note"].iloc[0]


def test_shien_goal_ii_renumbered_dropped_and_new(cw: pd.DataFrame) -> None:
    renumbered = _pair(cw, "R6", "R7").query("relation == 'renumbered'")
    assert renumbered[["from_item_id", "to_item_id"]].values.tolist() == [
        [f"R6-shien-II-taisei-3-{b}", f"R7-shien-II-taisei-1-{b}"] for b in "アイウエオ"
    ]
    for to in ("R7", "R8"):
        p = _pair(cw, "R6", to)
        assert p.loc[p["relation"] == "dropped", "from_item_id"].tolist() == [
            f"R6-shien-II-taisei-1-{b}" for b in "アイウエ"
        ]
        assert p.loc[p["relation"] == "new", "to_item_id"].tolist() == [
            f"{to}-shien-II-taisei-3-{b}" for b in "アイウエ"
        ]
        assert "認知症初期集中支援チームの活動状況" in p.loc[p["relation"] == "dropped", "note"].iloc[0]
    same = _rows(cw, "R6", "R7", "R6-shien-II-taisei-2-ア")
    assert same[["to_item_id", "relation"]].values.tolist() == [["R7-shien-II-taisei-2-ア", "same"]]


@pytest.mark.parametrize("pair", PAIRS)
def test_goal_iv_shien_copy_maps_like_its_suishin_twin(cw: pd.DataFrame, pair: tuple) -> None:
    p = _pair(cw, *pair)
    s = p[p["from_item_id"].str.contains("-suishin-IV-")]
    d = p[p["from_item_id"].str.contains("-shien-IV-")]
    assert len(s) == len(d) == 32
    twin = d[["from_item_id", "to_item_id", "relation"]].replace("-shien-IV-", "-suishin-IV-", regex=True)
    assert twin.values.tolist() == s[["from_item_id", "to_item_id", "relation"]].values.tolist()
    assert set(d["relation"]) == {"same"}
    assert d["note"].str.contains("outcome_duplicate").all()


def test_r6_to_r8_agrees_with_composition(cw: pd.DataFrame) -> None:
    """An R6→R8 pair is comparable exactly when R6→R7 and R7→R8 are, through the same R7 item."""
    first = _pair(cw, "R6", "R7").query("comparable == 'true'").set_index("from_item_id")["to_item_id"]
    second = _pair(cw, "R7", "R8").query("comparable == 'true'").set_index("from_item_id")["to_item_id"]
    composed = {a: second[b] for a, b in first.items() if b in second.index}
    direct = _pair(cw, "R6", "R8").query("comparable == 'true'").set_index("from_item_id")["to_item_id"]
    assert direct.to_dict() == composed
    assert len(composed) == 271


def test_every_manual_decision_is_used_and_documented() -> None:
    readme = (REFERENCE_DIR / "README.md").read_text(encoding="utf-8")
    cat = reference.load_catalogue()
    for d in MANUAL_DECISIONS:
        assert d.level in ("indicator", "branch")
        assert d.indicator_name_ja in readme
        assert ((cat["grant"] == d.grant) & (cat["indicator_name_ja"] == d.indicator_name_ja)).any()


# --- failure modes -------------------------------------------------------------------------------------


def test_unreviewed_structural_change_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crosswalk, "MANUAL_DECISIONS", MANUAL_DECISIONS[1:])
    with pytest.raises(UnclassifiedChange, match="給付費適正化事業の取組状況"):
        build_crosswalk()


def test_stale_decision_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    stale = replace(MANUAL_DECISIONS[0], indicator_name_ja="存在しない指標")
    monkeypatch.setattr(crosswalk, "MANUAL_DECISIONS", (*MANUAL_DECISIONS, stale))
    with pytest.raises(UnclassifiedChange, match="存在しない指標"):
        build_crosswalk()


def test_a_new_catalogue_change_is_not_classified_silently() -> None:
    cat = reference.load_catalogue()
    changed = cat[cat["item_id"] != "R8-suishin-I-taisei-1-エ"]  # R8 drops one branch of an indicator
    with pytest.raises(UnclassifiedChange, match="地域の介護保険事業の特徴"):
        build_crosswalk(changed)


def test_a_rescored_item_is_comparable() -> None:
    cat = reference.load_catalogue().copy()
    cat.loc[cat["item_id"] == "R8-suishin-I-taisei-1-ア", "max_points"] = 5
    rows = crosswalk.build_pair(cat, "R7", "R8")
    row = rows[rows["from_item_id"] == "R7-suishin-I-taisei-1-ア"].iloc[0]
    assert (row["relation"], row["comparable"], row["note"]) == ("rescored", "true", "max_points 4 → 5")


# --- access functions ----------------------------------------------------------------------------------


def test_comparable_pairs_forward_and_backward() -> None:
    assert [len(comparable_pairs(*p)) for p in PAIRS] == [281, 287, 271]
    fwd = comparable_pairs("R6", "R7")
    back = comparable_pairs("R7", "R6")
    assert list(back.columns) == list(fwd.columns) == [c for c in COLUMNS if c != "comparable"]
    assert set(back["from_year"]) == {"R7"} and set(back["to_year"]) == {"R6"}
    assert sorted(zip(back["to_item_id"], back["from_item_id"], strict=True)) == sorted(
        zip(fwd["from_item_id"], fwd["to_item_id"], strict=True)
    )
    row = fwd[fwd["from_item_id"] == "R6-shien-II-taisei-3-オ"].iloc[0]
    assert (row["to_item_id"], row["relation"]) == ("R7-shien-II-taisei-1-オ", "renumbered")
    with pytest.raises(ValueError, match="no crosswalk"):
        comparable_pairs("R6", "R6")
    with pytest.raises(ValueError, match=r"no crosswalk"):
        comparable_pairs("R5", "R6")


@pytest.mark.parametrize(
    "item_id,to_year,status",
    [
        ("R6-suishin-I-taisei-1-ア", "R7", "same"),
        ("R6-suishin-I-taisei-1-ア", "R8", "same"),
        ("R6-shien-II-taisei-3-ア", "R7", "renumbered"),
        ("R6-shien-II-taisei-3-ア", "R8", "split"),
        ("R6-shien-II-taisei-1-ア", "R7", "dropped"),
        ("R6-suishin-II-taisei-2-ア-②", "R7", "merged"),
        ("R7-shien-I-taisei-6-ア", "R8", "split"),
        ("R6-shien-IV-outcome-5-イ-④", "R8", "same"),
        # backwards: the relation reads the other way round
        ("R7-shien-II-taisei-3-ア", "R6", "dropped"),
        ("R8-shien-II-taisei-1-カ", "R7", "merged"),
        ("R7-suishin-II-taisei-2-ア", "R6", "split"),
        ("R7-shien-II-taisei-1-ア", "R6", "renumbered"),
        ("R8-suishin-III-katsudo-3-エ", "R6", "same"),
        ("R8-suishin-I-taisei-1-ア", "R8", "same"),
    ],
)
def test_crosswalk_status(item_id: str, to_year: str, status: str) -> None:
    assert crosswalk_status(item_id, to_year) == status


def test_crosswalk_status_unknown_item() -> None:
    with pytest.raises(KeyError):
        crosswalk_status("R6-suishin-I-taisei-9-ア", "R7")
    with pytest.raises(KeyError):
        crosswalk_status("R7-suishin-I-taisei-9-ア", "R7")


def test_indicator_crosswalk_totals() -> None:
    r67 = indicator_crosswalk("R6", "R7").set_index("indicator_name_ja")
    assert len(r67) == 54
    row = r67.loc["給付費適正化事業の取組状況"]
    assert (row["from_max"], row["to_max"], row["relations"], row["items_comparable"]) == (
        36,
        36,
        "merged|same",
        False,
    )
    row = r67.loc["通いの場参加者の健康状態の把握・分析"]
    assert (row["from_max"], row["to_max"], row["relations"]) == (7, 7, "split")
    row = r67.loc["認知症サポーター等を活用した地域支援体制の構築"]
    assert (row["from_indicator_no"], row["to_indicator_no"], row["items_comparable"]) == ("3", "1", True)
    row = r67.loc["難聴高齢者の早期発見・早期介入"]
    assert (row["from_indicator_no"], row["to_indicator_no"], row["from_max"], row["to_max"]) == (
        "",
        "3",
        0,
        20,
    )
    r78 = indicator_crosswalk("R7", "R8")
    assert (~r78["items_comparable"]).sum() == 2
    assert (r78["from_max"] == r78["to_max"]).all()  # every R7→R8 change keeps the indicator's points
    with pytest.raises(ValueError, match="forward"):
        indicator_crosswalk("R8", "R7")
