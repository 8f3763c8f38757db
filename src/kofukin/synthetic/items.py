"""Item points of goals Ⅰ–Ⅲ (体制・取組 and 活動 indicators) from a persistent latent capacity.

The model, per fiscal year *t* and municipality *i* (every latent standard normal):

* capacity ``C[t,i] = size_slope·z(ln min(第1号, size_cap)) + kaso_shift·過疎 + pref_sd·u[pref] + U[t,i]``,
  standardised, with ``U`` a unit-variance AR(1) over the years (φ = ``capacity_phi``): large, non-過疎
  municipalities score higher (up to 80,000 elderly) and a municipality's standing persists from year to year;
* a factor per grant × goal × group ``G = w·C + √(1−w²)·H`` (``H`` AR(1)), so items of one group hang together
  more than items of different groups;
* a latent per item ``y = λ·G + √(1−λ²)·E`` (``E`` AR(1), keyed by the item's year-free id, so an item keeps
  its own persistence when the catalogue renumbers around it).

Points are all-or-nothing. Each item goes to exactly ``n_scoring`` municipalities (the published count), so
every share — and hence every published mean — is hit exactly:

* 体制・取組 items: the ``n_scoring`` highest ``y``;
* 活動 items come in nested rank bands (①..④ or ア..エ with shares ≈ 0.7/0.5/0.3/0.1 or similar decreasing
  runs): one latent per band sequence and the top ``n₁ ⊇ n₂ ⊇ …`` of it, so whoever has ② also has ①;
* 支援 Ⅰ(ⅱ) indicator 9 is capped at 4 points: its band sequences are handed out one after the other (the
  one with most points first) to the highest latents among municipalities still under the cap, so the
  recorded items never add up to more than 4.

λ is solved per year and group by bisection so that the group subtotal's standard deviation equals the
published one; the published means then follow from the shares, and goal/grant/grand totals from the factor
structure (their fit is reported by the calibration table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kofukin.reference import load_catalogue, load_subtotal_catalogue
from kofukin.synthetic.params import DEFAULT, LatentParams
from kofukin.synthetic.rng import ar1, stream

YEARS: tuple[str, ...] = ("R6", "R7", "R8")
LAMBDA_STEPS = 22


@dataclass(frozen=True)
class Unit:
    """Items generated together: one item (``single``), a nested band sequence, or a capped indicator."""

    kind: str  # single / nested / capped
    key: str  # year-free key of the latent
    rows: tuple[int, ...]  # positions in the group's item list (band order for nested)
    counts: tuple[int, ...]
    parts: tuple[Unit, ...] = ()  # the band sequences of a capped indicator
    cap: int = 0


@dataclass
class GroupPlan:
    """One year's grant × goal × group: its items, how they are generated, and the published SD."""

    fiscal_year: str
    grant: str
    goal: str
    group: str
    item_ids: list[str]
    points: np.ndarray
    units: list[Unit]
    target_sd: float
    lam: float = field(default=np.nan)

    @property
    def key(self) -> str:
        return f"{self.grant}-{self.goal}-{self.group}"


def plan_groups(fiscal_year: str) -> list[GroupPlan]:
    """The 12 taisei/katsudo groups of a year, with their generation units."""
    cat = load_catalogue()
    cat = cat[(cat["fiscal_year"] == fiscal_year) & (cat["group"] != "outcome")].reset_index(drop=True)
    subs = load_subtotal_catalogue()
    sd = subs[subs["fiscal_year"] == fiscal_year].set_index("target")["national_sd"]
    plans = []
    for (grant, goal, group), g in cat.groupby(["grant", "goal", "group"], sort=False):
        g = g.reset_index(drop=True)
        units = _taisei_units(g) if group == "taisei" else _katsudo_units(g)
        plans.append(
            GroupPlan(
                fiscal_year,
                grant,
                goal,
                group,
                g["item_id"].tolist(),
                g["max_points"].to_numpy(),
                units,
                float(sd[f"{grant}_{goal}_{group}"]),
            )
        )
    return plans


def _year_free(item_id: str) -> str:
    return item_id.split("-", 1)[1]


def _taisei_units(g: pd.DataFrame) -> list[Unit]:
    return [
        Unit("single", _year_free(r.item_id), (i,), (int(r.n_scoring),)) for i, r in enumerate(g.itertuples())
    ]


def _katsudo_units(g: pd.DataFrame) -> list[Unit]:
    """Band sequences per indicator: by branch when the indicator has sub-branches, else across branches."""
    units = []
    for ind, items in g.groupby("indicator_no", sort=False):
        by_branch = (items["sub_branch"] != "").any()
        seqs = [s for _, s in items.groupby("branch", sort=False)] if by_branch else [items]
        parts = [
            _nested(s, f"{g['grant'].iloc[0]}-{g['goal'].iloc[0]}-katsudo-{ind}-{s['branch'].iloc[0]}")
            for s in seqs
        ]
        if items["scoring_rule"].iloc[0] == "capped_inferred":
            cap = int(items["indicator_effective_max"].iloc[0])
            units.append(Unit("capped", f"cap-{ind}", (), (), tuple(parts), cap))
        else:
            units += parts
    return units


def _nested(seq: pd.DataFrame, key: str) -> Unit:
    counts = tuple(int(n) for n in seq["n_scoring"])
    if list(counts) != sorted(counts, reverse=True):
        raise ValueError(f"band sequence {key} is not nested: {counts}")
    return Unit("nested", key, tuple(int(i) for i in seq.index), counts)


class LatentDraws:
    """Lazily drawn AR(1) latents (all three years at once), keyed by name, for one seed."""

    def __init__(self, seed: int, n: int, params: LatentParams) -> None:
        self.seed, self.n, self.params = seed, n, params
        self._cache: dict[str, np.ndarray] = {}

    def get(self, kind: str, key: str, phi: float) -> np.ndarray:
        name = f"{kind}:{key}"
        if name not in self._cache:
            self._cache[name] = ar1(stream(self.seed, kind, key), len(YEARS), self.n, phi)
        return self._cache[name]


def capacity(seed: int, attributes: pd.DataFrame, params: LatentParams = DEFAULT) -> np.ndarray:
    """Standardised capacity ``C[t, i]`` (years × municipalities, in ``lg_code6`` order)."""
    out = []
    pref = stream(seed, "capacity", "pref").standard_normal(48)
    own = ar1(
        stream(seed, "capacity", "own"), len(YEARS), attributes["lg_code6"].nunique(), params.capacity_phi
    )
    for t, year in enumerate(YEARS):
        a = attributes[attributes["fiscal_year"] == year].sort_values("lg_code6")
        z = np.log(np.minimum(a["n_insured_1go"].to_numpy(float), params.size_cap))
        z = (z - z.mean()) / z.std()
        c = (
            params.size_slope * z
            + params.kaso_shift * a["kaso"].to_numpy(float)
            + params.pref_sd * pref[a["lg_code6"].str[:2].astype(int).to_numpy()]
            + own[t]
        )
        out.append((c - c.mean()) / c.std())
    return np.vstack(out)


def group_points(plan: GroupPlan, factor: np.ndarray, draws: LatentDraws, t: int, lam: float) -> np.ndarray:
    """Points matrix (items × municipalities) of one group for loading ``lam``."""
    n = factor.shape[0]
    out = np.zeros((len(plan.item_ids), n), dtype=np.int64)
    phi = draws.params.item_phi
    for unit in plan.units:
        parts = unit.parts if unit.kind == "capped" else (unit,)
        latents = [
            lam * factor + np.sqrt(1 - lam**2) * draws.get("item", f"{plan.key}:{p.key}", phi)[t]
            for p in parts
        ]
        if unit.kind == "single":
            out[unit.rows[0], _top(latents[0], unit.counts[0])] = plan.points[unit.rows[0]]
        elif unit.kind == "nested":
            _fill_nested(out, unit, latents[0], plan.points)
        else:
            _fill_capped(out, unit, latents, plan.points)
    return out


def _top(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 0:
        return np.array([], dtype=np.int64)
    if k >= len(y):
        return np.arange(len(y))
    return np.argpartition(-y, k - 1)[:k]


def _fill_nested(out: np.ndarray, unit: Unit, y: np.ndarray, points: np.ndarray) -> None:
    order = np.argsort(-y, kind="stable")
    for row, k in zip(unit.rows, unit.counts, strict=True):
        out[row, order[:k]] = points[row]


def _fill_capped(out: np.ndarray, unit: Unit, latents: list[np.ndarray], points: np.ndarray) -> None:
    """Band sequences one at a time, most points first, to the best municipalities still under the cap.

    Within a sequence the bands are nested as elsewhere; a municipality whose indicator total would pass the
    cap is skipped and the band goes to the next in line, so the published counts are kept wherever the
    remaining municipalities allow (the calibration table shows any shortfall).
    """
    total = np.zeros(out.shape[1], dtype=np.int64)
    order = sorted(range(len(unit.parts)), key=lambda j: -sum(unit.parts[j].counts))
    for j in order:
        part, y = unit.parts[j], latents[j]
        for level, (row, k) in enumerate(zip(part.rows, part.counts, strict=True)):
            ok = total + points[row] <= unit.cap
            if level:
                ok &= out[part.rows[level - 1]] > 0
            chosen = _top(np.where(ok, y, -np.inf), k)
            chosen = chosen[ok[chosen]]
            out[row, chosen] = points[row]
            total[chosen] += points[row]


def solve_lambda(plan: GroupPlan, factor: np.ndarray, draws: LatentDraws, t: int) -> float:
    """The loading whose group-subtotal SD equals the published one (bisection; SD rises with λ)."""
    lo, hi = 0.0, 0.995
    for _ in range(LAMBDA_STEPS):
        mid = (lo + hi) / 2
        sd = group_points(plan, factor, draws, t, mid).sum(axis=0).std()
        lo, hi = (mid, hi) if sd < plan.target_sd else (lo, mid)
    return (lo + hi) / 2


def generate_items(
    seed: int, attributes: pd.DataFrame, params: LatentParams = DEFAULT
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[tuple[str, str], float]]:
    """Goal Ⅰ–Ⅲ points for every year.

    Returns ``points[year]`` (items × municipalities, municipalities in ``lg_code6`` order), ``item_ids[year]``
    (row labels) and the solved loadings ``lam[(year, group key)]``.
    """
    n = attributes["lg_code6"].nunique()
    cap = capacity(seed, attributes, params)
    draws = LatentDraws(seed, n, params)
    w = params.general_weight
    points, ids, lams = {}, {}, {}
    for t, year in enumerate(YEARS):
        blocks, labels = [], []
        for plan in plan_groups(year):
            h = draws.get("group", plan.key, params.group_phi)[t]
            factor = w * cap[t] + np.sqrt(1 - w**2) * h
            lam = solve_lambda(plan, factor, draws, t)
            lams[(year, plan.key)] = lam
            blocks.append(group_points(plan, factor, draws, t, lam))
            labels += plan.item_ids
        points[year], ids[year] = np.vstack(blocks), labels
    return points, ids, lams
