"""Round trip factory → ingest → store: every total and rank against values computed here, independently.

The factory's rule leaves every subtotal a plain sum of its items (see ``workbook_factory``), so the oracle is
:func:`workbook_factory.expected_subtotals` and a competition rank computed below — neither uses
:mod:`kofukin.scoring`, which the importer validates against.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import workbook_factory as wf
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import kofukin
from kofukin import layout
from kofukin.ingest import Category, IngestError, ingest_paths
from kofukin.reference import load_master
from kofukin.scoring import TARGET_KEYS
from kofukin.store import TABLES, load_store, read_table
from kofukin.synthetic.workbook import write_outcome_workbook


@pytest.fixture(scope="session")
def factory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.getbasetemp() / "factory"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="module")
def ingested(factory_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """R6 (12 leading columns, no 規模区分) and R7 workbooks plus R7 outcome values, ingested once."""
    raw = tmp_path_factory.mktemp("raw")
    truths = {}
    for year in ("R6", "R7"):
        truth, path = wf.valid_workbook(factory_dir, year)
        wf.copy(path, raw / year / path.name)
        truths[year] = truth
    outcome = wf.outcome_rows(truths["R7"])
    write_outcome_workbook(raw / "R7" / "R7_outcome.xlsx", "R7", outcome, synthetic=False)
    (raw / "R7" / "広域連合構成市町村_R7.csv").write_text(
        "union_insurer_no,union_name,pref_code,member_lg_code6,member_name,fiscal_year\n"
        "78019,試験用介護保険広域連合,07,74667,矢吹町,R7\n",
        encoding="utf-8",
    )
    store_dir = tmp_path_factory.mktemp("store") / "processed"
    summary = ingest_paths([raw], store_dir)
    return truths, outcome, summary, store_dir, load_store(store_dir)


def competition_rank(values: pd.Series) -> pd.Series:
    """1 + the number of municipalities with a strictly higher total (ties share the best rank)."""
    v = values.to_numpy()
    ordered = np.sort(v)
    return pd.Series(len(v) - np.searchsorted(ordered, v, side="right") + 1, index=values.index)


@pytest.mark.parametrize("year", ["R6", "R7"])
def test_every_total_and_rank_matches_the_oracle(ingested, year):
    truths, _, _, _, store = ingested
    truth = truths[year]
    sub = store.subtotals[store.subtotals["fiscal_year"] == year].set_index("lg_code6")
    assert list(sub.columns[1:]) == list(TARGET_KEYS)
    expected = truth.subtotals.loc[sub.index, list(TARGET_KEYS)]
    pd.testing.assert_frame_equal(sub[list(TARGET_KEYS)], expected, check_names=False)
    ranks = competition_rank(sub["grand_total"])
    assert ranks.equals(truth.rank.loc[sub.index].astype(ranks.dtype))
    attrs = store.attributes[store.attributes["fiscal_year"] == year].set_index("lg_code6")
    assert attrs["rank_published"].astype("int64").equals(ranks.loc[attrs.index].astype("int64"))


@pytest.mark.parametrize("year", ["R6", "R7"])
def test_item_points_round_trip(ingested, year):
    truths, _, _, _, store = ingested
    pts = store.item_points[store.item_points["fiscal_year"] == year]
    wide = pts.pivot(index="lg_code6", columns="item_id", values="points")
    truth = truths[year].points
    assert wide.shape == (1741, truth.shape[1])
    pd.testing.assert_frame_equal(wide.loc[truth.index, truth.columns], truth, check_names=False)


_STRINGS = st.one_of(
    st.none(), st.sampled_from(["", "R7", "011002", "上尾市", "北塩原村", "nan", " "]), st.text()
)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.tuples(_STRINGS, _STRINGS, st.integers(-(2**40), 2**40)), max_size=30),
)
def test_read_table_equals_pandas_read_parquet(rows, tmp_path_factory):
    """The store's dictionary read gives exactly pandas' frame: values, missing strings, dtypes and order."""
    frame = pd.DataFrame(rows, columns=["lg_code6", "item_id", "points"]).astype(
        {"lg_code6": "str", "item_id": "str", "points": "int64"}
    )
    path = tmp_path_factory.mktemp("parquet") / "t.parquet"
    frame.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_table(path), pd.read_parquet(path))
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_the_loaded_store_equals_pandas_read_parquet(ingested):
    *_, store_dir, store = ingested
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(store, name), pd.read_parquet(store_dir / f"{name}.parquet"))


@pytest.mark.parametrize("year", ["R6", "R7"])
def test_attributes_round_trip(ingested, year):
    truths, _, _, _, store = ingested
    rows = truths[year].rows.dropna(subset=["lg_code6"]).set_index("lg_code6")
    attrs = store.attributes[store.attributes["fiscal_year"] == year].set_index("lg_code6").loc[rows.index]
    assert attrs["insurer_no"].tolist() == rows["insurer_no"].tolist()
    assert attrs["population"].tolist() == rows["population"].astype(int).tolist()
    assert attrs["n_insured_1go"].tolist() == rows["n_insured_1go"].astype(int).tolist()
    assert attrs["kaso"].tolist() == (rows["kaso"] != "").tolist()  # ○ and 一部 are both 過疎
    assert attrs["prev_total"].astype(int).tolist() == rows["prev_total"].astype(int).tolist()
    assert attrs["source_row"].tolist() == (rows["serial_no"] + layout.FIRST_DATA_ROW - 1).tolist()
    assert set(attrs["source_file"]) == {f"{year}_valid.xlsx"}


def test_r6_layout_derives_size_class_from_first_insured(ingested):
    """R6 has no 規模区分 column: the class comes from 第1号被保険者数 (bounds 3千, 1万, 5万, 10万)."""
    _, _, _, _, store = ingested
    r6 = store.attributes[store.attributes["fiscal_year"] == "R6"]
    n = r6["n_insured_1go"]
    expected = np.select([n < 3_000, n < 10_000, n < 50_000, n < 100_000], [1, 2, 3, 4], default=5)
    assert r6["size_class"].tolist() == expected.tolist()
    assert sorted(r6["size_class"].unique()) == [1, 2, 3, 4, 5]


def test_union_rows_are_kept_as_insurers(ingested):
    _, _, _, _, store = ingested
    unions = store.insurers[store.insurers["kind"] == "union"]
    assert sorted(zip(unions["fiscal_year"], unions["insurer_no"], unions["insurer_name"], strict=True)) == [
        (y, no, name)
        for y in ("R6", "R7")
        for name, (_, no, _) in sorted(wf.UNIONS.items(), key=lambda kv: kv[1][1])
    ]
    assert (store.insurers["kind"] == "single").sum() == 2 * 1741
    assert not store.attributes["lg_code6"].isin(unions["insurer_no"]).any()


def test_union_members_from_workbook_reference_and_csv(ingested):
    _, _, _, _, store = ingested
    m = store.union_members
    got = sorted(zip(m["fiscal_year"], m["insurer_no"], m["lg_code6"], m["source"], strict=True))
    wb7 = "workbook:R7_valid.xlsx"
    taisetsu = [("R6", "018010", c, "reference:unions.csv") for c in ("014532", "014583", "014591")]
    taisetsu += [("R7", "018010", c, f"{wb7}; reference:unions.csv") for c in ("014532", "014583", "014591")]
    test_union = [("R7", "078019", c, wb7) for c in ("074641", "074659")]
    csv = [
        ("R7", "078019", "074667", "csv:広域連合構成市町村_R7.csv")
    ]  # its fiscal_year column limits it to R7
    # R6 has no 所属広域連合 column: its memberships come from the reference table only
    assert got == sorted(taisetsu + test_union + csv)


def test_outcome_values_only_where_an_outcome_workbook_exists(ingested):
    _, outcome, _, _, store = ingested
    ov = store.outcome_values
    assert set(ov["fiscal_year"]) == {"R7"}  # R6 has no outcome workbook: simply no values
    assert len(ov) == 1741 * len(layout.OUTCOME_VALUE_COLUMNS)
    wide = ov.assign(label=ov["indicator_no"].astype(str) + ov["branch"]).pivot(
        index="lg_code6", columns="label", values="value"
    )
    expected = outcome.set_index("lg_code6")[list(layout.OUTCOME_VALUE_COLUMNS)]
    pd.testing.assert_frame_equal(
        wide.loc[expected.index, expected.columns], expected, check_names=False, check_index_type=False
    )


def test_manifest_and_summary(ingested):
    _, _, summary, store_dir, store = ingested
    m = store.manifest
    assert m["package_version"] == kofukin.__version__
    assert m["years"] == ["R6", "R7"]
    kinds = [(s["fiscal_year"], s["kind"], s["synthetic"], Path(s["path"]).name) for s in m["sources"]]
    assert kinds == [
        ("R6", "results", False, "R6_valid.xlsx"),
        ("R7", "results", False, "R7_valid.xlsx"),
        ("R7", "outcome", False, "R7_outcome.xlsx"),
        (None, "unions", False, "広域連合構成市町村_R7.csv"),
    ]
    for s in m["sources"]:
        assert s["sha256"] == hashlib.sha256(Path(s["path"]).read_bytes()).hexdigest()
    assert m["skipped"] == [] and m["created_at"].endswith("+00:00")
    assert summary == (
        "Ingested 2 years (R6, R7): 3,482 municipality rows, 4 広域連合 insurer rows kept, "
        f"{len(store.item_points):,} item points, 9 union memberships; outcome values for R7; all years real. "
        f"Store written to {store_dir}."
    )
    assert store.years == ["R6", "R7"] and store.synthetic_years == []


def test_store_tables_cover_the_master(ingested):
    _, _, _, _, store = ingested
    assert store.municipalities["lg_code6"].tolist() == load_master()["lg_code6"].tolist()
    panel = store.panel()
    assert len(panel) == 2 * 1741 and panel["name"].notna().all()


# --- the atomic-store guarantee ------------------------------------------------------------------------------


def _tree_digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_failed_ingest_leaves_the_previous_store_byte_identical(ingested, factory_dir, tmp_path):
    import shutil

    _, _, _, store_dir, _ = ingested
    store = tmp_path / "data" / "processed"
    shutil.copytree(store_dir, store)
    before = _tree_digest(store)
    _, good = wf.valid_workbook(factory_dir, "R7")
    wf.copy(good, tmp_path / "raw" / "R7.xlsx")
    wf.zero_byte(tmp_path / "raw" / "broken.xlsx")
    with pytest.raises(IngestError) as info:
        ingest_paths([tmp_path / "raw"], store)
    assert [f.category for f in info.value.failures] == [Category.EMPTY_FILE]
    assert _tree_digest(store) == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["processed"]  # no temporary or .old siblings


def test_failed_ingest_creates_no_store(tmp_path):
    wf.csv_renamed(tmp_path / "R7.xlsx")
    with pytest.raises(IngestError):
        ingest_paths([tmp_path], tmp_path / "out" / "processed")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_workbooks_at_all(tmp_path):
    with pytest.raises(IngestError) as info:
        ingest_paths([tmp_path], tmp_path / "processed")
    (f,) = info.value.failures
    assert f.category is Category.NO_INPUT
    assert f.detail.startswith("no results workbook (評価結果（市町村分）) under ")


def test_cli_exits_1_with_the_report(tmp_path):
    from kofukin.cli import app

    wf.zero_byte(tmp_path / "R7.xlsx")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--store", str(tmp_path / "processed")])
    assert result.exit_code == 1
    assert "R7.xlsx: the file is empty (0 bytes); download it again" in result.output
