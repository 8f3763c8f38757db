"""Two builds from the same inputs give the same numbers, and the book states what it was built from.

A second project is built from copies of the same workbooks by the real CLI, independently of ``good_book``
(conftest): its processed store must equal the first byte for byte — every Parquet file, and the manifest once
its one timestamp (``created_at``, the time of the ingest) is removed — and the same reports must glue the same
values and show the same outputs, figures byte for byte (only papermill's run times and the random ids of the
two cells the runner inserts differ between runs). The site of ``good_book`` must show the data's checksums (each source file's sha256, the store's
content hash) and the code's version and commit, each recomputed here from the files, not read back from the
manifest the page was made from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import stage_harness as h

import kofukin
from kofukin.derived import DIRECTORY as DERIVED
from kofukin.paths import SOURCE_ROOT
from kofukin.standalone import glued_values
from kofukin.store import TABLES, store_hash

pytestmark = pytest.mark.slow

TIMESTAMPS = {"created_at"}  # the manifest's only time-dependent field


@pytest.fixture(scope="module")
def second_book(tmp_path_factory, demo_workbooks):
    """The same workbooks, ingested and reported in another project by separate processes."""
    paths = h.make_project(tmp_path_factory.mktemp("second") / "book", demo_workbooks)
    h.run_cli(["ingest"], paths.root)
    h.run_cli(h.report_args(), paths.root)
    return paths


def _manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_two_ingests_write_byte_identical_stores(good_book, second_book):
    """The store is a function of the workbooks alone: anything else (time, paths, order) would show here.
    So are the national tables derived from it (kofukin.derived), which ``kofukin ingest`` writes beside it."""
    a, b = good_book.paths.processed, second_book.processed
    names = sorted(p.name for p in a.iterdir())
    assert (
        names
        == sorted(p.name for p in b.iterdir())
        == sorted([*(f"{t}.parquet" for t in TABLES), "manifest.json", DERIVED])
    )
    for t in TABLES:
        assert (a / f"{t}.parquet").read_bytes() == (b / f"{t}.parquet").read_bytes(), t
    derived = sorted(p.name for p in (a / DERIVED).iterdir())
    assert derived == sorted(p.name for p in (b / DERIVED).iterdir())
    assert {"key.txt", "outcome_frame.pkl", "gains-R7-R8.pkl", "achieved-R8.pkl", "shrunken-R8.pkl"} <= set(
        derived
    )
    for name in derived:
        assert (a / DERIVED / name).read_bytes() == (b / DERIVED / name).read_bytes(), name
    ma, mb = _manifest(a / "manifest.json"), _manifest(b / "manifest.json")
    assert {k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k)} == TIMESTAMPS, (
        "only the ingest time differs"
    )
    assert ma["store_sha256"] == mb["store_sha256"] == store_hash(a)


def test_two_report_runs_glue_identical_values(good_book, second_book):
    """Every number a page quotes (glued) is the same in both runs."""
    assert len(good_book.pages) == 7
    for page in good_book.pages:
        a = glued_values(nbformat.read(good_book.paths.book / page, as_version=4))
        b = glued_values(nbformat.read(second_book.book / page, as_version=4))
        assert len(a) >= 9, f"{page}: the page glues its numbers"
        assert a == b, f"{page}: {sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))}"


def _content(path: Path) -> list[tuple[str, str, list]]:
    """Each cell's type, source and outputs: the page without run times and the random ids of the two cells
    the runner inserts (papermill's parameters cell and the parameters box)."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, c.get("outputs", [])) for c in nb.cells]


def test_two_report_runs_write_identical_pages_figures_included(good_book, second_book):
    """Beyond the glued numbers: tables, sentences and the figures' PNG bytes are the same too."""
    for page in good_book.pages:
        a, b = _content(good_book.paths.book / page), _content(second_book.book / page)
        assert sum(len(o) for _, _, o in a) > 10, page
        assert a == b, page


class _Text(HTMLParser):
    """The text a reader sees (character references resolved), with tags and scripts dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return re.sub(r"\s+", " ", "".join(parser.parts))


def _git(*args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    res = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, env=env)
    return res.stdout.strip() if res.returncode == 0 else ""


def expected_commit() -> str:
    """The code's commit as ``git`` reports it (short, ``+dirty`` with uncommitted changes to tracked files)."""
    if Path(_git("rev-parse", "--show-toplevel") or "/nonexistent").resolve() != SOURCE_ROOT.resolve():
        return "不明"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short=12", "HEAD") + ("+dirty" if dirty else "")


def test_the_book_states_the_data_hashes_and_code_version(good_book):
    """A reader can tell which workbooks, which processed data and which code a page was built from."""
    paths = good_book.paths
    html = paths.build / "html"
    facts = page_text(html / "book" / "data_sources.html")
    facts = facts[facts.index("このサイトを作成したときのコードの版") :]  # the build-facts section
    raw = sorted(p for p in paths.raw.rglob("*") if p.is_file() and p.suffix in (".xlsx", ".csv"))
    assert len(raw) == 7  # three results workbooks, three outcome-value workbooks, the union list
    for f in raw:
        assert f"{f.name} {h.sha256(f)}" in facts, f"the build facts list {f.name} with its sha256"
    assert f"manifest: store_sha256：{store_hash(paths.processed)}" in facts, (
        "the processed store's content hash"
    )
    commit = expected_commit()
    assert f"kofukin {kofukin.__version__}" in facts and f"git コミット：{commit}" in facts

    from kofukin.sphinx_ext import data_fingerprint

    fingerprint = data_fingerprint(_manifest(paths.processed / "manifest.json"))[:12]
    for page in ("book/municipalities/313840.html", "book/national.html", "book/index.html"):
        footer = page_text(html / page)
        expected = f"ビルド情報：kofukin {kofukin.__version__} · git {commit} · データ 7 ファイル"
        assert expected in footer, page
        assert f"指紋 sha256:{fingerprint}" in footer, page


def test_a_moved_book_reruns_nothing(good_book, tmp_path):
    """Moved whole (plain copy, manifest untouched: it names the old absolute paths), the book is current:
    the site would publish it and the reports stage skips every page, leaving them byte-identical."""
    from kofukin.paths import ProjectPaths
    from kofukin.pipeline import stale_pages

    moved = tmp_path / "moved"
    shutil.copytree(good_book.paths.root, moved, symlinks=True)
    paths = ProjectPaths(moved.resolve())
    assert stale_pages(paths) == []
    out = h.run_cli(h.report_args(), paths.root).stdout
    assert "7 reports: 0 executed, 7 skipped, 0 failed" in out
    assert h.pages(paths) == good_book.pages
