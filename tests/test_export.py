"""CSV exports: both encodings, codes with leading zeros, Japanese headers with a key mapping, atomic writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from analysis_fixtures import SAPPORO, codes_of, default_attributes, items_table, make_store

import kofukin.export as export_mod
from kofukin.export import COLUMNS, MANIFEST, export_tables, write_tables
from kofukin.reference import load_crosswalk

CODES = [SAPPORO, *codes_of("01")[1:4], *codes_of("13")[:2]]
NAMES = [
    "national_summary",
    "prefecture_summary",
    "municipality_profiles",
    "gains_losses",
    "gains_losses_by_goal",
    "within_reach",
    "peers",
]


@pytest.fixture(scope="module")
def store():
    pts6 = {
        c: {"suishin-I-taisei-1-ア": 4 if i % 2 else 0, "suishin-I-taisei-1-イ": 4}
        for i, c in enumerate(CODES)
    }
    pts7 = {
        c: {"suishin-I-taisei-1-ア": 4, "suishin-I-taisei-1-イ": 0 if i == 0 else 4}
        for i, c in enumerate(CODES)
    }
    items = pd.concat([items_table("R6", pts6), items_table("R7", pts7)], ignore_index=True)
    attrs = pd.concat([default_attributes(CODES, y).assign(size_class=3, kaso=False) for y in ("R6", "R7")])
    return make_store(items, attrs)


@pytest.fixture(scope="module")
def exported(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "exports"
    reg = pd.DataFrame({"term": ["all_taisei"], "estimate": [0.01], "std_error": [0.002], "extra": [1]})
    res = export_tables(store, out, regression=reg, crosswalk=load_crosswalk(), k_peers=3)
    return out, res


def test_every_file_in_both_encodings(exported):
    out, res = exported
    for name in [*NAMES, "regression_coefficients"]:
        plain = (out / f"{name}.csv").read_bytes()
        excel = (out / f"{name}_excel.csv").read_bytes()
        assert not plain.startswith(b"\xef\xbb\xbf") and b"\r\n" not in plain
        assert excel.startswith(b"\xef\xbb\xbf") and b"\r\n" in excel
        assert res.rows[name] == len(pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False))
    assert (out / "README.txt").read_text(encoding="utf-8").count("合成データ") >= 1
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["synthetic_years"] == ["R6", "R7"] and manifest["rows"] == res.rows


def test_codes_keep_their_leading_zeros(exported):
    out, _ = exported
    prof = pd.read_csv(out / "municipality_profiles.csv", dtype=str, keep_default_na=False)
    assert SAPPORO in set(prof["市町村コード"]) and prof["市町村コード"].str.len().eq(6).all()
    assert set(prof["都道府県コード"]) == {"01", "13"}
    excel = pd.read_csv(out / "municipality_profiles_excel.csv", dtype=str, encoding="utf-8-sig")
    assert '="011002"' in set(excel["市町村コード"])  # Excel shows 011002, as text
    assert set(excel["都道府県コード"]) == {'="01"', '="13"'}


def test_profiles_one_row_per_municipality_and_year_with_ranks(exported):
    out, _ = exported
    prof = pd.read_csv(out / "municipality_profiles.csv", dtype=str, keep_default_na=False)
    assert len(prof) == 2 * len(CODES)
    assert {
        "総合計 全国順位",
        "総合計 県内順位",
        "総合計 同条件順位",
        "全国団体数",
        "県内団体数",
        "同条件団体数",
    } <= set(prof.columns)
    r7 = prof[prof["年度"] == "R7"].set_index("市町村コード")
    assert (
        r7.loc[SAPPORO, "総合計"] == "4" and r7.loc[SAPPORO, "総合計 全国順位"] == "6"
    )  # ties at 8 above it
    assert r7.loc[SAPPORO, "県内団体数"] == "4" and r7.loc[SAPPORO, "合成データ"] == "true"


def test_headers_are_japanese_and_mapped(exported):
    out, _ = exported
    cols = pd.read_csv(out / "columns.csv", dtype=str, keep_default_na=False)
    for name in NAMES:
        header = pd.read_csv(out / f"{name}.csv", nrows=0).columns.tolist()
        mapped = cols[cols["ファイル"] == f"{name}.csv"]
        assert mapped["見出し"].tolist() == header
        assert all(any(ord(ch) > 127 for ch in h) for h in header), name
        assert set(mapped["キー"]) <= {k for k, _ in COLUMNS[name]}
    reg = pd.read_csv(out / "regression_coefficients.csv", nrows=0).columns.tolist()
    assert reg == ["説明変数", "係数", "標準誤差", "extra"]


def test_content_of_the_analysis_tables(exported):
    out, _ = exported
    nat = pd.read_csv(out / "national_summary.csv", dtype=str, keep_default_na=False)
    assert len(nat) == 2 * 26 and nat[nat["年度"] == "R7"]["配点"].tolist()[-1] == "800"
    gl = pd.read_csv(out / "gains_losses.csv", dtype=str, keep_default_na=False)
    s = gl[gl["市町村コード"] == SAPPORO].set_index("比較先項目ID")
    assert s.loc["R7-suishin-I-taisei-1-ア", "区分"] == "獲得"
    assert s.loc["R7-suishin-I-taisei-1-イ", "区分"] == "喪失"
    assert "未獲得" not in set(gl["区分"])  # items at 0 in both years are left out
    goals = pd.read_csv(out / "gains_losses_by_goal.csv", dtype=str, keep_default_na=False)
    assert len(goals) == len(CODES) * 8
    peers = pd.read_csv(out / "peers.csv", dtype=str, keep_default_na=False)
    assert len(peers) == len(CODES) * 3 and (peers["年度"] == "R7").all()
    pref = pd.read_csv(out / "prefecture_summary.csv", dtype=str, keep_default_na=False)
    assert {"区部", "市部", "町村部"} & set(pref["区域"])


def test_atomic_replacement_and_refusal(tmp_path, monkeypatch):
    out = tmp_path / "exports"
    table = {"peers": pd.DataFrame({"fiscal_year": ["R7"], "of_lg_code6": [SAPPORO], "peer_rank": [1]})}
    write_tables(table, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "_write_csv", boom)
    with pytest.raises(RuntimeError):
        write_tables(table, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old export is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["exports"]  # no temporary directory left behind
    monkeypatch.undo()
    write_tables(table, out)  # an export replaces an export
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing"):
        write_tables(table, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_missing_crosswalk_skips_gains(store, tmp_path, monkeypatch):
    def missing():
        raise FileNotFoundError("item_crosswalk.csv")

    monkeypatch.setattr(export_mod, "load_crosswalk", missing)
    res = export_tables(store, tmp_path / "x", k_peers=2)
    assert "gains_losses" in res.skipped and not (tmp_path / "x" / "gains_losses.csv").exists()
    assert "出力なし" in (tmp_path / "x" / "README.txt").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no R8"):
        export_tables(store, tmp_path / "y", year="R8")
