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


@pytest.fixture(scope="session")
def demo_workbooks(tmp_path_factory, synthetic_panel):
    """The bundled panel's workbooks (data/raw/demo of a fresh project), written once for the stage tests."""
    from kofukin.synthetic import write_demo_data

    target = tmp_path_factory.mktemp("workbooks") / "demo"
    write_demo_data(target, panel=synthetic_panel)
    return target


@pytest.fixture(scope="session")
def good_book(tmp_path_factory, demo_workbooks):
    """A scratch project built by the real CLI: ``kofukin ingest``, ``kofukin reports`` for four 鳥取県
    municipalities (with their prefecture, the national page and the outcomes chapter) and ``kofukin site``.

    Shared by the interruption and reproducibility tests: each copies it before changing anything."""
    from stage_harness import build_good_book

    return build_good_book(tmp_path_factory.mktemp("good") / "book", demo_workbooks)
