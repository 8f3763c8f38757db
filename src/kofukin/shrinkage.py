"""Empirical-Bayes shrinkage of outcome scores: how much of a small insurer's goal Ⅳ score is noise?

A goal Ⅳ outcome is a rate over the insurer's elderly population; with a few hundred 第1号被保険者 it moves a
lot from chance alone. The published scores show it: the SD of the outcome score is 23.1 in 規模区分 1 and
13.2 in class 5. Ranking small insurers on their raw score rewards and punishes luck. This module estimates,
per insurer, what its outcome is likely to be once the noise is discounted.

The model (normal–normal, Morris 1983)
--------------------------------------
For unit *i* with observed outcome ``y_i`` and 第1号被保険者数 ``n_i``::

    y_i | θ_i ~ N(θ_i, σ²_i),        σ²_i = κ · (10,000 / n_i)^α          (sampling noise)
    θ_i       ~ N(x_iᵀβ, τ²)                                             (true outcome around the prior mean)

* ``σ²_i`` — the sampling variance; κ is the sampling variance of an insurer with 10,000 第1号 (so ``√κ``
  is comparable with ``noise_sd_at_10k`` of the synthetic truth). For an underlying outcome *value* (a rate)
  it falls as 1/n: α = 1 (pass ``exponent=1.0``). The goal Ⅳ *points* are a bounded rank-band transform of
  the value — a tiny insurer's points cannot stray further than 0 or 20 per indicator — so their noise falls
  more slowly than 1/n; by default α is therefore estimated with τ² and κ (``exponent=None``). (On the
  synthetic default panel, when this was written, the R8 points gave α ≈ 0.3 and τ² ≈ 0 — the planted
  signal is a few per cent of the variance, nearly all the spread is noise — with a REML fit 47 log-units
  better than at α = 1.) κ can also be fixed
  from the year-to-year variation (:func:`sampling_variance_from_years`) instead of the cross-section.
* ``x_iᵀβ`` — the prior mean: the regression prediction from the structure/activity scores and controls
  (``prior="regression"``), the 規模区分 mean (``"size_class"``) or the national mean (``"grand_mean"``).
* ``τ²`` — how much true outcomes differ beyond what the prior mean explains.

τ², κ (and α) are estimated by REML from the marginal model ``y ~ N(Xβ, diag(τ² + σ²_i))`` — identified
because the noise part shrinks with n and τ² does not — starting from the method-of-moments fit of squared
OLS residuals on ``(10,000/n)^α``. β is then the GLS estimate. The posterior of θ_i given the estimates is::

    reliability R_i = τ² / (τ² + σ²_i)              (the weight on the observation; 1 − R_i is the shrinkage)
    estimate        = μ_i + R_i · (y_i − μ_i)        (μ_i = x_iᵀβ̂)
    posterior var   = R_i · σ²_i + (1 − R_i)² · v_i  (v_i = x_iᵀ Cov(β̂) x_i: the prior mean's own uncertainty)

The second term of the variance is Morris's correction for estimating β; the uncertainty of τ² and κ is not
propagated, so intervals are slightly too narrow when τ² is poorly determined. τ² = 0 is a possible
answer: the data then cannot tell units apart beyond the prior mean, every estimate *is* its prior mean
(reliability 0) and the posterior SD is the prior mean's own uncertainty. Scores are bounded (0–100) but
the model is not: the estimate stays inside the range whenever y and μ do, the interval may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from matplotlib.figure import Figure
from scipy import linalg, optimize, stats

from kofukin.layout import SIZE_CLASS_JA
from kofukin.outcomes import (
    DEFAULT_CONTROLS,
    OUTCOME_SCORE,
    PREF,
    SCORE_TERMS,
    UNIT,
    complete_cases,
    outcome_ja,
)

N_REF = 10_000.0
EXPOSURE = "n_insured_1go"
PRIORS: tuple[str, ...] = ("regression", "size_class", "grand_mean")

COLUMNS_JA: dict[str, str] = {
    "observed": "観測値",
    "prior_mean": "事前平均（予測値）",
    "sampling_sd": "標本誤差SD",
    "reliability": "信頼度（観測値の重み）",
    "estimate": "縮小推定値",
    "posterior_sd": "事後SD",
    "ci_low": "95%区間 下限",
    "ci_high": "95%区間 上限",
    "rank_observed": "順位（観測値）",
    "rank_estimate": "順位（縮小推定値）",
}


@dataclass(frozen=True)
class VarianceComponents:
    """τ² (true variance around the prior mean) and the sampling-variance curve κ·(10,000/n)^α."""

    tau2: float
    kappa_10k: float
    exponent: float = 1.0
    method: str = "given"

    def sampling_var(self, n: np.ndarray | pd.Series | float) -> np.ndarray:
        return self.kappa_10k * (N_REF / np.asarray(n, dtype=float)) ** self.exponent


# --- The posterior, given everything ----------------------------------------------------------------------


def posterior_normal(
    observed: np.ndarray | pd.Series | Sequence[float],
    sampling_var: np.ndarray | pd.Series | Sequence[float] | float,
    prior_mean: np.ndarray | pd.Series | Sequence[float] | float,
    tau2: float,
    prior_mean_var: np.ndarray | pd.Series | Sequence[float] | float = 0.0,
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """The normal–normal posterior per unit (see the module docstring for the formulas).

    Returns ``observed, prior_mean, sampling_sd, reliability, shrinkage, estimate, posterior_sd, ci_low,
    ci_high``. ``reliability`` (= τ²/(τ²+σ²), the weight on the observation) falls as σ² grows; with
    τ² = σ² = 0 the observation is taken as it is.
    """
    y = np.asarray(observed, dtype=float)
    s2 = np.broadcast_to(np.asarray(sampling_var, dtype=float), y.shape)
    mu = np.broadcast_to(np.asarray(prior_mean, dtype=float), y.shape)
    v_mu = np.broadcast_to(np.asarray(prior_mean_var, dtype=float), y.shape)
    if tau2 < 0 or np.any(s2 < 0) or np.any(v_mu < 0):
        raise ValueError("variances must be non-negative")
    denom = tau2 + s2
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(denom > 0, tau2 / np.where(denom > 0, denom, 1.0), 1.0)
    est = mu + rel * (y - mu)
    post_var = rel * s2 + (1 - rel) ** 2 * v_mu
    sd = np.sqrt(post_var)
    z = stats.norm.ppf(0.5 + level / 2)
    return pd.DataFrame(
        {
            "observed": y,
            "prior_mean": mu,
            "sampling_sd": np.sqrt(s2),
            "reliability": rel,
            "shrinkage": 1 - rel,
            "estimate": est,
            "posterior_sd": sd,
            "ci_low": est - z * sd,
            "ci_high": est + z * sd,
        }
    )


# --- Estimating τ², κ (and α) -----------------------------------------------------------------------------


def _gls(
    y: np.ndarray, X: np.ndarray, v: np.ndarray, *, with_cov: bool = True
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """GLS with diagonal covariance v: (β, Cov(β) or None, log det XᵀV⁻¹X).

    REML calls this a few hundred times, so it avoids multithreaded BLAS calls on these small matrices
    (``einsum`` without ``optimize`` runs its own loops): on a loaded machine OpenBLAS's threads make each
    call tens of times slower. Cholesky; a rank-deficient design falls back to the pseudo-inverse and the
    log-determinant of its non-zero eigenvalues.
    """
    w = 1.0 / v
    xw = X * w[:, None]
    xtwx = np.einsum("ij,ik->jk", xw, X, optimize=False)
    xtwy = np.einsum("ij,i->j", xw, y, optimize=False)
    try:
        c = linalg.cho_factor(xtwx, check_finite=False)
        beta = linalg.cho_solve(c, xtwy, check_finite=False)
        cov = linalg.cho_solve(c, np.eye(len(xtwx)), check_finite=False) if with_cov else None
        logdet = 2.0 * float(np.log(np.diag(c[0])).sum())
    except linalg.LinAlgError:
        eig = np.linalg.eigvalsh(xtwx)
        logdet = float(np.log(eig[eig > eig.max() * 1e-10]).sum())
        pinv = np.linalg.pinv(xtwx, hermitian=True)
        beta, cov = pinv @ xtwy, (pinv if with_cov else None)
    return beta, cov, logdet


def _moments(y: np.ndarray, X: np.ndarray, n: np.ndarray, exponent: float) -> tuple[float, float]:
    """Method of moments: regress r²/(1−h) from OLS on [1, (10,000/n)^α]; intercept τ², slope κ (both ≥ 0)."""
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    q, _ = np.linalg.qr(X)
    h = np.clip((q**2).sum(axis=1), 0, 0.99)
    z = r**2 / (1 - h)
    g = (N_REF / n) ** exponent
    A = np.column_stack([np.ones_like(g), g])
    tau2, kappa = np.linalg.lstsq(A, z, rcond=None)[0]
    if tau2 < 0:
        tau2, kappa = 0.0, float((g @ z) / (g @ g))
    if kappa < 0:
        tau2, kappa = float(z.mean()), 0.0
    return float(max(tau2, 0.0)), float(max(kappa, 0.0))


def _neg_reml(
    tau2: float, kappa: float, exponent: float, y: np.ndarray, X: np.ndarray, n: np.ndarray
) -> float:
    v = tau2 + kappa * (N_REF / n) ** exponent
    if np.any(v <= 0):
        return np.inf
    beta, _, logdet = _gls(y, X, v, with_cov=False)
    r = y - np.einsum("ij,j->i", X, beta, optimize=False)
    return 0.5 * (np.log(v).sum() + logdet + (r**2 / v).sum())


def estimate_variance_components(
    y: np.ndarray,
    X: np.ndarray,
    n: np.ndarray,
    *,
    method: str = "reml",
    exponent: float | None = 1.0,
    kappa_10k: float | None = None,
) -> VarianceComponents:
    """τ², κ (and α if ``exponent=None``) of the marginal model ``y ~ N(Xβ, τ² + κ(10,000/n)^α)``.

    ``method="moments"`` returns the moment fit at α = ``exponent`` (1 if None; the REML starting point).
    ``kappa_10k`` fixes κ (e.g. from :func:`sampling_variance_from_years`) and τ² (and α) are estimated. With
    α free, REML starts from the moment fits at α = 0.25, 0.5 and 1 and keeps the best optimum (τ² and α
    trade off against each other, so one start could stop in the wrong valley).
    """
    y, X, n = np.asarray(y, float), np.asarray(X, float), np.asarray(n, float)
    alpha0 = 1.0 if exponent is None else float(exponent)
    tau0, kap0 = _moments(y, X, n, alpha0)
    if kappa_10k is not None:
        kap0 = float(kappa_10k)
        g = (N_REF / n) ** alpha0
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        tau0 = float(max(np.mean((y - X @ beta) ** 2 - kap0 * g), 0.0))
    if method == "moments":
        return VarianceComponents(tau0, kap0, alpha0, "moments")
    if method != "reml":
        raise ValueError("method must be 'reml' or 'moments'")
    scale = float(np.var(y)) or 1.0
    free_kappa = kappa_10k is None
    free_alpha = exponent is None

    def unpack(p: np.ndarray) -> tuple[float, float, float]:
        it = iter(p)
        t = next(it) * scale
        k = next(it) * scale if free_kappa else kap0
        a = next(it) if free_alpha else alpha0
        return t, k, a

    bounds = [(0.0, 100.0)] + ([(1e-12, 100.0)] if free_kappa else []) + ([(0.05, 3.0)] if free_alpha else [])
    starts = []
    for a0 in (0.25, 0.5, 1.0) if free_alpha else (alpha0,):
        t0, k0 = (tau0, kap0) if (a0 == alpha0 or not free_kappa) else _moments(y, X, n, a0)
        x0 = [t0 / scale] + ([k0 / scale] if free_kappa else []) + ([a0] if free_alpha else [])
        starts.append([min(max(v, lo), hi) for v, (lo, hi) in zip(x0, bounds, strict=True)])
    fits = [
        optimize.minimize(
            lambda p: _neg_reml(*unpack(p), y, X, n), np.asarray(x0), method="L-BFGS-B", bounds=bounds
        )
        for x0 in starts
    ]
    best = min(fits, key=lambda r: r.fun)
    t, k, a = unpack(best.x)
    return VarianceComponents(float(t), float(k), float(a), "REML")


def sampling_variance_from_years(
    frame: pd.DataFrame,
    year_a: str,
    year_b: str,
    outcome: str = OUTCOME_SCORE,
    *,
    exponent: float | None = 1.0,
) -> pd.Series:
    """κ from the year-to-year change: ``Var(y_b − y_a) = Var(true change) + 2κ(10,000/n)^α``.

    If an insurer's true outcome moves less between two years than the sampling noise does, the variance of
    the change grows with ``(10,000/n)^α`` with slope 2κ — an estimate of the noise that does not rest on the
    cross-sectional prior model. Fitted by REML of ``Δ ~ N(δ, c + 2κ(10,000/n)^α)`` (the squared changes are
    too heavy-tailed for a least-squares fit), with n the harmonic mean of the two years' 第1号. Returns
    ``kappa_10k, var_true_change, exponent, n_units``.
    """
    a = frame.loc[frame["fiscal_year"] == year_a, [UNIT, outcome, EXPOSURE]]
    b = frame.loc[frame["fiscal_year"] == year_b, [UNIT, outcome, EXPOSURE]]
    m = a.merge(b, on=UNIT, suffixes=("_a", "_b")).dropna()
    d = (m[f"{outcome}_b"] - m[f"{outcome}_a"]).to_numpy(float)
    n = 2 / (1 / m[f"{EXPOSURE}_a"].to_numpy(float) + 1 / m[f"{EXPOSURE}_b"].to_numpy(float))
    vc = estimate_variance_components(d, np.ones((len(d), 1)), n, exponent=exponent)
    return pd.Series(
        {
            "kappa_10k": vc.kappa_10k / 2,
            "var_true_change": vc.tau2,
            "exponent": vc.exponent,
            "n_units": len(m),
        }
    )


# --- The per-unit table -----------------------------------------------------------------------------------


def prior_formula(
    outcome: str,
    prior: str = "regression",
    controls: Sequence[str] = DEFAULT_CONTROLS,
    pref_effects: bool = False,
) -> str:
    """The formula of the prior mean: the score regression, the 規模区分 means or the national mean."""
    if prior == "regression":
        rhs = [*SCORE_TERMS, *controls, *([f"C({PREF})"] if pref_effects else [])]
    elif prior == "size_class":
        rhs = ["C(size_class)"]
    elif prior == "grand_mean":
        rhs = ["1"]
    else:
        raise ValueError(f"prior must be one of {PRIORS}")
    return f"{outcome} ~ " + " + ".join(rhs)


def shrink_outcomes(
    frame: pd.DataFrame,
    year: str,
    outcome: str = OUTCOME_SCORE,
    *,
    prior: str = "regression",
    controls: Sequence[str] = DEFAULT_CONTROLS,
    pref_effects: bool = False,
    method: str = "reml",
    exponent: float | None = None,
    kappa_10k: float | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Empirical-Bayes estimates of one year's outcome per unit of :func:`kofukin.outcomes.analysis_frame`.

    The prior mean is, by default, the regression on the structure/activity scores and the controls without
    prefecture effects: a prefecture dummy estimated from a handful of small insurers is itself noisy, and the
    shrinkage target should be stable (``pref_effects=True`` adds them; their uncertainty then enters
    ``v_i``). ``exponent`` is α of the sampling variance, estimated by default (see the module docstring;
    pass 1.0 for the underlying values). Use insurer units (the default frame): a 広域連合's members share
    one outcome, and its noise is that of the union's summed 第1号.

    Returns one row per unit: ``fiscal_year, unit_id, pref_code, size_class, n_insured_1go, observed,
    prior_mean, prior_mean_sd, sampling_sd, reliability, shrinkage, estimate, posterior_sd, ci_low, ci_high,
    rank_observed, rank_estimate`` (competition ranks, best first). ``.attrs`` holds ``tau2, kappa_10k,
    exponent, method, formula`` (also returned by :func:`variance_components_of`).
    """
    formula = prior_formula(outcome, prior, controls, pref_effects)
    sub = frame[frame["fiscal_year"] == year]
    needed = [outcome, EXPOSURE, UNIT, PREF, "size_class"]
    if prior == "regression":
        needed += [*SCORE_TERMS, *(c[2:-1] if c.startswith("C(") else c for c in controls)]
    data = complete_cases(sub, needed)
    y_df, X_df = patsy.dmatrices(formula, data, return_type="dataframe", NA_action="raise")
    y = y_df.iloc[:, 0].to_numpy(float)
    X = X_df.to_numpy(float)
    n = data[EXPOSURE].to_numpy(float)
    vc = estimate_variance_components(y, X, n, method=method, exponent=exponent, kappa_10k=kappa_10k)
    s2 = vc.sampling_var(n)
    beta, cov, _ = _gls(y, X, vc.tau2 + s2)
    mu = X @ beta
    v_mu = np.einsum("ij,jk,ik->i", X, cov, X)
    post = posterior_normal(y, s2, mu, vc.tau2, np.clip(v_mu, 0, None), level=level)
    post.insert(2, "prior_mean_sd", np.sqrt(np.clip(v_mu, 0, None)))
    ids = data[["fiscal_year", UNIT, PREF, "size_class", EXPOSURE]].reset_index(drop=True)
    out = pd.concat([ids, post], axis=1)
    out["rank_observed"] = out["observed"].rank(method="min", ascending=False).astype("int64")
    out["rank_estimate"] = out["estimate"].rank(method="min", ascending=False).astype("int64")
    out.attrs.update(
        {
            "tau2": vc.tau2,
            "kappa_10k": vc.kappa_10k,
            "exponent": vc.exponent,
            "method": vc.method,
            "formula": formula,
        }
    )
    return out


def variance_components_of(table: pd.DataFrame) -> VarianceComponents:
    """The variance components a :func:`shrink_outcomes` table was computed with."""
    a = table.attrs
    return VarianceComponents(a["tau2"], a["kappa_10k"], a["exponent"], a["method"])


def shrinkage_by_size(table: pd.DataFrame) -> pd.DataFrame:
    """Per 規模区分: units, SD of observed and of shrunken scores, mean reliability and posterior SD."""
    g = table.groupby(table["size_class"].astype("int64"))
    out = pd.DataFrame(
        {
            "n": g.size(),
            "sd_observed": g["observed"].std(),
            "sd_estimate": g["estimate"].std(),
            "mean_sampling_sd": g["sampling_sd"].mean(),
            "mean_reliability": g["reliability"].mean(),
            "mean_posterior_sd": g["posterior_sd"].mean(),
        }
    ).reset_index()
    out.insert(1, "規模区分", out["size_class"].map(SIZE_CLASS_JA))
    return out


def figure_shrinkage(table: pd.DataFrame, outcome: str = OUTCOME_SCORE) -> Figure:
    """Observed and shrunken scores against 第1号 (log scale): small insurers move most towards the prior."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    x = table[EXPOSURE].to_numpy(float)
    ax.vlines(x, table["observed"], table["estimate"], color="grey", lw=0.5, alpha=0.5)
    ax.scatter(x, table["observed"], s=6, color="tab:grey", label="観測値")
    ax.scatter(x, table["estimate"], s=6, color="tab:red", label="縮小推定値")
    ax.set_xscale("log")
    ax.set_xlabel("第1号被保険者数（対数目盛）")
    ax.set_ylabel(outcome_ja(outcome))
    ax.legend()
    return fig
