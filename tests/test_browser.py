"""The built site in headless Chromium: pages render, links resolve, the banner shows, Japanese search works.

Builds the stand-in book (two prefectures, six municipalities, a figure on every generated page) with PDFs,
serves it on 127.0.0.1 (Pagefind fetches its index, which browsers refuse over file://) and drives Debian's
``/usr/bin/chromium`` through Playwright — Playwright's own browser download is never used. Screenshots go to
``tests/_artifacts/`` (git-ignored).
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from kofukin import site
from kofukin.paths import SOURCE_ROOT
from kofukin.pdf import CHROMIUM, CHROMIUM_ARGS, chromium_available
from kofukin.reference import load_master

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]

ARTIFACTS = Path(__file__).parent / "_artifacts"
PAGES = {
    "national": "book/national.html",
    "prefecture": "book/prefectures/11.html",
    "municipality": "book/municipalities/112194.html",
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("browser-site")
    paths = site.make_demo_root(root)
    t0 = time.perf_counter()
    result = site.build_site(paths, jobs=1, pdf=True, echo=lambda _: None)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site_build_timings.json").write_text(
        json.dumps(
            {
                "pages": result.n_pages,
                "pdfs": result.n_pdfs,
                "seconds": result.seconds,
                "wall": time.perf_counter() - t0,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    html = paths.build / "html"
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield html, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    pg = context.new_page()
    pg.problems = []  # console errors and failed requests
    pg.on("console", lambda m: pg.problems.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("requestfailed", lambda r: pg.problems.append(f"failed: {r.url}"))
    pg.on("response", lambda r: pg.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    yield pg
    context.close()


def _open(page, base: str, rel: str) -> None:
    page.goto(urljoin(base, rel))
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("kind", list(PAGES))
def test_page_renders_with_images_and_no_errors(built_site, page, kind):
    _, base = built_site
    _open(page, base, PAGES[kind])
    images = page.eval_on_selector_all(
        "article img", "imgs => imgs.map(i => ({src: i.currentSrc, w: i.naturalWidth}))"
    )
    assert images, "the stand-in page has a figure"
    assert all(i["w"] > 0 for i in images), images
    assert page.problems == [], page.problems
    page.screenshot(path=str(ARTIFACTS / f"{kind}.png"), full_page=True)


@pytest.mark.parametrize("kind", list(PAGES))
def test_banner_names_the_synthetic_years(built_site, page, kind):
    _, base = built_site
    _open(page, base, PAGES[kind])
    banner = page.locator(".bd-header-announcement")
    assert banner.is_visible()
    text = banner.inner_text()
    assert "合成データ" in text
    assert "令和6年度（R6）・令和7年度（R7）・令和8年度（R8）" in text


def _internal_links(page, base: str) -> set[str]:
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    out = set()
    for h in hrefs:
        if urlsplit(h).netloc == urlsplit(base).netloc:
            out.add(h)
    return out


def test_no_broken_internal_links(built_site, page):
    html, base = built_site
    checked = 0
    for rel in PAGES.values():
        _open(page, base, rel)
        for href in _internal_links(page, base):
            parts = urlsplit(href)
            target = html / unquote(parts.path).lstrip("/")
            if parts.path.endswith("/"):
                target = target / "index.html"
            assert target.is_file(), f"{rel} links to missing {parts.path}"
            if parts.fragment and target.suffix == ".html":
                text = target.read_text(encoding="utf-8")
                assert re.search(rf"""id=["']{re.escape(unquote(parts.fragment))}["']""", text), href
            checked += 1
    assert checked > 30


def test_municipality_page_links_its_a4_pdf(built_site, page):
    html, base = built_site
    _open(page, base, PAGES["municipality"])
    link = page.get_by_role("link", name="印刷用PDF（A4）")
    href = link.get_attribute("href")
    assert href == "../../pdf/112194.pdf"
    pdf = (html / "pdf" / "112194.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box and abs(float(box[1]) - 595) < 2 and abs(float(box[2]) - 842) < 2, "A4 portrait"
    assert b"IPAexGothic" in pdf, "Japanese text is printed with the bundled font, not as empty boxes"
    assert len(list((html / "pdf").glob("*.pdf"))) == 6


def _search(page, base: str, query: str, at_least: int = 1) -> list[str]:
    """Results of a Pagefind query; waits until ``at_least`` result links have rendered and no result is
    still a loading placeholder (Pagefind's UI draws skeletons first and fills them one by one)."""
    page.goto(urljoin(base, f"search.html?q={query}"))
    page.wait_for_function(
        "n => document.querySelectorAll('.pagefind-ui__result-link').length >= n"
        " && !document.querySelector('.pagefind-ui__result .pagefind-ui__loading')",
        arg=at_least,
        timeout=30_000,
    )
    return page.eval_on_selector_all(".pagefind-ui__result-link", "as => as.map(a => a.textContent.trim())")


def test_search_finds_a_municipality_by_name(built_site, page):
    _, base = built_site
    titles = _search(page, base, "上尾市")
    assert titles and "上尾市" in titles[0], titles
    page.screenshot(path=str(ARTIFACTS / "search_ageo.png"), full_page=True)
    assert page.problems == [], page.problems


def test_search_finds_a_compound_word_in_body_text(built_site, page):
    """Results come from both Pagefind bundles, merged in the browser: the six municipality pages (report
    index) and the hand-written chapters that mention the word (chapter index) — every page that has it."""
    html, base = built_site
    chapters = [
        md.stem for md in (SOURCE_ROOT / "book").glob("*.md") if "人口減少率" in md.read_text("utf-8")
    ]
    assert chapters, "book/index.md gives 人口減少率 as an example of a search"
    titles = _search(page, base, "人口減少率", at_least=6 + len(chapters))
    assert len(titles) == 6 + len(chapters), titles
    for code in site.STANDIN_CODES:
        name = load_master().set_index("lg_code6").loc[code, "name"]
        assert sum(name in t for t in titles) == 1, (name, titles)
    chapter_titles = {_page_title(html / "book" / f"{c}.html") for c in chapters}
    assert chapter_titles <= set(titles), (chapter_titles, titles)
    excerpts = page.eval_on_selector_all(".pagefind-ui__result-excerpt", "es => es.map(e => e.textContent)")
    assert all(re.sub(r"\s", "", e).count("人口減少率") for e in excerpts)


def _page_title(path: Path) -> str:
    """The page's h1 as Pagefind shows it (its title), without the headerlink's ¶."""
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", path.read_text(encoding="utf-8"), re.S)
    assert h1, path
    return re.sub(r"<[^>]+>|#|¶", "", h1[1]).strip()


def test_theme_search_field_leads_to_pagefind(built_site, page):
    _, base = built_site
    _open(page, base, PAGES["municipality"])
    page.locator(".bd-sidebar-primary .search-button__button").click()
    field = page.locator("#pst-search-dialog input[name=q]")
    field.fill("成果指向型")
    with page.expect_navigation():
        field.press("Enter")
    assert urlsplit(page.url).path.endswith("/search.html")
    page.wait_for_selector(".pagefind-ui__result", timeout=20_000)
    titles = page.eval_on_selector_all(".pagefind-ui__result-link", "as => as.map(a => a.textContent.trim())")
    assert any("全国" in t for t in titles), titles
    page.screenshot(path=str(ARTIFACTS / "search_theme_field.png"), full_page=True)
