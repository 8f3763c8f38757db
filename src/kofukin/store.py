"""The tidy store under ``data/processed/``: what the importer writes and every later stage reads.

Tables (Parquet, one file each) and their keys:

=================  ======================================  ==================================================
table              key                                     columns
=================  ======================================  ==================================================
municipalities     lg_code6                                lg_code5, pref_code, pref_name, name, name_kana, kind
attributes         fiscal_year, lg_code6                   insurer_no, insurer_name, union_name, serial_no,
                                                           population, n_insured_1go, size_class, kaso,
                                                           prev_total, prev_rank, rank_published,
                                                           source_file, source_row
insurers           fiscal_year, insurer_no                 insurer_name, pref_name, kind (single/union),
                                                           source_row
union_members      fiscal_year, insurer_no, lg_code6       union_name, source
item_points        fiscal_year, lg_code6, item_id          points
subtotals          fiscal_year, lg_code6                   the 26 target columns (scoring.TARGET_KEYS)
outcome_values     fiscal_year, lg_code6, indicator_no,    value
                   branch
=================  ======================================  ==================================================

``manifest.json`` records the source files (path, sha256, year, synthetic or real), the package version, the
time of the ingest and ``store_sha256``, the content hash of the tables (:func:`store_hash`; the book's build
facts show it). The store is written to a temporary sibling directory and swapped in by rename, so a failed or
interrupted ingest leaves the previous store untouched; what a killed run leaves in that temporary directory is
removed by the next run (:func:`sweep_staging`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow
import pyarrow.parquet as pq

from kofukin.paths import sha256_file
from kofukin.scoring import FISCAL_YEARS, TARGET_KEYS, add_cross_grant_columns

if TYPE_CHECKING:
    import pandera.pandas as pa

TABLES: tuple[str, ...] = (
    "municipalities",
    "attributes",
    "insurers",
    "union_members",
    "item_points",
    "subtotals",
    "outcome_values",
)
MANIFEST = "manifest.json"


@cache
def schemas() -> dict[str, pa.DataFrameSchema]:
    """What :func:`write_store` checks; built on first use, so that reading the store never imports pandera."""
    import pandera.pandas as pa

    year = pa.Column(str, pa.Check.isin(FISCAL_YEARS))
    code = pa.Column(str, pa.Check.str_matches(r"^\d{6}$"))
    return {
        "attributes": pa.DataFrameSchema(
            {
                "fiscal_year": year,
                "lg_code6": code,
                "insurer_no": pa.Column(str, nullable=True),
                "population": pa.Column("int64", pa.Check.gt(0)),
                "n_insured_1go": pa.Column("int64", pa.Check.gt(0)),
                "size_class": pa.Column("int64", pa.Check.isin([1, 2, 3, 4, 5])),
                "kaso": pa.Column(bool),
            },
            unique=["fiscal_year", "lg_code6"],
            strict=False,
        ),
        "item_points": pa.DataFrameSchema(
            {
                "fiscal_year": year,
                "lg_code6": code,
                "item_id": pa.Column(str),
                "points": pa.Column("int64", pa.Check.ge(0)),
            },
            strict=False,
        ),
        "subtotals": pa.DataFrameSchema(
            {
                "fiscal_year": year,
                "lg_code6": code,
                **{k: pa.Column("int64", pa.Check.ge(0)) for k in TARGET_KEYS},
            },
            unique=["fiscal_year", "lg_code6"],
            strict=False,
        ),
    }


@dataclass
class Store:
    """The processed tables in memory. Construct with :func:`load_store`."""

    municipalities: pd.DataFrame
    attributes: pd.DataFrame
    insurers: pd.DataFrame
    union_members: pd.DataFrame
    item_points: pd.DataFrame
    subtotals: pd.DataFrame
    outcome_values: pd.DataFrame
    manifest: dict = field(default_factory=dict)

    @property
    def years(self) -> list[str]:
        return sorted(self.subtotals["fiscal_year"].unique(), key=FISCAL_YEARS.index)

    @property
    def synthetic_years(self) -> list[str]:
        return sorted(
            {
                s["fiscal_year"]
                for s in self.manifest.get("sources", [])
                if s.get("synthetic") and s.get("fiscal_year")
            },
            key=FISCAL_YEARS.index,
        )

    def panel(self) -> pd.DataFrame:
        """One row per municipality and year: names, attributes and the 26 targets (the analysis base table)."""
        p = self.subtotals.merge(self.attributes, on=["fiscal_year", "lg_code6"], how="left", validate="1:1")
        return p.merge(self.municipalities, on="lg_code6", how="left", validate="m:1")


def load_store(directory: Path) -> Store:
    """Read the store; a missing store names the command that makes it."""
    if not (directory / MANIFEST).exists():
        raise FileNotFoundError(
            f"{directory} has no processed store: run `kofukin ingest` (or `make book`) first"
        )
    tables = {name: read_table(directory / f"{name}.parquet") for name in TABLES}
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return Store(**tables, manifest=manifest)


def read_table(path: Path) -> pd.DataFrame:
    """``pd.read_parquet`` with the same result, ten times faster for the long tables.

    The package keeps strings in Python objects (see ``kofukin/__init__``), and converting Arrow's strings made
    one Python object per cell: 4.6 million for ``item_points``, a second per process that loads the store (every
    worker kernel, every ``kofukin report``). Its few distinct values are read as a dictionary instead, so each
    distinct string becomes one object that all its cells share.
    """
    strings = [f.name for f in pq.read_schema(path) if pyarrow.types.is_string(f.type)]
    frame = pq.read_table(path, read_dictionary=strings).to_pandas()
    for column in strings:
        frame[column] = frame[column].astype("str")
    return frame


def validate_tables(tables: dict[str, pd.DataFrame]) -> None:
    for name, schema in schemas().items():
        schema.validate(tables[name], lazy=True)
    sub = tables["subtotals"].set_index(["fiscal_year", "lg_code6"])
    recomputed = add_cross_grant_columns(sub[list(TARGET_KEYS)])
    assert recomputed.equals(sub[list(TARGET_KEYS)]), "cross-grant columns must equal the sums of their parts"


def write_store(tables: dict[str, pd.DataFrame], manifest: dict, directory: Path) -> None:
    """Write every table to a temporary sibling and swap it in; the old store survives any failure."""
    missing = set(TABLES) - set(tables)
    if missing:
        raise ValueError(f"store tables missing: {sorted(missing)}")
    validate_tables(tables)
    tmp = staging_dir(directory)
    try:
        for name in TABLES:
            tables[name].reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
        manifest = {**manifest, "store_sha256": store_hash(tmp)}
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True), "utf-8"
        )
        swap_directory(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def staging_dir(target: Path) -> Path:
    """An empty sibling of ``target`` to build into before :func:`swap_directory`.

    Same filesystem, so the swap is a rename; usual umask permissions, not mkdtemp's private 0700, because the
    directory becomes the published data or site. The name ``.<target>.tmp-<pid>-<random>`` carries the
    creating process's id, so that leftovers of a run killed before its swap are told apart from a concurrent
    run's live staging and removed here (:func:`sweep_staging`) — a killed site build would otherwise leave a
    whole site behind each time."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def sweep_staging(target: Path) -> list[Path]:
    """Remove the staging siblings of ``target`` whose creating process no longer exists; return them.

    Staging of a live process (a concurrent run, or this one) is left alone, and so is anything not named by
    :func:`staging_dir`."""
    own = re.compile(rf"\.{re.escape(target.name)}\.tmp-(\d+)-[a-z0-9_]+")
    removed = []
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.tmp-*")):
        m = own.fullmatch(path.name)
        if m is None or not path.is_dir() or _process_exists(int(m[1])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` names a process (ours, another user's, or a zombie not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def swap_directory(new: Path, target: Path) -> None:
    """Replace ``target`` by ``new`` with renames only, so a reader sees either the old or the new tree.

    The old tree is moved aside first and removed only after the new one is in place; an interruption between
    the two renames leaves ``target.old`` which the next call cleans up.
    """
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        if not target.exists():
            os.replace(old, target)
        else:
            shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def store_hash(directory: Path) -> str:
    """A hash of the store's content (tables, not the manifest's timestamp): the runner's cache key."""
    h = hashlib.sha256()
    for name in TABLES:
        h.update(sha256_file(directory / f"{name}.parquet").encode())
    return h.hexdigest()
