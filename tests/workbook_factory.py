"""Valid and deliberately broken MHLW results workbooks for the importer's tests.

A valid full-size workbook (1,741 municipalities + a few 広域連合 rows, every catalogue item) is built from a
deterministic rule: an item scores its maximum where a hash of (municipality code, item) is even, then the
択一 rule (only one branch of goal Ⅳ indicators 1, 3, 5 scores), the copy rule (支援 Ⅳ repeats 推進 Ⅳ) and the
cap (支援 Ⅰ(ⅱ) indicator 9 keeps at most 4 points) are applied. After these rules every subtotal is a plain
sum of its items, so :func:`expected_subtotals` computes them without :mod:`kofukin.scoring`, and the tests
compare the importer against an independent oracle.

Broken variants are derived cheaply: by editing the tables and writing again with
:func:`kofukin.synthetic.workbook.write_results_workbook` (structure changes), or by editing the sheet XML of
the written file (:class:`SheetXml`; cell-level defects), which is much faster than a full openpyxl round trip.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from kofukin import codes, layout
from kofukin.reference import load_catalogue, load_master
from kofukin.synthetic.workbook import ScoreColumn, score_columns, write_results_workbook

SHEET_XML = "xl/worksheets/sheet1.xml"
UNIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # union name -> (pref_code, insurer number, member lg_code6)
    "大雪地区広域連合": ("01", "018010", ("014583", "014591", "014532")),
    "試験用介護保険広域連合": ("07", "078019", ("074641", "074659")),
}


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a stable integer hash, vectorised (the factory's only source of variety)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def year_catalogue(fiscal_year: str) -> pd.DataFrame:
    cat = load_catalogue()
    return cat[cat["fiscal_year"] == fiscal_year].sort_values("source_column").reset_index(drop=True)


def item_points(fiscal_year: str, lg_codes: Iterable[str]) -> pd.DataFrame:
    """Points per municipality (rows, by lg_code6) and item (columns, by item_id) under the factory's rule."""
    cat = year_catalogue(fiscal_year)
    code_int = np.array([int(c) for c in lg_codes], dtype=np.uint64)
    item_no = np.arange(len(cat), dtype=np.uint64) + np.uint64(int(fiscal_year[1:]) * 1000)
    h = _mix(code_int[:, None] * np.uint64(100_003) + item_no[None, :])
    pts = np.where(h % np.uint64(2) == 0, cat["max_points"].to_numpy(), 0).astype(np.int64)
    df = pd.DataFrame(pts, columns=cat["item_id"].tolist())
    _choose_one(df, cat, code_int)
    _copy_outcome_block(df, cat)
    _cap(df, cat)
    df.index = pd.Index(list(lg_codes), name="lg_code6")
    return df


def _choose_one(df: pd.DataFrame, cat: pd.DataFrame, code_int: np.ndarray) -> None:
    """択一: only one branch (ア or イ, by hash) of each choose-one indicator keeps its points."""
    rule = cat[cat["scoring_rule"] == "choose_one_of_branches"]
    for (_, no), ind in rule.groupby(["grant", "indicator_no"]):
        keep_a = _mix(code_int * np.uint64(31) + np.uint64(no)) % np.uint64(2) == 0
        for branch, drop_where in (("ア", ~keep_a), ("イ", keep_a)):
            cols = ind.loc[ind["branch"] == branch, "item_id"].tolist()
            df.loc[drop_where, cols] = 0


def _copy_outcome_block(df: pd.DataFrame, cat: pd.DataFrame) -> None:
    """支援 目標Ⅳ repeats 推進 目標Ⅳ item by item."""
    outcome = cat[cat["goal"] == "IV"]
    key = ["indicator_no", "branch", "sub_branch"]
    pairs = outcome[outcome["grant"] == "shien"].merge(outcome[outcome["grant"] == "suishin"], on=key)
    for shien_id, suishin_id in zip(pairs["item_id_x"], pairs["item_id_y"], strict=True):
        df[shien_id] = df[suishin_id]


def _cap(df: pd.DataFrame, cat: pd.DataFrame) -> None:
    """支援 Ⅰ(ⅱ) 9: keep points on the first items (column order) while the sum stays within the cap."""
    capped = cat[cat["scoring_rule"] == "capped_inferred"]
    cap = int(capped["indicator_effective_max"].iloc[0])
    cols = capped["item_id"].tolist()
    block = df[cols].to_numpy()
    over = np.cumsum(block, axis=1) > cap
    df[cols] = np.where(over, 0, block)


def expected_subtotals(points: pd.DataFrame, fiscal_year: str) -> pd.DataFrame:
    """The 26 targets as plain sums (valid under the factory's rules), computed from the item ids alone."""
    parts = points.columns.str.split("-", expand=True)
    grant, goal, group = (parts.get_level_values(i) for i in (1, 2, 3))
    out = pd.DataFrame(index=points.index)
    for g in ("suishin", "shien"):
        for gl in ("I", "II", "III"):
            for grp in ("taisei", "katsudo"):
                out[f"{g}_{gl}_{grp}"] = points.loc[:, (grant == g) & (goal == gl) & (group == grp)].sum(
                    axis=1
                )
            out[f"{g}_{gl}"] = out[f"{g}_{gl}_taisei"] + out[f"{g}_{gl}_katsudo"]
        out[f"{g}_IV"] = points.loc[:, (grant == g) & (goal == "IV")].sum(axis=1)
        out[f"{g}_total"] = sum(out[f"{g}_{gl}"] for gl in ("I", "II", "III", "IV"))
    out["all_taisei"] = sum(
        out[f"{g}_{gl}_taisei"] for g in ("suishin", "shien") for gl in ("I", "II", "III")
    )
    out["all_katsudo"] = sum(
        out[f"{g}_{gl}_katsudo"] for g in ("suishin", "shien") for gl in ("I", "II", "III")
    )
    out["all_outcome"] = out["suishin_IV"] + out["shien_IV"]
    out["grand_total"] = out["suishin_total"] + out["shien_total"]
    return out.astype("int64")


def _attributes(master: pd.DataFrame, fiscal_year: str) -> pd.DataFrame:
    code_int = master["lg_code6"].astype(int).to_numpy(dtype=np.uint64)
    h = _mix(code_int * np.uint64(7) + np.uint64(int(fiscal_year[1:])))
    population = (800 + h % np.uint64(400_000)).astype(np.int64)
    n1 = np.maximum(population * (25 + (h >> np.uint64(20)) % np.uint64(20)).astype(np.int64) // 100, 1)
    kaso_draw = (h >> np.uint64(8)) % np.uint64(6)
    kaso = np.where(kaso_draw == 0, layout.KASO_PARTIAL, np.where(kaso_draw < 3, layout.KASO_YES, ""))
    return pd.DataFrame(
        {
            "pref_code": master["pref_code"].to_numpy(),
            "insurer_kind": layout.INSURER_KIND_SINGLE,
            "insurer_no": [codes.insurer_no_from_code5(c) for c in master["lg_code5"]],
            "insurer_name": master["name"].to_numpy(),
            "name": master["name"].to_numpy(),
            "pref_name": master["pref_name"].to_numpy(),
            "union_name": "",
            "population": population,
            "n_insured_1go": n1,
            "size_class": [layout.size_class_of(int(x)) for x in n1],
            "kaso": kaso,
            "prev_total": (300 + (h >> np.uint64(12)) % np.uint64(400)).astype(np.int64),
            "prev_rank": (1 + (h >> np.uint64(24)) % np.uint64(1741)).astype(np.int64),
        },
        index=pd.Index(master["lg_code6"].to_numpy(), name="lg_code6"),
    )


@dataclass
class Truth:
    """What a valid workbook contains: its rows in file order and the oracle values per municipality."""

    fiscal_year: str
    rows: pd.DataFrame  # file order, writer keys (attributes, item ids, target keys, rank)
    points: pd.DataFrame  # lg_code6 x item_id
    subtotals: pd.DataFrame  # lg_code6 x 26 targets
    rank: pd.Series  # lg_code6 -> competition rank of grand_total


def build_truth(fiscal_year: str) -> Truth:
    """The valid table of one year: every master municipality, plus the :data:`UNIONS` insurer rows."""
    master = load_master()
    attrs = _attributes(master, fiscal_year)
    points = item_points(fiscal_year, master["lg_code6"])
    subtotals = expected_subtotals(points, fiscal_year)
    rank = subtotals["grand_total"].rank(method="min", ascending=False).astype("int64")
    scored = pd.concat(
        [attrs, points, subtotals.drop(columns=["all_taisei", "all_katsudo", "all_outcome"])], axis=1
    )
    scored["rank"] = rank
    for union, (_, _, members) in UNIONS.items():
        scored.loc[list(members), "union_name"] = union
    rows = pd.concat([scored.reset_index(), _union_rows()], ignore_index=True)
    rows["_order"] = rows["pref_code"] + np.where(rows["lg_code6"].isna(), "9", "0") + rows["insurer_no"]
    rows = rows.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    rows.insert(0, "serial_no", np.arange(1, len(rows) + 1))
    return Truth(fiscal_year, rows, points, subtotals, rank)


def _union_rows() -> pd.DataFrame:
    prefs = load_master().drop_duplicates("pref_code").set_index("pref_code")["pref_name"]
    recs = [
        {
            "lg_code6": None,
            "pref_code": pref,
            "insurer_kind": layout.INSURER_KIND_UNION,
            "insurer_no": number,
            "insurer_name": name,
            "name": name,
            "pref_name": prefs[pref],
            "union_name": "",
            "kaso": "",
        }
        for name, (pref, number, _) in UNIONS.items()
    ]
    return pd.DataFrame(recs)


def write_truth(
    truth: Truth,
    path: Path,
    *,
    synthetic: bool = False,
    rows: pd.DataFrame | None = None,
    columns: list[ScoreColumn] | None = None,
    leading: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write a truth (or edited rows of it) with the project's layout writer."""
    write_results_workbook(
        path,
        truth.fiscal_year,
        truth.rows if rows is None else rows,
        synthetic=synthetic,
        columns=columns,
        leading=leading,
        title=title,
    )
    return path


def default_columns(fiscal_year: str) -> list[ScoreColumn]:
    return score_columns(fiscal_year)


# --- Post-editing the written xlsx -------------------------------------------------------------------------


def col_letter(index0: int) -> str:
    """Excel column letters of a 0-based column index."""
    s = ""
    n = index0 + 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


_ROW_RE = re.compile(r'<row r="(\d+)"([^>]*?)(?:/>|>(.*?)</row>)', re.S)
_CELL_RE = re.compile(r'<c r="([A-Z]+)(\d+)"[^>]*?(?:/>|>.*?</c>)', re.S)


class Formula(str):
    """A cell value written as a formula without a cached value (what openpyxl leaves behind)."""


class SheetXml:
    """The first sheet's XML split into rows, for cheap cell-level edits of a written workbook."""

    def __init__(self, xml: str, shared: list[str]):
        start, end = xml.index("<sheetData"), xml.index("</sheetData>") + len("</sheetData>")
        open_end = xml.index(">", start) + 1
        self.head, self.tail = xml[:start], xml[end:]
        body = xml[open_end : end - len("</sheetData>")]
        # Rows stay raw XML until a cell of theirs is touched (parsing all 600k cells would be slow).
        self._raw: dict[int, str] = {int(m.group(1)): m.group(0) for m in _ROW_RE.finditer(body)}
        self._parsed: dict[int, dict[int, str]] = {}
        self.shared = shared

    def cells(self, row: int) -> dict[int, str]:
        """The cells of one row (column index -> cell XML), parsed on first use."""
        if row not in self._parsed:
            raw = self._raw.pop(row, "")
            m = _ROW_RE.fullmatch(raw)
            body = (m.group(3) or "") if m else ""
            self._parsed[row] = {col_index(c.group(1)): c.group(0) for c in _CELL_RE.finditer(body)}
        return self._parsed[row]

    @property
    def row_numbers(self) -> list[int]:
        return sorted({*self._raw, *self._parsed})

    def value(self, ref: str) -> object:
        """The stored value of a cell (shared strings resolved), or None."""
        col, row = _split_ref(ref)
        cell = self.cells(row).get(col)
        if cell is None:
            return None
        v = re.search(r"<v>(.*?)</v>", cell, re.S)
        if 't="s"' in cell and v:
            return self.shared[int(v.group(1))]
        t = re.search(r"<t[^>]*>(.*?)</t>", cell, re.S)
        if t:
            return t.group(1)
        return float(v.group(1)) if v else None

    def set(self, ref: str, value: object) -> None:
        """Write a number, a string (inline), a :class:`Formula` (no cached value) or None (delete)."""
        col, row = _split_ref(ref)
        cells = self.cells(row)
        if value is None:
            cells.pop(col, None)
        elif isinstance(value, Formula):
            cells[col] = f'<c r="{ref}"><f>{escape(str(value))}</f></c>'
        elif isinstance(value, str):
            cells[col] = f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
        else:
            cells[col] = f'<c r="{ref}"><v>{value}</v></c>'

    def delete_row(self, row: int) -> None:
        """Remove every cell of a row and the merged ranges that start in it (later rows keep their numbers)."""
        self._raw.pop(row, None)
        self._parsed[row] = {}
        self.set_merges([r for r in self.merges() if _split_ref(r.split(":")[0])[1] != row])

    def merges(self) -> list[str]:
        return re.findall(r'<mergeCell ref="([A-Z0-9:]+)"/>', self.tail)

    def set_merges(self, refs: list[str]) -> None:
        block = "".join(f'<mergeCell ref="{r}"/>' for r in refs)
        new = f'<mergeCells count="{len(refs)}">{block}</mergeCells>' if refs else ""
        self.tail = re.sub(r"<mergeCells[^>]*>.*?</mergeCells>", new, self.tail, flags=re.S)

    def to_xml(self) -> str:
        parts = []
        for r in self.row_numbers:
            if r in self._raw:
                parts.append(self._raw[r])
            elif self._parsed[r]:
                cells = "".join(self._parsed[r][c] for c in sorted(self._parsed[r]))
                parts.append(f'<row r="{r}">{cells}</row>')
        return f"{self.head}<sheetData>{''.join(parts)}</sheetData>{self.tail}"


def _split_ref(ref: str) -> tuple[int, int]:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    assert m, ref
    return col_index(m.group(1)), int(m.group(2))


def _shared_strings(zf: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in zf.namelist():
        return []
    xml = zf.read("xl/sharedStrings.xml").decode("utf-8")
    out = []
    for si in re.findall(r"<si>(.*?)</si>", xml, re.S):
        out.append("".join(re.findall(r"<t[^>]*>(.*?)</t>", si, re.S)))
    return out


def edit_xlsx(src: Path, dst: Path, edit: Callable[[SheetXml], None]) -> Path:
    """Copy ``src`` to ``dst`` applying ``edit`` to the first sheet's XML (other parts are copied as they are)."""
    with zipfile.ZipFile(src) as zin:
        sheet = SheetXml(zin.read(SHEET_XML).decode("utf-8"), _shared_strings(zin))
        edit(sheet)
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
            for info in zin.infolist():
                data = sheet.to_xml().encode("utf-8") if info.filename == SHEET_XML else zin.read(info)
                zout.writestr(info.filename, data)
    return dst


@dataclass(frozen=True)
class Cells:
    """Where things are in a written workbook: the Excel row of each municipality and column of each key."""

    row_of: dict[str, int]  # lg_code6 / insurer_no of union rows -> Excel row
    col_of: dict[str, str]  # attribute key / item_id / target key -> column letters

    def ref(self, key: str, column: str) -> str:
        return f"{self.col_of[column]}{self.row_of[key]}"


def cells_of(truth: Truth, rows: pd.DataFrame | None = None, leading: list[str] | None = None) -> Cells:
    """Cell addresses of the default layout written by :func:`write_truth`."""
    rows = truth.rows if rows is None else rows
    leading = list(leading or layout.LEADING_COLUMNS[truth.fiscal_year])
    keys = [*leading, *(c.key for c in score_columns(truth.fiscal_year)), "rank"]
    col_of = {k: col_letter(j) for j, k in enumerate(keys)}
    row_of = {}
    for i, (code, number) in enumerate(zip(rows["lg_code6"], rows["insurer_no"], strict=True)):
        row_of[code if isinstance(code, str) else number] = layout.FIRST_DATA_ROW + i
    return Cells(row_of, col_of)


# --- Whole-file defects ------------------------------------------------------------------------------------


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def csv_renamed(path: Path) -> Path:
    path.write_text("保険者番号,市町村名,総合計\n011002,札幌市,512\n", encoding="utf-8")
    return path


def truncated_zip(src: Path, dst: Path) -> Path:
    """The first half of a valid workbook: the zip has no central directory."""
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def encrypted_ooxml(path: Path) -> Path:
    """What Excel writes for a password-protected workbook: an OLE compound file holding EncryptionInfo."""
    header = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    names = ("EncryptionInfo", "EncryptedPackage")
    body = b"".join(n.encode("utf-16-le") + b"\x00" * 8 for n in names)
    path.write_bytes(header + b"\x00" * (512 - len(header)) + body + b"\x00" * 1024)
    return path


def encrypted_zip(src: Path, dst: Path) -> Path:
    """A copy of a workbook whose zip entries are flagged as encrypted (traditional PKWARE encryption)."""
    data = bytearray(src.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        while pos != -1:
            data[pos + offset] |= 0x01
            pos = data.find(sig, pos + 4)
    dst.write_bytes(bytes(data))
    return dst


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


# --- Layout variants and targeted edits ----------------------------------------------------------------------


def code_of(name: str, pref_name: str) -> str:
    m = load_master()
    hit = m[(m["name"] == name) & (m["pref_name"] == pref_name)]
    assert len(hit) == 1, (name, pref_name)
    return str(hit["lg_code6"].iloc[0])


def affected_targets(item_id: str) -> list[str]:
    """The file's subtotal columns that contain an item (its group, goal, grant total and the grand total)."""
    _, grant, goal, group, *_ = item_id.split("-")
    if goal == "IV":
        return [f"{grant}_IV", f"{grant}_total", "grand_total"]
    return [f"{grant}_{goal}_{group}", f"{grant}_{goal}", f"{grant}_total", "grand_total"]


def set_points(sheet: SheetXml, truth: Truth, cells: Cells, code: str, item_id: str, value: object) -> None:
    """Write ``value`` into an item cell and shift the row's subtotals by the same delta, so the only defect
    left in the row is the one the test plants (not a knock-on subtotal mismatch)."""
    delta = float(value) - float(truth.points.at[code, item_id])
    sheet.set(cells.ref(code, item_id), value)
    for target in affected_targets(item_id):
        sheet.set(cells.ref(code, target), int(truth.subtotals.at[code, target] + delta))


def repeat_merged_labels(sheet: SheetXml) -> None:
    """Unmerge every range and write its value into every cell it covered (the other unmerged variant)."""
    for ref in sheet.merges():
        a, b = ref.split(":")
        (c0, r0), (c1, r1) = _split_ref(a), _split_ref(b)
        value = sheet.value(a)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                if (r, c) != (r0, c0) and value is not None:
                    sheet.set(f"{col_letter(c)}{r}", value)
    sheet.set_merges([])


def rearranged_columns(fiscal_year: str) -> tuple[list[str], list[ScoreColumn]]:
    """A layout where 前年度得点/前年度順位 sit where 総合計/今年度順位 usually are, plus two unknown columns.

    前年度得点 is placed between 支援合計 and 推進・支援合計, 前年度順位 right after 推進・支援合計, each with its
    label repeated in all seven header rows; a 参考 column sits in the middle of the items and a 備考 column
    before 今年度順位. A reader that takes columns by position reads last year's values as this year's.
    """
    leading = [k for k in layout.LEADING_COLUMNS[fiscal_year] if k not in ("prev_total", "prev_rank")]
    cols = score_columns(fiscal_year)
    # max_points only feeds the writer's statistics rows (a 0 would divide by zero there)
    prev_total = ScoreColumn("prev_total", False, 1, ("前年度得点",) * 7)
    prev_rank = ScoreColumn("prev_rank", False, 1, ("前年度順位",) * 7)
    extra_mid = ScoreColumn("extra_ref", False, 1, ("参考", "", "", "", "参考指標値（未使用）", "", ""))
    extra_end = ScoreColumn("extra_note", False, 1, ("備考", "", "", "", "", "", ""))
    grand = next(i for i, c in enumerate(cols) if c.key == "grand_total")
    cols = [*cols[:grand], prev_total, cols[grand], prev_rank, extra_end]
    first_goal2 = next(i for i, c in enumerate(cols) if c.key.startswith(f"{fiscal_year}-suishin-II-"))
    cols.insert(first_goal2, extra_mid)
    return leading, cols


def outcome_rows(truth: Truth) -> pd.DataFrame:
    """Outcome values for every municipality: a deterministic function of the code, one column per measure."""
    scored = truth.rows[truth.rows["lg_code6"].notna()]
    code_int = scored["lg_code6"].astype(int).to_numpy(dtype=np.uint64)
    out = scored[["insurer_no", "pref_name", "name", "lg_code6"]].copy()
    for k, label in enumerate(layout.OUTCOME_VALUE_COLUMNS):
        h = _mix(code_int * np.uint64(13) + np.uint64(k))
        out[label] = (h % np.uint64(10_000)).astype(float) / 100.0 - 50.0
    return out.reset_index(drop=True)


_BUILT: dict[tuple[Path, str], tuple[Truth, Path]] = {}


def valid_workbook(directory: Path, fiscal_year: str) -> tuple[Truth, Path]:
    """The valid real workbook of a year, built once per directory (tests share it across modules)."""
    key = (directory, fiscal_year)
    if key not in _BUILT:
        truth = build_truth(fiscal_year)
        path = write_truth(truth, directory / f"{fiscal_year}_valid.xlsx")
        _BUILT[key] = (truth, path)
    return _BUILT[key]
