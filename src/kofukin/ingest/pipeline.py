"""``kofukin ingest``: every workbook under the given paths → one validated, atomically written store.

Source precedence, per year and kind of workbook: a real workbook replaces a synthetic one (合成データ in the
title), which is skipped and named in the summary; two different real workbooks for one year are an error
(byte-identical copies are skipped). Nothing is written unless every chosen file passes every check, and the
store is swapped in by rename (:func:`kofukin.store.write_store`), so a failed ingest leaves the previous store
exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import kofukin
from kofukin.ingest.errors import Category, Failure, FileFailed, IngestError
from kofukin.ingest.header import read_layout
from kofukin.ingest.outcome import OutcomeWorkbook, empty_outcome_values, read_outcome
from kofukin.ingest.results import OUTCOME, RESULTS, ResultsWorkbook, Workbook, identify, read_results
from kofukin.ingest.unions import (
    SIDECAR_GLOB,
    build_union_members,
    find_sidecars,
    is_synthetic_name,
    read_sidecar,
)
from kofukin.paths import project_paths
from kofukin.reference import load_master
from kofukin.scoring import FISCAL_YEARS
from kofukin.store import sha256_file, write_store

MASTER_COLUMNS = ["lg_code6", "lg_code5", "pref_code", "pref_name", "name", "name_kana", "kind"]


@dataclass
class Inputs:
    """What was found under the paths: workbooks (explicitly named or discovered) and membership CSVs."""

    workbooks: list[tuple[Path, bool]] = field(default_factory=list)  # (path, named explicitly)
    sidecars: list[Path] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def ingest_paths(paths: Sequence[Path], store_dir: Path) -> str:
    """Ingest every workbook under ``paths`` into ``store_dir``; return a one-paragraph summary.

    Raises :class:`IngestError` listing every problem (and writes nothing) if any chosen file fails a check.
    """
    inputs = discover([Path(p) for p in paths])
    failures = list(inputs.failures)
    opened = _open_all(inputs, failures)
    chosen = _choose(opened, inputs.skipped, failures)
    _release([wb for wb in opened if all(wb is not c for c in chosen)])
    results = _read_all(chosen, RESULTS, read_results, failures)
    outcomes = _read_all(chosen, OUTCOME, read_outcome, failures)
    _release(chosen)
    sidecar_tables = _read_sidecars(inputs, chosen, failures)
    if not failures and not results:
        failures.append(Failure(Category.NO_INPUT, _nothing_found(paths)))
    if failures:
        raise IngestError(failures)
    outcomes = _pair_outcomes(results, outcomes, inputs.skipped)
    tables = _tables(results, outcomes, sidecar_tables)
    manifest = _manifest(results, outcomes, sidecar_tables, inputs.skipped)
    write_store(tables, manifest, Path(store_dir))
    return _summary(results, outcomes, tables, inputs.skipped, Path(store_dir))


# --- finding and opening the inputs -------------------------------------------------------------------------


def discover(paths: list[Path]) -> Inputs:
    """Workbooks named or found (recursively, ``*.xlsx``) under the paths; lock files are skipped."""
    inputs = Inputs()
    seen: set[Path] = set()
    for p in paths:
        if not p.exists():
            inputs.failures.append(Failure(Category.NO_INPUT, f"{p}: no such file or directory"))
            continue
        if p.is_file() and p.match(SIDECAR_GLOB):
            inputs.sidecars.append(p)
            continue
        found = [(p, True)] if p.is_file() else [(f, False) for f in sorted(p.rglob("*")) if _is_xlsx(f, p)]
        for f, explicit in found:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            if f.name.startswith("~$"):
                inputs.skipped.append({"path": _rel(f), "reason": "Excel lock file (~$…), not a workbook"})
            else:
                inputs.workbooks.append((f, explicit))
    return inputs


def _is_xlsx(path: Path, root: Path) -> bool:
    """An .xlsx file not inside a hidden folder below ``root`` (e.g. a store's temporary copy)."""
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts[:-1])
    return path.suffix.lower() == ".xlsx" and path.is_file() and not hidden


def _open_all(inputs: Inputs, failures: list[Failure]) -> list[Workbook]:
    """Open and classify every workbook; results workbooks also get their layout (and so their year)."""
    opened: list[Workbook] = []
    for path, explicit in inputs.workbooks:
        try:
            wb = identify(path)
        except FileFailed as e:
            failures += e.failures
            continue
        if wb.kind not in (RESULTS, OUTCOME):
            reason = f"not a results or outcome-value workbook (title {wb.title!r})"
            if explicit:
                failures.append(Failure(Category.UNRECOGNISED, reason, file=path.name, sheet=wb.sheet.name))
            else:
                inputs.skipped.append({"path": _rel(path), "reason": reason})
            continue
        if wb.kind == RESULTS:
            try:
                wb.layout = read_layout(wb.sheet)
            except FileFailed as e:
                wb.layout_failures = e.failures
        opened.append(wb)
    return opened


def _choose(opened: list[Workbook], skipped: list[dict], failures: list[Failure]) -> list[Workbook]:
    """One workbook per (kind, year): real over synthetic; two different real (or synthetic) ones are an error."""
    groups: dict[tuple[str, str], list[Workbook]] = {}
    for wb in opened:
        year = wb.fiscal_year
        if year is None:
            failures += wb.layout_failures or [
                Failure(
                    Category.UNKNOWN_YEAR, "no 令和N年度 in the title", file=wb.path.name, sheet=wb.sheet.name
                )
            ]
            continue
        groups.setdefault((wb.kind, year), []).append(wb)
    chosen: list[Workbook] = []
    for (kind, year), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _year_order(kv[0][1]))):
        pick = _pick(kind, year, [w for w in group if not w.layout_failures], skipped, failures)
        if pick is not None:
            chosen.append(pick)
        for w in (w for w in group if w.layout_failures):
            if w.synthetic and pick is not None and not pick.synthetic:
                skipped.append({"path": _rel(w.path), "reason": _replaced(year, kind, pick)})
            else:  # a broken real workbook is an error even when another file covers its year
                failures += w.layout_failures
    return chosen


def _replaced(year: str, kind: str, real: Workbook) -> str:
    what = "results" if kind == RESULTS else "outcome-value"
    return f"synthetic {year} {what} workbook replaced by the real one ({_rel(real.path)})"


def _year_order(year: str) -> int:
    return FISCAL_YEARS.index(year) if year in FISCAL_YEARS else len(FISCAL_YEARS)


def _pick(
    kind: str, year: str, group: list[Workbook], skipped: list[dict], failures: list[Failure]
) -> Workbook | None:
    """The real workbook of a (kind, year), else the synthetic one; two different candidates are an error."""
    real = _distinct([w for w in group if not w.synthetic], skipped)
    synthetic = _distinct([w for w in group if w.synthetic], skipped)
    pool, label = (real, "real") if real else (synthetic, "synthetic")
    if len(pool) > 1:
        names = " and ".join(_rel(w.path) for w in pool)
        what = "results" if kind == RESULTS else "outcome-value"
        detail = f"two {label} {what} workbooks for {year}: {names}; keep one of them"
        failures.append(Failure(Category.DUPLICATE_YEAR, detail))
        return None
    if real:
        skipped += [{"path": _rel(w.path), "reason": _replaced(year, kind, real[0])} for w in synthetic]
    return pool[0] if pool else None


def _distinct(group: list[Workbook], skipped: list[dict]) -> list[Workbook]:
    """Drop byte-identical copies (the same download saved twice), noting them as skipped."""
    out: dict[str, Workbook] = {}
    for w in group:
        if w.sha256 in out:
            skipped.append({"path": _rel(w.path), "reason": f"identical copy of {_rel(out[w.sha256].path)}"})
        else:
            out[w.sha256] = w
    return list(out.values())


def _release(workbooks: list[Workbook]) -> None:
    """Drop the cell grids that are no longer needed (a full-size sheet holds ~600k Python objects)."""
    for wb in workbooks:
        wb.sheet.grid = []


def _read_all(chosen: list[Workbook], kind: str, reader, failures: list[Failure]) -> list:
    out = []
    for wb in chosen:
        if wb.kind != kind:
            continue
        result, problems = reader(wb)
        failures += problems
        if result is not None:
            out.append(result)
    return out


def _read_sidecars(
    inputs: Inputs, chosen: list[Workbook], failures: list[Failure]
) -> list[tuple[Path, pd.DataFrame]]:
    """Membership CSVs named on the command line or lying next to a workbook that is used (not a skipped one)."""
    dirs = list(dict.fromkeys(wb.path.parent.resolve() for wb in chosen))
    paths = list(dict.fromkeys([*(p.resolve() for p in inputs.sidecars), *find_sidecars(dirs)]))
    out = []
    for p in paths:
        df, problems = read_sidecar(p)
        failures += problems
        out.append((p, df))
    return out


def _pair_outcomes(
    results: list[ResultsWorkbook], outcomes: list[OutcomeWorkbook], skipped: list[dict]
) -> list[OutcomeWorkbook]:
    """Keep outcome values only for years with results of the same kind (never real scores + synthetic values)."""
    by_year = {r.fiscal_year: r for r in results}
    kept = []
    for o in outcomes:
        r = by_year.get(o.fiscal_year)
        if r is None:
            skipped.append(
                {"path": _rel(o.source.path), "reason": f"no results workbook for {o.fiscal_year}"}
            )
        elif r.source.synthetic != o.source.synthetic:
            skipped.append(
                {
                    "path": _rel(o.source.path),
                    "reason": f"{_kind(o.source)} outcome values not combined "
                    f"with {_kind(r.source)} results for {o.fiscal_year}",
                }
            )
        else:
            kept.append(o)
    return kept


def _kind(wb: Workbook) -> str:
    return "synthetic" if wb.synthetic else "real"


def _nothing_found(paths: Sequence[Path]) -> str:
    where = ", ".join(_rel(Path(p)) for p in paths) or "(no paths)"
    return f"no results workbook (評価結果（市町村分）) under {where}; run `kofukin demo-data` for the synthetic panel"


# --- the store ----------------------------------------------------------------------------------------------


def _tables(
    results: list[ResultsWorkbook], outcomes: list[OutcomeWorkbook], sidecars: list[tuple[Path, pd.DataFrame]]
) -> dict[str, pd.DataFrame]:
    results = sorted(results, key=lambda r: FISCAL_YEARS.index(r.fiscal_year))
    members = build_union_members(
        {r.fiscal_year: (r.union_rows, r.members, r.source.path.name, r.source.synthetic) for r in results},
        [(df, is_synthetic_name(p)) for p, df in sidecars if not df.empty],
    )
    return {
        "municipalities": load_master()[MASTER_COLUMNS].reset_index(drop=True),
        "attributes": pd.concat([r.attributes for r in results], ignore_index=True),
        "insurers": pd.concat([r.insurers for r in results], ignore_index=True),
        "union_members": members,
        "item_points": pd.concat([r.item_points for r in results], ignore_index=True),
        "subtotals": pd.concat([r.subtotals for r in results], ignore_index=True),
        "outcome_values": pd.concat([o.values for o in outcomes], ignore_index=True)
        if outcomes
        else empty_outcome_values(),
    }


def _rel(path: Path) -> str:
    """A path relative to the project root when it is inside it (manifests must not depend on the checkout)."""
    p = Path(path).resolve()
    for root in (project_paths().root, Path.cwd()):
        try:
            return str(p.relative_to(root.resolve()))
        except ValueError:
            continue
    return str(p)


def _manifest(
    results: list[ResultsWorkbook],
    outcomes: list[OutcomeWorkbook],
    sidecars: list[tuple[Path, pd.DataFrame]],
    skipped: list[dict],
) -> dict:
    sources = [_source(r.source, r.fiscal_year, RESULTS) for r in results]
    sources += [_source(o.source, o.fiscal_year, OUTCOME) for o in outcomes]
    sources += [
        {
            "path": _rel(p),
            "sha256": sha256_file(p),
            "fiscal_year": None,
            "synthetic": is_synthetic_name(p),
            "kind": "unions",
            "title": p.name,
        }
        for p, _ in sidecars
    ]
    return {
        "package_version": kofukin.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "years": sorted({r.fiscal_year for r in results}, key=FISCAL_YEARS.index),
        "sources": sources,
        "skipped": skipped,
        "ignored_columns": {
            r.source.path.name: _ignored(r) for r in results if r.ignored or r.n_ignored_after_rank
        },
        "notes": [n for r in results for n in r.notes],
    }


def _source(wb: Workbook, year: str, kind: str) -> dict:
    return {
        "path": _rel(wb.path),
        "sha256": wb.sha256,
        "fiscal_year": year,
        "synthetic": wb.synthetic,
        "kind": kind,
        "title": wb.title,
        "year_from": wb.layout.year_source if wb.layout else "title",
    }


def _ignored(r: ResultsWorkbook) -> list[str]:
    extra = [f"{r.n_ignored_after_rank} columns after 今年度順位"] if r.n_ignored_after_rank else []
    return [*r.ignored, *extra]


def _summary(
    results: list[ResultsWorkbook],
    outcomes: list[OutcomeWorkbook],
    tables: dict[str, pd.DataFrame],
    skipped: list[dict],
    store_dir: Path,
) -> str:
    years = [r.fiscal_year for r in sorted(results, key=lambda r: FISCAL_YEARS.index(r.fiscal_year))]
    synthetic = [r.fiscal_year for r in results if r.source.synthetic]
    n_union = int((tables["insurers"]["kind"] == "union").sum())
    parts = [
        f"Ingested {len(years)} year{'s' if len(years) != 1 else ''} ({', '.join(years)}): "
        f"{len(tables['attributes']):,} municipality rows, {n_union} 広域連合 insurer rows kept, "
        f"{len(tables['item_points']):,} item points, {len(tables['union_members'])} union memberships",
        f"outcome values for {', '.join(o.fiscal_year for o in outcomes)}"
        if outcomes
        else "no outcome values",
        f"synthetic (合成データ): {', '.join(synthetic)}" if synthetic else "all years real",
    ]
    if skipped:
        parts.append(
            f"skipped {len(skipped)} file(s): " + "; ".join(f"{s['path']} ({s['reason']})" for s in skipped)
        )
    ignored = {r.source.path.name: _ignored(r) for r in results if r.ignored or r.n_ignored_after_rank}
    if ignored:
        parts.append(
            "unknown columns ignored: "
            + "; ".join(f"{f}: {', '.join(v[:5])}" + (" …" if len(v) > 5 else "") for f, v in ignored.items())
        )
    notes = [n for r in results for n in r.notes]
    if notes:
        parts.append("notes: " + "; ".join(notes))
    return "; ".join(parts) + f". Store written to {_rel(store_dir)}."
