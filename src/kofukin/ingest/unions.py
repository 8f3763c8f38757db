"""広域連合 membership: which municipalities an insurer union covers, from every source we have.

The results workbook scores a union's member towns one by one and lists the union itself as an insurer row
without scores; which towns belong to it is not in that row. Memberships come from three places, each kept
with its source: the workbook's own 所属広域連合 column (when present), the curated reference table
``data/reference/unions.csv``, and any ``広域連合構成市町村*.csv`` placed next to the workbooks (columns
union_insurer_no, union_name, pref_code, member_lg_code6, member_name, optionally fiscal_year).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kofukin import codes, layout
from kofukin.ingest.errors import Category, Failure
from kofukin.ingest.join import master_index
from kofukin.reference import load_unions

SIDECAR_GLOB = "広域連合構成市町村*.csv"
SIDECAR_COLUMNS = ("union_insurer_no", "union_name", "pref_code", "member_lg_code6", "member_name")
MEMBER_COLUMNS = ("fiscal_year", "insurer_no", "lg_code6", "union_name", "source")


def find_sidecars(directories: list[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for d in directories:
        for p in sorted(d.glob(SIDECAR_GLOB)):
            seen.setdefault(p.resolve(), None)
    return list(seen)


def read_sidecar(path: Path) -> tuple[pd.DataFrame, list[Failure]]:
    """A membership CSV as (insurer_no, union_name, lg_code6, fiscal_year or '', source); bad rows are failures."""
    df = _read_csv(path)
    if df is None:
        return pd.DataFrame(), [
            Failure(Category.BAD_UNION_FILE, "cannot be read as a UTF-8 or Shift_JIS CSV", file=path.name)
        ]
    missing = [c for c in SIDECAR_COLUMNS if c not in df.columns]
    if missing:
        return pd.DataFrame(), [
            Failure(Category.BAD_UNION_FILE, f"columns missing: {', '.join(missing)}", file=path.name)
        ]
    known = {r.lg_code6 for r in master_index().rows}
    failures: list[Failure] = []
    recs = []
    for i, r in enumerate(df.itertuples(index=False)):
        code = codes.normalise_code(r.member_lg_code6)
        if code not in known:
            failures.append(
                Failure(
                    Category.BAD_UNION_FILE,
                    f"member_lg_code6 {r.member_lg_code6!r} ({r.member_name}) is not a municipality of the master",
                    file=path.name,
                    row=i + 2,
                )
            )
            continue
        year = getattr(r, "fiscal_year", "") or ""
        recs.append((codes.normalise_code(r.union_insurer_no), r.union_name, code, year, f"csv:{path.name}"))
    return pd.DataFrame(
        recs, columns=["insurer_no", "union_name", "lg_code6", "fiscal_year", "source"]
    ), failures


def is_synthetic_name(path: Path) -> bool:
    """A membership CSV written by the synthetic generator carries 合成データ in its name."""
    return layout.SYNTHETIC_MARK in path.name


def _read_csv(path: Path) -> pd.DataFrame | None:
    """UTF-8 (with or without BOM) first, then Shift_JIS (cp932), which Excel uses when saving CSV in Japan."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
    return None


def build_union_members(
    years: dict[str, tuple[pd.DataFrame, pd.DataFrame, str, bool]], sidecars: list[tuple[pd.DataFrame, bool]]
) -> pd.DataFrame:
    """All memberships per ingested year.

    ``years`` maps a year to (union_rows, members, source file, synthetic) of its results workbook: union_rows
    gives each 広域連合 row's insurer number and name (used to number unions named elsewhere), members the rows
    of the 所属広域連合 column. A membership CSV applies to the years whose results are of its own kind (a
    synthetic CSV never to real results, and the other way round).
    """
    reference = load_unions()
    parts = []
    for year, (union_rows, members, file, synthetic) in years.items():
        numbers = _union_numbers(union_rows)
        wb = members.assign(source=f"workbook:{file}")
        ref = pd.DataFrame(
            {
                "union_name": reference["union_name"],
                "lg_code6": reference["member_lg_code6"].map(codes.normalise_code),
                "source": "reference:unions.csv",
            }
        )
        for df in (wb, ref):
            insurer_no = [numbers.get(_key(n), "") for n in df["union_name"]]
            parts.append(df.assign(fiscal_year=year, insurer_no=insurer_no))
        for side, side_synthetic in sidecars:
            if side_synthetic != synthetic:
                continue
            rows = side[(side["fiscal_year"] == "") | (side["fiscal_year"] == year)]
            parts.append(rows.assign(fiscal_year=year))
    if not parts:
        return _empty()
    out = pd.concat([p[list(MEMBER_COLUMNS)] for p in parts], ignore_index=True)
    return _merge_sources(out)


def _key(name: object) -> str:
    return codes.normalise_name(name)


def _union_numbers(union_rows: pd.DataFrame) -> dict[str, str]:
    return {_key(n): no for n, no in zip(union_rows["union_name"], union_rows["insurer_no"], strict=True)}


def _merge_sources(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (year, municipality, union): the first non-empty insurer number, every source named."""
    df = df.assign(_union=df["union_name"].map(_key))
    grouped = df.groupby(["fiscal_year", "lg_code6", "_union"], sort=True, as_index=False).agg(
        insurer_no=("insurer_no", lambda s: next((x for x in s if x), "")),
        union_name=("union_name", "first"),
        source=("source", lambda s: "; ".join(dict.fromkeys(s))),
    )
    return grouped[list(MEMBER_COLUMNS)].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="str") for c in MEMBER_COLUMNS})
