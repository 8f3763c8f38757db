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

Members of one 広域連合 share one value (the insurer's): their noise and score terms are the union's
第1号-weighted mean. The goal Ⅳ points are then banded from these values by national rank (上位7/5/3/1割),
as MHLW does, so a regression of the *points* recovers the same signs on another, non-linear scale.
"""

from __future__ import annotations

PLANTED: dict[str, float] = {
    "beta_taisei": 0.010,
    "beta_katsudo": 0.020,
    "beta_log_population": 0.10,
    "beta_kaso": -0.20,
    "pref_sd": 0.25,
    "noise_sd_at_10k": 0.50,
    "noise_sd_cap": 3.0,
}

MEASURES: tuple[str, ...] = ("1ア", "1イ", "2", "3ア", "3イ", "4", "5ア", "5イ")
MEASURE_INTERCEPT: dict[str, float] = {m: 0.0 for m in MEASURES}
