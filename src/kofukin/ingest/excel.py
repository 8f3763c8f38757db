"""Opening a workbook safely: what the file really is, its first sheet as values, and its merged ranges.

Values come from python-calamine, which reads the values Excel cached when the file was saved: formulas are
never evaluated and external links are never followed. A formula that was saved *without* a cached value
(files written by scripts, e.g. openpyxl) reads as an empty cell, which would silently become "no points";
:func:`cells_without_cached_value` finds those cells in the sheet XML so the importer can refuse them.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import python_calamine as pc

from kofukin.ingest.errors import Category, Failure, FileFailed

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
ZIP_MAGIC = b"PK\x03\x04"
_ENCRYPTION_MARK = "EncryptionInfo".encode("utf-16-le")


@dataclass
class RawSheet:
    """The first sheet of a workbook as plain values (row-major, from A1, rectangular)."""

    path: Path
    name: str
    grid: list[list[object]]
    merged: list[tuple[tuple[int, int], tuple[int, int]]]
    no_cached_value: set[tuple[int, int]]  # 0-based (row, col) of formulas saved without a value

    @property
    def n_rows(self) -> int:
        return len(self.grid)

    @property
    def n_cols(self) -> int:
        return len(self.grid[0]) if self.grid else 0

    def cell(self, row: int, col: int) -> object:
        if row < len(self.grid) and col < len(self.grid[row]):
            return self.grid[row][col]
        return ""


def _fail(path: Path, category: Category, detail: str) -> FileFailed:
    return FileFailed([Failure(category, detail, file=path.name)])


def sniff(path: Path) -> None:
    """Refuse files that are not readable xlsx workbooks, each with the reason a user can act on."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _fail(path, Category.NOT_XLSX, f"cannot read the file: {e.strerror}") from None
    if size == 0:
        raise _fail(path, Category.EMPTY_FILE, "the file is empty (0 bytes); download it again")
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(OLE_MAGIC):
        raise _ole_failure(path)
    if not head.startswith(ZIP_MAGIC):
        raise _fail(path, Category.NOT_XLSX, _not_zip_detail(head))
    _check_zip(path)


def _ole_failure(path: Path) -> FileFailed:
    data = path.read_bytes()
    if _ENCRYPTION_MARK in data:
        return _fail(
            path,
            Category.ENCRYPTED,
            "the workbook is password-protected (encrypted); open it in Excel and save a copy without a password",
        )
    return _fail(
        path, Category.NOT_XLSX, "this is a legacy .xls (BIFF) workbook, not .xlsx; save it as .xlsx"
    )


def _not_zip_detail(head: bytes) -> str:
    for encoding in ("utf-8", "cp932"):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "," in text or "\t" in text:
            return "this is a CSV/text file with an .xlsx name, not an Excel workbook; use the original .xlsx"
        return "this is a text file with an .xlsx name, not an Excel workbook"
    return "not an xlsx workbook (the file is not a zip archive)"


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, OSError) as e:
        raise _fail(
            path, Category.CORRUPT, f"the workbook is corrupt (broken zip archive: {e}); download it again"
        ) from None
    if any(i.flag_bits & 0x1 for i in infos):
        raise _fail(
            path, Category.ENCRYPTED, "the zip archive is password-protected; save an unprotected copy"
        )
    if "xl/workbook.xml" not in names:
        raise _fail(path, Category.NOT_XLSX, "a zip archive without xl/workbook.xml: not an Excel workbook")


def open_first_sheet(path: Path) -> RawSheet:
    """Sniff, then read the first sheet's cached values, merged ranges and uncached formula cells."""
    sniff(path)
    try:
        wb = pc.CalamineWorkbook.from_path(str(path))
        try:
            if not wb.sheet_names:
                raise _fail(path, Category.NO_DATA, "the workbook has no sheets")
            sheet = wb.get_sheet_by_index(0)
            grid = sheet.to_python(skip_empty_area=False)
            merged = list(sheet.merged_cell_ranges or [])
            name = sheet.name
        finally:
            wb.close()
    except FileFailed:
        raise
    except pc.PasswordError:
        raise _fail(
            path, Category.ENCRYPTED, "the workbook is password-protected; save a copy without a password"
        ) from None
    except (pc.CalamineError, pc.ZipError, pc.XmlError, ValueError, OSError) as e:
        raise _fail(
            path, Category.CORRUPT, f"the workbook is corrupt and cannot be read ({e}); download it again"
        ) from None
    width = max((len(r) for r in grid), default=0)
    grid = [r if len(r) == width else [*r, *[""] * (width - len(r))] for r in grid]
    return RawSheet(path, name, grid, merged, cells_without_cached_value(path))


def first_sheet_xml_path(zf: zipfile.ZipFile) -> str:
    """The zip member of the workbook's first sheet (workbook.xml order, resolved through its rels)."""
    wb = zf.read("xl/workbook.xml").decode("utf-8", "replace")
    m = re.search(r"<(?:\w+:)?sheet\b[^>]*?\br:id=\"([^\"]+)\"", wb) or re.search(
        r"<(?:\w+:)?sheet\b[^>]*?\bid=\"([^\"]+)\"", wb
    )
    if not m:
        return "xl/worksheets/sheet1.xml"
    rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    for rel in re.finditer(r"<Relationship\b[^>]*>", rels):
        tag = rel.group(0)
        if f'Id="{m.group(1)}"' in tag:
            target = re.search(r'Target="([^"]+)"', tag)
            if target:
                t = target.group(1)
                return t.lstrip("/") if t.startswith("/") else str(PurePosixPath("xl") / t)
    return "xl/worksheets/sheet1.xml"


_REF_RE = re.compile(rb'\br="([A-Z]+)(\d+)"')
_VALUE_RE = re.compile(rb"<(?:\w+:)?v>[^<]")


def cells_without_cached_value(path: Path) -> set[tuple[int, int]]:
    """0-based (row, col) of formula cells that carry no cached value in the first sheet.

    Excel always stores the last computed value next to a formula; a file whose formulas have none was
    written by a program that could not compute them. Reading such a cell as blank (or 0) would be wrong.
    """
    with zipfile.ZipFile(path) as zf:
        member = first_sheet_xml_path(zf)
        if member not in zf.namelist():
            return set()
        xml = zf.read(member)
    out: set[tuple[int, int]] = set()
    pos = _next_formula(xml, 0)
    while pos != -1:
        start = xml.rfind(b"<c ", 0, pos)
        end = xml.find(b"</c>", pos)
        cell = xml[start : end if end != -1 else len(xml)]
        ref = _REF_RE.search(cell)
        cached = _VALUE_RE.search(cell) or b't="str"' in cell[: cell.find(b">")]
        if ref and not cached:
            out.add((int(ref.group(2)) - 1, letters_to_index(ref.group(1).decode())))
        pos = _next_formula(xml, (end if end != -1 else len(xml)))
    return out


def _next_formula(xml: bytes, start: int) -> int:
    """Position of the next ``<f>``/``<f …>`` element (not ``<fill``, ``<font`` …)."""
    pos = xml.find(b"<f", start)
    while pos != -1 and xml[pos + 2 : pos + 3] not in (b">", b" ", b"/"):
        pos = xml.find(b"<f", pos + 2)
    return pos


def letters_to_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1
