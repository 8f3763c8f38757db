"""Named random streams: one seed, one independent generator per component of the model.

Every part of the generator draws from its own stream (``stream(seed, "population")``,
``stream(seed, "item", key)`` …) instead of sharing one sequential generator. Adding or reordering a component
therefore never shifts the numbers of the others, so a calibration tuned on one part stays valid when another
part changes, and two runs with the same seed are identical by construction.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *names: str) -> np.random.Generator:
    """A numpy Generator determined by ``seed`` and the component names (CRC-32, stable across processes)."""
    keys = [zlib.crc32(name.encode("utf-8")) for name in names]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def ar1(rng: np.random.Generator, n_years: int, size: int, phi: float) -> np.ndarray:
    """``n_years`` standard-normal draws per unit, correlated φ from one year to the next (stationary AR(1))."""
    z = rng.standard_normal((n_years, size))
    out = np.empty_like(z)
    out[0] = z[0]
    for t in range(1, n_years):
        out[t] = phi * out[t - 1] + np.sqrt(1.0 - phi**2) * z[t]
    return out
