"""Finding the layout of a results workbook from its labels: the header block, every column, and the year.

MHLW moves columns every year (R7 added 規模区分, branches are split and merged), so nothing here depends on
a column's position. The attribute columns are found by their labels (:data:`kofukin.layout.ATTRIBUTES`);
every score column is identified by its label path 交付金 › 目標 › 指標群 › 指標番号 › 枝番 › 枝番2 and looked up
in the indicator catalogue, or recognised as one of the file's subtotals by its 指標名-row label. Merged labels
are filled from their merged ranges and, for a copy whose merges were lost, by the hierarchical forward-fill
rules of :mod:`kofukin.layout`, so both read the same.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from kofukin import layout
from kofukin.ingest.errors import Category, Failure, FileFailed, column_letters
from kofukin.ingest.excel import RawSheet
from kofukin.reference import load_catalogue
from kofukin.scoring import FILE_SUBTOTAL_KEYS, FISCAL_YEARS, GRANT_SHORT_JA, TARGET_MAX

N_LEVELS = 7  # 交付金, 目標, 指標群, 指標番号, 指標名, 枝番, 枝番2
LEVEL_NAMES = ("交付金", "目標", "指標群", "指標番号", "指標名", "枝番", "枝番2")
L_GRANT, L_GOAL, L_GROUP, L_NO, L_NAME, L_BRANCH, L_SUB = range(N_LEVELS)
HEADER_SCAN_ROWS = 60
MAX_POINTS_LABEL = layout.STAT_ROWS[0]  # 配点

# grant, goal, group, indicator_no, branch, sub_branch (the last two compacted)
ItemKey = tuple[str, str, str, int, str, str]


@dataclass(frozen=True)
class CatalogueItem:
    item_id: str
    max_points: int
    description: str


@dataclass(frozen=True)
class ScoreColumn:
    """A score column of the file: an item (``key`` = item_id) or a subtotal (``key`` = target key)."""

    index: int
    key: str
    is_item: bool
    max_points: int
    description: str


@dataclass
class Layout:
    """Where everything is in one results workbook (0-based rows and columns)."""

    sheet: RawSheet
    title: str
    header_row: int
    label_rows: tuple[int, ...]
    max_points_row: int | None
    first_data_row: int
    attributes: dict[str, int]
    scores: list[ScoreColumn]
    fiscal_year: str
    year_source: str  # "title" or "structure"
    title_year: str | None
    ignored: list[str] = field(default_factory=list)
    n_ignored_after_rank: int = 0

    @property
    def items(self) -> list[ScoreColumn]:
        return [c for c in self.scores if c.is_item]

    @property
    def subtotals(self) -> list[ScoreColumn]:
        return [c for c in self.scores if not c.is_item]


@cache
def _attribute_lookup() -> dict[str, str]:
    """compact(label or alias) → attribute key."""
    out: dict[str, str] = {}
    for key, attr in layout.ATTRIBUTES.items():
        for text in (attr.label, *attr.aliases):
            out.setdefault(layout.compact(text), key)
    return out


def attribute_of(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return _attribute_lookup().get(layout.compact(value))


@cache
def catalogue_index() -> dict[str, dict[ItemKey, CatalogueItem]]:
    """Per year: label key → catalogue item (labels compared after NFKC, so ① matches 1 and ｱ matches ア)."""
    out: dict[str, dict[ItemKey, CatalogueItem]] = {y: {} for y in FISCAL_YEARS}
    for r in load_catalogue().itertuples():
        key = (
            r.grant,
            r.goal,
            r.group,
            int(r.indicator_no),
            label_token(r.branch),
            label_token(r.sub_branch),
        )
        out[r.fiscal_year][key] = CatalogueItem(r.item_id, int(r.max_points), describe_item(r))
    return out


def describe_item(r: object) -> str:
    """``推進 目標Ⅰ(ⅰ) 1ア`` / ``支援 目標Ⅳ 1ア①``: an item column named by its labels."""
    group = "" if r.group == "outcome" else f"({layout.SMALL_ROMAN[r.group]})"
    return f"{GRANT_SHORT_JA[r.grant]} 目標{layout.ROMAN[r.goal]}{group} {r.indicator_no}{r.branch}{r.sub_branch}"


def describe_subtotal(target: str, label: str) -> str:
    grant = target.split("_")[0]
    prefix = (
        f"{GRANT_SHORT_JA[grant]} "
        if grant in ("suishin", "shien") and not label.startswith(("推進", "支援"))
        else ""
    )
    return f"{prefix}{label}"


def text(value: object) -> str:
    """A label cell as text ('' for blanks; numbers as integers when whole: 指標番号 1.0 → '1')."""
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def is_integer_cell(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip().isdigit()
    return False


# --- the header block ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """The header block: where labels, the 配点 row and the data start (0-based rows)."""

    title: str
    header_row: int
    first_data: int
    max_row: int | None
    labels: list[list[str]]  # rows header_row.. (merged ranges filled)
    attributes: dict[str, int]
    label_rows: tuple[int, ...]


def read_layout(sheet: RawSheet) -> Layout:
    """Find the header block, the data rows, every column and the year; raise FileFailed with all problems."""
    block = _header_block(sheet)
    mapped = _map_score_columns(sheet, block)
    failures: list[Failure] = []
    year, source, title_year = _decide_year(sheet, block.title, mapped, block.max_row, failures)
    lay = Layout(
        sheet=sheet,
        title=block.title,
        header_row=block.header_row,
        label_rows=block.label_rows,
        max_points_row=block.max_row,
        first_data_row=block.first_data,
        attributes=block.attributes,
        scores=[],
        fiscal_year=year or "",
        year_source=source,
        title_year=title_year,
        ignored=mapped.ignored,
        n_ignored_after_rank=mapped.n_after_rank,
    )
    if year:
        lay.scores = _resolve_scores(sheet, mapped, year, block.max_row, lay, failures)
    _check_required_attributes(block.attributes, failures)
    if failures:
        raise FileFailed([_locate(f, sheet.path.name, sheet.name, year or "") for f in failures])
    return lay


def _header_block(sheet: RawSheet) -> _Block:
    header_row, (serial_col, insurer_col) = _find_header_row(sheet)
    first_data = _first_data_row(sheet, header_row, serial_col, insurer_col)
    stat_rows = _stat_rows(sheet, header_row, first_data)
    block_end = stat_rows.get(MAX_POINTS_LABEL, first_data)
    labels = _label_grid(sheet, header_row, block_end)
    attributes = _attribute_columns(labels)
    grant_row = _grant_row(sheet, labels, attributes, header_row, block_end)
    return _Block(
        _title(sheet, header_row),
        header_row,
        first_data,
        stat_rows.get(MAX_POINTS_LABEL),
        labels,
        attributes,
        tuple(range(grant_row, grant_row + N_LEVELS)),
    )


def _locate(f: Failure, file: str, sheet: str, year: str) -> Failure:
    return Failure(f.category, f.detail, file, sheet, year, f.row, f.municipality, f.column, f.col_index)


def _find_header_row(sheet: RawSheet) -> tuple[int, tuple[int, int]]:
    """The first row holding both the 通し番号 and the 保険者番号 labels."""
    for r in range(min(sheet.n_rows, HEADER_SCAN_ROWS)):
        found: dict[str, int] = {}
        for c, v in enumerate(sheet.grid[r]):
            key = attribute_of(v)
            if key in ("serial_no", "insurer_no"):
                found.setdefault(key, c)
        if len(found) == 2:
            return r, (found["serial_no"], found["insurer_no"])
    raise FileFailed(
        [
            Failure(
                Category.MISSING_HEADER,
                f"no header row: no row among the first {HEADER_SCAN_ROWS} has both the 通し番号 and the 保険者番号 "
                "labels (was the header deleted, or is this another kind of workbook?)",
                file=sheet.path.name,
                sheet=sheet.name,
            )
        ]
    )


def _first_data_row(sheet: RawSheet, header_row: int, serial_col: int, insurer_col: int) -> int:
    """The first row whose 通し番号 is an integer and that has a 保険者番号 (the statistics rows have neither)."""
    for r in range(header_row + 1, sheet.n_rows):
        row = sheet.grid[r]
        if is_integer_cell(row[serial_col]) and text(row[insurer_col]):
            return r
    raise FileFailed(
        [
            Failure(
                Category.NO_DATA,
                f"no data rows: no row below the header (row {header_row + 1}) has an integer 通し番号 and a 保険者番号",
                file=sheet.path.name,
                sheet=sheet.name,
            )
        ]
    )


def _stat_rows(sheet: RawSheet, header_row: int, first_data: int) -> dict[str, int]:
    wanted = {layout.compact(s): s for s in layout.STAT_ROWS}
    out: dict[str, int] = {}
    for r in range(header_row + 1, first_data):
        for v in sheet.grid[r]:
            if isinstance(v, str) and v and (label := wanted.get(layout.compact(v))):
                out.setdefault(label, r)
    return out


def _label_grid(sheet: RawSheet, top: int, bottom: int) -> list[list[str]]:
    """Rows ``top..bottom-1`` as text, with every merged range filled with its top-left value."""
    grid = [[text(v) for v in sheet.grid[r]] for r in range(top, bottom)]
    for (r0, c0), (r1, c1) in sheet.merged:
        if r1 < top or r0 >= bottom or r0 >= sheet.n_rows:
            continue
        value = text(sheet.cell(r0, c0))
        for r in range(max(r0, top), min(r1, bottom - 1) + 1):
            for c in range(c0, min(c1, sheet.n_cols - 1) + 1):
                if not grid[r - top][c]:
                    grid[r - top][c] = value
    return grid


def _attribute_columns(labels: list[list[str]]) -> dict[str, int]:
    """Attribute key → column: the leftmost column whose header holds the attribute's label (or an alias)."""
    out: dict[str, int] = {}
    n_cols = len(labels[0]) if labels else 0
    for c in range(n_cols):
        for row in labels:
            key = attribute_of(row[c])
            if key:
                out.setdefault(key, c)
                break
    return out


def _grant_row(sheet: RawSheet, labels: list[list[str]], attrs: dict[str, int], top: int, bottom: int) -> int:
    attr_cols = set(attrs.values())
    for i, row in enumerate(labels):
        if any(
            layout.parse_grant(v) in ("suishin", "shien")
            for c, v in enumerate(row)
            if v and c not in attr_cols
        ):
            if top + i + N_LEVELS > bottom:
                raise _header_failure(
                    sheet,
                    f"the header has {bottom - top - i} label rows between the 交付金 row "
                    f"(row {top + i + 1}) and the 配点 row (row {bottom + 1}); expected {N_LEVELS} "
                    f"({', '.join(LEVEL_NAMES)}) — is a header row missing?",
                )
            return top + i
    raise _header_failure(
        sheet, "no 交付金 label row (保険者機能強化推進交付金 / 介護保険保険者努力支援交付金) in the header"
    )


def _header_failure(sheet: RawSheet, detail: str) -> FileFailed:
    return FileFailed([Failure(Category.MISSING_HEADER, detail, file=sheet.path.name, sheet=sheet.name)])


def _title(sheet: RawSheet, header_row: int) -> str:
    for r in range(0, max(header_row, 1)):
        for v in sheet.grid[r]:
            if isinstance(v, str) and v.strip():
                return v.strip()
    return ""


# --- score columns ------------------------------------------------------------------------------------------


@dataclass
class _Mapped:
    items: list[tuple[int, ItemKey]]
    subtotals: list[tuple[int, str, str]]  # column, target key, label
    ignored: list[str]
    n_after_rank: int


def _map_score_columns(sheet: RawSheet, block: _Block) -> _Mapped:
    """Classify every non-attribute column before 今年度順位: item key, subtotal, or ignored (with its labels)."""
    rows = [block.labels[r - block.header_row] for r in block.label_rows]
    attr_cols = set(block.attributes.values())
    rank_col = block.attributes.get("rank")
    score_cols = [c for c in range(sheet.n_cols) if c not in attr_cols and (rank_col is None or c < rank_col)]
    paths = _forward_fill(rows, score_cols)
    items: list[tuple[int, ItemKey]] = []
    subtotals: list[tuple[int, str, str]] = []
    ignored: list[str] = []
    for c in score_cols:
        path = paths[c]
        target = _subtotal_target(path)
        if target:
            subtotals.append((c, target, path[L_NAME] or path[L_GRANT]))
        elif (key := _item_key(path)) is not None:
            items.append((c, key))
        elif any(path) or _has_data(sheet, c, block.first_data):
            ignored.append(f"{column_letters(c)} {' / '.join(p for p in path if p) or '(no label)'}")
    after = (
        [c for c in range(rank_col + 1, sheet.n_cols) if c not in attr_cols] if rank_col is not None else []
    )
    return _Mapped(items, subtotals, ignored, len(after))


def _forward_fill(rows: list[list[str]], score_cols: list[int]) -> dict[int, tuple[str, ...]]:
    """Label path per score column after the hierarchical forward-fill of :mod:`kofukin.layout`.

    A blank label inherits from the column to its left only when that column is a score column whose labels
    at every higher level are the same — exactly the runs a merged range would cover. 交付金, 目標 and 指標群
    fill across everything; 指標番号, 指標名 and 枝番 only between item columns (never into or out of a subtotal
    column); 枝番2 never.
    """
    score_set = set(score_cols)
    out: dict[int, tuple[str, ...]] = {}
    for c in score_cols:
        lab = [rows[level][c] for level in range(N_LEVELS)]
        left = out.get(c - 1) if (c - 1) in score_set else None
        for level in (L_GRANT, L_GOAL, L_GROUP):
            if not lab[level] and left is not None and list(left[:level]) == lab[:level]:
                lab[level] = left[level]
        is_subtotal = _subtotal_target(tuple(lab)) is not None
        left_is_item = left is not None and _subtotal_target(left) is None
        if not is_subtotal and left_is_item:
            for level in (L_NO, L_NAME, L_BRANCH):
                if not lab[level] and list(left[:level]) == lab[:level]:
                    lab[level] = left[level]
        out[c] = tuple(lab)
    return out


def _subtotal_target(path: Sequence[str]) -> str | None:
    grant = layout.parse_grant(path[L_GRANT]) if path[L_GRANT] else None
    if path[L_NAME]:
        return layout.parse_subtotal(path[L_NAME], grant)
    if not any(path[1:]) and path[L_GRANT]:
        return "grand_total" if layout.parse_subtotal(path[L_GRANT], None) == "grand_total" else None
    return None


def _item_key(path: Sequence[str]) -> ItemKey | None:
    """The catalogue key of an item column's label path, or None when the path is not an item's."""
    grant = layout.parse_grant(path[L_GRANT])
    goal = layout.parse_goal(path[L_GOAL])
    group = layout.parse_group(path[L_GROUP])
    no = re.search(r"\d+", layout.compact(path[L_NO]))
    branch = label_token(path[L_BRANCH])
    if grant not in ("suishin", "shien") or not goal or not group or not no or not branch:
        return None
    return (grant, goal, group, int(no.group(0)), branch, label_token(path[L_SUB]))


_BRACKETS = re.compile(r"[()\[\]{}<>「」『』【】.,:;・、。]")


def label_token(value: object) -> str:
    """A branch label for matching: NFKC, no spaces, no brackets or punctuation (``（ア）`` = ``ア``, ① = 1)."""
    return _BRACKETS.sub("", layout.compact(value))


def _has_data(sheet: RawSheet, col: int, first_data: int) -> bool:
    return any(sheet.grid[r][col] not in ("", None) for r in range(first_data, sheet.n_rows))


# --- the year -----------------------------------------------------------------------------------------------


@dataclass
class _Fit:
    missing: list[ItemKey]
    extra: list[tuple[int, ItemKey]]
    bad_max: list[tuple[int, ItemKey, object]]

    @property
    def n_differences(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.bad_max)


def _fit(year: str, items: list[tuple[int, ItemKey]], max_values: dict[int, object]) -> _Fit:
    cat = catalogue_index()[year]
    found = {key for _, key in items}
    missing = [k for k in cat if k not in found]
    extra = [(c, k) for c, k in items if k not in cat]
    bad = [
        (c, k, max_values.get(c))
        for c, k in items
        if k in cat and not _same(max_values.get(c), cat[k].max_points)
    ]
    return _Fit(missing, extra, bad)


def _same(value: object, expected: int) -> bool:
    try:
        return float(unicodedata.normalize("NFKC", str(value))) == expected
    except (TypeError, ValueError):
        return False


def _decide_year(
    sheet: RawSheet, title: str, mapped: _Mapped, max_row: int | None, failures: list[Failure]
) -> tuple[str | None, str, str | None]:
    """(year, where it came from, the title's year): the title's year if the structure does not contradict it,
    else the structure's; a contradiction between the two is a failure naming both."""
    fits = _fits(sheet, mapped, max_row, failures)
    title_year = layout.year_from_title(title)
    if title_year is None:
        return _year_from_structure(fits, failures), "structure", None
    if title_year not in FISCAL_YEARS:
        failures.append(
            Failure(
                Category.UNKNOWN_YEAR,
                f"the title says {title_year} ({title!r}) but the indicator catalogue covers "
                f"{', '.join(FISCAL_YEARS)} only",
            )
        )
        return None, "title", title_year
    rival = _better_fit(title_year, fits)
    if rival:
        failures.append(_wrong_year(title_year, rival, fits))
        return None, "title", title_year
    return title_year, "title", title_year


def _fits(sheet: RawSheet, mapped: _Mapped, max_row: int | None, failures: list[Failure]) -> dict[str, _Fit]:
    """How the mapped item columns (and their 配点) differ from each year's catalogue."""
    if max_row is None:
        failures.append(
            Failure(Category.MAX_POINTS, "no 配点 row under the header: the maxima cannot be checked")
        )
    max_values = {c: sheet.cell(max_row, c) for c, _ in mapped.items} if max_row is not None else {}
    fits = {y: _fit(y, mapped.items, max_values) for y in FISCAL_YEARS}
    if max_row is None:
        for f in fits.values():
            f.bad_max = []
    return fits


def _better_fit(title_year: str, fits: dict[str, _Fit]) -> str | None:
    """Another year the file fits exactly, or fits strictly better, when it does not fit its title's year."""
    if fits[title_year].n_differences == 0:
        return None
    ranked = sorted(FISCAL_YEARS, key=lambda y: (fits[y].n_differences, y != title_year))
    best = ranked[0]
    return best if best != title_year else None


def _year_from_structure(fits: dict[str, _Fit], failures: list[Failure]) -> str | None:
    ranked = sorted(FISCAL_YEARS, key=lambda y: fits[y].n_differences)
    if fits[ranked[0]].n_differences < fits[ranked[1]].n_differences:
        return ranked[0]
    failures.append(
        Failure(
            Category.UNKNOWN_YEAR,
            f"the title has no 令和N年度 and the columns fit {' and '.join(ranked[:2])} equally well; "
            "put the year in the title (cell A1)",
        )
    )
    return None


def _wrong_year(title_year: str, fits_year: str, fits: dict[str, _Fit]) -> Failure:
    t, s = fits[title_year], fits[fits_year]
    how = "exactly" if s.n_differences == 0 else f"with {s.n_differences} differences"
    return Failure(
        Category.WRONG_YEAR,
        f"wrong year's layout: the title says {title_year} (令和{title_year[1:]}年度) but the columns and the 配点 row "
        f"fit {fits_year} {how}; against the {title_year} catalogue {len(t.missing)} items are missing, "
        f"{len(t.extra)} are unknown and {len(t.bad_max)} have another 配点",
    )


def _resolve_scores(
    sheet: RawSheet, mapped: _Mapped, year: str, max_row: int | None, lay: Layout, failures: list[Failure]
) -> list[ScoreColumn]:
    """Item and subtotal columns of the chosen year; missing, duplicated or mis-scored columns are failures."""
    cat = catalogue_index()[year]
    out: list[ScoreColumn] = []
    seen: dict[str, int] = {}
    for c, key in mapped.items:
        item = cat.get(key)
        if item is None:
            lay.ignored.append(f"{column_letters(c)} {_key_text(key)} (not in the {year} catalogue)")
            continue
        out.append(ScoreColumn(c, item.item_id, True, item.max_points, item.description))
    for c, target, label in mapped.subtotals:
        out.append(ScoreColumn(c, target, False, TARGET_MAX[target], describe_subtotal(target, label)))
    out.sort(key=lambda s: s.index)
    for col in out:
        if col.key in seen:
            failures.append(
                Failure(
                    Category.DUPLICATE_COLUMN,
                    f"{col.description} appears twice (columns "
                    f"{column_letters(seen[col.key])} and {column_letters(col.index)})",
                )
            )
        seen.setdefault(col.key, col.index)
        if max_row is not None and not _same(sheet.cell(max_row, col.index), col.max_points):
            failures.append(
                Failure(
                    Category.MAX_POINTS,
                    f"配点 row says {text(sheet.cell(max_row, col.index))!r}, the "
                    f"{year} catalogue says {col.max_points}",
                    row=max_row + 1,
                    column=col.description,
                    col_index=col.index,
                )
            )
    found = set(seen)
    for item in cat.values():
        if item.item_id not in found:
            failures.append(
                Failure(Category.MISSING_COLUMN, f"no column for {item.description} ({item.item_id})")
            )
    for target in FILE_SUBTOTAL_KEYS:
        if target not in found:
            failures.append(Failure(Category.MISSING_COLUMN, f"no subtotal column {target}"))
    return out


def _key_text(key: ItemKey) -> str:
    grant, goal, group, no, branch, sub = key
    return f"{GRANT_SHORT_JA[grant]} 目標{goal} {group} {no}{branch}{sub}"


def _check_required_attributes(attrs: dict[str, int], failures: list[Failure]) -> None:
    for key, attr in layout.ATTRIBUTES.items():
        if attr.required and key not in attrs:
            tried = ", ".join((attr.label, *attr.aliases))
            failures.append(
                Failure(Category.MISSING_COLUMN, f"no {attr.label} column (labels tried: {tried})")
            )
