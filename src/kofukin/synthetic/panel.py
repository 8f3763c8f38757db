"""The synthetic default panel (合成データ): every table of R6–R8 in memory, from one seed.

:func:`generate_panel` strings the parts together — attributes (:mod:`.attributes`), 広域連合 (:mod:`.unions`),
goal Ⅰ–Ⅲ items (:mod:`.items`), goal Ⅳ values and points (:mod:`.outcomes`) — and derives what MHLW's file
shows besides the items: subtotals (with :func:`kofukin.scoring.subtotals_from_items`, so the scoring rules
live in one place), this year's rank, and the previous year's total and rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kofukin import layout, scoring
from kofukin.codes import insurer_no_from_code5
from kofukin.reference import load_catalogue, load_master
from kofukin.synthetic import outcomes, truth
from kofukin.synthetic.attributes import generate_attributes, load_anchors
from kofukin.synthetic.items import YEARS, generate_items
from kofukin.synthetic.params import DEFAULT, LatentParams
from kofukin.synthetic.rng import stream
from kofukin.synthetic.unions import generate_unions

DEFAULT_SEED = 20240401
INSURER_KIND_MEMBER = "広域連合構成市町村"
ATTRIBUTE_COLUMNS = [
    "fiscal_year",
    "lg_code6",
    "serial_no",
    "pref_code",
    "insurer_kind",
    "insurer_no",
    "insurer_name",
    "name",
    "pref_name",
    "union_name",
    "population",
    "n_insured_1go",
    "size_class",
    "kaso",
    "prev_total",
    "prev_rank",
    "rank",
]


@dataclass
class SyntheticPanel:
    """All synthetic tables (see data/README.md); every frame is sorted by year and ``lg_code6``."""

    attributes: pd.DataFrame
    item_points: pd.DataFrame
    subtotals: pd.DataFrame
    outcome_values: pd.DataFrame
    unions: pd.DataFrame
    truth: dict
    seed: int = DEFAULT_SEED
    fitted: dict = field(default_factory=dict)  # solved loadings λ, ρ and θ (for the calibration notes)


def generate_panel(seed: int = DEFAULT_SEED, params: LatentParams = DEFAULT) -> SyntheticPanel:
    """The whole panel for ``seed``; deterministic (named random streams, no global state)."""
    master = load_master().sort_values("lg_code6").reset_index(drop=True)
    base = generate_attributes(seed, master)
    unions = generate_unions(seed, base[base["fiscal_year"] == "R8"], load_anchors(master).codes)
    points, ids, lams = generate_items(seed, base, params)
    pref_effect = outcomes.prefecture_effects(seed)
    union_of = dict(zip(unions["member_lg_code6"], unions["union_insurer_no"], strict=True))
    cat = load_catalogue()
    item_frames, value_frames, rhos, ties = [], [], {}, {}
    for year in YEARS:
        frame = _outcome_frame(base, year, points[year], ids[year], cat, union_of)
        out = outcomes.generate_year(seed, year, frame, pref_effect)
        rhos[year], ties[year] = out.noise_corr, out.tie_bias
        item_frames.append(
            _long_items(
                year, master["lg_code6"], np.vstack([points[year], out.points]), ids[year] + out.item_ids, cat
            )
        )
        value_frames.append(_long_values(year, out.values))
    item_points = pd.concat(item_frames, ignore_index=True)
    subtotals = _subtotals(item_points, cat)
    attributes = _attributes(seed, base, master, unions, subtotals, params)
    return SyntheticPanel(
        attributes=attributes,
        item_points=item_points,
        subtotals=subtotals,
        outcome_values=pd.concat(value_frames, ignore_index=True),
        unions=unions,
        truth=_truth(seed, pref_effect, rhos),
        seed=seed,
        fitted={
            "lambda": {f"{y}:{k}": round(v, 4) for (y, k), v in lams.items()},
            "noise_corr": rhos,
            "tie_bias": ties,
        },
    )


def _subtotals(item_points: pd.DataFrame, cat: pd.DataFrame) -> pd.DataFrame:
    """The 26 columns via :func:`kofukin.scoring.subtotals_from_items` (the one home of the scoring rules).

    Zero-point rows change no sum, maximum or cap, so only the scoring rows are passed (half the table, twice
    as fast); municipalities are re-added with zeros in case one scored nothing at all.
    """
    wide = scoring.subtotals_from_items(item_points[item_points["points"] > 0], cat)
    full = pd.MultiIndex.from_frame(item_points[["fiscal_year", "lg_code6"]].drop_duplicates())
    return wide.reindex(full, fill_value=0).reset_index()


def _outcome_frame(
    base: pd.DataFrame,
    year: str,
    pts: np.ndarray,
    ids: list[str],
    cat: pd.DataFrame,
    union_of: dict[str, str],
) -> pd.DataFrame:
    """The regressors of the planted model for one year (``lg_code6`` order)."""
    group = cat.set_index("item_id").loc[ids, "group"].to_numpy()
    frame = base[base["fiscal_year"] == year].sort_values("lg_code6").reset_index(drop=True)
    frame["all_taisei"] = pts[group == "taisei"].sum(axis=0)
    frame["all_katsudo"] = pts[group == "katsudo"].sum(axis=0)
    frame["union"] = frame["lg_code6"].map(union_of)
    return frame


def _long_items(
    year: str, codes: pd.Series, pts: np.ndarray, ids: list[str], cat: pd.DataFrame
) -> pd.DataFrame:
    """``fiscal_year, lg_code6, item_id, points``: municipality by municipality, items in the file's order."""
    order = cat[cat["fiscal_year"] == year].sort_values("source_column")["item_id"].tolist()
    row_of = {item: k for k, item in enumerate(ids)}
    pts = pts[[row_of[item] for item in order]]
    return pd.DataFrame(
        {
            "fiscal_year": year,
            "lg_code6": np.repeat(codes.to_numpy(), len(order)),
            "item_id": np.tile(np.array(order, dtype=object), len(codes)),
            "points": pts.T.ravel(),
        }
    )


def _long_values(year: str, values: pd.DataFrame) -> pd.DataFrame:
    long = values.rename_axis("lg_code6").reset_index().melt(id_vars="lg_code6", var_name="measure")
    long.insert(0, "fiscal_year", year)
    long["measure"] = pd.Categorical(long["measure"], categories=list(truth.MEASURES), ordered=True)
    long = long.sort_values(["lg_code6", "measure"]).reset_index(drop=True)
    long["measure"] = long["measure"].astype(str)
    return long[["fiscal_year", "lg_code6", "measure", "value"]]


def _attributes(
    seed: int,
    base: pd.DataFrame,
    master: pd.DataFrame,
    unions: pd.DataFrame,
    subtotals: pd.DataFrame,
    params: LatentParams,
) -> pd.DataFrame:
    """Identity, insurer and size columns plus this year's rank and the previous year's total and rank."""
    df = base.merge(master[["lg_code6", "lg_code5", "pref_code", "pref_name", "name"]], on="lg_code6")
    union = unions.set_index("member_lg_code6")
    member = df["lg_code6"].isin(union.index)
    df["union_name"] = df["lg_code6"].map(union["union_name"]).astype(object)
    df.loc[~member, "union_name"] = None
    df["insurer_kind"] = np.where(member, INSURER_KIND_MEMBER, layout.INSURER_KIND_SINGLE)
    df["insurer_no"] = df["lg_code5"].map(insurer_no_from_code5)
    df["insurer_name"] = np.where(member, df["union_name"], df["name"])
    df["serial_no"] = df["lg_code6"].map(serial_numbers(master, unions)).astype("int64")
    df = df.merge(
        subtotals[["fiscal_year", "lg_code6", "grand_total"]].rename(columns={"grand_total": "total"}),
        on=["fiscal_year", "lg_code6"],
        validate="1:1",
    )
    df["rank"] = df.groupby("fiscal_year")["total"].transform(scoring.competition_rank)
    df = df.merge(_previous_totals(seed, df, params), on=["fiscal_year", "lg_code6"], validate="1:1")
    df["prev_rank"] = df.groupby("fiscal_year")["prev_total"].transform(scoring.competition_rank)
    df = df.sort_values(["fiscal_year", "lg_code6"], key=_year_key).reset_index(drop=True)
    return df[ATTRIBUTE_COLUMNS]


def _year_key(s: pd.Series) -> pd.Series:
    return s.map(YEARS.index) if s.name == "fiscal_year" else s


def _previous_totals(seed: int, df: pd.DataFrame, params: LatentParams) -> pd.DataFrame:
    """Long ``lg_code6, fiscal_year, prev_total``: R7 gets R6's total, R8 R7's, R6 a synthetic R5 (R6 + shift + noise)."""
    total = df.pivot(index="lg_code6", columns="fiscal_year", values="total").sort_index()
    r5 = total["R6"] + params.r5_shift + stream(seed, "r5").normal(0, params.r5_noise_sd, len(total))
    prev = pd.DataFrame({"R6": r5.round().clip(0, 800), "R7": total["R6"], "R8": total["R7"]})
    long = prev.astype("int64").rename_axis("lg_code6").reset_index()
    return long.melt(id_vars="lg_code6", var_name="fiscal_year", value_name="prev_total")


def serial_numbers(master: pd.DataFrame, unions: pd.DataFrame) -> dict[str, int]:
    """通し番号 of every file row (municipalities by lg_code6, union rows by insurer number), in file order.

    File order is prefecture by prefecture, each in code order; a union's number (pref + 8NN) sorts after the
    prefecture's municipalities. Keys are lg_code6 for municipalities and the insurer number for unions.
    """
    rows = [(c[:5], c) for c in master["lg_code6"]]
    rows += [(u[:5], u) for u in unions["union_insurer_no"].unique()]
    return {key: i + 1 for i, (_, key) in enumerate(sorted(rows))}


def _truth(seed: int, pref_effect: dict[str, float], rhos: dict[str, dict[int, float]]) -> dict:
    """The planted relationship with everything drawn or solved for this seed (written as JSON)."""
    return {
        **truth.PLANTED,
        "measure_intercept": dict(truth.MEASURE_INTERCEPT),
        "pref_effect": {k: round(v, 6) for k, v in pref_effect.items()},
        "noise_corr_branches": {y: {str(k): v for k, v in r.items()} for y, r in rhos.items()},
        "seed": seed,
    }
