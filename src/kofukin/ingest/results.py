"""One results workbook (評価結果（市町村分）) → validated tidy tables for its year.

:func:`read_results_workbook` is the whole path for one file: open it safely, find its layout and year from
the labels, read every cell, check every rule, and join the rows to the municipality master. It either returns
a :class:`ResultsWorkbook` or raises one :class:`~kofukin.ingest.errors.IngestError` listing every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kofukin import layout
from kofukin.ingest.errors import Category, Failure, FileFailed, IngestError
from kofukin.ingest.excel import RawSheet, open_first_sheet
from kofukin.ingest.header import Layout, attribute_of, read_layout
from kofukin.ingest.join import master_name, match_municipality
from kofukin.ingest.values import (
    DataRows,
    FileContext,
    ScoreBlock,
    check_cells,
    check_rules,
    check_subtotals,
    data_rows,
    read_attributes,
    read_scores,
    repeated_strings,
)
from kofukin.reference import N_MUNICIPALITIES, load_master
from kofukin.scoring import FILE_SUBTOTAL_KEYS, TARGET_KEYS, add_cross_grant_columns
from kofukin.store import sha256_file

RESULTS = "results"
OUTCOME = "outcome"


@dataclass(eq=False)
class Workbook:
    """A workbook opened and identified, not yet read: what kind, which year the title claims, real or synthetic."""

    path: Path
    sheet: RawSheet
    title: str
    kind: str  # results / outcome / unknown
    synthetic: bool
    title_year: str | None
    sha256: str
    layout: Layout | None = None
    layout_failures: list[Failure] = field(default_factory=list)

    @property
    def fiscal_year(self) -> str | None:
        return self.layout.fiscal_year if self.layout else self.title_year


@dataclass
class ResultsWorkbook:
    """The tidy tables of one results workbook (one fiscal year)."""

    source: Workbook
    fiscal_year: str
    attributes: pd.DataFrame
    item_points: pd.DataFrame
    subtotals: pd.DataFrame
    insurers: pd.DataFrame
    union_rows: pd.DataFrame  # insurer_no, union_name, pref_name of the 広域連合 rows
    members: pd.DataFrame  # lg_code6, union_name from 所属広域連合
    ignored: list[str] = field(default_factory=list)
    n_ignored_after_rank: int = 0
    notes: list[str] = field(default_factory=list)


def identify(path: Path) -> Workbook:
    """Open a workbook and classify it by its title (raises FileFailed for unreadable files)."""
    sheet = open_first_sheet(path)
    title = _first_text(sheet)
    compact_title = layout.compact(title)
    if layout.compact(layout.OUTCOME_TITLE) in compact_title:
        kind = OUTCOME
    elif _looks_like_results(sheet, compact_title):
        kind = RESULTS
    else:
        kind = "unknown"
    synthetic = layout.SYNTHETIC_MARK in title
    return Workbook(path, sheet, title, kind, synthetic, layout.year_from_title(title), sha256_file(path))


def _first_text(sheet: RawSheet) -> str:
    for row in sheet.grid[:3]:
        for v in row:
            if isinstance(v, str) and v.strip():
                return v.strip()
    return ""


def _looks_like_results(sheet: RawSheet, compact_title: str) -> bool:
    marks = ("評価結果(市町村分)", "全国集計(市町村)")
    if any(m in compact_title for m in marks) or layout.compact(sheet.name) == layout.compact(
        layout.SHEET_NAME
    ):
        return True
    for row in sheet.grid[:60]:
        keys = {attribute_of(v) for v in row}
        if {"serial_no", "insurer_no"} <= keys:
            return True
    return False


def read_results_workbook(path: Path) -> ResultsWorkbook:
    """Read and validate one results workbook; raise IngestError listing every problem found."""
    try:
        wb = identify(Path(path))
        if wb.kind != RESULTS:
            raise FileFailed([_not_results(wb)])
        wb.layout = read_layout(wb.sheet)
    except FileFailed as e:
        raise IngestError(e.failures) from None
    result, failures = read_results(wb)
    if failures:
        raise IngestError(failures)
    assert result is not None
    return result


def _not_results(wb: Workbook) -> Failure:
    return Failure(
        Category.UNRECOGNISED,
        f"not a results workbook (評価結果（市町村分）) nor an outcome workbook: title {wb.title!r}",
        file=wb.path.name,
        sheet=wb.sheet.name,
    )


def read_results(wb: Workbook) -> tuple[ResultsWorkbook | None, list[Failure]]:
    """Read the data of an identified workbook whose layout is known; return the tables or the failures."""
    lay = wb.layout
    assert lay is not None
    name_col = lay.attributes["name"]
    names = {r: str(lay.sheet.grid[r][name_col]).strip() for r in range(lay.first_data_row, lay.sheet.n_rows)}
    ctx = FileContext(wb.path.name, lay.sheet.name, lay.fiscal_year, names, [])
    dr = data_rows(lay, ctx)
    if not dr.scored.any():
        ctx.add(Category.NO_DATA, "no scored rows: every data row has empty score cells")
        return None, ctx.failures
    block = read_scores(lay, dr.rows)
    check_cells(lay, dr, block, ctx)
    check_rules(lay, dr, block, ctx)
    check_subtotals(lay, dr, block, ctx)
    attrs = read_attributes(lay, dr, ctx)
    codes6 = _join(attrs, ctx)
    _check_coverage(attrs, codes6, ctx)
    if ctx.failures:
        return None, ctx.failures
    return _tables(wb, lay, dr, block, attrs, codes6), []


def _join(attrs: pd.DataFrame, ctx: FileContext) -> dict[int, str | None]:
    """lg_code6 of every scored row (None where it fails; each failure names the row)."""
    scored = attrs[attrs["scored"]]
    out: dict[int, str | None] = {}
    for r, number, pref, name in zip(
        scored.index, scored["insurer_no"], scored["pref_name"], scored["name"], strict=True
    ):
        m = match_municipality(number, pref, name)
        out[int(r)] = m.lg_code6
        if m.lg_code6 is None and m.category is not None:
            ctx.add(m.category, m.detail, row=int(r))
    return out


def _check_coverage(attrs: pd.DataFrame, codes6: dict[int, str | None], ctx: FileContext) -> None:
    """Unique municipalities, exactly the 1,741 of the master."""
    first_row: dict[str, int] = {}
    for r, code in codes6.items():
        if code is None:
            continue
        if code in first_row:
            ctx.add(
                Category.DUPLICATE_MUNICIPALITY,
                f"duplicated municipality: {master_name(code)} ({code}) is also on row {first_row[code] + 1}",
                row=r,
            )
        else:
            first_row[code] = r
    n_scored = int(attrs["scored"].sum())
    missing = sorted(set(load_master()["lg_code6"]) - set(first_row))
    if n_scored == N_MUNICIPALITIES and not missing:
        return
    count = (
        f"{n_scored:,} scored municipality rows, expected exactly {N_MUNICIPALITIES:,}"
        if n_scored != N_MUNICIPALITIES
        else f"the {n_scored:,} scored rows do not cover the {N_MUNICIPALITIES:,} municipalities of the master"
    )
    shown = ", ".join(f"{master_name(c)} ({c})" for c in missing[:10]) + (" …" if len(missing) > 10 else "")
    ctx.add(Category.COUNT, count + (f"; missing from the file: {shown}" if missing else ""))


def _tables(
    wb: Workbook,
    lay: Layout,
    dr: DataRows,
    block: ScoreBlock,
    attrs: pd.DataFrame,
    codes6: dict[int, str | None],
) -> ResultsWorkbook:
    year = lay.fiscal_year
    scored_pos = np.nonzero(dr.scored)[0]
    sheet_rows = [dr.rows[i] for i in scored_pos]
    lg = [str(codes6[r]) for r in sheet_rows]
    a = attrs.loc[sheet_rows]
    subtotals = _subtotal_table(lay, block, scored_pos, lg)
    attributes = _attribute_table(wb, year, a, lg, sheet_rows)
    items = [j for j, s in enumerate(lay.scores) if s.is_item]
    item_points = pd.DataFrame(
        {
            "fiscal_year": year,
            "lg_code6": repeated_strings(lg, np.repeat(np.arange(len(lg)), len(items))),
            "item_id": repeated_strings(
                [lay.scores[j].key for j in items], np.tile(np.arange(len(items)), len(lg))
            ),
            "points": block.values[np.ix_(scored_pos, items)].astype("int64").ravel(),
        }
    )
    insurers, union_rows = _insurers(year, attrs)
    is_member = (a["union_name"] != "").to_numpy()
    members = pd.DataFrame(
        {
            "lg_code6": np.array(lg, dtype=object)[is_member],
            "union_name": a["union_name"].to_numpy()[is_member],
        }
    )
    notes = []
    if block.n_fullwidth:
        notes.append(f"{wb.path.name}: {block.n_fullwidth} score cells with 全角 digits were read after NFKC")
    notes += _rank_note(wb, attributes, subtotals)
    return ResultsWorkbook(
        wb,
        year,
        attributes,
        item_points,
        subtotals,
        insurers,
        union_rows,
        members,
        list(lay.ignored),
        lay.n_ignored_after_rank,
        notes,
    )


def _attribute_table(
    wb: Workbook, year: str, a: pd.DataFrame, lg: list[str], sheet_rows: list[int]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fiscal_year": year,
            "lg_code6": lg,
            "insurer_no": a["insurer_no"].to_numpy(),
            "insurer_name": a["insurer_name"].where(a["insurer_name"] != "", a["name"]).to_numpy(),
            "union_name": a["union_name"].to_numpy(),
            "serial_no": a["serial_no"].array,
            "population": a["population"].astype("int64").to_numpy(),
            "n_insured_1go": a["n_insured_1go"].astype("int64").to_numpy(),
            "size_class": a["size_class"].astype("int64").to_numpy(),
            "kaso": a["kaso"].astype(bool).to_numpy(),
            "prev_total": a["prev_total"].array,
            "prev_rank": a["prev_rank"].array,
            "rank_published": a["rank"].array,
            "source_file": wb.path.name,
            "source_row": np.array(sheet_rows, dtype="int64") + 1,
        }
    )


def _subtotal_table(lay: Layout, block: ScoreBlock, scored_pos: np.ndarray, lg: list[str]) -> pd.DataFrame:
    """The file's 23 subtotal columns plus the three cross-grant sums (which the file does not carry)."""
    pos = {s.key: j for j, s in enumerate(lay.scores) if not s.is_item}
    wide = pd.DataFrame(
        {key: block.values[scored_pos, pos[key]].astype("int64") for key in FILE_SUBTOTAL_KEYS}
    )
    wide = add_cross_grant_columns(wide.assign(all_taisei=0, all_katsudo=0, all_outcome=0))
    wide.insert(0, "lg_code6", lg)
    wide.insert(0, "fiscal_year", lay.fiscal_year)
    return wide[["fiscal_year", "lg_code6", *TARGET_KEYS]]


def _insurers(year: str, attrs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per insurer number: 広域連合 rows (no scores) are kind "union", scored rows "single".

    A scored row carrying a union's insurer number is a member of that union, not an insurer of its own.
    """
    a = attrs.assign(kind=np.where(attrs["scored"], "single", "union"))
    a["insurer_name"] = a["insurer_name"].where(a["insurer_name"] != "", a["name"])
    union_numbers = set(a.loc[a["kind"] == "union", "insurer_no"])
    keep = (a["kind"] == "union") | ~a["insurer_no"].isin(union_numbers)
    ins = a[keep].drop_duplicates("insurer_no")
    insurers = pd.DataFrame(
        {
            "fiscal_year": year,
            "insurer_no": ins["insurer_no"].to_numpy(),
            "insurer_name": ins["insurer_name"].to_numpy(),
            "pref_name": ins["pref_name"].to_numpy(),
            "kind": ins["kind"].to_numpy(),
            "source_row": np.array(ins.index, dtype="int64") + 1,
        }
    )
    u = a[a["kind"] == "union"]
    union_rows = pd.DataFrame(
        {
            "insurer_no": u["insurer_no"].to_numpy(),
            "union_name": u["insurer_name"].to_numpy(),
            "pref_name": u["pref_name"].to_numpy(),
        }
    )
    return insurers, union_rows


def _rank_note(wb: Workbook, attributes: pd.DataFrame, subtotals: pd.DataFrame) -> list[str]:
    """今年度順位 is kept as published; say so when it is not the competition rank of 総合計."""
    published = attributes["rank_published"]
    if published.isna().all():
        return []
    computed = subtotals["grand_total"].rank(method="min", ascending=False).astype("int64").to_numpy()
    differ = published.notna().to_numpy() & (published.fillna(0).to_numpy() != computed)
    if not differ.any():
        return []
    n = int(differ.sum())
    return [f"{wb.path.name}: 今年度順位 differs from the competition rank of 推進・支援合計 in {n} rows"]
