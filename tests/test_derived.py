"""The national tables persisted beside the store (kofukin.derived) change no number of any report.

A report built from the persisted tables — the single-municipality path for its first request, the persisted
batch from the second on — must equal the report a kernel computes with nothing persisted, table for table and
figure byte for byte; stale tables must be ignored; a failed derivation must leave the previous ones whole.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofukin import derived
from kofukin.bookdata import BookData
from kofukin.bycode import RowsByCode, rows_where
from kofukin.report import municipality_report
from kofukin.store import MANIFEST, load_store


@pytest.fixture(scope="module")
def processed(good_book):
    return good_book.paths.processed


def _codes(processed) -> list[str]:
    """Two ordinary municipalities, a 広域連合 member (shared outcome unit) and one of the stage harness's."""
    panel = load_store(processed).panel()
    r8 = panel[panel["fiscal_year"] == "R8"]
    members = r8[r8["union_name"].fillna("").astype(str) != ""]["lg_code6"]
    plain = r8[r8["union_name"].fillna("").astype(str) == ""]["lg_code6"]
    return [str(plain.iloc[0]), str(plain.iloc[500]), str(members.iloc[0]), "312011"]


def _assert_same_report(a, b) -> None:
    assert a.glue == b.glue
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], obj=name)
    assert a.figures == b.figures  # PNG bytes: same numbers drawn the same way


def test_the_ingest_wrote_current_derived_tables(processed):
    tables = derived.open_derived(processed)
    assert tables is not None, "kofukin ingest derives the tables a first report needs"
    for name in ("outcome_frame", "shrunken-R8", "achieved-R8", "gains-R6-R7", "gains-R7-R8", "reach-R8"):
        assert tables.get(name) is not None, name
    assert tables.get("gains-R6-R8") is None, "only pairs of consecutive years are compared"
    assert tables.get("reach-R7") is None, "items within reach only for the year the book reports on"


def test_reports_from_persisted_tables_equal_reports_computed_in_the_kernel(processed):
    store = load_store(processed)
    computed = BookData(store, "k")
    persisted = BookData(store, "k", derived=derived.open_derived(processed))
    codes = _codes(processed)
    # The second round reads the persisted batches (BATCH_AFTER_DERIVED); the computed side never batches.
    for year in ("R8", "R7"):
        for code in [*codes, *codes]:
            _assert_same_report(
                municipality_report(code, year, persisted), municipality_report(code, year, computed)
            )
    assert set(persisted._batches) == {
        *("gains-R7-R8", "achieved-R8", "reach-R8", "reach-changes-R8"),
        *("gains-R6-R7", "achieved-R7"),
    }
    assert computed._batches == {}
    pd.testing.assert_frame_equal(persisted.shrunken["R8"], computed.shrunken["R8"])
    assert persisted.shrunken["R8"].attrs == computed.shrunken["R8"].attrs  # τ², κ, α travel with the table


def test_a_single_report_reads_the_small_persisted_tables_and_computes_its_own_rows_of_the_large(processed):
    """``kofukin report`` runs one report: a persisted table of a few hundred kB is read at once (it costs less
    than the municipality's own computation), one of tens of MB is left for a kernel that runs many."""
    from kofukin.bookdata import SMALL_DERIVED_BYTES

    tables = derived.open_derived(processed)
    sizes = {
        name: tables.nbytes(name) for name in ("achieved-R8", "reach-changes-R8", "gains-R7-R8", "reach-R8")
    }
    assert sizes["achieved-R8"] <= SMALL_DERIVED_BYTES and sizes["reach-changes-R8"] <= SMALL_DERIVED_BYTES
    assert sizes["gains-R7-R8"] > SMALL_DERIVED_BYTES and sizes["reach-R8"] > SMALL_DERIVED_BYTES
    store = load_store(processed)
    one = BookData(store, "k", derived=tables)
    code = _codes(processed)[0]
    _assert_same_report(
        municipality_report(code, "R8", one), municipality_report(code, "R8", BookData(store, "k"))
    )
    assert set(one._batches) == {"achieved-R8", "reach-changes-R8"}


def test_a_kernel_without_persisted_tables_batches_them_itself_to_the_same_numbers(processed, monkeypatch):
    """Past BATCH_AFTER requests a kernel computes the national pass itself (no persisted tables: an older
    store, or another year than the book's); its reports equal the single-municipality ones."""
    from kofukin import bookdata

    store = load_store(processed)
    codes = _codes(processed)
    single = BookData(store, "k")
    expected = {code: municipality_report(code, "R8", single) for code in codes}  # fewer than BATCH_AFTER
    assert single._batches == {}
    monkeypatch.setattr(bookdata, "BATCH_AFTER", 1)
    batched = BookData(store, "k")
    for code in [*codes, *codes]:
        _assert_same_report(municipality_report(code, "R8", batched), expected[code])
    assert {"gains-R7-R8", "achieved-R8", "reach-R8", "reach-changes-R8"} <= set(batched._batches)
    assert set(batched._reach_tables) == {"R8"}, "one national pass serves the items and their what-if"


def test_tables_of_another_store_are_ignored(processed, tmp_path):
    copy = tmp_path / "processed"
    shutil.copytree(processed, copy)
    assert derived.open_derived(copy) is not None
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["store_sha256"] = "0" * 64  # what a re-ingest of changed workbooks records
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert derived.open_derived(copy) is None


def test_a_failed_derivation_keeps_the_previous_tables(processed, tmp_path, monkeypatch):
    copy = tmp_path / "processed"
    shutil.copytree(processed, copy)
    before = {p.name: p.read_bytes() for p in (copy / derived.DIRECTORY).iterdir()}

    def broken(data, parts):
        raise MemoryError("out of memory half-way")

    monkeypatch.setattr(derived, "compute", broken)
    with pytest.raises(MemoryError):
        derived.write_derived(copy)
    assert {p.name: p.read_bytes() for p in (copy / derived.DIRECTORY).iterdir()} == before
    assert not list(copy.glob(".derived.tmp-*")), "the staging directory is removed"


def test_the_two_processes_write_the_same_bytes_as_one(processed, tmp_path):
    """``ensure_derived`` splits the work over two processes (:data:`derived.PARTS`); every file it writes is
    byte for byte the one a single process writes."""
    one, two = tmp_path / "one", tmp_path / "two"
    for copy in (one, two):
        shutil.copytree(processed, copy, ignore=shutil.ignore_patterns(derived.DIRECTORY))
    derived.write_derived(one)
    assert derived.ensure_derived(two, jobs=2) is True
    assert derived.ensure_derived(two, jobs=2) is False, "current tables are not derived again"
    files = {p.name: p.read_bytes() for p in (one / derived.DIRECTORY).iterdir()}
    assert {p.name: p.read_bytes() for p in (two / derived.DIRECTORY).iterdir()} == files
    assert len(files) == 1 + 11, sorted(
        files
    )  # the key; outcome frame, 3 × shrunken and achieved, 2 gains, 2 reach


def test_a_failing_child_keeps_the_previous_tables_and_names_the_parts(processed, tmp_path):
    copy = tmp_path / "processed"
    shutil.copytree(processed, copy)
    before = {p.name: p.read_bytes() for p in (copy / derived.DIRECTORY).iterdir()}
    (copy / derived.DIRECTORY / derived.KEY_FILE).write_text("stale", encoding="utf-8")
    (copy / "item_points.parquet").write_bytes(b"not parquet")
    with pytest.raises(RuntimeError, match="outcomes-gains, items-reach"):
        derived.ensure_derived(copy, jobs=2)
    after = {p.name: p.read_bytes() for p in (copy / derived.DIRECTORY).iterdir()}
    assert after == {**before, derived.KEY_FILE: b"stale"}
    assert not list(copy.glob(".derived.tmp-*")), "the staging directory is removed"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["010006", "011002", "472018", "131016"]), st.integers(-5, 5)),
        max_size=40,
    )
)
def test_rows_by_code_equals_splitting_with_groupby(rows):
    table = pd.DataFrame(rows, columns=["lg_code6", "points"]).astype({"points": "int64"})
    table.index = table.index * 7 + 3  # an index that is not 0…n-1
    by_code = RowsByCode(table)
    expected = {c: g.reset_index(drop=True) for c, g in table.groupby("lg_code6", sort=False)}
    assert set(by_code) == set(expected) and len(by_code) == len(expected)
    for code, rows_of_code in expected.items():
        pd.testing.assert_frame_equal(by_code[code], rows_of_code)  # each municipality's rows in table order
    assert "999999" not in by_code
    assert list(by_code.get_or_empty("999999").columns) == ["lg_code6", "points"]


@settings(max_examples=80, deadline=None)
@given(
    codes=st.lists(st.one_of(st.none(), st.sampled_from(["010006", "011002", "", "nan"])), max_size=30),
    value=st.sampled_from(["010006", "011002", "", "nan", "999999"]),
    dtype=st.sampled_from(["str", object]),
)
def test_rows_where_selects_the_rows_pandas_selects(codes, value, dtype):
    """Missing cells included: neither way selects them."""
    table = pd.DataFrame({"lg_code6": pd.Series(codes, dtype=dtype), "points": range(len(codes))})
    table.index = table.index * 3 + 1
    pd.testing.assert_frame_equal(rows_where(table, "lg_code6", value), table[table["lg_code6"] == value])


def test_exports_read_from_persisted_tables_are_byte_identical(processed, tmp_path):
    """``kofukin export`` reads the gains and within-reach tables the reports use instead of recomputing them
    (~8 s of a build): every CSV it writes is the same file either way."""
    from kofukin.export import export_tables

    store = load_store(processed)
    tables = derived.open_derived(processed)
    export_tables(store, tmp_path / "computed")
    export_tables(store, tmp_path / "persisted", derived=tables)
    computed = sorted(p.relative_to(tmp_path / "computed") for p in (tmp_path / "computed").rglob("*.csv"))
    persisted = sorted(p.relative_to(tmp_path / "persisted") for p in (tmp_path / "persisted").rglob("*.csv"))
    assert computed == persisted and any("within_reach" in p.name for p in computed)
    assert any("gains_losses" in p.name for p in computed)
    for rel in computed:
        assert (tmp_path / "persisted" / rel).read_bytes() == (tmp_path / "computed" / rel).read_bytes(), rel
