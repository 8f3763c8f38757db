"""National tables every report derives from the store, computed once per store and kept beside it.

Each report kernel used to derive them itself on first use — the outcome analysis frame and its shrinkage
(~2.5 s), the gains tables of each pair of years (~3 s each), the items-achieved counts (~1 s a year) — so a
single ``kofukin report`` paid ~5 s for them and a full build paid them in every kernel it started. They are
now written once, by the parent, to ``data/processed/derived/`` before the kernels start.

They are keyed on everything they are computed from: the store's content hash, the package's code and the
reference tables. A kernel uses them only when the key matches (otherwise it computes them itself, as before),
so a stale file can never change a number. They are pickles because a cached table must equal the computed one
exactly (dtypes, ``attrs`` such as the shrinkage's τ²); they are only ever read from this project's own build
output, like the Sphinx cache.

:func:`ensure_derived` writes them in processes of their own (``python -m kofukin.derived``), two at once, so the
parent of a build does not keep a second copy of the store in memory while the kernels run.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kofukin.paths import REFERENCE_DIR, sha256_file
from kofukin.scoring import FISCAL_YEARS
from kofukin.store import MANIFEST, staging_dir, swap_directory

if TYPE_CHECKING:
    from kofukin.bookdata import BookData

DIRECTORY = "derived"
KEY_FILE = "key.txt"
_REFERENCE_FILES = ("indicators.csv", "indicator_subtotals.csv", "item_crosswalk.csv", "budgets.csv")


def derived_key(processed: Path) -> str:
    """What the derived tables depend on: the store's content, the package's code, the reference tables."""
    from kofukin.pipeline import code_hash

    manifest = json.loads((processed / MANIFEST).read_text(encoding="utf-8"))
    h = hashlib.sha256()
    h.update(str(manifest.get("store_sha256")).encode())
    h.update(code_hash().encode())
    for name in _REFERENCE_FILES:
        h.update(name.encode())
        h.update(sha256_file(REFERENCE_DIR / name).encode())
    return h.hexdigest()


class DerivedTables:
    """The derived tables of one store, read from disk when first asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: dict[str, Any] = {}

    def has(self, name: str) -> bool:
        return name in self._loaded or (self.directory / f"{name}.pkl").exists()

    def nbytes(self, name: str) -> int:
        """The size of the table's file (0 when it was not derived): what reading it costs, roughly."""
        path = self.directory / f"{name}.pkl"
        return path.stat().st_size if path.exists() else 0

    def get(self, name: str) -> Any | None:
        """The table (or tuple of tables) called ``name``, or None when it was not derived."""
        if name not in self._loaded:
            path = self.directory / f"{name}.pkl"
            if not path.exists():
                return None
            with path.open("rb") as f:
                self._loaded[name] = pickle.load(f)  # our own build output (see the module)
        return self._loaded[name]


def open_derived(processed: Path) -> DerivedTables | None:
    """The store's derived tables if they were computed from exactly this store, code and reference."""
    directory = processed / DIRECTORY
    key_file = directory / KEY_FILE
    if not key_file.exists() or key_file.read_text(encoding="utf-8") != derived_key(processed):
        return None
    return DerivedTables(directory)


# The tables fall into two groups of about the same cost (~6 and ~7 s, measured on the bundled panel), which
# :func:`ensure_derived` computes in two processes at once: a build's two cores would otherwise wait ~7 s for one.
PARTS = ("outcomes-gains", "items-reach")


def compute(data: BookData, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Every derived table of ``data``'s store in ``parts``, by file stem; computed by the same methods a kernel
    uses."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; the parts are {PARTS}")
    out: dict[str, Any] = {}
    years = data.years
    if "outcomes-gains" in parts:
        frame = out["outcome_frame"] = data.compute_outcome_frame()
        for y in years:
            out[f"shrunken-{y}"] = data.compute_shrunken(frame, y)
        for y in years:
            prev = data.previous_year(y)
            if prev is not None:
                out[f"gains-{prev}-{y}"] = data.compute_gains_tables(prev, y)
    if "items-reach" in parts:
        for y in years:
            out[f"achieved-{y}"] = data.compute_achieved(y)
        # Items within reach only for the year the book reports on (~4 s a year); another year's report computes
        # its own.
        latest = max(years, key=FISCAL_YEARS.index)
        out[f"reach-{latest}"] = data.compute_reach(latest)
        out[f"reach-changes-{latest}"] = data.compute_reach_changes(latest, out[f"reach-{latest}"])
    return out


def _write_tables(tables: dict[str, Any], directory: Path) -> None:
    for name, value in tables.items():
        with (directory / f"{name}.pkl").open("wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


def _compute_into(processed: Path, directory: Path, parts: tuple[str, ...]) -> None:
    """Compute ``parts`` of the store in ``processed`` and write their tables into ``directory``."""
    from kofukin.bookdata import BookData
    from kofukin.store import load_store

    _write_tables(compute(BookData(load_store(processed), derived_key(processed)), parts), directory)


def write_derived(processed: Path) -> Path:
    """Compute the derived tables of the store in ``processed``, in this process, and swap them in whole (old
    ones survive a failure)."""
    return _swapped_in(processed, lambda tmp: _compute_into(processed, tmp, PARTS))


def _swapped_in(processed: Path, fill: Callable[[Path], None]) -> Path:
    """``fill`` a staging directory, add the key, and swap it in for the derived tables; nothing changes if
    ``fill`` raises."""
    key = derived_key(processed)
    target = processed / DIRECTORY
    tmp = staging_dir(target)
    try:
        fill(tmp)
        (tmp / KEY_FILE).write_text(key, encoding="utf-8")
        swap_directory(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_derived(processed: Path, jobs: int = 2) -> bool:
    """Write the derived tables unless they are current; True when they were (re)computed.

    Runs in child processes — one per part of :data:`PARTS` when ``jobs`` > 1 — so that the caller's memory does
    not hold a copy of the store while the kernels run."""
    if open_derived(processed) is not None:
        return False

    def fill(tmp: Path) -> None:
        groups = [(part,) for part in PARTS] if jobs > 1 else [PARTS]
        children = [
            subprocess.Popen([sys.executable, "-m", "kofukin.derived", str(processed), str(tmp), *group])
            for group in groups
        ]
        codes = [child.wait() for child in children]
        failed = [" + ".join(g) for g, code in zip(groups, codes, strict=True) if code != 0]
        if failed:
            raise RuntimeError(f"deriving the national tables of {processed} failed: {', '.join(failed)}")

    _swapped_in(processed, fill)
    return True


if __name__ == "__main__":
    # python -m kofukin.derived PROCESSED_DIR                  compute and swap in every table
    # python -m kofukin.derived PROCESSED_DIR STAGING PART…    write those parts' tables into STAGING
    if len(sys.argv) == 2:
        write_derived(Path(sys.argv[1]))
    else:
        _compute_into(Path(sys.argv[1]), Path(sys.argv[2]), tuple(sys.argv[3:]))
