"""The tuning constants of the synthetic item model, in one place (documented in data/README.md).

They were set once, by hand, so that the default seed lands on the published national figures; the loadings
of the item latents on their group factor (λ) are not here because they are solved for at run time (one
bisection per year and group, on the group subtotal's published standard deviation).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatentParams:
    """Latent capacity → group factor → item latent (see :mod:`kofukin.synthetic.items`)."""

    # capacity C = standardised(size_slope · z(ln min(第1号, size_cap)) + kaso_shift · 過疎 + pref_sd · u_pref + U),
    # U ~ N(0, 1) per municipality, AR(1) over the years
    size_slope: float = 0.70
    size_cap: float = 80_000  # more 第1号 adds no capacity: keeps 10万人以上 near its published mean
    kaso_shift: float = -0.05
    pref_sd: float = 0.30
    capacity_phi: float = 0.92  # year-to-year correlation of the municipality's own capacity term
    # group factor G = w · C + √(1 − w²) · H, H per grant×goal×group, AR(1)
    general_weight: float = 0.70
    group_phi: float = 0.85
    # item latent y = λ · G + √(1 − λ²) · E, E per item (or per nested band sequence), AR(1)
    item_phi: float = 0.80
    # synthetic R5 total behind R6's 前年度得点: R6 total + shift + N(0, sd)
    r5_shift: float = -12.0
    r5_noise_sd: float = 35.0


DEFAULT = LatentParams()
