"""Synthetic municipality attributes: 第1号被保険者数, population, 過疎, 規模区分 for R6–R8.

The 1,741 municipalities and their names are real (``municipalities.csv``); their sizes are invented, but
pinned to what is published:

* 規模区分 (by 第1号被保険者数) has exactly the published R8 counts 451/535/608/83/64. Municipalities are
  ordered by a latent size score (村 < 町 < 市 < 特別区, with noise) and the classes are filled from the
  bottom up in that order, so the counts are exact by construction; values are then drawn inside each class.
* The 20 政令指定都市 are the 20 largest, 八王子市 has more than 150,000 elderly, and the seven profiled
  municipalities (富良野市, 平取町, …) and the 24 of the R6 below-plan list keep their published figures.
* 過疎 is exactly 885 of 1,741, chosen by a propensity that falls with size (特別区 never).
* Population = 第1号 / ratio, the ratio 0.2–0.5 and higher in small and 過疎 municipalities.

The published profile figures carry no date; they are taken as R8 values. R7 and R6 are back-cast from R8
(population shrinks a little every year, the elderly count moves slowly), so only R8 meets the class counts
exactly, as only R8's counts are published.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kofukin import layout
from kofukin.codes import normalise_name
from kofukin.reference import load_master, load_published
from kofukin.synthetic.rng import stream

YEARS: tuple[str, ...] = ("R6", "R7", "R8")
SIZE_CLASS_COUNTS_R8: dict[int, int] = {1: 451, 2: 535, 3: 608, 4: 83, 5: 64}
N_KASO = 885
# The five 政令指定都市 whose code does not end in 00 (the other fifteen are 01100, 04100, … 43100).
DESIGNATED_EXTRA: tuple[str, ...] = ("14130", "14150", "22130", "27140", "40130")
HACHIOJI = "132012"
HACHIOJI_N1_RANGE = (151_000, 170_000)  # 「15万人を超える高齢者」, below the smallest 政令市
DESIGNATED_N1_RANGE = (180_000, 950_000)
# Ranges of 第1号 drawn inside each class (the smallest real insurers have a few dozen elderly).
CLASS_RANGES: dict[int, tuple[float, float, float, float]] = {
    # class: (low, high, beta a, beta b) on the log scale
    1: (60, 2_999, 2.4, 1.3),
    2: (3_000, 9_999, 1.2, 1.5),
    3: (10_000, 49_999, 1.1, 1.9),
    4: (50_000, 99_999, 1.1, 1.5),
    5: (100_000, 149_000, 1.0, 1.6),
}
KIND_SIZE_MEAN = {"mura": -1.7, "machi": -0.55, "shi": 1.0, "ku": 1.9}
SIZE_NOISE_SD = 0.75


@dataclass(frozen=True)
class Anchors:
    """Published figures the synthetic attributes must reproduce (from ``golden_published.csv``)."""

    n1_r8: dict[str, int]
    pop_r8: dict[str, int]
    kaso: dict[str, bool]
    n1_r6: dict[str, int]

    @property
    def codes(self) -> set[str]:
        return set(self.n1_r8) | set(self.n1_r6) | set(self.kaso) | {HACHIOJI}


def designated_cities(master: pd.DataFrame) -> pd.Series:
    """Boolean mask of the 20 政令指定都市 (code ending in 00 and a 市, or one of the five others)."""
    return ((master["lg_code5"].str[3:] == "00") & (master["kind"] == "shi")) | master["lg_code5"].isin(
        DESIGNATED_EXTRA
    )


def load_anchors(master: pd.DataFrame | None = None) -> Anchors:
    """The profiled municipalities' population, 第1号 and 過疎, and the R6 list's 第1号, keyed by lg_code6."""
    master = load_master() if master is None else master
    pub = load_published()
    key = master["pref_name"] + "|" + master["name"].map(normalise_name)
    code_of = dict(zip(key, master["lg_code6"], strict=True))
    pub = pub[~pub["municipality_name"].str.startswith("[")].copy()
    pub["lg_code6"] = (pub["pref_name"] + "|" + pub["municipality_name"].map(normalise_name)).map(code_of)

    def pick(measure: str, year: str) -> dict[str, int]:
        rows = pub[(pub["measure"] == measure) & (pub["fiscal_year"] == year)]
        return {r.lg_code6: int(r.value) for r in rows.itertuples()}

    return Anchors(
        n1_r8=pick("n_insured_1go", ""),
        pop_r8=pick("population", ""),
        kaso={k: bool(v) for k, v in pick("kaso", "R8").items()},
        n1_r6=pick("n_insured_1go", "R6"),
    )


def generate_attributes(seed: int, master: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table ``fiscal_year, lg_code6, population, n_insured_1go, size_class, kaso`` (3 × 1,741 rows)."""
    master = (load_master() if master is None else master).sort_values("lg_code6").reset_index(drop=True)
    anchors = load_anchors(master)
    growth = _growth(seed, master)
    n1 = _n1_r8(seed, master, anchors, growth)
    kaso = _kaso(seed, master, n1, anchors)
    pop = _population(seed, master, n1, kaso, anchors)
    return _yearly(master, n1, pop, kaso, growth, anchors)


def _growth(seed: int, master: pd.DataFrame) -> pd.DataFrame:
    """Yearly change rates: elderly count drifts (up in cities, down in towns); population always declines."""
    rng = stream(seed, "growth")
    rural = master["kind"].isin(["machi", "mura"]).to_numpy(float)
    n = len(master)
    g_n1 = 0.004 - 0.011 * rural + rng.normal(0, 0.004, n)
    d_pop = 0.002 + 0.010 * rural + np.abs(rng.normal(0, 0.004, n))
    return pd.DataFrame({"g_n1": g_n1, "d_pop": d_pop}, index=master["lg_code6"])


def _n1_r8(seed: int, master: pd.DataFrame, anchors: Anchors, growth: pd.DataFrame) -> pd.Series:
    """R8 第1号被保険者数 with the published class counts, anchors and 政令市 ordering."""
    rng = stream(seed, "size")
    codes = master["lg_code6"]
    score = master["kind"].map(KIND_SIZE_MEAN).to_numpy(float) + rng.normal(0, SIZE_NOISE_SD, len(master))
    n1 = pd.Series(np.nan, index=codes.to_numpy())
    designated = designated_cities(master).to_numpy()
    lo, hi = np.log(DESIGNATED_N1_RANGE)
    d_vals = np.sort(np.exp(lo + (hi - lo) * rng.beta(1.0, 2.2, designated.sum())))
    n1[designated] = d_vals[np.argsort(np.argsort(score[designated]))]
    n1[HACHIOJI] = rng.uniform(*HACHIOJI_N1_RANGE)
    for code, v in anchors.n1_r6.items():  # R6 figures carried forward two years
        n1[code] = v * (1 + growth.loc[code, "g_n1"]) ** 2
    for code, v in anchors.n1_r8.items():
        n1[code] = v
    n1 = n1.round()
    fixed = n1.notna().to_numpy()
    fixed_class = n1[fixed].map(lambda v: layout.size_class_of(int(v)))
    free_order = np.flatnonzero(~fixed)[np.argsort(score[~fixed], kind="stable")]
    start = 0
    for cls, count in SIZE_CLASS_COUNTS_R8.items():
        k = count - int((fixed_class == cls).sum())
        members = free_order[start : start + k]
        start += k
        low, high, a, b = CLASS_RANGES[cls]
        vals = np.sort(np.exp(np.log(low) + (np.log(high) - np.log(low)) * rng.beta(a, b, k)))
        n1.iloc[members] = np.round(vals)  # members are in ascending score order
    assert start == len(free_order), "class quotas must cover every municipality"
    return n1.astype("int64")


def _kaso(seed: int, master: pd.DataFrame, n1: pd.Series, anchors: Anchors) -> pd.Series:
    """Exactly 885 過疎 municipalities, mostly small 町村; 特別区 and 政令市 never."""
    rng = stream(seed, "kaso")
    z = _zlog(n1.to_numpy())
    kind = master["kind"].map({"mura": 0.9, "machi": 0.35, "shi": -0.2, "ku": 0.0}).to_numpy()
    pref = rng.normal(0, 0.6, 48)[master["pref_code"].astype(int).to_numpy()]
    propensity = -0.8 * z + kind + pref + rng.normal(0, 1.0, len(master))
    out = pd.Series(False, index=n1.index)
    never = ((master["kind"] == "ku") | designated_cities(master)).to_numpy()
    forced = pd.Series(anchors.kaso)
    propensity[never] = -np.inf
    propensity[out.index.isin(forced.index)] = -np.inf
    out[forced.index] = forced.to_numpy()
    k = N_KASO - int(forced.sum())
    out.iloc[np.argsort(-propensity, kind="stable")[:k]] = True
    return out


def _population(
    seed: int, master: pd.DataFrame, n1: pd.Series, kaso: pd.Series, anchors: Anchors
) -> pd.Series:
    """R8 population = 第1号 / ratio; ratio 0.2–0.5, higher when small or 過疎, lowest in 特別区."""
    rng = stream(seed, "population")
    z = _zlog(n1.to_numpy())
    ratio = 0.315 - 0.04 * z + 0.045 * kaso.to_numpy() + rng.normal(0, 0.025, len(master))
    ratio -= 0.06 * (master["kind"] == "ku").to_numpy()
    designated = designated_cities(master).to_numpy()
    ratio = np.clip(ratio, 0.21, 0.48)  # margin for the back-cast drift: every year stays in 0.2–0.5
    ratio[designated] = np.clip(ratio[designated], 0.22, 0.27)
    pop = pd.Series(np.round(n1.to_numpy() / ratio), index=n1.index)
    cap = 0.95 * pop[designated].min()  # 政令市 are the largest by population too
    pop[~designated] = np.minimum(pop[~designated], np.floor(cap))
    for code, v in anchors.pop_r8.items():
        pop[code] = v
    return pop.astype("int64")


def _yearly(
    master: pd.DataFrame,
    n1: pd.Series,
    pop: pd.Series,
    kaso: pd.Series,
    growth: pd.DataFrame,
    anchors: Anchors,
) -> pd.DataFrame:
    """R8 values back-cast to R7 and R6; the R6 list's 第1号 is kept exactly in R6."""
    frames = []
    n1_t, pop_t = n1.astype(float), pop.astype(float)
    for year in reversed(YEARS):
        if year != "R8":
            n1_t = n1_t / (1 + growth["g_n1"])
            pop_t = pop_t / (1 - growth["d_pop"])
        frames.append(pd.DataFrame({"fiscal_year": year, "n1": n1_t.round(), "pop": pop_t.round()}))
    df = pd.concat(frames)
    df.index.name = "lg_code6"
    df = df.reset_index()
    for code, v in anchors.n1_r6.items():
        df.loc[(df["lg_code6"] == code) & (df["fiscal_year"] == "R6"), "n1"] = v
        if code in anchors.n1_r8:  # both ends published: R7 halfway (geometric)
            mid = round(np.sqrt(v * anchors.n1_r8[code]))
            df.loc[(df["lg_code6"] == code) & (df["fiscal_year"] == "R7"), "n1"] = mid
    df["n_insured_1go"] = df.pop("n1").astype("int64")
    df["population"] = df.pop("pop").astype("int64")
    df["size_class"] = df["n_insured_1go"].map(layout.size_class_of).astype("int64")
    df["kaso"] = df["lg_code6"].map(kaso).astype(bool)
    df["fiscal_year"] = pd.Categorical(df["fiscal_year"], categories=list(YEARS), ordered=True)
    df = df.sort_values(["fiscal_year", "lg_code6"]).reset_index(drop=True)
    df["fiscal_year"] = df["fiscal_year"].astype(str)
    return df[["fiscal_year", "lg_code6", "population", "n_insured_1go", "size_class", "kaso"]]


def _zlog(values: np.ndarray) -> np.ndarray:
    v = np.log(values.astype(float))
    return (v - v.mean()) / v.std()
