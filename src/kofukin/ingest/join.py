"""Joining workbook rows to the municipality master (JIS X 0402) by code, then by name.

A results row names its municipality three ways: 保険者番号 (first five digits shared with the JIS code for a
single-municipality insurer, a different check digit), 都道府県名 and 市町村名. The code is the primary key but
is only trusted when its prefecture agrees and its name does not point at another municipality; the name is
the fallback, after :func:`kofukin.codes.normalise_name` (ヶ/ケ, full-width and stray spaces, 竜/龍).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from kofukin import codes
from kofukin.ingest.errors import Category
from kofukin.reference import load_master


@dataclass(frozen=True)
class Match:
    """The master municipality of a row, or why there is none (category + detail)."""

    lg_code6: str | None
    category: Category | None = None
    detail: str = ""
    via: str = ""  # "code" or "name"


@dataclass(frozen=True)
class MasterRow:
    lg_code6: str
    pref_name: str
    name: str


@dataclass(frozen=True)
class MasterIndex:
    """The master as plain lookups (pandas row access is far too slow for 1,741 × 3 lookups)."""

    rows: tuple[MasterRow, ...]
    by_code5: dict[str, int]
    by_name: dict[tuple[str, str], int]

    def row(self, i: int) -> MasterRow:
        return self.rows[i]


@cache
def master_index() -> MasterIndex:
    m = load_master()
    rows = tuple(MasterRow(*t) for t in zip(m["lg_code6"], m["pref_name"], m["name"], strict=True))
    by_code5 = {c: i for i, c in enumerate(m["lg_code5"])}
    by_name = {
        (codes.normalise_name(r.pref_name), codes.normalise_name(r.name)): i for i, r in enumerate(rows)
    }
    return MasterIndex(rows, by_code5, by_name)


def master_name(lg_code6: str) -> str:
    """都道府県名 + 市町村名 of a master code (for messages)."""
    idx = master_index()
    i = idx.by_code5.get(lg_code6[:5])
    return f"{idx.rows[i].pref_name}{idx.rows[i].name}" if i is not None else lg_code6


def code5_of(code: str) -> str | None:
    """The JIS 5-digit part of an insurer number or a JIS code (6 digits, either check digit), or 5 digits."""
    if re.fullmatch(r"\d{6}", code) and (codes.is_valid_insurer_no(code) or codes.is_valid_lg_code6(code)):
        return code[:5]
    if re.fullmatch(r"\d{5}", code):
        return code
    return None


def match_municipality(code: object, pref_name: object, name: object) -> Match:
    """Match one row: by code (checked against prefecture and name), else by (prefecture, normalised name)."""
    idx = master_index()
    number = codes.normalise_code(code)
    pref, nm = codes.normalise_name(pref_name), codes.normalise_name(name)
    by_name = idx.by_name.get((pref, nm))
    code5 = code5_of(number)
    hit = idx.by_code5.get(code5) if code5 else None
    if hit is not None:
        row = idx.row(hit)
        pref_ok = not pref or codes.normalise_name(row.pref_name) == pref
        if pref_ok and (by_name is None or by_name == hit):
            return Match(row.lg_code6, via="code")
        if pref_ok and by_name is not None:
            other = idx.row(by_name)
            return Match(
                None,
                Category.CODE_NAME_CONFLICT,
                f"保険者番号 {number} is {row.pref_name}{row.name} ({row.lg_code6}) but the row names "
                f"{other.pref_name}{other.name} ({other.lg_code6})",
            )
    if by_name is not None:
        return Match(idx.row(by_name).lg_code6, via="name")
    return Match(
        None,
        Category.UNKNOWN_MUNICIPALITY,
        f"municipality not in the master (保険者番号 {number or '—'}, 都道府県名 {pref_name or '—'}, "
        f"市町村名 {name or '—'})",
    )
