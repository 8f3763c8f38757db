"""Failures of an ingest, collected rather than raised one at a time.

A workbook with one bad cell usually has more, and a user fixing them one rerun at a time loses an afternoon,
so every check appends a :class:`Failure` and the run raises one :class:`IngestError` listing them all. Each
failure carries a :class:`Category` (for tests and for tools that want to filter) and where it happened: file,
sheet, year, Excel row, municipality and the column described by its header labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """What went wrong; the value is a stable code for tests and tools."""

    # whole files
    EMPTY_FILE = "empty_file"
    NOT_XLSX = "not_xlsx"
    CORRUPT = "corrupt_workbook"
    ENCRYPTED = "password_protected"
    UNRECOGNISED = "unrecognised_workbook"
    MISSING_HEADER = "missing_header"
    NO_DATA = "no_data_rows"
    # layout
    UNKNOWN_YEAR = "unknown_year"
    WRONG_YEAR = "wrong_year_layout"
    MISSING_COLUMN = "missing_column"
    DUPLICATE_COLUMN = "duplicate_column"
    MAX_POINTS = "max_points_row"
    # cells
    FORMULA = "formula_without_value"
    NON_NUMERIC = "non_numeric"
    BLANK_SCORE = "blank_score"
    NEGATIVE = "negative_points"
    ABOVE_MAX = "points_above_max"
    PARTIAL = "partial_points"
    # rows
    CHOOSE_ONE = "choose_one_violation"
    CAP = "cap_exceeded"
    SUBTOTAL = "subtotal_mismatch"
    BAD_ATTRIBUTE = "bad_attribute"
    ORPHAN_ROW = "row_without_id"
    UNKNOWN_MUNICIPALITY = "unknown_municipality"
    CODE_NAME_CONFLICT = "code_name_conflict"
    DUPLICATE_MUNICIPALITY = "duplicate_municipality"
    # files and the run
    COUNT = "municipality_count"
    BAD_UNION_FILE = "bad_union_file"
    DUPLICATE_YEAR = "duplicate_year"
    NO_INPUT = "no_input"


# How specific a failure is: a cell beats a row beats a file beats the run (most specific is listed first).
_SCOPE_CELL, _SCOPE_ROW, _SCOPE_FILE, _SCOPE_RUN = range(4)
MAX_LINES_PER_KIND = 50


@dataclass(frozen=True)
class Failure:
    """One problem, located as precisely as the check allows."""

    category: Category
    detail: str
    file: str = ""
    sheet: str = ""
    year: str = ""
    row: int | None = None  # Excel row number (1-based)
    municipality: str = ""
    column: str = ""  # the column described by its labels (推進 目標Ⅰ(ⅰ) 1ア)
    col_index: int | None = None  # 0-based, for ordering and the cell address

    @property
    def scope(self) -> int:
        if self.row is not None and self.column:
            return _SCOPE_CELL
        if self.row is not None:
            return _SCOPE_ROW
        return _SCOPE_FILE if self.file else _SCOPE_RUN

    @property
    def cell(self) -> str:
        if self.row is None or self.col_index is None:
            return ""
        return f"{column_letters(self.col_index)}{self.row}"

    @property
    def message(self) -> str:
        """``R7.xlsx [全国集計（市町村）] R7: row 245 上尾市, 推進 目標Ⅰ(ⅰ) 1ア: 5 points > max 4 (cell AB245)``."""
        where = " ".join(p for p in (self.file, f"[{self.sheet}]" if self.sheet else "", self.year) if p)
        what = ""
        if self.row is not None:
            what = f"row {self.row}" + (f" {self.municipality}" if self.municipality else "")
        if self.column:
            what = f"{what}, {self.column}" if what else self.column
        text = ": ".join(p for p in (where, what, self.detail) if p)
        return f"{text} (cell {self.cell})" if self.cell else text

    def sort_key(self) -> tuple:
        return (self.scope, self.file, self.row or 0, self.col_index or 0, self.category.value, self.detail)


def column_letters(index0: int) -> str:
    """Excel column letters of a 0-based column index (0 → A, 26 → AA)."""
    s = ""
    n = index0 + 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


class IngestError(Exception):
    """The input cannot be ingested; ``failures`` holds every problem found, most specific first."""

    def __init__(self, failures: list[Failure]):
        self.failures = sorted(failures, key=Failure.sort_key)
        super().__init__(self._render())

    @property
    def categories(self) -> set[Category]:
        return {f.category for f in self.failures}

    def _render(self) -> str:
        """One line per failure, ``- category: message``; at most MAX_LINES_PER_KIND per file and kind.

        No square brackets around the category: the CLI prints through rich, whose markup would eat them.
        """
        n = len(self.failures)
        lines = [f"{n} problem{'s' if n != 1 else ''} in the input; the store was not changed:"]
        shown: Counter[tuple[str, Category]] = Counter()
        hidden: Counter[tuple[str, Category]] = Counter()
        for f in self.failures:
            key = (f.file, f.category)
            if shown[key] < MAX_LINES_PER_KIND:
                shown[key] += 1
                lines.append(f"- {f.category.value}: {f.message}")
            else:
                hidden[key] += 1
        for (file, category), k in hidden.items():
            lines.append(f"- … and {k:,} more {category.value} in {file or 'the input'}")
        return "\n".join(lines)


class FileFailed(Exception):
    """Internal: a file cannot be read any further (its failures are already complete)."""

    def __init__(self, failures: list[Failure]):
        super().__init__(failures[0].message if failures else "")
        self.failures = failures
