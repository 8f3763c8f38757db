"""The outcome-value workbook (アウトカム指標値（目標Ⅳ）): the measures behind the goal Ⅳ points.

Its layout is ours (:data:`kofukin.layout.OUTCOME_VALUE_COLUMNS`): a title with 令和N年度 in row 1, labels in
the first row that holds 保険者番号, one row per municipality below. Columns are found by label, rows are
joined to the master exactly like the results workbook, and every problem is collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kofukin import layout
from kofukin.ingest.errors import Category, Failure, FileFailed, IngestError
from kofukin.ingest.header import attribute_of, text
from kofukin.ingest.join import master_name, match_municipality
from kofukin.ingest.results import OUTCOME, Workbook, identify
from kofukin.ingest.values import is_blank, number_of
from kofukin.scoring import FISCAL_YEARS

OUTCOME_COLUMNS = ("fiscal_year", "lg_code6", "indicator_no", "branch", "value")
LABEL_SCAN_ROWS = 20


@dataclass
class OutcomeWorkbook:
    source: Workbook
    fiscal_year: str
    values: pd.DataFrame  # OUTCOME_COLUMNS


def empty_outcome_values() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fiscal_year": pd.Series([], dtype="str"),
            "lg_code6": pd.Series([], dtype="str"),
            "indicator_no": pd.Series([], dtype="int64"),
            "branch": pd.Series([], dtype="str"),
            "value": pd.Series([], dtype="float64"),
        }
    )


def read_outcome_workbook(path: Path) -> OutcomeWorkbook:
    """Read and validate one outcome-value workbook; raise IngestError listing every problem."""
    try:
        wb = identify(Path(path))
    except FileFailed as e:
        raise IngestError(e.failures) from None
    if wb.kind != OUTCOME:
        raise IngestError(
            [_failure(wb, Category.UNRECOGNISED, f"not an outcome-value workbook: title {wb.title!r}")]
        )
    result, failures = read_outcome(wb)
    if failures:
        raise IngestError(failures)
    assert result is not None
    return result


def _failure(
    wb: Workbook, category: Category, detail: str, row: int | None = None, name: str = "", col: str = ""
) -> Failure:
    return Failure(category, detail, wb.path.name, wb.sheet.name, wb.title_year or "", row, name, col)


def read_outcome(wb: Workbook) -> tuple[OutcomeWorkbook | None, list[Failure]]:
    """The values of an identified outcome workbook, or the failures."""
    year = wb.title_year
    if year not in FISCAL_YEARS:
        return None, [
            _failure(wb, Category.UNKNOWN_YEAR, f"the title {wb.title!r} names no year of {FISCAL_YEARS}")
        ]
    grid = wb.sheet.grid
    label_row = next(
        (
            r
            for r in range(min(len(grid), LABEL_SCAN_ROWS))
            if "insurer_no" in {attribute_of(v) for v in grid[r]}
        ),
        None,
    )
    if label_row is None:
        return None, [_failure(wb, Category.MISSING_HEADER, "no label row with 保険者番号 in the first rows")]
    ids = {attribute_of(v): c for c, v in enumerate(grid[label_row]) if attribute_of(v)}
    wanted = {layout.compact(k): k for k in layout.OUTCOME_VALUE_COLUMNS}
    measures = {
        wanted[layout.compact(v)]: c for c, v in enumerate(grid[label_row]) if layout.compact(v) in wanted
    }
    failures = [
        _failure(wb, Category.MISSING_COLUMN, f"no column for outcome measure {k}")
        for k in layout.OUTCOME_VALUE_COLUMNS
        if k not in measures
    ]
    if failures:
        return None, failures
    records = _records(wb, grid, label_row, ids, measures, failures)
    if not records and not failures:
        failures.append(_failure(wb, Category.NO_DATA, "no data rows below the labels"))
    if failures:
        return None, failures
    values = pd.DataFrame(records, columns=list(OUTCOME_COLUMNS)).astype(
        {"indicator_no": "int64", "value": "float64"}
    )
    return OutcomeWorkbook(wb, year, values), []


def _records(
    wb: Workbook,
    grid: list[list[object]],
    label_row: int,
    ids: dict,
    measures: dict[str, int],
    failures: list,
) -> list[tuple]:
    def cell(r: int, key: str) -> object:
        return grid[r][ids[key]] if key in ids else ""

    out: list[tuple] = []
    first_row: dict[str, int] = {}
    for r in range(label_row + 1, len(grid)):
        name = text(cell(r, "name"))
        if not text(cell(r, "insurer_no")) and not name:
            continue
        m = match_municipality(cell(r, "insurer_no"), text(cell(r, "pref_name")), name)
        if m.lg_code6 is None:
            failures.append(_failure(wb, m.category or Category.UNKNOWN_MUNICIPALITY, m.detail, r + 1, name))
            continue
        if m.lg_code6 in first_row:
            detail = f"duplicated municipality: {master_name(m.lg_code6)} is also on row {first_row[m.lg_code6] + 1}"
            failures.append(_failure(wb, Category.DUPLICATE_MUNICIPALITY, detail, r + 1, name))
            continue
        first_row[m.lg_code6] = r
        for label, c in measures.items():
            raw = grid[r][c]
            if is_blank(raw):
                continue
            number, _ = number_of(raw)
            if number is None:
                failures.append(
                    _failure(wb, Category.NON_NUMERIC, f"text {raw!r} in a value cell", r + 1, name, label)
                )
                continue
            no, branch = layout.OUTCOME_VALUE_COLUMNS[label]
            out.append((wb.title_year, m.lg_code6, no, branch, number))
    return out
