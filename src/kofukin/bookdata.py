"""Book-wide data for the report notebooks, computed once per kernel and reused across reports.

A warm kernel runs hundreds of reports in a row (see :mod:`kofukin.runner`); everything that does not depend on
the entity — the panel, the catalogue, item points split by municipality and year, national summaries, grant
estimates, the outcome regressions and shrinkage — is built here once and cached against the store's content
hash, so a new store (a rebuilt book) is picked up and a report never sees stale numbers. The most expensive of
them are read from the store's persisted derived tables (:mod:`kofukin.derived`) when those are current.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import pandas as pd

from kofukin import outcomes, summary
from kofukin.bycode import RowsByCode, rows_where
from kofukin.derived import DerivedTables, open_derived
from kofukin.gains import GainsByCode, GainsLosses, gains_losses, gains_tables
from kofukin.grants import basic_allocation_estimate
from kofukin.memo import freeze
from kofukin.paths import project_paths
from kofukin.profile import items_achieved_table
from kofukin.reach import ReachByCode, ReachTables, WithinReach, within_reach, within_reach_every
from kofukin.reference import load_budgets, load_catalogue, load_crosswalk
from kofukin.scoring import FISCAL_YEARS, GRANTS, indicator_points
from kofukin.store import MANIFEST, Store, load_store
from kofukin.whatif import grant_changes, what_if_rank

T = TypeVar("T")
V = TypeVar("V")

# The vectorised pass over every municipality costs about what 25 single-municipality calls cost (gains: 3.7 s
# against ~0.15 s each), so a kernel switches to it after that many reports and never loses by it. When the
# pass was persisted (kofukin.derived), reading it costs about one call: a kernel that runs a second report
# will run many, so it reads it then.
BATCH_AFTER = 25
BATCH_AFTER_DERIVED = 1
# A persisted table this small (items achieved, the grant changes of the items within reach) is read in a few
# milliseconds, less than one municipality's own computation (~50 ms): even a single report reads it.
SMALL_DERIVED_BYTES = 4_000_000


class _PerYear(dict[str, V]):
    """A dict of per-year tables computed on first access."""

    def __init__(self, compute: Callable[[str], V]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, year: str) -> V:
        self[year] = value = self._compute(year)
        return value


@dataclass
class BookData:
    """The processed store plus the derived tables every report needs."""

    store: Store
    key: str
    derived: DerivedTables | None = None
    _national: dict[str, summary.NationalSummary] = field(default_factory=dict, repr=False)
    _batches: dict[str, Mapping] = field(default_factory=dict, repr=False)
    _requests: dict[str, int] = field(default_factory=dict, repr=False)
    _seen_codes: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Frozen tables are cache keys for the national-level helpers (kofukin.memo): nothing changes them.
        freeze(self.store.item_points)
        freeze(self.catalogue)
        freeze(self.crosswalk)

    @cached_property
    def panel(self) -> pd.DataFrame:
        return freeze(self.store.panel())

    @property
    def catalogue(self) -> pd.DataFrame:
        return load_catalogue()

    @property
    def crosswalk(self) -> pd.DataFrame:
        return load_crosswalk()

    @property
    def years(self) -> list[str]:
        return self.store.years

    @property
    def synthetic_years(self) -> list[str]:
        return self.store.synthetic_years

    def previous_year(self, year: str) -> str | None:
        i = FISCAL_YEARS.index(year)
        prev = FISCAL_YEARS[i - 1] if i > 0 else None
        return prev if prev in self.years else None

    @cached_property
    def _items_by_code(self) -> dict[str, pd.DataFrame]:
        return dict(tuple(self.store.item_points.groupby("lg_code6", sort=False)))

    @cached_property
    def _items_by_year(self) -> dict[str, pd.DataFrame]:
        return dict(tuple(self.store.item_points.groupby("fiscal_year", sort=False)))

    def items_of(self, lg_code6: str) -> pd.DataFrame:
        """One municipality's item points, every year (empty if it has none).

        Splitting the national table by code costs four single-code scans; until a kernel has asked for more
        than :data:`BATCH_AFTER` municipalities it scans (and keeps the last answer), then splits once."""
        if "_items_by_code" not in self.__dict__ and len(self._seen_codes) < BATCH_AFTER:
            if lg_code6 not in self._seen_codes:
                self._seen_codes[lg_code6] = rows_where(self.store.item_points, "lg_code6", lg_code6)
            return self._seen_codes[lg_code6]
        self._seen_codes.clear()
        empty = self.store.item_points.iloc[0:0]
        return self._items_by_code.get(lg_code6, empty)

    def _derived_or(self, name: str, compute: Callable[[], T]) -> T:
        """The persisted table ``name`` (:mod:`kofukin.derived`) when the store has a current one, else
        ``compute()``."""
        persisted = self.derived.get(name) if self.derived is not None else None
        return persisted if persisted is not None else compute()

    def _batched(
        self, key: str, code: str, single: Callable[[], T], every: Callable[[], Mapping[str, T]]
    ) -> T:
        """``single()`` for the first :data:`BATCH_AFTER` requests of ``key``; from then on ``every()`` once
        (all municipalities in one vectorised pass) and its entry for ``code``. A warm kernel runs hundreds of
        reports, a single ``kofukin report`` one: neither pays for what it does not use."""
        batch = self._batches.get(key)
        if batch is None:
            self._requests[key] = self._requests.get(key, 0) + 1
            persisted = self.derived is not None and self.derived.has(key)
            small = persisted and self.derived.nbytes(key) <= SMALL_DERIVED_BYTES
            if not small and self._requests[key] <= (BATCH_AFTER_DERIVED if persisted else BATCH_AFTER):
                return single()
            batch = self._batches[key] = every()
        return batch[code] if code in batch else single()  # single() explains a municipality it lacks

    def compute_gains_tables(self, from_year: str, to_year: str) -> tuple[pd.DataFrame, ...]:
        """The national gains tables of a pair of years (:func:`kofukin.gains.gains_tables`)."""
        return gains_tables(
            self.store.item_points, self.catalogue, self.crosswalk, from_year, to_year, self.panel
        )

    def compute_achieved(self, year: str) -> pd.DataFrame:
        """Items achieved of every municipality in ``year`` (:func:`kofukin.profile.items_achieved_table`)."""
        return items_achieved_table(self._items_by_year[year], self.catalogue, year)

    def gains_of(self, lg_code6: str, from_year: str, to_year: str) -> GainsLosses:
        """The municipality's gains and losses (:func:`kofukin.gains.gains_losses`)."""
        key = f"gains-{from_year}-{to_year}"
        return self._batched(
            key,
            lg_code6,
            lambda: gains_losses(
                self.items_of(lg_code6),
                self.catalogue,
                self.crosswalk,
                lg_code6,
                from_year,
                to_year,
                subtotals=self.panel,
            ),
            lambda: GainsByCode(
                *self._derived_or(key, lambda: self.compute_gains_tables(from_year, to_year)),
                from_year,
                to_year,
            ),
        )

    def achieved_of(self, lg_code6: str, year: str) -> pd.DataFrame:
        """Items achieved 「n of N」 of the municipality (:func:`kofukin.profile.items_achieved_table`)."""
        key = f"achieved-{year}"

        def single() -> pd.DataFrame:
            mine = self.items_of(lg_code6)
            return items_achieved_table(mine[mine["fiscal_year"] == year], self.catalogue, year, [lg_code6])

        def every() -> RowsByCode:
            return RowsByCode(self._derived_or(key, lambda: self.compute_achieved(year)))

        return self._batched(key, lg_code6, single, every)

    def compute_reach(self, year: str) -> ReachTables:
        """Items within reach of every municipality (:func:`kofukin.reach.within_reach_every`)."""
        return within_reach_every(self.panel, self.store.item_points, self.catalogue, year, self.crosswalk)

    def compute_reach_changes(self, year: str, reach: ReachTables) -> pd.DataFrame:
        """The grant totals' changes of every municipality gaining all its items within reach
        (:func:`kofukin.whatif.grant_changes`)."""
        codes = list(reach.n_comparison)
        dense = summary.dense_item_points(self._items_by_year[year], self.catalogue, year, codes)
        return grant_changes(dense, reach.items[["lg_code6", "item_id"]], self.catalogue)

    def reach_of(self, lg_code6: str, year: str) -> WithinReach:
        """The municipality's items within reach (:func:`kofukin.reach.within_reach`, 同条件 comparison)."""
        key = f"reach-{year}"
        return self._batched(
            key,
            lg_code6,
            lambda: within_reach(
                self.panel,
                self.store.item_points,
                self.catalogue,
                lg_code6,
                year,
                crosswalk=self.crosswalk,
                own_items=self.items_of(lg_code6),
            ),
            lambda: ReachByCode(self._reach_tables[year]),
        )

    @cached_property
    def _reach_tables(self) -> _PerYear[ReachTables]:
        """Every municipality's items within reach, by year: persisted, or computed once for both uses."""
        return _PerYear(lambda year: self._derived_or(f"reach-{year}", lambda: self.compute_reach(year)))

    def reach_changes_of(self, reach: WithinReach) -> dict[str, int]:
        """``{"suishin": x, "shien": y}``: what gaining every item of ``reach`` (:meth:`reach_of`) adds to the
        grant totals, through the scoring rules (:func:`kofukin.whatif.what_if_rank` with ``items``)."""
        lg_code6, year = reach.lg_code6, reach.year
        key = f"reach-changes-{year}"

        def single() -> dict[str, int]:
            if reach.items.empty:
                return {grant: 0 for grant in GRANTS}
            changes = what_if_rank(
                self.panel,
                year,
                lg_code6,
                items=list(reach.items["item_id"]),
                item_points=self.items_of(lg_code6),
                catalogue=self.catalogue,
            ).target_changes
            return {grant: int(changes[f"{grant}_total"]) for grant in GRANTS}

        def every() -> dict[str, dict[str, int]]:
            table = self._derived_or(key, lambda: self.compute_reach_changes(year, self._reach_tables[year]))
            return {
                row["lg_code6"]: {grant: int(row[f"{grant}_total"]) for grant in GRANTS}
                for row in table.to_dict("records")
            }

        return self._batched(key, lg_code6, single, every)

    def national(self, year: str) -> summary.NationalSummary:
        if year not in self._national:
            self._national[year] = summary.national_summary(self.panel, year, self.previous_year(year))
        return self._national[year]

    @cached_property
    def grant_estimates(self) -> pd.DataFrame:
        """Basic-frame grant estimates (概算) for every municipality and year."""
        budgets = load_budgets()
        return pd.concat(
            [basic_allocation_estimate(self.panel, y, budgets) for y in self.years], ignore_index=True
        )

    @cached_property
    def outcome_frame(self) -> pd.DataFrame:
        """Insurer-level analysis frame (広域連合 members pooled) for the outcome regressions."""
        return self._derived_or("outcome_frame", self.compute_outcome_frame)

    def compute_outcome_frame(self) -> pd.DataFrame:
        items = self.store.item_points
        goal4 = items[items["item_id"].str.contains("-IV-outcome-", regex=False)]
        ind = indicator_points(goal4, self.catalogue)
        ind = ind[ind["grant"] == "suishin"]
        values = self.store.outcome_values if len(self.store.outcome_values) else None
        return outcomes.analysis_frame(self.panel, values, ind)

    @cached_property
    def shrunken(self) -> _PerYear[pd.DataFrame]:
        """Empirical-Bayes estimates of the goal Ⅳ score per insurer unit, by year (``.attrs`` holds τ², κ, α).

        Fitted on first use of a year: a single report needs one year's fit, not three."""
        return _PerYear(self._shrunken_of)

    def _shrunken_of(self, year: str) -> pd.DataFrame:
        return self._derived_or(f"shrunken-{year}", lambda: self.compute_shrunken(self.outcome_frame, year))

    @staticmethod
    def compute_shrunken(frame: pd.DataFrame, year: str) -> pd.DataFrame:
        # Imported here: it needs scipy (patsy too), ~0.5 s that a report reading the persisted fit never uses.
        from kofukin import shrinkage

        return shrinkage.shrink_outcomes(frame, year)

    def unit_of(self, lg_code6: str, year: str) -> str:
        """The outcome unit of a municipality: itself, or its 広域連合 (members share one outcome)."""
        row = self.panel[(self.panel["fiscal_year"] == year) & (self.panel["lg_code6"] == lg_code6)]
        union = row["union_name"].iloc[0] if len(row) else None
        if isinstance(union, str) and union:
            units = self.outcome_frame
            hit = units[(units["fiscal_year"] == year) & (units["union_name"] == union)]
            if len(hit):
                return str(hit["unit_id"].iloc[0])
        return lg_code6


_CACHE: dict[Path, BookData] = {}


def book_data(processed: Path | None = None) -> BookData:
    """The book data of the active project (``KOFUKIN_ROOT``), rebuilt when the store's content changes."""
    directory = (processed or project_paths().processed).resolve()
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    key = json.dumps([s.get("sha256") for s in manifest.get("sources", [])] + [manifest.get("created_at")])
    cached = _CACHE.get(directory)
    if cached is None or cached.key != key:
        cached = BookData(load_store(directory), key, derived=open_derived(directory))
        _CACHE[directory] = cached
    return cached


def regression_coefficients(data: BookData) -> pd.DataFrame:
    """The cross-section coefficients of every year × outcome (goal Ⅳ and its five indicators), for the CSV
    download ``regression_coefficients.csv``."""
    return outcomes.tidy(outcomes.fit_grid(data.outcome_frame, data.years))
