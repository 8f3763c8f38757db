"""Goal Ⅳ: the planted outcome values (:mod:`kofukin.synthetic.truth`) and their points by national rank band.

Values follow the truth module exactly. Points are then derived as MHLW does: per measure, rank the 1,741
municipalities (higher value = better) and give ① to the top 70 %, ② top 50 %, ③ top 30 %, ④ top 10 %,
5 points each, nested.

* Indicators 2 and 4 have one measure; their items ア..エ are the bands ①..④, with the catalogue's counts.
* Indicators 1, 3 and 5 (択一) have two measures ア and イ, each banded at ⌊q·1,741⌋. Only the branch with more
  points is recorded; the other branch is all 0.
* How often both branches land in the same band depends on how closely ア and イ move together. The published
  shares pin that down, so the noise correlation ρ between ア and イ of one indicator is solved per year and
  indicator (bisection on the indicator's mean points); the marginal noise of every measure stays N(0, σᵢ²).
* When both branches earn the same points, the better-ranked measure wins, with a bias θ towards ア (θ > 0) or
  イ (θ < 0): ア wins if pct_ア − pct_イ + θ > 0. θ is chosen per year and indicator on a grid to keep every item's
  share closest to the catalogue (MHLW's tie rule is not published).
* Members of a 広域連合 share one value (the 第1号-weighted mean of their own), so they tie in every ranking
  and get the same points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from kofukin.layout import RANK_BANDS
from kofukin.reference import load_catalogue
from kofukin.synthetic import truth
from kofukin.synthetic.rng import stream

CHOOSE_ONE = (1, 3, 5)
SINGLE = (2, 4)
TIE_GRID = np.round(np.linspace(-0.2, 0.2, 161), 4)  # percentile gaps of tied units are small
RHO_STEPS = 16
RHO_MAX = 0.98
RHO_SEARCH = np.round(np.linspace(-0.15, 0.15, 11), 3)


@dataclass
class YearOutcomes:
    """One year's goal Ⅳ: values (wide, one column per measure), item points, calibrated ρ and θ."""

    values: pd.DataFrame
    item_ids: list[str]  # both grants' goal Ⅳ items (the 支援 copy repeats the 推進 one)
    points: np.ndarray  # items × municipalities
    noise_corr: dict[int, float]
    tie_bias: dict[int, float]


def prefecture_effects(seed: int) -> dict[str, float]:
    """u[prefecture] ~ N(0, pref_sd²), fixed per seed (one draw for all years)."""
    u = stream(seed, "outcome", "pref").normal(0.0, truth.PLANTED["pref_sd"], 47)
    return {f"{k + 1:02d}": float(v) for k, v in enumerate(u)}


def noise_sd(n_insured_1go: np.ndarray) -> np.ndarray:
    p = truth.PLANTED
    return np.minimum(p["noise_sd_at_10k"] * np.sqrt(10_000 / n_insured_1go), p["noise_sd_cap"])


def systematic_part(frame: pd.DataFrame, pref_effect: dict[str, float]) -> np.ndarray:
    """Everything of the planted value except intercept and noise (per municipality, before union sharing)."""
    p = truth.PLANTED
    return (
        p["beta_taisei"] * frame["all_taisei"].to_numpy(float)
        + p["beta_katsudo"] * frame["all_katsudo"].to_numpy(float)
        + p["beta_log_population"] * np.log(frame["population"].to_numpy(float))
        + p["beta_kaso"] * frame["kaso"].to_numpy(float)
        + frame["lg_code6"].str[:2].map(pref_effect).to_numpy(float)
    )


class UnionMean:
    """Replaces members' values by their union's 第1号-weighted mean (fast, reused for every trial ρ)."""

    def __init__(self, union: pd.Series, weight: np.ndarray) -> None:
        self.members = np.flatnonzero(union.notna().to_numpy())
        codes, self.group = np.unique(union.iloc[self.members].to_numpy(), return_inverse=True)
        self.w = weight[self.members]
        self.wsum = np.bincount(self.group, weights=self.w, minlength=len(codes))

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if not len(self.members):
            return v
        out = v.copy()
        means = (
            np.bincount(self.group, weights=self.w * v[self.members], minlength=len(self.wsum)) / self.wsum
        )
        out[self.members] = means[self.group]
        return out


def generate_year(seed: int, year: str, frame: pd.DataFrame, pref_effect: dict[str, float]) -> YearOutcomes:
    """Goal Ⅳ for one year.

    ``frame`` has one row per municipality in ``lg_code6`` order: ``lg_code6, all_taisei, all_katsudo,
    population, kaso, n_insured_1go, union`` (the union's insurer number, or None).
    """
    n = len(frame)
    base = systematic_part(frame, pref_effect)
    sd = noise_sd(frame["n_insured_1go"].to_numpy(float))
    share = UnionMean(frame["union"], frame["n_insured_1go"].to_numpy(float))
    cat = load_catalogue()
    cat = cat[(cat["fiscal_year"] == year) & (cat["goal"] == "IV") & (cat["grant"] == "suishin")]

    def noise(*names: str) -> np.ndarray:
        return stream(seed, "outcome", "noise", year, *names).standard_normal(n)

    values: dict[str, np.ndarray] = {}
    for ind in SINGLE:
        values[str(ind)] = share(truth.MEASURE_INTERCEPT[str(ind)] + base + sd * noise(str(ind)))
    std_counts = tuple(int(np.floor(q * n)) for q in RANK_BANDS)
    rhos = {}
    for ind in CHOOSE_ONE:
        items = cat[cat["indicator_no"] == ind]
        target = float(items["share_scoring"].sum())  # Σ_k P(max band ≥ k)
        shared, own_a, own_i = noise(str(ind)), noise(f"{ind}ア"), noise(f"{ind}イ")

        def pair(rho: float, ind: int = ind, shared=shared, own_a=own_a, own_i=own_i) -> tuple:
            ea = np.sqrt(rho) * shared + np.sqrt(1 - rho) * own_a
            ei = np.sqrt(rho) * shared + np.sqrt(1 - rho) * own_i
            return (
                share(truth.MEASURE_INTERCEPT[f"{ind}ア"] + base + sd * ea),
                share(truth.MEASURE_INTERCEPT[f"{ind}イ"] + base + sd * ei),
            )

        rho = _best_rho(pair, std_counts, _solve_rho(pair, std_counts, target), items)
        rhos[ind] = rho
        values[f"{ind}ア"], values[f"{ind}イ"] = pair(rho)
    wide = pd.DataFrame({m: values[m] for m in truth.MEASURES}, index=frame["lg_code6"].to_numpy())
    ids, points, ties = outcome_points(wide, year)
    return YearOutcomes(wide, ids, points, rhos, ties)


def _solve_rho(pair, counts: tuple[int, ...], target: float) -> float:
    """ρ whose Σ_k P(max(band_ア, band_イ) ≥ k) equals the catalogue's (it falls as ρ rises)."""
    lo, hi = 0.0, RHO_MAX
    for _ in range(RHO_STEPS):
        mid = (lo + hi) / 2
        va, vi = pair(mid)
        achieved = np.maximum(bands(va, counts), bands(vi, counts)).mean()
        lo, hi = (mid, hi) if achieved > target else (lo, mid)
    return round((lo + hi) / 2, 4)


def _best_rho(pair, counts: tuple[int, ...], start: float, items: pd.DataFrame) -> float:
    """Around the bisection's ρ, the one whose best tie bias leaves the smallest largest item error.

    One ρ cannot match all four band levels at once (the published shares show ア and イ moving together
    more in the lower bands than in the top one), so the final choice trades the levels off item by item.
    """
    best, best_err = start, np.inf
    for rho in sorted(np.clip(start + RHO_SEARCH, 0.0, RHO_MAX), key=lambda r: abs(r - start)):
        va, vi = pair(float(rho))
        a, b = bands(va, counts), bands(vi, counts)
        _, err = _fit_tie_bias(a, b, _percentile(va) - _percentile(vi), items)
        if err < best_err - 1e-12:
            best, best_err = round(float(rho), 4), err
    return best


def bands(values: np.ndarray, counts: tuple[int, ...]) -> np.ndarray:
    """Number of bands earned (0..len(counts)): band k if the competition rank is within ``counts[k]``."""
    rank = rankdata(-values, method="min")
    return (rank[:, None] <= np.asarray(counts)[None, :]).sum(axis=1)


def _percentile(values: np.ndarray) -> np.ndarray:
    return rankdata(values, method="average") / len(values)


def outcome_points(values: pd.DataFrame, year: str) -> tuple[list[str], np.ndarray, dict[int, float]]:
    """Goal Ⅳ item points for both grants (item ids, items × municipalities) and the tie bias per indicator."""
    cat = load_catalogue()
    cat = cat[(cat["fiscal_year"] == year) & (cat["goal"] == "IV")]
    n = len(values)
    std_counts = tuple(int(np.floor(q * n)) for q in RANK_BANDS)
    earned: dict[str, np.ndarray] = {}  # "ind-branch[-sub]" -> points per municipality
    ties: dict[int, float] = {}
    sui = cat[cat["grant"] == "suishin"]
    for ind in SINGLE:
        items = sui[sui["indicator_no"] == ind]
        b = bands(values[str(ind)].to_numpy(), tuple(int(x) for x in items["n_scoring"]))
        for k, r in enumerate(items.itertuples()):
            earned[_suffix(r.item_id)] = np.where(b > k, r.max_points, 0)
    for ind in CHOOSE_ONE:
        items = sui[sui["indicator_no"] == ind]
        va, vi = values[f"{ind}ア"].to_numpy(), values[f"{ind}イ"].to_numpy()
        a, b = bands(va, std_counts), bands(vi, std_counts)
        gap = _percentile(va) - _percentile(vi)
        theta, _ = _fit_tie_bias(a, b, gap, items)
        ties[ind] = theta
        pick_a = _pick_a(a, b, gap, theta)
        for r in items.itertuples():
            level = "①②③④".index(r.sub_branch)
            held = np.where(pick_a, a, 0) if r.branch == "ア" else np.where(pick_a, 0, b)
            earned[_suffix(r.item_id)] = np.where(held > level, r.max_points, 0)
    ids = cat["item_id"].tolist()
    return ids, np.vstack([earned[_suffix(i)] for i in ids]).astype(np.int64), ties


def _suffix(item_id: str) -> str:
    return item_id.split("-", 4)[4]  # R8-suishin-IV-outcome-1-ア-① -> 1-ア-①


def _pick_a(a: np.ndarray, b: np.ndarray, gap: np.ndarray, theta: float) -> np.ndarray:
    return (a > b) | ((a == b) & (gap + theta > 0))


def _fit_tie_bias(a: np.ndarray, b: np.ndarray, gap: np.ndarray, items: pd.DataFrame) -> tuple[float, float]:
    """θ on a grid minimising the largest share error of the eight items (ties broken towards θ = 0)."""
    keys = zip(items["branch"], items["sub_branch"], strict=True)
    target = dict(zip(keys, items["share_scoring"], strict=True))
    n = len(a)
    tied = (a == b) & (a > 0)
    grid = np.array(sorted(TIE_GRID, key=abs))
    tie_to_a = gap[tied][None, :] + grid[:, None] > 0  # grid × tied units
    level = a[tied]
    err = np.zeros(len(grid))
    for k, sub in enumerate("①②③④", start=1):
        won_a = ((a > b) & (a >= k)).sum() + (tie_to_a & (level >= k)).sum(axis=1)
        won_i = ((b > a) & (b >= k)).sum() + (~tie_to_a & (level >= k)).sum(axis=1)
        err = np.maximum(err, np.abs(won_a / n - target[("ア", sub)]))
        err = np.maximum(err, np.abs(won_i / n - target[("イ", sub)]))
    best = int(np.argmin(err))  # first minimum: the smallest |θ| among equals
    return float(grid[best]), float(err[best])
