"""Incremental site builds: Sphinx's cache, publishing by hard links, split search indexes.

A rebuild must equal a fresh build of the same sources, re-read only what changed, never write into the live
site, and never let a page that warned once be published unread. The fast tests need no Sphinx; the ``slow``
ones build the stand-in book (two prefectures, six municipalities) in one scratch project, then edit it step by
step (~10 builds of ~6 s).
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from pathlib import Path

import pytest

from kofukin import site, sphinx_ext, toc
from kofukin.paths import ProjectPaths

# --- pure parts -------------------------------------------------------------------------------------------


def test_read_chunks_are_few_and_cover_every_page_in_order():
    docs = [f"book/municipalities/{i:06d}" for i in range(1798)]
    chunks = sphinx_ext.read_chunks(docs, 2)
    assert len(chunks) == 8, "4 chunks per process: each returns the whole environment to be unpickled"
    assert [d for c in chunks for d in c] == docs
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 8
    assert sphinx_ext.read_chunks(docs[:3], 2) == [[d] for d in docs[:3]]


def test_warned_docs_names_the_pages_or_gives_up(tmp_path):
    root = tmp_path.resolve()
    lines = [
        f"{root}/book/methodology.md:12: WARNING: unknown document: 'x' [ref.doc]",
        f"{root}/book/municipalities/112194.ipynb:30002: ERROR: Unknown directive type",
        f"{root}/book/index.md: WARNING: toctree contains reference to nonexisting document",
    ]
    assert site.warned_docs(lines, root) == {
        "book/methodology",
        "book/municipalities/112194",
        "book/index",
    }
    assert site.warned_docs([*lines, "WARNING: html_static_path entry 'x' does not exist"], root) is None
    assert site.warned_docs(["/elsewhere/book/a.md:1: WARNING: x"], root) is None
    assert site.warned_docs([], root) == set()


def test_search_indexes_split_the_book_between_reports_and_chapters():
    pages = [f"{d}.html" for d in toc.toc_docnames(toc.toc_dict(toc.master_entries()))]
    reports, chapters = (
        set(site.index_pages(i, [*pages, "search.html", "genindex.html"])) for i in site.SEARCH_INDEXES
    )
    assert reports | chapters == set(pages), "every page is searchable"
    assert not reports & chapters
    assert chapters == {f"{d}.html" for d in toc.HAND_WRITTEN_DOCS}
    assert "book/municipalities/112194.html" in reports and "book/prefectures/11.html" in reports
    assert site.SEARCH_INDEXES[0].bundle == "pagefind", "the UI script stays at pagefind/pagefind-ui.js"


def test_publish_links_unchanged_files_and_never_shares_one_with_sphinx(tmp_path):
    out, live = tmp_path / "out", tmp_path / "live"
    (out / "book").mkdir(parents=True)
    page = out / "book" / "a.html"
    page.write_text(f"<p>a</p><span>{sphinx_ext.COMMIT_PLACEHOLDER}</span>", encoding="utf-8")
    (out / "img.png").write_bytes(b"png")
    first = site.publish(out, live, None, None, "abc")
    assert first.linked == 0 and first.changed == {"book/a.html", "img.png"}
    assert (live / "book/a.html").read_text(encoding="utf-8") == "<p>a</p><span>abc</span>"
    record = {"commit": "abc", "files": first.files, "digests": first.digests}

    second = site.publish(out, tmp_path / "s2", live, record, "abc")
    assert second.changed == set() and second.linked == 2
    assert (tmp_path / "s2/img.png").stat().st_ino == (live / "img.png").stat().st_ino

    page.write_text(f"<p>b</p><span>{sphinx_ext.COMMIT_PLACEHOLDER}</span>", encoding="utf-8")
    third = site.publish(out, tmp_path / "s3", live, record, "abc+dirty")
    assert third.changed == {"book/a.html"}
    assert (tmp_path / "s3/book/a.html").read_text(encoding="utf-8") == "<p>b</p><span>abc+dirty</span>"
    assert (live / "book/a.html").read_text(encoding="utf-8") == "<p>a</p><span>abc</span>", "live untouched"
    for f in (tmp_path / "s3").rglob("*"):
        if f.is_file():
            assert f.stat().st_ino != (out / f.relative_to(tmp_path / "s3")).stat().st_ino, f


# --- builds (slow) ----------------------------------------------------------------------------------------


def _log(paths: ProjectPaths) -> str:
    return (paths.build / "logs" / site.LOG_NAME).read_text(encoding="utf-8")


def _read_docs(paths: ProjectPaths) -> set[str]:
    return set(re.findall(r"^reading sources\.\.\. \[\s*\d+%\] (\S+)$", _log(paths), re.M))


def _written_docs(paths: ProjectPaths) -> set[str]:
    return set(re.findall(r"^writing output\.\.\. \[\s*\d+%\] (\S+)$", _log(paths), re.M))


def _build(paths: ProjectPaths, **kw) -> site.SiteBuild:
    return site.build_site(paths, jobs=1, echo=lambda _: None, **kw)


def _pages(html: Path) -> dict[str, bytes]:
    return {
        p.relative_to(html).as_posix(): p.read_bytes()
        for p in html.rglob("*")
        if p.is_file() and not p.relative_to(html).parts[0].startswith(("pagefind", "."))
    }


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    paths = site.make_demo_root(tmp_path_factory.mktemp("incremental") / "p")
    first = _build(paths)
    assert first.search_reused == [] and first.n_linked <= 1
    return paths


@pytest.mark.slow
def test_rebuild_with_nothing_changed_reads_only_the_build_fact_pages(book):
    result = _build(book)
    assert "updating environment: 0 added, 2 changed, 0 removed" in _log(book)
    assert _read_docs(book) == {"book/data_sources", "book/downloads"}, "they show build-time facts"
    assert result.n_copied == 0, "every published file is the live site's, hard-linked"
    assert result.search_reused == ["pagefind", "pagefind-chapters"]


@pytest.mark.slow
def test_chapter_edit_rereads_that_chapter_and_equals_a_fresh_build(book, tmp_path):
    chapter = book.book / "methodology.md"
    chapter.write_text(
        chapter.read_text(encoding="utf-8") + "\n増分ビルドの確認用の段落です。\n", encoding="utf-8"
    )
    result = _build(book)
    assert _read_docs(book) == {"book/data_sources", "book/downloads", "book/methodology"}
    assert _written_docs(book) <= {"book/data_sources", "book/downloads", "book/index", "book/methodology"}
    assert result.search_reused == ["pagefind"], "the report pages' index is kept; the chapters' is rebuilt"
    html = book.build / "html"
    assert "増分ビルドの確認用の段落です" in (html / "book/methodology.html").read_text(encoding="utf-8")
    incremental = _pages(html)

    fresh = _build(book, incremental=False)
    assert fresh.search_reused == []
    assert _pages(html) == incremental, "an incremental build publishes exactly what a fresh one does"


@pytest.mark.slow
def test_title_change_rewrites_every_sidebar(book):
    chapter = book.book / "methodology.md"
    text = chapter.read_text(encoding="utf-8")
    old_title = re.search(r"^# (.+)$", text, re.M)[1]
    chapter.write_text(text.replace(f"# {old_title}", "# 方法と定義", 1), encoding="utf-8")
    _build(book)
    assert "every page is rewritten" in _log(book)
    assert _read_docs(book) == {"book/data_sources", "book/downloads", "book/methodology"}
    page = (book.build / "html/book/municipalities/112194.html").read_text(encoding="utf-8")
    assert 'href="../methodology.html">方法と定義</a>' in page, "every page's sidebar lists the new title"
    assert f'href="../methodology.html">{old_title}</a>' not in page


@pytest.mark.slow
def test_new_commit_changes_every_footer_but_no_search_index(book, monkeypatch):
    monkeypatch.setattr(sphinx_ext, "code_commit", lambda: "0123456789ab+dirty")
    result = _build(book)
    assert _written_docs(book) <= {"book/data_sources", "book/downloads", "book/index"}, "Sphinx rewrote none"
    page = (book.build / "html/book/national.html").read_text(encoding="utf-8")
    assert '<span class="kofukin-footer__commit">0123456789ab+dirty</span>' in page
    assert result.n_copied >= result.n_pages, "every page is published anew with the commit"
    assert "pagefind" in result.search_reused, "the footer is not indexed"


@pytest.mark.slow
def test_page_that_warned_is_read_again_until_fixed(book):
    chapter = book.book / "assumptions.md"
    original = chapter.read_text(encoding="utf-8")
    live = (book.build / "html" / site.BUILD_FACTS).read_text(encoding="utf-8")
    try:
        chapter.write_text(original + "\n{doc}`no_such_page`\n", encoding="utf-8")
        with pytest.raises(site.SiteBuildError, match="no_such_page"):
            _build(book)
        cache = site.SiteCache(book.build / site.CACHE_DIR)
        assert json.loads(cache.reread_file.read_text(encoding="utf-8")) == ["book/assumptions"]
        with pytest.raises(
            site.SiteBuildError, match="no_such_page"
        ):  # unchanged, yet read and refused again
            _build(book)
        assert "book/assumptions" in _read_docs(book)
        assert (book.build / "html" / site.BUILD_FACTS).read_text(encoding="utf-8") == live
    finally:
        chapter.write_text(original, encoding="utf-8")
    _build(book)
    assert not site.SiteCache(book.build / site.CACHE_DIR).reread_file.exists()


@pytest.mark.slow
def test_dropped_page_leaves_the_site_and_its_search_index(book):
    import nbformat

    (book.book / "municipalities" / "132012.ipynb").unlink()
    pref = book.book / "prefectures" / "13.ipynb"
    nb = nbformat.read(pref, as_version=4)
    for cell in nb.cells:  # its table links every municipality: a dangling link would fail the build
        cell.source = "\n".join(line for line in cell.source.splitlines() if "132012" not in line)
    nbformat.write(nb, pref)
    result = _build(book)
    html = book.build / "html"
    assert not (html / "book/municipalities/132012.html").exists()
    assert not (book.build / site.CACHE_DIR / "html/book/municipalities/132012.html").exists()
    assert "pagefind" not in result.search_reused
    prefecture = (html / "book/prefectures/13.html").read_text(encoding="utf-8")
    assert "132012.html" not in prefecture and "131016.html" in prefecture


@pytest.mark.slow
def test_interrupted_build_starts_from_scratch(book):
    cache = site.SiteCache(book.build / site.CACHE_DIR)
    cache.busy_file.write_text("12345", encoding="utf-8")  # as if a build had been killed mid-way
    marker = cache.outdir / "stale-marker.txt"
    marker.write_text("x", encoding="utf-8")
    result = _build(book)
    assert not marker.exists() and not cache.busy_file.exists()
    fresh = re.search(r"updating environment: \[new config\] (\d+) added, 0 changed", _log(book))
    assert fresh and int(fresh[1]) == result.n_pages, "every page read again"


@pytest.mark.slow
@pytest.mark.browser
def test_pdfs_of_unchanged_pages_are_taken_from_the_live_site(book):
    from kofukin.pdf import chromium_available

    if not chromium_available():
        pytest.skip("needs Debian's chromium")
    first = _build(book, pdf=True)
    pdfs = sorted((book.build / "html/pdf").glob("*.pdf"))
    assert first.n_pdfs == len(pdfs) == first.n_municipalities
    inodes = {p.name: p.stat().st_ino for p in pdfs}
    chapter = book.book / "how_to_read.md"
    chapter.write_text(chapter.read_text(encoding="utf-8") + "\nPDF の再利用の確認。\n", encoding="utf-8")
    second = _build(book, pdf=True)
    assert second.n_pdfs == first.n_pdfs
    assert {p.name: p.stat().st_ino for p in (book.build / "html/pdf").glob("*.pdf")} == inodes


def test_sphinx_cache_is_keyed_on_the_extension_code(tmp_path):
    toc_path = tmp_path / "_toc.yml"
    toc_path.write_text("root: x\n", encoding="utf-8")
    key = site.cache_key(tmp_path, toc_path)
    assert key == site.cache_key(tmp_path, toc_path)
    assert key != site.cache_key(tmp_path / "other", toc_path), "a moved project starts afresh"
    cache = site.open_cache(tmp_path / "_build", key, echo=lambda _: None)
    (cache.root / "html").mkdir()
    assert site.open_cache(tmp_path / "_build", key, echo=lambda _: None).outdir.exists()
    assert not site.open_cache(tmp_path / "_build", "other key", echo=lambda _: None).outdir.exists()


def test_link_tree_shares_files_not_directories(tmp_path):
    """Sanity of the helper the site uses to reuse search bundles: a linked tree has the same files."""
    src = tmp_path / "a"
    (src / "x").mkdir(parents=True)
    (src / "x" / "f").write_text("1", encoding="utf-8")
    assert site.link_tree(src, tmp_path / "b") == 1
    assert filecmp.cmp(src / "x" / "f", tmp_path / "b" / "x" / "f", shallow=False)
    shutil.rmtree(src)
    assert (tmp_path / "b" / "x" / "f").read_text(encoding="utf-8") == "1"
