"""Empirical-Bayes shrinkage (:mod:`kofukin.shrinkage`): exact posterior, its properties, a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofukin import shrinkage as sh
from kofukin.layout import size_class_of
from kofukin.outcomes import analysis_frame

# --- The posterior with everything known ------------------------------------------------------------------


def test_hand_computed_posterior():
    """y = 10, 20, 30; σ² = 1, 4, 9; μ = 20; τ² = 4.

    R = τ²/(τ²+σ²) = 4/5, 4/8, 4/13; estimate = μ + R(y − μ) = 12, 20, 20 + 40/13;
    posterior variance = Rσ² = 4/5, 2, 36/13.
    """
    post = sh.posterior_normal([10, 20, 30], [1, 4, 9], 20, 4.0)
    np.testing.assert_allclose(post["reliability"], [0.8, 0.5, 4 / 13])
    np.testing.assert_allclose(post["shrinkage"], [0.2, 0.5, 9 / 13])
    np.testing.assert_allclose(post["estimate"], [12.0, 20.0, 20 + 40 / 13])
    np.testing.assert_allclose(post["posterior_sd"] ** 2, [0.8, 2.0, 36 / 13])
    np.testing.assert_allclose(post["ci_high"] - post["estimate"], 1.959964 * post["posterior_sd"], rtol=1e-6)
    np.testing.assert_allclose(post["sampling_sd"], [1, 2, 3])


def test_prior_mean_uncertainty_adds_morris_term():
    """With Var(μ̂) = v the posterior variance gains (1 − R)²·v: here R = 1/2, σ² = 4, v = 2 → 2 + 0.5."""
    post = sh.posterior_normal([0.0], [4.0], [1.0], 4.0, prior_mean_var=[2.0])
    assert post["posterior_sd"].item() ** 2 == pytest.approx(2.0 + 0.25 * 2.0)
    assert post["estimate"].item() == pytest.approx(0.5)


def test_degenerate_variances():
    no_noise = sh.posterior_normal([3.0], [0.0], [0.0], 0.0)
    assert no_noise["estimate"].item() == 3.0 and no_noise["reliability"].item() == 1.0
    no_spread = sh.posterior_normal([3.0], [1.0], [0.0], 0.0)
    assert no_spread["estimate"].item() == 0.0
    with pytest.raises(ValueError):
        sh.posterior_normal([1.0], [-1.0], [0.0], 1.0)


finite = st.floats(-1e3, 1e3, allow_nan=False)
variance = st.floats(1e-6, 1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(y=finite, mu=finite, s2=variance, tau2=st.floats(0, 1e4, allow_nan=False), v=st.floats(0, 1e3))
def test_estimate_lies_between_observation_and_prior_and_inside_its_interval(y, mu, s2, tau2, v):
    p = sh.posterior_normal([y], [s2], [mu], tau2, [v]).iloc[0]
    lo, hi = min(y, mu), max(y, mu)
    assert lo - 1e-9 * (1 + abs(lo)) <= p["estimate"] <= hi + 1e-9 * (1 + abs(hi))
    assert p["ci_low"] <= p["estimate"] <= p["ci_high"]
    assert 0.0 <= p["reliability"] <= 1.0


@settings(max_examples=200, deadline=None)
@given(s2a=variance, s2b=variance, tau2=st.floats(1e-3, 1e4))
def test_weight_on_the_observation_falls_with_its_noise(s2a, s2b, tau2):
    lo, hi = sorted([s2a, s2b])
    p = sh.posterior_normal([1.0, 1.0], [lo, hi], 0.0, tau2)
    assert p["reliability"].iloc[0] >= p["reliability"].iloc[1]
    # …and the posterior is never less certain than the observation alone.
    assert (p["posterior_sd"] <= p["sampling_sd"] + 1e-12).all()


# --- Estimation on data with a known truth ----------------------------------------------------------------

TAU = 6.0  # true SD of the outcome around the regression
KAPPA_10K = 100.0  # sampling variance at 10,000 第1号: SD 10 there, ~30 at 1,000, ~3 at 100,000


def _simulated_frame(seed: int, n: int = 1500, tau: float = TAU, kappa: float = KAPPA_10K) -> pd.DataFrame:
    """A one-year unit frame: θ = regression + N(0, τ²), y = θ + N(0, κ·10,000/第1号)."""
    rng = np.random.default_rng(seed)
    log_pop = rng.normal(np.log(25_000), 1.3, n)
    n1 = np.maximum(np.round(np.exp(log_pop) * 0.3), 100)
    taisei = np.clip(150 + 20 * (log_pop - 10) + rng.normal(0, 45, n), 0, 380)
    katsudo = np.clip(90 + 0.3 * (taisei - 150) + rng.normal(0, 30, n), 0, 220)
    kaso = (rng.random(n) < 1 / (1 + np.exp(1.2 * (log_pop - 9.5)))).astype(float)
    theta = 10 + 0.1 * taisei + 0.15 * katsudo - 3 * kaso + rng.normal(0, tau, n)
    y = theta + rng.normal(0, np.sqrt(kappa * 10_000 / n1))
    return pd.DataFrame(
        {
            "fiscal_year": "R7",
            "unit_id": [f"{i:06d}" for i in range(n)],
            "pref_code": [f"{1 + i % 47:02d}" for i in range(n)],
            "suishin_IV": y,
            "theta": theta,
            "all_taisei": taisei,
            "all_katsudo": katsudo,
            "log_population": log_pop,
            "share_1go": n1 / np.exp(log_pop),
            "kaso": kaso,
            "n_insured_1go": n1,
            "size_class": pd.Categorical([size_class_of(int(v)) for v in n1], categories=[1, 2, 3, 4, 5]),
        }
    )


@pytest.fixture(scope="module")
def sim_frame() -> pd.DataFrame:
    return _simulated_frame(7)


def test_variance_components_are_recovered(sim_frame):
    tab = sh.shrink_outcomes(sim_frame, "R7", exponent=1.0)
    vc = sh.variance_components_of(tab)
    assert vc.method == "REML" and vc.exponent == 1.0
    assert vc.tau2 == pytest.approx(TAU**2, rel=0.35)
    assert vc.kappa_10k == pytest.approx(KAPPA_10K, rel=0.2)
    mom = sh.shrink_outcomes(sim_frame, "R7", method="moments", exponent=1.0).attrs
    assert mom["method"] == "moments" and mom["kappa_10k"] == pytest.approx(KAPPA_10K, rel=0.35)
    free = sh.shrink_outcomes(sim_frame, "R7").attrs  # α estimated (the default) finds the 1/n of the truth
    assert free["exponent"] == pytest.approx(1.0, abs=0.2)
    assert free["tau2"] == pytest.approx(TAU**2, rel=0.5)


def test_shrunken_estimates_beat_the_raw_scores(sim_frame):
    tab = sh.shrink_outcomes(sim_frame, "R7")
    theta = sim_frame.set_index("unit_id").loc[tab["unit_id"], "theta"].to_numpy()
    mse_raw = np.mean((tab["observed"] - theta) ** 2)
    mse_eb = np.mean((tab["estimate"] - theta) ** 2)
    assert mse_eb < 0.5 * mse_raw
    covered = ((tab["ci_low"] <= theta) & (theta <= tab["ci_high"])).mean()
    assert 0.92 <= covered <= 0.98
    # Small insurers are shrunk most; every prior (regression, 規模区分, national mean) beats the raw score.
    by = sh.shrinkage_by_size(tab).set_index("size_class")
    assert by["mean_reliability"].is_monotonic_increasing
    assert by.loc[1, "sd_estimate"] < by.loc[1, "sd_observed"]
    for prior in ("size_class", "grand_mean"):
        t = sh.shrink_outcomes(sim_frame, "R7", prior=prior)
        assert np.mean((t["estimate"] - theta) ** 2) < mse_raw


def test_table_layout(sim_frame):
    tab = sh.shrink_outcomes(sim_frame, "R7", pref_effects=True)
    assert "C(pref_code)" in tab.attrs["formula"]
    assert list(tab.columns) == [
        "fiscal_year", "unit_id", "pref_code", "size_class", "n_insured_1go", "observed", "prior_mean",
        "prior_mean_sd", "sampling_sd", "reliability", "shrinkage", "estimate", "posterior_sd", "ci_low",
        "ci_high", "rank_observed", "rank_estimate",
    ]  # fmt: skip
    assert len(tab) == len(sim_frame) and tab["rank_estimate"].min() == 1
    assert set(sh.COLUMNS_JA) <= set(tab.columns)
    with pytest.raises(ValueError):
        sh.shrink_outcomes(sim_frame, "R7", prior="nonsense")


def test_fixed_kappa_from_the_year_to_year_variation():
    """Two years with a stable θ: the change is pure noise, Var = 2κ·10,000/n, so the slope recovers κ; fixing
    κ at that value leaves REML to estimate τ² alone."""
    a = _simulated_frame(11)
    rng = np.random.default_rng(12)
    b = a.assign(
        fiscal_year="R8",
        suishin_IV=a["theta"] + rng.normal(0, np.sqrt(KAPPA_10K * 10_000 / a["n_insured_1go"])),
    )
    both = pd.concat([a, b], ignore_index=True)
    est = sh.sampling_variance_from_years(both, "R7", "R8")
    assert est["kappa_10k"] == pytest.approx(KAPPA_10K, rel=0.25)
    assert est["n_units"] == len(a)
    tab = sh.shrink_outcomes(both, "R8", kappa_10k=est["kappa_10k"], exponent=1.0)
    assert tab.attrs["kappa_10k"] == est["kappa_10k"]
    assert tab.attrs["tau2"] == pytest.approx(TAU**2, rel=0.4)


def test_on_an_analysis_frame_with_unions():
    """End to end from a panel: a 広域連合 is one unit whose noise is that of its summed 第1号."""
    rng = np.random.default_rng(3)
    n = 300
    lg = [f"{1 + i % 10:02d}{i:04d}" for i in range(n)]
    n1 = rng.integers(300, 60_000, n)
    panel = pd.DataFrame(
        {
            "fiscal_year": "R7",
            "lg_code6": lg,
            "population": (n1 / 0.3).astype("int64"),
            "n_insured_1go": n1,
            "size_class": [size_class_of(int(v)) for v in n1],
            "kaso": rng.random(n) < 0.3,
            "union_name": [("連合A" if i < 3 else None) for i in range(n)],
            "all_taisei": rng.integers(50, 350, n),
            "all_katsudo": rng.integers(20, 200, n),
        }
    )
    panel["suishin_IV"] = np.clip(np.round(20 + 0.1 * panel["all_taisei"] + rng.normal(0, 10, n)), 0, 100)
    panel.loc[:2, "suishin_IV"] = 55  # the union's shared score
    tab = sh.shrink_outcomes(analysis_frame(panel), "R7")
    assert len(tab) == n - 2
    union = tab[tab["unit_id"] == "U:連合A"].iloc[0]
    assert union["n_insured_1go"] == n1[:3].sum() and union["observed"] == 55


def test_figure(sim_frame):
    import matplotlib_fontja  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = sh.figure_shrinkage(sh.shrink_outcomes(sim_frame, "R7"))
    FigureCanvasAgg(fig).draw()
    assert fig.axes[0].get_xscale() == "log"


def test_flat_noise_is_found_when_alpha_is_free():
    """Noise falling slower than 1/n (as for banded points): α free finds the flatter curve, beats α = 1."""
    rng = np.random.default_rng(5)
    n = 2000
    n1 = np.exp(rng.uniform(np.log(300), np.log(200_000), n))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [50.0, 3.0] + rng.normal(0, 4, n) + rng.normal(0, np.sqrt(80 * (10_000 / n1) ** 0.3))
    free = sh.estimate_variance_components(y, X, n1, exponent=None)
    assert free.exponent == pytest.approx(0.3, abs=0.15)
    fixed = sh.estimate_variance_components(y, X, n1, exponent=1.0)
    nll = [sh._neg_reml(v.tau2, v.kappa_10k, v.exponent, y, X, n1) for v in (free, fixed)]
    assert nll[0] < nll[1] - 5
