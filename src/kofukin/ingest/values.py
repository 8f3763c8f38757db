"""Reading the data rows of a results workbook into numbers, and every cell- and row-level check on them.

Each check appends :class:`~kofukin.ingest.errors.Failure` objects instead of raising, so one run reports
everything that is wrong with a file. The checks follow the scoring rules of :mod:`kofukin.scoring`: items are
all-or-nothing (0 or the item's maximum; the national means in the catalogue equal max × share scoring for
every item), goal Ⅳ indicators 1, 3 and 5 are 択一 (only one branch carries points), 支援 Ⅰ(ⅱ) indicator 9 is
stored after its cap, and the file's own subtotals must equal :func:`kofukin.scoring.subtotals_from_items`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow

from kofukin import codes, layout
from kofukin.ingest.errors import Category, Failure
from kofukin.ingest.header import Layout, ScoreColumn, is_integer_cell, text
from kofukin.reference import load_catalogue, load_prefectures
from kofukin.scoring import subtotals_from_items

_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


@dataclass
class DataRows:
    """The data rows of a file: 0-based sheet rows, and which of them carry scores (the others are 広域連合)."""

    rows: list[int]
    scored: np.ndarray  # bool per row


@dataclass
class ScoreBlock:
    """Score cells of the data rows as floats; ``bad`` marks cells that could not be read as numbers."""

    values: np.ndarray  # (n_rows, n_cols) float, NaN for blank or unreadable
    bad: np.ndarray  # bool: text, formula without value
    blank: np.ndarray  # bool: empty cell
    n_fullwidth: int  # cells accepted after NFKC (全角 digits)


def number_of(value: object) -> tuple[float | None, bool]:
    """(number, written with 全角 characters) of a cell; (None, False) for text. Blanks are the caller's.

    Numbers stored as text are accepted after NFKC (``"４"`` → 4, ``"1,234"`` → 1234), so a file typed by hand
    still reads; anything that is not a number afterwards is reported by the caller.
    """
    if isinstance(value, bool):
        return None, False
    if isinstance(value, (int, float)):
        return float(value), False
    if isinstance(value, str):
        nfkc = unicodedata.normalize("NFKC", value)
        t = nfkc.strip().replace(",", "")
        if _NUMBER_RE.fullmatch(t):
            return float(t), nfkc != value
    return None, False


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def repeated_strings(values: list[str], indices: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values[indices]`` as a pandas string array, built in Arrow (Python-level construction of 500k
    strings per year takes about half a second; this takes milliseconds)."""
    taken = pyarrow.array(values, type=pyarrow.string()).take(pyarrow.array(indices.astype(np.int64)))
    return pd.array(taken, dtype="str")


@dataclass
class FileContext:
    """Where failures of one file are collected, with what is needed to locate them."""

    file: str
    sheet: str
    year: str
    names: dict[int, str]  # 0-based sheet row -> municipality name (for messages)
    failures: list[Failure]

    def add(
        self,
        category: Category,
        detail: str,
        *,
        row: int | None = None,
        column: str = "",
        col: int | None = None,
    ) -> None:
        """Record a failure; ``row`` is the 0-based sheet row (reported 1-based, as Excel shows it)."""
        self.failures.append(
            Failure(
                category,
                detail,
                self.file,
                self.sheet,
                self.year,
                None if row is None else row + 1,
                self.names.get(row, "") if row is not None else "",
                column,
                col,
            )
        )


# --- rows ---------------------------------------------------------------------------------------------------


def data_rows(lay: Layout, ctx: FileContext) -> DataRows:
    """Rows with an integer 通し番号 and a 保険者番号; stray rows holding scores without them are failures."""
    grid = lay.sheet.grid
    serial, insurer = lay.attributes["serial_no"], lay.attributes["insurer_no"]
    score_idx = [s.index for s in lay.scores]
    rows: list[int] = []
    for r in range(lay.first_data_row, lay.sheet.n_rows):
        row = grid[r]
        if is_integer_cell(row[serial]) and text(row[insurer]):
            rows.append(r)
        elif any(not is_blank(row[c]) for c in score_idx):
            ctx.add(
                Category.ORPHAN_ROW,
                "a row with scores but without an integer 通し番号 and a 保険者番号",
                row=r,
            )
    scored = np.array([any(not is_blank(grid[r][c]) for c in score_idx) for r in rows], dtype=bool)
    return DataRows(rows, scored)


# --- scores -------------------------------------------------------------------------------------------------


def read_scores(lay: Layout, rows: list[int]) -> ScoreBlock:
    """Every score cell of the data rows as a float.

    Rows whose cells are all floats (what calamine returns for numbers) are copied in one step; only rows with
    text, blanks or other types go cell by cell, which keeps a full-size year well under a second.
    """
    cols = [s.index for s in lay.scores]
    grid = lay.sheet.grid
    values = np.full((len(rows), len(cols)), np.nan)
    bad = np.zeros(values.shape, dtype=bool)
    blank = np.zeros(values.shape, dtype=bool)
    n_full = 0
    for i, r in enumerate(rows):
        row = grid[r]
        cells = [row[c] for c in cols]
        if all(type(v) is float for v in cells):
            values[i] = cells
            continue
        for j, v in enumerate(cells):
            if is_blank(v):
                blank[i, j] = True
                continue
            number, full = number_of(v)
            if number is None:
                bad[i, j] = True
            else:
                values[i, j] = number
                n_full += full
    return ScoreBlock(values, bad, blank, n_full)


def check_cells(lay: Layout, dr: DataRows, block: ScoreBlock, ctx: FileContext) -> None:
    """Formulas without values, text, blanks, negative, above-maximum and partial points, cell by cell."""
    col_pos = {s.index: j for j, s in enumerate(lay.scores)}
    row_pos = {r: i for i, r in enumerate(dr.rows)}
    formula = np.zeros_like(block.bad)
    for r, c in lay.sheet.no_cached_value:
        if r in row_pos and c in col_pos:
            i, j = row_pos[r], col_pos[c]
            formula[i, j] = block.bad[i, j] = True
            block.blank[i, j] = False
            block.values[i, j] = np.nan
    scored = dr.scored[:, None]
    maxima = np.array([s.max_points for s in lay.scores], dtype=float)
    is_item = np.array([s.is_item for s in lay.scores], dtype=bool)
    v = block.values
    with np.errstate(invalid="ignore"):
        checks = [
            (formula & scored, Category.FORMULA, _formula_detail),
            (block.bad & ~formula & scored, Category.NON_NUMERIC, None),
            (block.blank & scored, Category.BLANK_SCORE, _blank_detail),
            (v < 0, Category.NEGATIVE, None),
            (v > maxima, Category.ABOVE_MAX, None),
            (is_item & (v > 0) & (v < maxima), Category.PARTIAL, None),
            (~is_item & (v >= 0) & (v <= maxima) & (v != np.floor(v)), Category.NON_NUMERIC, None),
        ]
    for mask, category, fixed in checks:
        for i, j in zip(*np.nonzero(mask & scored), strict=True):
            col = lay.scores[j]
            raw = lay.sheet.grid[dr.rows[i]][col.index]
            detail = fixed(raw) if fixed else _cell_detail(category, raw, v[i, j], col)
            ctx.add(category, detail, row=dr.rows[i], column=col.description, col=col.index)


def _formula_detail(_: object) -> str:
    return (
        "formula without a cached value (saved by a program that does not calculate); open the file in Excel "
        "and save it, or paste values — formulas are never evaluated here"
    )


def _blank_detail(_: object) -> str:
    return "blank score cell in a scored row (no points must be written as 0)"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _cell_detail(category: Category, raw: object, value: float, col: ScoreColumn) -> str:
    if category is Category.NON_NUMERIC:
        if math.isnan(value):
            return f"text {raw!r} in a score cell (numbers only; 全角 digits are accepted)"
        return f"{raw!r} is not a whole number of points"
    if category is Category.NEGATIVE:
        return f"{_fmt(value)} points: negative points are impossible"
    if category is Category.ABOVE_MAX:
        return f"{_fmt(value)} points > max {col.max_points}"
    return f"{_fmt(value)} points on an all-or-nothing item (only 0 or {col.max_points})"


# --- rules across cells -------------------------------------------------------------------------------------


def check_rules(lay: Layout, dr: DataRows, block: ScoreBlock, ctx: FileContext) -> None:
    """択一 exclusivity and the cap of 支援 Ⅰ(ⅱ) indicator 9, row by row."""
    cat = load_catalogue().set_index("item_id")
    pos = {s.key: j for j, s in enumerate(lay.scores) if s.is_item}
    keyed = cat.loc[list(pos)]
    v = np.nan_to_num(block.values)
    keys = ["grant", "goal", "group", "indicator_no"]
    for ind_key, ind in keyed[keyed["scoring_rule"] == "choose_one_of_branches"].groupby(keys, sort=False):
        _check_choose_one(lay, dr, v, pos, ind_key, ind, ctx)
    for ind_key, ind in keyed[keyed["scoring_rule"] == "capped_inferred"].groupby(keys, sort=False):
        _check_cap(lay, dr, v, pos, ind_key, ind, ctx)


def _check_choose_one(lay, dr, v, pos, ind_key, ind: pd.DataFrame, ctx: FileContext) -> None:
    """The file records points only in the counting branch: two branches with points is a defect."""
    sums = {b: v[:, [pos[i] for i in g.index]].sum(axis=1) for b, g in ind.groupby("branch", sort=False)}
    n_positive = sum((s > 0).astype(int) for s in sums.values())
    for i in np.nonzero((n_positive > 1) & dr.scored)[0]:
        shown = ", ".join(f"{b} {_fmt(s[i])}" for b, s in sums.items() if s[i] > 0)
        ctx.add(
            Category.CHOOSE_ONE,
            f"points in more than one branch of a 択一 indicator ({shown}); only the better branch may carry points",
            row=dr.rows[i],
            column=_indicator_text(ind_key),
            col=lay.scores[pos[ind.index[0]]].index,
        )


def _check_cap(lay, dr, v, pos, ind_key, ind: pd.DataFrame, ctx: FileContext) -> None:
    """Item values of a capped indicator are stored after the cap, so their sum never exceeds it."""
    cap = int(ind["indicator_effective_max"].iloc[0])
    total = v[:, [pos[i] for i in ind.index]].sum(axis=1)
    for i in np.nonzero((total > cap) & dr.scored)[0]:
        ctx.add(
            Category.CAP,
            f"{_fmt(total[i])} points > cap {cap} (the file stores this indicator after its cap)",
            row=dr.rows[i],
            column=_indicator_text(ind_key),
            col=lay.scores[pos[ind.index[0]]].index,
        )


def _indicator_text(key: tuple) -> str:
    grant, goal, group, no = key
    grp = "" if group == "outcome" else f"({layout.SMALL_ROMAN[group]})"
    return f"{'推進' if grant == 'suishin' else '支援'} 目標{layout.ROMAN[goal]}{grp} {no}"


def check_subtotals(lay: Layout, dr: DataRows, block: ScoreBlock, ctx: FileContext) -> pd.DataFrame:
    """The file's subtotal columns against :func:`subtotals_from_items`; returns the recomputed 26 targets.

    Rows with an unreadable or blank item are left out (their cells are already reported), so one bad cell
    gives one failure, not one per subtotal.
    """
    items = [j for j, s in enumerate(lay.scores) if s.is_item]
    unreadable = (block.bad | block.blank)[:, items].any(axis=1)
    ok = np.nonzero(dr.scored & ~unreadable)[0]
    item_ids = [lay.scores[j].key for j in items]
    vals = block.values[np.ix_(ok, items)]
    long = pd.DataFrame(
        {
            "fiscal_year": lay.fiscal_year,
            "lg_code6": repeated_strings([f"{i:06d}" for i in ok], np.repeat(np.arange(len(ok)), len(items))),
            "item_id": repeated_strings(item_ids, np.tile(np.arange(len(items)), len(ok))),
            "points": vals.ravel(),
        }
    )
    expected = subtotals_from_items(long, load_catalogue()).reset_index(level=0, drop=True)
    expected.index = expected.index.astype(int)
    for j, s in enumerate(lay.scores):
        if s.is_item:
            continue
        file_vals = block.values[ok, j]
        exp = expected.loc[ok, s.key].to_numpy(dtype=float)
        for k in np.nonzero(~np.isnan(file_vals) & (file_vals != exp))[0]:
            i = ok[k]
            ctx.add(
                Category.SUBTOTAL,
                f"the file says {_fmt(file_vals[k])}, its items give {_fmt(exp[k])} ({s.key})",
                row=dr.rows[i],
                column=s.description,
                col=s.index,
            )
    return expected


# --- attributes ---------------------------------------------------------------------------------------------

ATTRIBUTE_SCHEMA = pa.DataFrameSchema(
    {
        "insurer_no": pa.Column(str, pa.Check.str_matches(r"^\d{5,6}$"), coerce=False),
        "pref_name": pa.Column(str, pa.Check(lambda s: s.map(codes.normalise_name).isin(_pref_names()))),
        "name": pa.Column(str, pa.Check.str_length(min_value=1)),
        "population": pa.Column("Int64", pa.Check.gt(0)),
        "n_insured_1go": pa.Column("Int64", pa.Check.gt(0)),
        "size_class": pa.Column("Int64", pa.Check.isin([1, 2, 3, 4, 5])),
        "kaso": pa.Column("boolean"),
    },
    checks=[
        pa.Check(
            lambda d: d["n_insured_1go"].fillna(0) <= d["population"].fillna(0),
            error="第1号被保険者数 > 人口",
        )
    ],
    strict=False,
)


def _pref_names() -> set[str]:
    return {codes.normalise_name(p) for p in load_prefectures()["pref_name"]}


_CHECK_TEXT = {
    "not_nullable": "is blank or not a number",
    "greater_than(0)": "must be greater than 0",
    "str_length(1, None)": "is blank",
    "isin([1, 2, 3, 4, 5])": "must be 1–5",
    "str_matches('^\\d{5,6}$')": "is not a 6-digit code",
    "<lambda>": "is not one of the 47 prefectures",
    "第1号被保険者数 > 人口": "第1号被保険者数 is larger than 人口",
}

KASO_TRUE = ("○", "〇", "◯", "●", "有", "該当", "1", "TRUE")
KASO_FALSE = ("", "-", "－", "ー", "×", "無", "0", "FALSE")


def parse_kaso(value: object) -> bool | None:
    """○ / 一部 (一部過疎) → True, blank → False; anything else is unreadable (None)."""
    t = layout.compact(value).upper()
    if t in {layout.compact(x).upper() for x in KASO_FALSE} or value is False:
        return False
    if layout.KASO_PARTIAL in t or t in {layout.compact(x).upper() for x in KASO_TRUE} or value is True:
        return True
    return None


def _int_or_na(value: object) -> object:
    if is_blank(value):
        return pd.NA
    number, _ = number_of(value)
    return int(number) if number is not None and float(number).is_integer() else pd.NA


def read_attributes(lay: Layout, dr: DataRows, ctx: FileContext) -> pd.DataFrame:
    """Attribute values of every data row, indexed by the 0-based sheet row; scored rows are validated."""
    a = lay.attributes
    grid = lay.sheet.grid

    def col(key: str) -> list[object]:
        return [grid[r][a[key]] for r in dr.rows] if key in a else [""] * len(dr.rows)

    df = pd.DataFrame(index=pd.Index(dr.rows, name="sheet_row"))
    df["insurer_no"] = [codes.normalise_code(v) for v in col("insurer_no")]
    for key in ("pref_name", "name", "insurer_name", "union_name", "insurer_kind"):
        df[key] = [text(v) for v in col(key)]
    for key in ("serial_no", "population", "n_insured_1go", "size_class", "prev_total", "prev_rank", "rank"):
        df[key] = pd.array([_int_or_na(v) for v in col(key)], dtype="Int64")
    derived = [layout.size_class_of(int(n)) if pd.notna(n) else None for n in df["n_insured_1go"]]
    df["size_class"] = df["size_class"].fillna(pd.Series(pd.array(derived, dtype="Int64"), index=df.index))
    df["kaso"] = pd.array([parse_kaso(v) for v in col("kaso")], dtype="boolean")
    df["scored"] = dr.scored
    reported = _report_unreadable(lay, dr, df, ctx)
    _validate_attributes(df[df["scored"]], reported, ctx)
    return df


def _report_unreadable(lay: Layout, dr: DataRows, df: pd.DataFrame, ctx: FileContext) -> set[tuple[int, str]]:
    """Numbers that cannot be read, and 過疎地域 values that are neither ○/一部 nor blank (scored rows only)."""
    grid = lay.sheet.grid
    reported: set[tuple[int, str]] = set()
    for key in ("population", "n_insured_1go", "size_class", "kaso"):
        if key not in lay.attributes:
            continue
        c = lay.attributes[key]
        label = layout.ATTRIBUTES[key].label
        missing = df[key].isna().to_numpy() & dr.scored
        for i in np.nonzero(missing)[0]:
            r = dr.rows[i]
            raw = grid[r][c]
            if not is_blank(raw):
                ctx.add(Category.BAD_ATTRIBUTE, f"{label} {raw!r} cannot be read", row=r, column=label, col=c)
                reported.add((r, key))
    return reported


def _validate_attributes(df: pd.DataFrame, reported: set[tuple[int, str]], ctx: FileContext) -> None:
    """The pandera schema on the scored rows; values already reported as unreadable are not repeated."""
    try:
        ATTRIBUTE_SCHEMA.validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        for rec in e.failure_cases.itertuples():
            column = rec.column if isinstance(rec.column, str) and rec.column in layout.ATTRIBUTES else ""
            row = None if pd.isna(rec.index) else int(rec.index)
            if row is not None and (row, column) in reported:
                continue
            label = layout.ATTRIBUTES[column].label if column else ""
            problem = _CHECK_TEXT.get(str(rec.check), str(rec.check))
            shown = "" if pd.isna(rec.failure_case) else f" {rec.failure_case!r}"
            ctx.add(Category.BAD_ATTRIBUTE, f"{label or '属性'}{shown} {problem}", row=row, column=label)
