"""Outcome regressions: do insurers that score higher on structure and activity show better outcomes?

The question of the outcomes chapter is whether the goal Ⅰ–Ⅲ scores — 体制・取組指標群 計
(``all_taisei``, 0–380) and 活動指標群 計 (``all_katsudo``, 0–220), both free of goal Ⅳ by construction — go
together with the goal Ⅳ outcome (成果指標群: the score ``suishin_IV`` 0–100, each of its five indicators
0–20, or the underlying outcome values). Everything here is a pure function of tidy tables; the notebook
does the I/O and the plots.

Unit of analysis
----------------
The outcome belongs to the *insurer*. Members of a 広域連合 are scored one by one on goals Ⅰ–Ⅲ but share one
outcome value (and therefore one goal Ⅳ score). Regressing per municipality would count a shared outcome once
per member: a union of ten towns enters as ten "independent" observations of one number, which over-weights
unions in the estimate and — with heteroskedasticity-robust SEs — makes the standard errors too small (the
ten residuals are one residual). :func:`analysis_frame` therefore aggregates members into one unit by default:
the outcome is the union's (identical across members; the 第1号-weighted mean is taken so a stray disagreement
cannot pass silently — see ``outcome_spread``) and the regressors are the members' 第1号-weighted means, the
weights under which the union's outcome *is* the mean of its members' (an outcome rate of the union's elderly
population weights each member by its elderly). ``unit="municipality"`` keeps members as rows (for
comparisons); prefectural clustering then still nests each union, but the point estimate keeps the
over-weighting.

Specifications
--------------
* :func:`fit_cross_section` — per year, ``outcome ~ all_taisei + all_katsudo + controls + C(pref_code)``
  by OLS (or WLS with 第1号 weights), standard errors clustered by prefecture with t(G−1) intervals;
* :func:`fit_stacked` — the same, stacking several outcomes (and years) with their own intercepts: one common
  slope, the design used to check the planted truth on the eight outcome measures at once;
* :func:`fit_change` — the change of the outcome between two years on the earlier year's scores (and,
  optionally, on the change in the scores: the first-difference estimator that removes every time-invariant
  unit effect);
* :func:`fit_mixed` — prefecture random intercepts instead of fixed effects (MixedLM), as a robustness check.

Every fitter returns an :class:`OutcomeFit`; :func:`tidy` and :func:`summary_table` turn fits into tables, and
:func:`vif_table`, :func:`residual_table`, :func:`residual_spread_by_size` are the diagnostics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary

# statsmodels is imported where a model is fitted: a municipality report needs this module's analysis frame,
# not its regressions, and importing statsmodels costs a second of every `kofukin report`.

from kofukin.layout import (
    OUTCOME_INDICATOR_JA,
    OUTCOME_VALUE_COLUMNS,
    RANK_BANDS,
    SIZE_CLASS_JA,
    size_class_of,
)

# --- Column names and labels ------------------------------------------------------------------------------

OUTCOME_SCORE = "suishin_IV"
SCORE_TERMS: tuple[str, ...] = ("all_taisei", "all_katsudo")
# The default controls: size (log population), age structure (share of 第1号), 規模区分 and 過疎.
DEFAULT_CONTROLS: tuple[str, ...] = ("log_population", "share_1go", "C(size_class)", "kaso")
# The controls of the planted model (kofukin.synthetic.truth): the others must come out near zero.
PLANTED_CONTROLS: tuple[str, ...] = ("log_population", "kaso")
INDICATORS: tuple[int, ...] = (1, 2, 3, 4, 5)
POINTS_COLUMNS: dict[int, str] = {k: f"iv_{k}" for k in INDICATORS}
# ASCII column names for the eight outcome measures (formulas and Parquet stay ASCII): ア -> a, イ -> b.
MEASURE_COLUMNS: dict[str, str] = {
    m: "value_" + m.replace("ア", "a").replace("イ", "b") for m in OUTCOME_VALUE_COLUMNS
}
VALUE_COLUMNS: tuple[str, ...] = tuple(MEASURE_COLUMNS.values())
PREF = "pref_code"
UNIT = "unit_id"
WEIGHT = "n_insured_1go"

TERM_JA: dict[str, str] = {
    "Intercept": "定数項",
    "all_taisei": "体制・取組指標群 計",
    "all_katsudo": "活動指標群 計",
    "log_population": "人口（対数）",
    "share_1go": "第1号被保険者の割合",
    "kaso": "過疎地域",
    "d_all_taisei": "体制・取組指標群 計の変化",
    "d_all_katsudo": "活動指標群 計の変化",
    "lag_outcome": "前年度の成果",
    **{f"C(size_class)[T.{k}]": f"規模区分{k}（{ja}）" for k, ja in SIZE_CLASS_JA.items()},
}
OUTCOME_JA: dict[str, str] = {
    OUTCOME_SCORE: "目標Ⅳ 成果指標群 得点",
    **{c: f"指標{k} 得点（{OUTCOME_INDICATOR_JA[k]}）" for k, c in POINTS_COLUMNS.items()},
    **{
        c: f"指標値 {m}（{OUTCOME_INDICATOR_JA[OUTCOME_VALUE_COLUMNS[m][0]]}）"
        for m, c in MEASURE_COLUMNS.items()
    },
}
TERM_ORDER: tuple[str, ...] = (
    "all_taisei",
    "all_katsudo",
    "d_all_taisei",
    "d_all_katsudo",
    "lag_outcome",
    "log_population",
    "share_1go",
    "kaso",
    *(f"C(size_class)[T.{k}]" for k in SIZE_CLASS_JA),
    "Intercept",
)


def term_ja(term: str) -> str:
    """Japanese label of a model term (falls back to the term itself)."""
    return TERM_JA.get(term, term)


def outcome_ja(outcome: str) -> str:
    """Japanese label of an outcome column (or of a :func:`fit_stacked` stack of them)."""
    if outcome.startswith("stacked:"):
        parts = tuple(outcome.removeprefix("stacked:").split(","))
        if parts == VALUE_COLUMNS:
            return "指標値 全8系列（積み重ね）"
        if parts == tuple(POINTS_COLUMNS.values()):
            return "指標1〜5 得点（積み重ね）"
        if len(parts) == 1:
            return outcome_ja(parts[0])
        return f"{outcome_ja(parts[0])} ほか{len(parts) - 1}系列（積み重ね）"
    return OUTCOME_JA.get(outcome, outcome)


# --- Goal Ⅳ banding ---------------------------------------------------------------------------------------


def rank_band_points(
    values: pd.Series, bands: Sequence[float] = RANK_BANDS, points_per_band: int = 5
) -> pd.Series:
    """Goal Ⅳ points of one outcome measure: ``points_per_band`` for each rank band reached (上位7/5/3/1割).

    A unit whose value ranks in the top 10 % nationally (competition rank / number ranked ≤ 0.1) reaches all
    four bands (20 points), one in the top 50 % but not 30 % reaches two (10 points). Missing values get no
    rank and no points (NaN). This is the transform that makes the points a bounded, non-linear, step function
    of the value: regressions on points and on values share signs, not scales.
    """
    ranked = values.notna()
    share = values.rank(method="min", ascending=False) / ranked.sum()
    pts = sum(points_per_band * (share <= b).astype("int64") for b in bands)
    return pts.where(ranked)


# --- The analysis frame -----------------------------------------------------------------------------------


def goal_iv_points(indicator_points: pd.DataFrame) -> pd.DataFrame:
    """Goal Ⅳ points per indicator, wide: ``fiscal_year, lg_code6, iv_1 … iv_5``.

    ``indicator_points`` is the long output of :func:`kofukin.scoring.indicator_points` (the 択一 rule
    applied: only the better branch of indicators 1, 3 and 5 counts). The 推進 copy is used; the 支援 copy
    repeats it.
    """
    ip = indicator_points
    if "goal" in ip.columns:
        ip = ip[ip["goal"] == "IV"]
    if "grant" in ip.columns:
        ip = ip[ip["grant"] == "suishin"]
    wide = ip.pivot_table(
        index=["fiscal_year", "lg_code6"],
        columns="indicator_no",
        values="points",
        aggfunc="sum",
        observed=True,
    )
    wide = wide.reindex(columns=list(INDICATORS))
    wide.columns = [POINTS_COLUMNS[int(k)] for k in wide.columns]
    return wide.reset_index()


def outcome_values_wide(outcome_values: pd.DataFrame) -> pd.DataFrame:
    """The underlying outcome values, wide: ``fiscal_year, lg_code6, value_1a … value_5b``.

    Accepts the store's layout (``indicator_no, branch`` with branch ``""`` for indicators 2 and 4) or the
    synthetic generator's (``measure`` in :data:`kofukin.synthetic.truth.MEASURES`: ``"1ア"`` …).
    """
    ov = outcome_values
    if "measure" in ov.columns:
        measure = ov["measure"].astype(str)
    else:
        branch = ov["branch"].fillna("").astype(str)
        measure = ov["indicator_no"].astype("int64").astype(str) + branch
    unknown = sorted(set(measure) - set(MEASURE_COLUMNS))
    if unknown:
        raise KeyError(f"unknown outcome measures: {unknown[:5]}")
    long = ov[["fiscal_year", "lg_code6"]].assign(
        col=measure.map(MEASURE_COLUMNS), value=ov["value"].astype(float)
    )
    wide = long.pivot_table(index=["fiscal_year", "lg_code6"], columns="col", values="value", aggfunc="mean")
    wide = wide.reindex(columns=list(VALUE_COLUMNS))
    wide.columns.name = None
    return wide.reset_index()


def _union_of(panel: pd.DataFrame) -> pd.Series:
    """Each row's 広域連合 (NaN for single insurers).

    A year whose file has no 所属広域連合 column at all (R6) borrows the membership of the same municipality
    in the other years; a year that has the column is taken as it is, so a municipality that left a union is
    not pulled back into it.
    """
    if "union_name" not in panel.columns:
        return pd.Series(np.nan, index=panel.index, dtype=object)
    u = panel["union_name"].where(
        panel["union_name"].astype(str).str.strip().ne("") & panel["union_name"].notna()
    )
    has_column = u.notna().groupby(panel["fiscal_year"]).transform("any")
    borrowed = u.groupby(panel["lg_code6"]).transform("first")
    return u.where(has_column, borrowed)


def analysis_frame(
    panel: pd.DataFrame,
    outcome_values: pd.DataFrame | None = None,
    indicator_points: pd.DataFrame | None = None,
    *,
    unit: str = "insurer",
) -> pd.DataFrame:
    """One row per unit and year with the outcome, its parts, the scores and the controls.

    Parameters
    ----------
    panel
        :meth:`kofukin.store.Store.panel` (or the same columns: ``fiscal_year, lg_code6, population,
        n_insured_1go, size_class, kaso, union_name`` (optional), ``pref_code`` (else ``lg_code6[:2]``),
        ``all_taisei, all_katsudo, suishin_IV``).
    outcome_values
        Long underlying values (see :func:`outcome_values_wide`); optional.
    indicator_points
        Long indicator points (:func:`kofukin.scoring.indicator_points`); optional.
    unit
        ``"insurer"`` (default): 広域連合 members become one unit — see the module docstring for why.
        ``"municipality"``: one row per municipality, shared outcomes repeated.

    Returns
    -------
    ``fiscal_year, unit_id, unit_kind (single/union), n_members, pref_code, union_name, suishin_IV, iv_1…iv_5,
    value_1a…value_5b, all_taisei, all_katsudo, population, n_insured_1go, log_population, share_1go,
    size_class (categorical 1–5), kaso (0/1; a union's 第1号-weighted share), outcome_spread``. For a union,
    population and 第1号 are sums, 規模区分 is that of the summed 第1号 (the insurer's size, which is what the
    sampling noise of its outcome depends on), ``share_1go`` is Σ第1号/Σ人口 and the other regressors are
    第1号-weighted means. ``outcome_spread`` is the range of ``suishin_IV`` across members (0 when they
    agree).
    """
    if unit not in ("insurer", "municipality"):
        raise ValueError("unit must be 'insurer' or 'municipality'")
    cols = ["fiscal_year", "lg_code6", "population", "n_insured_1go", "size_class", "kaso", *SCORE_TERMS]
    df = panel[[*cols, OUTCOME_SCORE]].copy()
    df[PREF] = panel[PREF] if PREF in panel.columns else panel["lg_code6"].str[:2]
    df["union_name"] = _union_of(panel)
    if indicator_points is not None:
        df = df.merge(
            goal_iv_points(indicator_points), on=["fiscal_year", "lg_code6"], how="left", validate="1:1"
        )
    if outcome_values is not None:
        df = df.merge(
            outcome_values_wide(outcome_values), on=["fiscal_year", "lg_code6"], how="left", validate="1:1"
        )
    df["kaso"] = df["kaso"].astype(float)
    df["log_population"] = np.log(df["population"].astype(float))
    df["n_insured_1go"] = df["n_insured_1go"].astype(float)
    df["population"] = df["population"].astype(float)
    outcome_cols = [c for c in (OUTCOME_SCORE, *POINTS_COLUMNS.values(), *VALUE_COLUMNS) if c in df.columns]
    is_union = df["union_name"].notna()
    if unit == "municipality":
        out = df.assign(
            unit_id=df["lg_code6"],
            unit_kind=np.where(is_union, "union", "single"),
            n_members=1,
            share_1go=df["n_insured_1go"] / df["population"],
            outcome_spread=0.0,
        )
    else:
        df[UNIT] = np.where(is_union, "U:" + df["union_name"].fillna(""), df["lg_code6"])
        out = _aggregate_units(df, outcome_cols)
    out["size_class"] = pd.Categorical(out["size_class"].astype("int64"), categories=list(SIZE_CLASS_JA))
    keep = [
        "fiscal_year", UNIT, "unit_kind", "n_members", PREF, "union_name", *outcome_cols, *SCORE_TERMS,
        "population", "n_insured_1go", "log_population", "share_1go", "size_class", "kaso", "outcome_spread",
    ]  # fmt: skip
    return out[keep].sort_values(["fiscal_year", UNIT], kind="stable").reset_index(drop=True)


def _aggregate_units(df: pd.DataFrame, outcome_cols: list[str]) -> pd.DataFrame:
    """第1号-weighted means per (year, unit); sums for the counts (see :func:`analysis_frame`)."""
    w = df["n_insured_1go"]
    mean_cols = [*outcome_cols, *SCORE_TERMS, "log_population", "kaso"]
    weighted = df[mean_cols].mul(w, axis=0).where(df[mean_cols].notna())
    wsum = df[mean_cols].notna().mul(w, axis=0)
    keys = ["fiscal_year", UNIT]
    g_num = weighted.groupby([df[k] for k in keys]).sum(min_count=1)
    g_den = wsum.groupby([df[k] for k in keys]).sum()
    means = g_num / g_den.where(g_den > 0)
    grouped = df.groupby(keys, sort=False)
    other = grouped.agg(
        pref_code=(PREF, lambda s: s.mode().iat[0]),
        union_name=("union_name", "first"),
        n_members=("lg_code6", "size"),
        population=("population", "sum"),
        n_insured_1go=("n_insured_1go", "sum"),
        outcome_spread=(OUTCOME_SCORE, lambda s: float(s.max() - s.min())),
    )
    out = other.join(means).reset_index()
    out["unit_kind"] = np.where(out["union_name"].notna(), "union", "single")
    out["share_1go"] = out["n_insured_1go"] / out["population"]
    out["size_class"] = out["n_insured_1go"].map(lambda n: size_class_of(int(n)))
    return out


# --- Fitting ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OutcomeFit:
    """A fitted outcome model with what is needed to report it honestly.

    ``result`` is the statsmodels results object (for ``summary_col`` and anything else); ``data`` the rows
    actually used (after dropping incomplete ones), aligned with the model's observations.
    """

    result: object
    outcome: str
    years: str
    model: str  # OLS / WLS / MixedLM (with a suffix for stacked / change models)
    se_type: str
    formula: str
    data: pd.DataFrame = field(repr=False)
    n_clusters: int | None = None

    @property
    def n(self) -> int:
        return int(self.result.nobs)

    @property
    def n_units(self) -> int:
        return int(self.data[UNIT].nunique()) if UNIT in self.data.columns else self.n


def _formula(outcome: str, terms: Iterable[str], pref_effects: bool, extra: Iterable[str] = ()) -> str:
    rhs = [*terms, *extra]
    if pref_effects:
        rhs.append(f"C({PREF})")
    return f"{outcome} ~ " + " + ".join(rhs)


def _year_effect(data: pd.DataFrame) -> list[str]:
    return ["C(fiscal_year)"] if data["fiscal_year"].nunique() > 1 else []


def _variables(terms: Iterable[str]) -> list[str]:
    """Column names behind formula terms (``C(size_class)`` -> ``size_class``)."""
    out = []
    for t in terms:
        t = t.strip()
        out.append(t[2:-1] if t.startswith("C(") and t.endswith(")") else t)
    return out


def complete_cases(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Rows with every column present, unused 規模区分 levels dropped (an empty dummy would be all zeros)."""
    cols = list(dict.fromkeys(columns))
    d = df.dropna(subset=cols).copy()
    if "size_class" in d.columns and isinstance(d["size_class"].dtype, pd.CategoricalDtype):
        d["size_class"] = d["size_class"].cat.remove_unused_categories()
    return d.reset_index(drop=True)


def _select_years(frame: pd.DataFrame, years: str | Sequence[str] | None) -> tuple[pd.DataFrame, str]:
    if years is None:
        ys = sorted(frame["fiscal_year"].unique())
    elif isinstance(years, str):
        ys = [years]
    else:
        ys = list(years)
    label = ys[0] if len(ys) == 1 else f"{ys[0]}–{ys[-1]}"
    return frame[frame["fiscal_year"].isin(ys)], label


def _fit_ls(
    data: pd.DataFrame, formula: str, weights: str | None, cluster: str | None
) -> tuple[object, str, int | None]:
    """OLS/WLS with cluster-robust (t with G−1 df) or HC1 standard errors; returns (result, se_type, G)."""
    import statsmodels.formula.api as smf

    model = (
        smf.wls(formula, data, weights=data[weights].to_numpy(float)) if weights else smf.ols(formula, data)
    )
    if cluster:
        groups = pd.factorize(data[cluster])[0]
        g = int(groups.max() + 1)
        res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        label = {PREF: "都道府県", UNIT: "保険者", "union_name": "広域連合"}.get(cluster, cluster)
        return res, f"クラスター頑健標準誤差（{label}, G={g}, t(G−1)）", g
    res = model.fit(cov_type="HC1")
    return res, "不均一分散頑健標準誤差（HC1）", None


def fit_cross_section(
    frame: pd.DataFrame,
    year: str | Sequence[str],
    outcome: str = OUTCOME_SCORE,
    *,
    controls: Sequence[str] = DEFAULT_CONTROLS,
    pref_effects: bool = True,
    weights: str | None = None,
    cluster: str | None = PREF,
) -> OutcomeFit:
    """Cross-section of one year: ``outcome ~ all_taisei + all_katsudo + controls (+ C(pref_code))``.

    Prefecture fixed effects absorb everything regional that the scores might proxy for (prefectural support,
    regional health differences); the scores' coefficients then compare insurers within a prefecture. Standard
    errors are clustered by prefecture — residuals of one prefecture share shocks the fixed effect does not
    remove (and a union's members never straddle prefectures) — with t(G−1) intervals because G = 47 is not
    large. ``weights="n_insured_1go"`` gives WLS: under the outcome noise of :mod:`kofukin.synthetic.truth`
    (variance ∝ 1/第1号) these are the inverse-variance weights, so WLS is the efficient estimator; it also
    changes the estimand to the 第1号-weighted average effect if effects differ by size. Several years pool
    the cross-sections with a year effect (``C(fiscal_year)``); units then repeat, which the prefecture
    clusters cover.
    """
    terms = [*SCORE_TERMS, *controls]
    cols = [
        outcome,
        *_variables(terms),
        PREF,
        *([weights] if weights else []),
        *([cluster] if cluster else []),
    ]
    sub, label = _select_years(frame, year)
    data = complete_cases(sub, cols)
    formula = _formula(outcome, terms, pref_effects, _year_effect(data))
    res, se_type, g = _fit_ls(data, formula, weights, cluster)
    return OutcomeFit(res, outcome, label, "WLS" if weights else "OLS", se_type, formula, data, g)


def fit_stacked(
    frame: pd.DataFrame,
    outcomes: Sequence[str] = VALUE_COLUMNS,
    years: str | Sequence[str] | None = None,
    *,
    controls: Sequence[str] = DEFAULT_CONTROLS,
    pref_effects: bool = True,
    weights: str | None = None,
    cluster: str | None = PREF,
) -> OutcomeFit:
    """Several outcomes (and years) stacked, each outcome×year with its own intercept, one common slope.

    This is the model the planted truth states — every measure shares ``beta_taisei`` … and differs only in
    its intercept — so the stacked estimate is the efficient summary of the eight per-measure regressions
    (with identical regressors it is their average) and tests each planted coefficient once instead of eight
    times. Clustering by prefecture covers the correlation of one unit's errors across measures and years.
    """
    terms = [*SCORE_TERMS, *controls]
    base, label = _select_years(frame, years)
    keep = ["fiscal_year", UNIT, PREF, "size_class", WEIGHT, *_variables(terms), weights, cluster]
    id_cols = [c for c in dict.fromkeys(keep) if c]
    long = base.melt(id_vars=id_cols, value_vars=list(outcomes), var_name="outcome_name", value_name="y")
    long["stack"] = long["fiscal_year"].astype(str) + "|" + long["outcome_name"]
    data = complete_cases(long, ["y", *_variables(terms), PREF, *([weights] if weights else []), "stack"])
    formula = _formula("y", ["C(stack)", *terms], pref_effects)
    res, se_type, g = _fit_ls(data, formula, weights, cluster)
    name = "stacked:" + ",".join(outcomes)
    return OutcomeFit(
        res, name, label, ("WLS" if weights else "OLS") + "（積み重ね）", se_type, formula, data, g
    )


def fit_change(
    frame: pd.DataFrame,
    year_from: str,
    year_to: str,
    outcome: str = OUTCOME_SCORE,
    *,
    controls: Sequence[str] = DEFAULT_CONTROLS,
    score_changes: bool = False,
    lagged_outcome: bool = False,
    pref_effects: bool = True,
    weights: str | None = None,
    cluster: str | None = PREF,
) -> OutcomeFit:
    """Change of the outcome between two years on the earlier year's scores and controls.

    ``Δy = y[year_to] − y[year_from]`` for units present in both years. With the earlier year's levels only,
    the slope asks whether insurers that scored high on structure/activity *then* improved their outcome
    *since* — a weak form of temporal ordering, not identification (if scores themselves revert to the mean,
    that slope mixes β with the reversion, even when β is the same every year). ``score_changes=True`` adds
    ``d_all_taisei`` and ``d_all_katsudo`` (the changes in the scores): in a model
    ``y = Xβ + unit effect + e`` their coefficients are the first-difference estimate of β, free of any
    time-invariant unit effect.
    ``lagged_outcome=True`` adds ``y[year_from]``; with noisy outcomes its coefficient is biased towards −1
    (regression to the mean of the noise), so it is off by default and only a descriptive check.
    """
    a = frame[frame["fiscal_year"] == year_from]
    b = frame[frame["fiscal_year"] == year_to][[UNIT, outcome, *SCORE_TERMS]]
    m = a.merge(b, on=UNIT, suffixes=("", "_to"), validate="1:1")
    m["d_outcome"] = m[f"{outcome}_to"] - m[outcome]
    m["lag_outcome"] = m[outcome]
    extra = []
    if score_changes:
        for s in SCORE_TERMS:
            m[f"d_{s}"] = m[f"{s}_to"] - m[s]
            extra.append(f"d_{s}")
    if lagged_outcome:
        extra.append("lag_outcome")
    terms = [*SCORE_TERMS, *extra, *controls]
    cols = [
        "d_outcome",
        *_variables(terms),
        PREF,
        *([weights] if weights else []),
        *([cluster] if cluster else []),
    ]
    data = complete_cases(m, cols)
    formula = _formula("d_outcome", terms, pref_effects)
    res, se_type, g = _fit_ls(data, formula, weights, cluster)
    model = ("WLS" if weights else "OLS") + "（変化）"
    return OutcomeFit(res, outcome, f"{year_from}→{year_to}", model, se_type, formula, data, g)


def fit_mixed(
    frame: pd.DataFrame,
    year: str | Sequence[str],
    outcome: str = OUTCOME_SCORE,
    *,
    controls: Sequence[str] = DEFAULT_CONTROLS,
    reml: bool = True,
) -> OutcomeFit:
    """Prefecture random intercepts (MixedLM) instead of fixed effects — the robustness check.

    Random intercepts borrow strength across prefectures and use the between-prefecture variation of the
    scores as well, so they are more efficient but assume the prefecture effect is independent of the
    scores; if the fixed-effects and mixed estimates agree, that assumption does no harm. Standard errors are
    model-based (the random intercept carries the within-prefecture correlation) and assume one residual
    variance for all units — which the outcome noise (∝ 1/第1号) violates, so they are indicative only; the
    fixed-effects fit with cluster-robust errors is the primary one. statsmodels' convergence warnings
    (a prefecture variance on the boundary 0 is common with noisy outcomes) are passed through.
    """
    import statsmodels.formula.api as smf

    terms = [*SCORE_TERMS, *controls]
    sub, label = _select_years(frame, year)
    data = complete_cases(sub, [outcome, *_variables(terms), PREF])
    formula = _formula(outcome, terms, pref_effects=False, extra=_year_effect(data))
    model = smf.mixedlm(formula, data, groups=data[PREF])
    # BFGS first: L-BFGS can stop at a spurious "converged" point when the outcome is on the 0–100 scale.
    res = model.fit(reml=reml, method=["bfgs", "powell"])
    g = int(data[PREF].nunique())
    se_type = (
        f"モデルベース標準誤差（混合効果モデル, 都道府県ランダム切片, {'REML' if reml else 'ML'}, G={g}）"
    )
    return OutcomeFit(res, outcome, label, "MixedLM", se_type, formula, data, g)


def fit_grid(
    frame: pd.DataFrame,
    years: Sequence[str],
    outcomes: Sequence[str] = (OUTCOME_SCORE, *POINTS_COLUMNS.values()),
    **kwargs: object,
) -> list[OutcomeFit]:
    """:func:`fit_cross_section` for every year × outcome (same options), for one :func:`tidy` table."""
    return [fit_cross_section(frame, y, o, **kwargs) for y in years for o in outcomes]


# --- Tables -----------------------------------------------------------------------------------------------

TIDY_COLUMNS_JA: dict[str, str] = {
    "outcome_ja": "被説明変数",
    "years": "年度",
    "model": "推定法",
    "term_ja": "説明変数",
    "coef": "係数",
    "se": "標準誤差",
    "ci_low": "95%信頼区間 下限",
    "ci_high": "95%信頼区間 上限",
    "p": "p値",
    "n": "N",
    "n_units": "保険者数",
    "r2": "R²",
    "se_type": "標準誤差の種類",
}


def _is_fixed_effect(term: str) -> bool:
    return term.startswith(("C(pref_code)", "C(stack)", "C(fiscal_year)")) or term == "Group Var"


def tidy(
    fits: OutcomeFit | Sequence[OutcomeFit], *, fixed_effects: bool = False, level: float = 0.95
) -> pd.DataFrame:
    """Coefficients as a tidy table, one row per fit and term.

    Columns: ``outcome, outcome_ja, years, model, term, term_ja, coef, se, ci_low, ci_high, p, n, n_units,
    r2, se_type``. Prefecture and stacking intercepts are left out unless ``fixed_effects``; ``r2`` is NaN for
    the mixed model (no agreed R²).
    """
    if isinstance(fits, OutcomeFit):
        fits = [fits]
    rows = []
    for fi, f in enumerate(fits):
        r = f.result
        ci = r.conf_int(alpha=1 - level)
        params = r.params
        for term in params.index:
            if not fixed_effects and _is_fixed_effect(term):
                continue
            rows.append(
                {
                    "outcome": f.outcome,
                    "outcome_ja": outcome_ja(f.outcome),
                    "years": f.years,
                    "model": f.model,
                    "term": term,
                    "term_ja": term_ja(term),
                    "coef": float(params[term]),
                    "se": float(r.bse[term]),
                    "ci_low": float(ci.loc[term, 0]),
                    "ci_high": float(ci.loc[term, 1]),
                    "p": float(r.pvalues[term]),
                    "n": f.n,
                    "n_units": f.n_units,
                    "r2": float(getattr(r, "rsquared", np.nan)),
                    "se_type": f.se_type,
                    "_f": fi,
                }
            )
    out = pd.DataFrame(rows)
    order = {t: i for i, t in enumerate(TERM_ORDER)}
    out["_o"] = out["term"].map(order).fillna(len(order))
    out = out.sort_values(["_f", "_o"], kind="stable").drop(columns=["_o", "_f"])
    return out.reset_index(drop=True)


def display_tidy(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`tidy` table for readers: Japanese headers, the Japanese columns only."""
    return table[list(TIDY_COLUMNS_JA)].rename(columns=TIDY_COLUMNS_JA)


def summary_table(
    fits: Sequence[OutcomeFit],
    model_names: Sequence[str] | None = None,
    *,
    float_format: str = "%.3f",
    terms: Sequence[str] | None = None,
) -> Summary:
    """Side-by-side ``summary_col`` table with Japanese labels and the standard-error type in a note.

    Rows follow :data:`TERM_ORDER`; prefecture dummies are collapsed into one 都道府県固定効果 row. Stars:
    * p<0.1, ** p<0.05, *** p<0.01 (under each fit's own standard errors). The returned
    :class:`~statsmodels.iolib.summary2.Summary` renders as HTML in a notebook; ``.tables[0]`` is the frame.
    """
    from statsmodels.iolib.summary2 import Summary, summary_col

    results = [f.result for f in fits]
    names = list(model_names) if model_names else [outcome_ja(f.outcome) for f in fits]
    present = {t for r in results for t in r.params.index}
    order = [t for t in (terms or TERM_ORDER) if t in present]
    info = {
        "N": lambda x: f"{int(x.nobs)}",
        "R²": lambda x: f"{x.rsquared:.3f}",
    }
    col = summary_col(
        results,
        float_format=float_format,
        model_names=names,
        stars=True,
        info_dict=info,
        regressor_order=order,
        drop_omitted=True,
        include_r2=False,
        fixed_effects=[PREF],
        fe_present="あり",
        fe_absent="なし",
    )
    table = col.tables[0].copy()
    table.index = ["都道府県固定効果" if i == f"{PREF} FE" else term_ja(i) for i in table.index]
    se_types = list(dict.fromkeys(f.se_type for f in fits))
    out = Summary()
    out.add_df(table, header=True, align="l")
    out.add_text("括弧内は標準誤差: " + " / ".join(se_types) + "。")
    out.add_text("* p<0.1, ** p<0.05, *** p<0.01。")
    return out


# --- Diagnostics ------------------------------------------------------------------------------------------


def vif_table(fit: OutcomeFit) -> pd.DataFrame:
    """Variance inflation factor of each reported regressor, given all others (prefecture dummies included).

    With fixed effects in the design, a VIF measures collinearity *within* prefectures — the variation the
    coefficients are actually estimated from. Large values (> 10) for ``all_taisei``/``all_katsudo`` would
    mean the two groups' coefficients cannot be told apart.
    """
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    model = fit.result.model
    exog = np.asarray(model.exog, dtype=float)
    names = list(model.exog_names)
    rows = []
    for i, name in enumerate(names):
        if name == "Intercept" or _is_fixed_effect(name):
            continue
        rows.append(
            {"term": name, "term_ja": term_ja(name), "vif": float(variance_inflation_factor(exog, i))}
        )
    return pd.DataFrame(rows)


def residual_table(fit: OutcomeFit) -> pd.DataFrame:
    """Per observation: fitted, residual, studentized residual, leverage and Cook's distance.

    Cook's distance comes from the classical influence measures (they do not depend on the cluster-robust
    covariance); for WLS they are those of the weighted problem (OLS on √w-scaled data); the mixed model has
    none (NaN). Units with ``cooks_d > 4/n`` are the usual ones to look at. Rows in the data's order.
    """
    import statsmodels.api as sm

    r = fit.result
    d = fit.data
    n = len(d)
    if hasattr(r, "get_influence") and fit.model.startswith("OLS"):
        infl = r.get_influence()
    elif hasattr(r.model, "wexog"):  # WLS: the influence of the whitened OLS problem
        infl = sm.OLS(r.model.wendog, r.model.wexog).fit().get_influence()
    else:
        infl = None
    nan = np.full(n, np.nan)
    out = pd.DataFrame(
        {
            "fiscal_year": d["fiscal_year"].to_numpy() if "fiscal_year" in d.columns else fit.years,
            UNIT: d[UNIT].to_numpy() if UNIT in d.columns else np.arange(len(d)),
            "size_class": d["size_class"].to_numpy(),
            "n_insured_1go": d["n_insured_1go"].to_numpy(),
            "observed": np.asarray(r.model.endog, dtype=float),
            "fitted": np.asarray(r.fittedvalues, dtype=float),
            "resid": np.asarray(r.resid, dtype=float),
            "student_resid": nan
            if infl is None
            else np.asarray(infl.resid_studentized_internal, dtype=float),
            "leverage": nan if infl is None else np.asarray(infl.hat_matrix_diag, dtype=float),
            "cooks_d": nan if infl is None else np.asarray(infl.cooks_distance[0], dtype=float),
        }
    )
    out["influential"] = out["cooks_d"] > 4 / len(out)
    return out


def residual_spread_by_size(fit: OutcomeFit) -> pd.DataFrame:
    """SD of the outcome and of the residual per 規模区分 — the noise small insurers' outcomes carry.

    Published goal Ⅳ scores spread far more in size class 1 than in class 5 (SD 23.1 vs 13.2); if the
    residual SD falls with size the same way, the spread is sampling noise, not performance — the case for
    :mod:`kofukin.shrinkage`.
    """
    r = fit.result
    d = pd.DataFrame(
        {
            "size_class": fit.data["size_class"].astype("int64").to_numpy(),
            "observed": np.asarray(r.model.endog, dtype=float),
            "resid": np.asarray(r.resid, dtype=float),
        }
    )
    g = d.groupby("size_class")
    out = pd.DataFrame(
        {
            "n": g.size(),
            "sd_observed": g["observed"].std(),
            "sd_resid": g["resid"].std(),
        }
    ).reset_index()
    out.insert(1, "規模区分", out["size_class"].map(SIZE_CLASS_JA))
    return out


def compare_specifications(fits: Sequence[OutcomeFit], terms: Sequence[str] = SCORE_TERMS) -> pd.DataFrame:
    """The score coefficients across fits (FE vs mixed, OLS vs WLS, with/without controls), side by side."""
    t = tidy(list(fits))
    t = t[t["term"].isin(terms)]
    return t[["model", "outcome", "years", "term_ja", "coef", "se", "ci_low", "ci_high", "p", "n", "se_type"]]


# --- Figures (pure: a new Figure each call, no pyplot state) ----------------------------------------------


def figure_residuals(fit: OutcomeFit) -> Figure:
    """Residuals against fitted values, coloured by 規模区分, and residual SD by size class."""
    res = residual_table(fit)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(2, 1))
    for k, g in res.groupby(res["size_class"].astype("int64")):
        ax1.scatter(g["fitted"], g["resid"], s=8, alpha=0.6, label=f"{k}: {SIZE_CLASS_JA[k]}")
    ax1.axhline(0, color="grey", lw=0.8)
    ax1.set_xlabel("予測値")
    ax1.set_ylabel("残差")
    ax1.legend(title="規模区分", fontsize=7, markerscale=2)
    spread = residual_spread_by_size(fit)
    ax2.bar(spread["size_class"].astype(str), spread["sd_resid"], color="tab:blue")
    ax2.set_xlabel("規模区分")
    ax2.set_ylabel("残差の標準偏差")
    fig.suptitle(f"{outcome_ja(fit.outcome)}（{fit.years}, {fit.model}）")
    return fig


def figure_coefficients(table: pd.DataFrame, terms: Sequence[str] = SCORE_TERMS) -> Figure:
    """Coefficient plot with intervals from a :func:`tidy` table: one row per outcome, one panel per term."""
    t = table[table["term"].isin(terms)]
    fig = Figure(figsize=(4 * len(terms), 0.4 * t["outcome"].nunique() + 1.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(terms), sharey=True))
    for ax, term in zip(axes, terms, strict=True):
        s = t[t["term"] == term].reset_index(drop=True)
        y = np.arange(len(s))
        ax.errorbar(s["coef"], y, xerr=[s["coef"] - s["ci_low"], s["ci_high"] - s["coef"]], fmt="o", ms=4)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [f"{o} {yr}" for o, yr in zip(s["outcome_ja"], s["years"], strict=True)], fontsize=7)
        ax.set_title(term_ja(term))
    return fig
