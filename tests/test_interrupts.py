"""kill -9 in the middle of each stage: the previous good output stays byte-identical, the next run completes.

Each test copies the good book (``good_book`` in conftest: ingest, reports and site built once by the real CLI),
changes an input so that the stage's output would differ, starts the stage as a separate ``kofukin`` process,
waits until the stage is demonstrably half-way — its staging directory holds part of the new output, or some
reports of the new run are written while a kernel runs the next — then freezes and SIGKILLs the whole process
group. No handler or ``finally`` runs after SIGKILL, so whatever the stage leaves is what a power cut or an OOM
kill would leave. Then:

* what readers look at (``data/processed``, the report pages in ``book/``, ``_build/html``) is byte-identical
  to before, or — for report pages, which the runner writes one by one, atomically — a complete page of the new
  run; never a partial file;
* the same command run again completes with the new content, and sweeps what the killed run left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import stage_harness as h

from kofukin.pipeline import stale_pages
from kofukin.reference import load_catalogue
from kofukin.runner.kernel import KERNEL_MODULE
from kofukin.runner.manifest import read_manifest
from kofukin.scoring import TARGET_KEYS, add_cross_grant_columns
from kofukin.standalone import glued_values
from kofukin.store import TABLES, load_store, staging_dir, sweep_staging, write_store


def _staging_with_files(parent: Path, name: str) -> Path | None:
    """A staging directory of ``parent/name`` that already holds a file (the stage is writing into it)."""
    for d in parent.glob(f".{name}.tmp-*"):
        try:
            if any(p.is_file() for p in d.iterdir()):
                return d
        except FileNotFoundError:
            continue
    return None


@pytest.mark.slow
def test_killed_ingest_leaves_the_store_and_the_next_run_completes(good_book, tmp_path):
    """Killed while writing the new store into its staging directory: readers keep the old store whole."""
    paths = good_book.copy(tmp_path / "book")
    for f in paths.demo_raw.glob("R6_*"):  # changed inputs: a store of R7 and R8 only, every table differs
        f.unlink()

    run = h.start_cli(["ingest"], paths.root)
    try:
        staging = h.wait_for(run, lambda: _staging_with_files(paths.data, "processed"))
        h.freeze(run)
        assert staging.is_dir(), "frozen while the new store was being written, before the swap"
        assert h.tree_digest(paths.processed) == good_book.store
    finally:
        h.kill(run)
    assert run.proc.returncode == -signal.SIGKILL, "killed, not finished"

    assert h.tree_digest(paths.processed) == good_book.store, "the previous store is byte-identical"
    assert load_store(paths.processed).years == ["R6", "R7", "R8"]
    assert list(paths.data.glob(".processed.tmp-*")) == [staging], "the killed run left its staging behind"

    h.run_cli(["ingest"], paths.root)
    store = load_store(paths.processed)
    assert store.years == ["R7", "R8"]
    assert store.manifest["years"] == ["R7", "R8"]
    assert h.sha256(paths.processed / "subtotals.parquet") != good_book.store["subtotals.parquet"]
    assert not list(paths.data.glob(".processed.tmp-*")), "the next run swept the killed run's staging"
    assert not (paths.data / ".processed.old").exists()


def _page_of(record: dict, book: Path) -> str:
    return Path(record["output"]).relative_to(book).as_posix()


def _glue(path: Path) -> dict[str, str]:
    return {k: v for k, (_, v) in glued_values(nbformat.read(path, as_version=4)).items()}


def _award_an_item_to_everyone(processed: Path, year: str = "R8") -> str:
    """Change the store as a corrected workbook would: every municipality at 0 on the least-scored additive
    推進 目標Ⅰ 体制・取組 item of ``year`` gets its maximum, and every subtotal above the item rises with it.

    Every report's numbers move (municipalities, the prefecture mean, the national mean, the regressions), and
    the store stays valid (:func:`kofukin.store.write_store` validates it). Returns the item id."""
    store = load_store(processed)
    cat = load_catalogue()
    cand = cat[
        (cat["fiscal_year"] == year)
        & (cat["grant"] == "suishin")
        & (cat["goal"] == "I")
        & (cat["group"] == "taisei")
        & (cat["scoring_rule"] == "additive")
    ]
    item = cand.sort_values(["share_scoring", "item_id"]).iloc[0]
    ip = store.item_points.copy()
    zero = (ip["item_id"] == item["item_id"]) & (ip["points"] == 0)
    awarded = set(ip.loc[zero, "lg_code6"])
    ip.loc[zero, "points"] = int(item["max_points"])
    sub = store.subtotals.copy()
    rows = (sub["fiscal_year"] == year) & sub["lg_code6"].isin(awarded)
    for key in ("suishin_I_taisei", "suishin_I", "suishin_total"):
        sub.loc[rows, key] += int(item["max_points"])
    sub[list(TARGET_KEYS)] = add_cross_grant_columns(sub[list(TARGET_KEYS)])
    tables = {name: getattr(store, name) for name in TABLES} | {"item_points": ip, "subtotals": sub}
    write_store(tables, store.manifest, processed)
    assert len(awarded) > 100, "a change large enough to move every page's numbers"
    return str(item["item_id"])


@pytest.mark.slow
def test_killed_reports_keep_every_page_whole_and_the_next_run_completes(good_book, tmp_path):
    """Killed with some pages of a new store written and a kernel busy with the next: every page is whole,
    the untouched ones byte-identical, no kernel is orphaned, the mixed book is not published, and the next
    run executes only what is missing."""
    paths = good_book.copy(tmp_path / "book")
    runs = paths.runs_manifest
    n_before = len(read_manifest(runs))
    assert n_before == len(good_book.pages) == 7  # national, outcomes, 鳥取県, four municipalities
    old_national = _glue(paths.book / "national.ipynb")
    assert stale_pages(paths) == []
    _award_an_item_to_everyone(paths.processed)  # changed inputs: every page would change
    assert stale_pages(paths) == sorted(f"book/{page}" for page in good_book.pages)

    def new_pages() -> list[str]:
        """Pages this run has finished (the runner appends a record after each atomic write)."""
        return [_page_of(r, paths.book) for r in read_manifest(runs)[n_before:] if r["status"] == "executed"]

    def kernels(pids: list[int]) -> list[int]:
        return [p for p in pids if KERNEL_MODULE in h.cmdline(p)]

    run = h.start_cli(h.report_args(), paths.root)
    procs: list[int] = []
    try:
        h.wait_for(run, lambda: new_pages() if kernels(h.descendants(run.proc.pid)) else None, every=0.05)
        procs = h.freeze(run)
        done = new_pages()
        assert kernels(procs), "a kernel is executing a report at the moment of the kill"
        assert 0 < len(done) < 7, done
    finally:
        h.kill(run)
    assert run.proc.returncode == -signal.SIGKILL, "killed, not finished"
    survivors = h.wait_gone(procs)
    assert survivors == [], f"orphaned processes after the kill: {[h.cmdline(p) for p in survivors]}"

    after = h.pages(paths)
    assert sorted(after) == sorted(good_book.pages), "no page lost, no partial file where the book reads"
    good_glue = {page: _glue(good_book.paths.book / page) for page in good_book.pages}
    replaced = {page for page, digest in after.items() if digest != good_book.pages[page]}
    assert set(done) <= replaced and len(replaced) < 7, (
        "some pages replaced, the others byte for byte as before"
    )
    for page in replaced:  # by the killed run: a whole page, every glued value present
        assert set(_glue(paths.book / page)) == set(good_glue[page]), page
    assert h.tree_digest(paths.build / "html") == good_book.site

    # The half-replaced book is never published: the site stage refuses it and keeps the previous site.
    left = sorted(f"book/{page}" for page in good_book.pages if page not in done)
    assert stale_pages(paths) == left
    site = subprocess.run(
        [*h.KOFUKIN, "site"], cwd=paths.root, env=h.cli_env(paths.root), capture_output=True, text=True
    )
    assert site.returncode == 1, site.stdout + site.stderr
    assert f"book/ の {len(left)} ページが現在のデータとコードで実行されていません" in site.stderr, (
        site.stderr
    )
    assert h.tree_digest(paths.build / "html") == good_book.site

    res = h.run_cli(h.report_args(), paths.root)
    assert f"7 reports: {7 - len(done)} executed, {len(done)} skipped, 0 failed" in res.stdout, res.stdout
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    r8 = sub[sub["fiscal_year"] == "R8"].set_index("lg_code6")["grand_total"]
    for code in h.CODES:
        assert int(_glue(paths.book / "municipalities" / f"{code}.ipynb")["grand_total"]) == r8[code]
    national = _glue(paths.book / "national.ipynb")
    assert float(national["mean_total"]) == pytest.approx(round(r8.mean(), 1))
    assert national["mean_total"] != old_national["mean_total"]
    assert all(h.pages(paths)[page] != digest for page, digest in good_book.pages.items())
    assert stale_pages(paths) == []


def _sphinx_wrote_since(build: Path, start_ns: int) -> bool:
    """Sphinx has (re)written a page of its kept output (``_build/.site-cache/html``) since ``start_ns``: the
    build is past start-up and busy with pages, Pagefind or publishing — any of which a kill may interrupt."""
    try:
        return any(p.stat().st_mtime_ns > start_ns for p in (build / ".site-cache" / "html").rglob("*.html"))
    except OSError:  # Sphinx is replacing files (e.g. _static) under the walk: ask again at the next poll
        return False


ADDED = "この一文は、中断されたビルドの次のビルドで現れます。"


@pytest.mark.slow
def test_killed_site_build_leaves_the_site_and_the_next_build_completes(good_book, tmp_path):
    """Killed once Sphinx is writing pages (incrementally, into its cache): the published site is untouched."""
    paths = good_book.copy(tmp_path / "book")
    html = paths.build / "html"
    index = paths.book / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + f"\n{ADDED}\n", encoding="utf-8")

    start = time.time_ns()
    run = h.start_cli(["site", "--jobs", "1"], paths.root)
    try:
        h.wait_for(run, lambda: _sphinx_wrote_since(paths.build, start), every=0.05)
        h.freeze(run)
        assert h.tree_digest(html) == good_book.site
    finally:
        h.kill(run)
    assert run.proc.returncode == -signal.SIGKILL, "killed, not finished"

    assert h.tree_digest(html) == good_book.site, "the previous site is byte-identical"
    assert len(list(paths.build.glob(".site.tmp-*"))) <= 1, "at most the killed build's staging is left"
    assert not (paths.build / ".html.old").exists()

    h.run_cli(["site", "--jobs", "1"], paths.root)
    assert ADDED in (html / "book" / "index.html").read_text(encoding="utf-8")
    assert not list(paths.build.glob(".site.tmp-*")), "the next build swept the killed build's staging"
    pages = {p for p in h.tree_digest(html) if p.endswith(".html") and not p.startswith("pagefind/")}
    assert pages == {p for p in good_book.site if p.endswith(".html") and not p.startswith("pagefind/")}


def test_staging_of_dead_processes_is_swept_and_live_ones_are_kept(tmp_path):
    """The sweep tells a killed run's staging (its process is gone) from a live run's, by the pid in the name."""
    target = tmp_path / "processed"
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f".processed.tmp-{gone.pid}-abc_123"
    live = tmp_path / f".processed.tmp-{os.getpid()}-def456"
    legacy = tmp_path / ".processed.tmp-x1y2z3"  # named before pids were: owner unknown, left alone
    other = tmp_path / f".exports.tmp-{gone.pid}-abc123"  # another target's staging
    for d in (dead, live, legacy, other):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "table.parquet").write_bytes(b"partial")
    assert sweep_staging(target) == [dead]
    assert not dead.exists() and live.exists() and legacy.exists() and other.exists()
    fresh = staging_dir(target)
    assert fresh.name.startswith(f".processed.tmp-{os.getpid()}-") and fresh.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, live.name, legacy.name, other.name]
    )
