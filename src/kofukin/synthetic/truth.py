"""The relationship planted in the synthetic panel, so the regression chapter has a known truth to recover.

For every year, municipality *i* and outcome measure *m* (1ア, 1イ, 2, 3ア, 3イ, 4, 5ア, 5イ), the underlying
outcome value (oriented so that higher is better) is

    value[i, m] = intercept[m]
                  + beta_taisei  · all_taisei[i]     (体制・取組指標群 計, 0–380, goal Ⅳ excluded by construction)
                  + beta_katsudo · all_katsudo[i]    (活動指標群 計, 0–220)
                  + beta_log_population · ln(population[i])
                  + beta_kaso · kaso[i]
                  + u[prefecture(i)]                 (prefecture effect, N(0, pref_sd²), fixed per seed)
                  + e[i, m]                          (N(0, σᵢ²), σᵢ = noise_sd_at_10k · √(10,000 / 第1号ᵢ), capped)

The noise is independent across measures, except that ア and イ of one 択一 indicator (1, 3, 5)
share part of it: corr(e[i, kア], e[i, kイ]) = ρ[year, k], solved by the generator so that the
published 択一 shares come out (written with the other drawn values to planted_truth_合成データ.json).
Noise dominates, as in the real outcome indicators (their five points are nearly uncorrelated):
noise_sd_at_10k is set so that the goal Ⅳ subtotal has about the published standard deviation.

Members of one 広域連合 share one value (the insurer's): the 第1号-weighted mean of the members' values,
i.e. every term (noise and score terms included) is the union's 第1号-weighted mean. The goal Ⅳ points
are then banded from these values by national rank (上位7/5/3/1割), as MHLW does, so a regression of the
*points* recovers the same signs on another, non-linear scale.
"""

from __future__ import annotations

PLANTED: dict[str, float] = {
    "beta_taisei": 0.010,
    "beta_katsudo": 0.020,
    "beta_log_population": 0.10,
    "beta_kaso": -0.20,
    "pref_sd": 0.25,
    "noise_sd_at_10k": 4.0,
    "noise_sd_cap": 20.0,
}

MEASURES: tuple[str, ...] = ("1ア", "1イ", "2", "3ア", "3イ", "4", "5ア", "5イ")
MEASURE_INTERCEPT: dict[str, float] = {m: 0.0 for m in MEASURES}
