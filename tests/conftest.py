"""Shared test set-up.

BLAS threads are pinned to one before numpy loads: on two shared cores, OpenBLAS spreading each small
regression over threads made the statistics tests ~20× slower.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_panel():
    """The bundled synthetic panel (default seed), generated once per test session."""
    from kofukin.synthetic import generate_panel

    return generate_panel()
