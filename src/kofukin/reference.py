"""Loaders for the versioned reference tables in ``data/reference/`` (see its README for provenance).

The municipality master and the indicator catalogue are validated with pandera schemas, so a hand edit that breaks
an invariant (a code without leading zeros, a duplicated item, a share that disagrees with its count) stops the
pipeline at load time.

A command that starts kernels validates them once itself (:func:`validate_reference`) and vouches for them to
its children (:func:`kofukin.vouch.vouch_for_children`): a kernel whose files are byte-identical to the ones vouched for skips
the schemas, and with them importing pandera — ~0.3 s of a cold ``kofukin report``'s kernel. The vouch names the
files' content (their sha256), so a file edited in between is validated again; a notebook run by hand validates
as always.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kofukin.paths import REFERENCE_DIR
from kofukin.scoring import FISCAL_YEARS, GOALS, GRANTS
from kofukin.vouch import VALIDATED_FILES, is_vouched_for

if TYPE_CHECKING:
    import pandera.pandas as pa

N_MUNICIPALITIES = 1741
N_PREFECTURES = 47


@cache
def master_schema() -> pa.DataFrameSchema:
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "lg_code6": pa.Column(str, pa.Check.str_matches(r"^\d{6}$"), unique=True),
            "lg_code5": pa.Column(str, pa.Check.str_matches(r"^\d{5}$"), unique=True),
            "pref_code": pa.Column(str, pa.Check.str_matches(r"^\d{2}$")),
            "pref_name": pa.Column(str),
            "name": pa.Column(str),
            "name_kana": pa.Column(str),
            "kind": pa.Column(str, pa.Check.isin(["shi", "machi", "mura", "ku"])),
        },
        checks=[
            pa.Check(
                lambda d: len(d) == N_MUNICIPALITIES, error=f"{N_MUNICIPALITIES} municipalities expected"
            ),
            pa.Check(
                lambda d: (d["lg_code6"].str[:5] == d["lg_code5"]).all(), error="lg_code5 is lg_code6[:5]"
            ),
            pa.Check(
                lambda d: (d["lg_code6"].str[:2] == d["pref_code"]).all(), error="pref_code is lg_code6[:2]"
            ),
        ],
        strict=False,
    )


@cache
def catalogue_schema() -> pa.DataFrameSchema:
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "item_id": pa.Column(str, unique=True),
            "fiscal_year": pa.Column(str, pa.Check.isin(FISCAL_YEARS)),
            "grant": pa.Column(str, pa.Check.isin(GRANTS)),
            "goal": pa.Column(str, pa.Check.isin(GOALS)),
            "group": pa.Column(str, pa.Check.isin(["taisei", "katsudo", "outcome"])),
            "indicator_no": pa.Column("int64", pa.Check.ge(1)),
            "max_points": pa.Column("int64", pa.Check.gt(0)),
            "n_scoring": pa.Column("int64", pa.Check.in_range(0, N_MUNICIPALITIES)),
            "share_scoring": pa.Column(float, pa.Check.in_range(0, 1)),
            "scoring_rule": pa.Column(
                str, pa.Check.isin(["additive", "choose_one_of_branches", "capped_inferred"])
            ),
            "indicator_effective_max": pa.Column("int64", pa.Check.gt(0)),
            "outcome_duplicate": pa.Column(bool),
        },
        checks=[
            pa.Check(
                lambda d: ((d["n_scoring"] / N_MUNICIPALITIES - d["share_scoring"]).abs() < 1e-9).all(),
                error="share_scoring = n_scoring / 1741",
            ),
            pa.Check(
                lambda d: ((d["goal"] == "IV") == (d["group"] == "outcome")).all(), error="goal Ⅳ is outcome"
            ),
        ],
        strict=False,
    )


def _read(name: str, directory: Path | None = None, **kw: object) -> pd.DataFrame:
    return pd.read_csv((directory or REFERENCE_DIR) / name, dtype=str, keep_default_na=False, **kw)


@cache
def load_master() -> pd.DataFrame:
    """The 1,741 municipalities (JIS X 0402), codes as zero-padded strings."""
    return _checked("municipalities.csv", _read_master())


def _read_master(directory: Path | None = None) -> pd.DataFrame:
    return _read("municipalities.csv", directory)


@cache
def load_prefectures() -> pd.DataFrame:
    df = _read("prefectures.csv")
    assert len(df) == N_PREFECTURES and df["pref_code"].is_unique, "47 unique prefectures expected"
    return df


@cache
def load_catalogue() -> pd.DataFrame:
    """Every scored item branch R6–R8, both grants (``indicators.csv``), with typed columns."""
    return _checked("indicators.csv", _read_catalogue())


def _read_catalogue(directory: Path | None = None) -> pd.DataFrame:
    df = _read("indicators.csv", directory)
    for col in (
        "indicator_no",
        "max_points",
        "n_scoring",
        "indicator_effective_max",
        "source_column",
        "fy_ad",
    ):
        df[col] = df[col].astype("int64")
    for col in ("national_mean", "national_sd", "share_scoring"):
        df[col] = df[col].astype(float)
    df["outcome_duplicate"] = df["outcome_duplicate"].map({"true": True, "false": False}).astype(bool)
    return df


# The tables with a schema: file → (reader, schema).
VALIDATED: dict[str, tuple[Callable[..., pd.DataFrame], Callable[[], pa.DataFrameSchema]]] = {
    "municipalities.csv": (_read_master, master_schema),
    "indicators.csv": (_read_catalogue, catalogue_schema),
}
assert tuple(VALIDATED) == VALIDATED_FILES, "the vouch names the files with a schema"


def validate_reference(directory: Path | None = None) -> None:
    """Validate every table with a schema now, vouched for or not: the check a command makes once for its
    kernels."""
    for name, (read, _) in VALIDATED.items():
        _validate(name, read(directory), directory)


def _checked(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame if is_vouched_for() else _validate(name, frame)


class ReferenceDataError(ValueError):
    """A reference table breaks its schema: the message names the file, then pandera's columns and rows."""


def _validate(name: str, frame: pd.DataFrame, directory: Path | None = None) -> pd.DataFrame:
    from pandera.errors import SchemaError, SchemaErrors

    try:
        return VALIDATED[name][1]().validate(frame, lazy=True)
    except (SchemaError, SchemaErrors) as e:
        raise ReferenceDataError(f"{(directory or REFERENCE_DIR) / name}: {e}") from None


@cache
def load_subtotal_catalogue() -> pd.DataFrame:
    """The 23 subtotal columns per year with their national statistics, plus the target key of each."""
    df = _read("indicator_subtotals.csv")
    for col in ("max_points", "source_column", "fy_ad"):
        df[col] = df[col].astype("int64")
    for col in ("national_mean", "national_sd"):
        df[col] = df[col].astype(float)
    df["national_median"] = pd.to_numeric(df["national_median"], errors="coerce")
    df["outcome_duplicate"] = df["outcome_duplicate"].map({"true": True, "false": False}).astype(bool)
    df["target"] = df.apply(_subtotal_target, axis=1)
    assert df.groupby("fiscal_year").size().eq(23).all(), "23 subtotal columns per year"
    return df


def _subtotal_target(row: pd.Series) -> str:
    if row["level"] == "grand_total":
        return "grand_total"
    if row["level"] == "grant_total":
        return f"{row['grant']}_total"
    if row["level"] == "goal_total":
        return f"{row['grant']}_{row['goal']}"
    return f"{row['grant']}_{row['goal']}_{row['level']}"


@cache
def load_golden_kitashiobara() -> pd.DataFrame:
    """北塩原村's real published points on every item and subtotal, R6–R8 (a test oracle)."""
    df = _read("golden_kitashiobara.csv")
    df["points"] = df["points"].astype("int64")
    df["max_points"] = df["max_points"].astype("int64")
    return df


@cache
def load_published() -> pd.DataFrame:
    """Published per-municipality and aggregate figures (long format; see data/reference/README.md)."""
    df = _read("golden_published.csv")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


@cache
def load_budgets() -> pd.DataFrame:
    df = _read("budgets.csv")
    df["amount_kyen"] = df["amount_kyen"].astype("int64")
    return df


@cache
def load_unions() -> pd.DataFrame:
    """Known 広域連合 memberships (real, with a source per row)."""
    return _read("unions.csv")


@cache
def load_crosswalk() -> pd.DataFrame:
    """Item crosswalk across years (``item_crosswalk.csv``, built by :mod:`kofukin.crosswalk`)."""
    return _read("item_crosswalk.csv")
