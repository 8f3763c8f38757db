"""Data never becomes code: a hostile municipality name travels from a workbook to the browser as text, and the
importer neither evaluates formulas nor follows external links.

The name ``"'<script>alert(1)</script><img src=x onerror=alert(2)>`` + newline + ``村`` has quotes (attribute
break-out), a parser-inserted script, an element whose handler would run even when inserted with ``innerHTML``,
and a newline (Markdown and YAML line structure). Report titles and names come from the municipality master
keyed by code, and the master is versioned with the code (:data:`kofukin.paths.REFERENCE_DIR`), so the project
under test is a copy of the package, its report templates and its reference data, with 日吉津村 (313840)
renamed in the master; the R8 results workbook carries the same name in its 市町村名 cell. The real CLI, run
on that copy (``PYTHONPATH``), ingests the workbooks, executes the village's report and its prefecture's, and
builds the site, which headless Chromium then opens.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin
from xml.sax.saxutils import escape

import nbformat
import pandas as pd
import pytest
import stage_harness as h
import workbook_factory as wf

from kofukin.paths import SOURCE_ROOT, ProjectPaths

HOSTILE = "\"'<script>alert(1)</script><img src=x onerror=alert(2)>\n村"
CODE = "313840"  # 日吉津村, 鳥取県
PAGE = f"book/municipalities/{CODE}"
PREF_PAGE = "book/prefectures/31"
ESCAPED_HTML = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
SHOWN = "\"'<script>alert(1)</script><img src=x onerror=alert(2)>"  # what a reader must see, literally

pytestmark = pytest.mark.slow


def _copy_code(root: Path) -> None:
    """The package, report templates and reference data in ``root`` (so ``root`` is also SOURCE_ROOT)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(SOURCE_ROOT / "src", root / "src", ignore=skip)
    shutil.copytree(SOURCE_ROOT / "notebooks", root / "notebooks", ignore=skip)
    shutil.copytree(SOURCE_ROOT / "data" / "reference", root / "data" / "reference")
    master_csv = root / "data" / "reference" / "municipalities.csv"
    master = pd.read_csv(master_csv, dtype=str, keep_default_na=False)
    assert (master["lg_code6"] == CODE).sum() == 1
    master.loc[master["lg_code6"] == CODE, "name"] = HOSTILE
    master.to_csv(master_csv, index=False, lineterminator="\n")


@pytest.fixture(scope="module")
def hostile_book(tmp_path_factory, demo_workbooks, synthetic_panel) -> ProjectPaths:
    from kofukin.synthetic.demo import results_file, results_rows
    from kofukin.synthetic.workbook import write_results_workbook

    paths = h.make_project(tmp_path_factory.mktemp("hostile") / "book", demo_workbooks)
    _copy_code(paths.root)
    rows = results_rows(synthetic_panel, "R8")
    rows.loc[rows["lg_code6"] == CODE, "name"] = HOSTILE
    write_results_workbook(paths.demo_raw / results_file("R8"), "R8", rows, synthetic=True)
    code = [str(paths.root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = h.cli_env(paths.root, PYTHONPATH=os.pathsep.join(code))  # the copy first: it is the code under test
    h.run_cli(["ingest"], paths.root, env)
    h.run_cli(["reports", "--municipality", CODE, "--jobs", "2"], paths.root, env)
    h.run_cli(["site", "--jobs", "1"], paths.root, env)
    return paths


def test_the_name_is_data_in_the_workbook_and_the_store(hostile_book):
    """The attack really is in the input: the workbook cell and the ingested store hold it verbatim."""
    from kofukin.ingest.excel import open_first_sheet
    from kofukin.synthetic.demo import results_file

    grid = open_first_sheet(hostile_book.demo_raw / results_file("R8")).grid
    assert sum(v == HOSTILE for row in grid for v in row) == 1, "the workbook's 市町村名 cell holds the name"
    municipalities = pd.read_parquet(hostile_book.processed / "municipalities.parquet").set_index("lg_code6")
    assert municipalities.loc[CODE, "name"] == HOSTILE, "ingested as it is, joined by code"


def _outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    """Every output of a MIME type (``text/html``; ``text/markdown`` includes glued Markdown)."""
    return [
        "".join(v) if isinstance(v, list) else v
        for c in nb.cells
        for o in c.get("outputs", [])
        for k, v in o.get("data", {}).items()
        if k.endswith(mime)
    ]


def test_executed_notebooks_hold_the_name_only_escaped(hostile_book):
    """What the runner writes (HTML tables, Markdown titles and sentences) carries the name as text."""
    for doc in (PAGE, PREF_PAGE):
        nb = nbformat.read(hostile_book.root / f"{doc}.ipynb", as_version=4)
        html_parts = _outputs(nb, "text/html")
        for part in html_parts:
            assert not re.search(r"<\s*(script|img)\b", part, re.I), f"{doc}: live markup in {part[:200]!r}"
        assert any(ESCAPED_HTML in p for p in html_parts), f"{doc}: the tables show the name escaped"
        markdown = [c.source for c in nb.cells if c.cell_type == "markdown"] + _outputs(nb, "text/markdown")
        for part in markdown:  # in Markdown, a backslash makes "<" a literal character
            assert not re.search(r"(?<!\\)<\s*(script|img)\b", part, re.I), f"{doc}: markup in {part[:200]!r}"
    nb = nbformat.read(hostile_book.root / f"{PAGE}.ipynb", as_version=4)
    assert nb.cells[0].source.splitlines()[0] == (
        r"# \"\'\<script\>alert\(1\)\</script\>\<img src=x onerror=alert\(2\)\> 村（鳥取県）令和8年度"
    ), "the page title is literal Markdown, on one line"
    assert any(r"\<script\>alert\(1\)\</script\>" in p for p in _outputs(nb, "text/markdown")), (
        "glued sentences"
    )


class _Page(HTMLParser):
    """Inline scripts, suspicious event-handler attributes and the visible text of a built page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.handlers: list[tuple[str, str]] = []
        self.inline_scripts: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # the theme's own buttons have onclick handlers; the name's would be an onerror, or mention alert(
        self.handlers += [
            (tag, k) for k, v in attrs if k == "onerror" or (k.startswith("on") and "alert(" in (v or ""))
        ]
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.inline_scripts.append(data)
        elif self._in is None:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_built_pages_show_the_name_as_text_and_run_nothing(hostile_book):
    """Every built page: no script or handler made from the name, and the name readable as written."""
    html = hostile_book.build / "html"
    pages = sorted(p for p in html.rglob("*.html") if "pagefind" not in p.parts)
    assert len(pages) >= 12
    for path in pages:
        page = _parse(path)
        assert page.handlers == [], f"{path.name}: event-handler attributes {page.handlers}"
        assert not [s for s in page.inline_scripts if "alert(" in s], f"{path.name}: the name became a script"
        raw = path.read_text(encoding="utf-8")
        assert "<script>alert" not in raw and "<img src=x" not in raw, f"{path.name}: the name as markup"
    for doc in (PAGE, PREF_PAGE):
        text = "".join(_parse(html / f"{doc}.html").text)
        assert SHOWN in text, f"{doc}: the name is shown literally"


# --- in the browser ---------------------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(hostile_book) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(hostile_book.build / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.browser
def test_in_chromium_no_dialog_fires_and_the_name_reads_literally(served):
    """In a real browser nothing runs — no alert from the script, none from the broken image's onerror — on
    the page, its prefecture's page, or Pagefind's results; the reader sees the name character for character."""
    from kofukin.pdf import CHROMIUM, CHROMIUM_ARGS, chromium_available

    if not chromium_available():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(locale="ja-JP")
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            live = "() => [...document.scripts].filter(s => s.textContent.includes('alert(')).length"
            live += " + document.querySelectorAll('[onerror]').length"

            page.goto(urljoin(served, f"{PAGE}.html"))
            page.wait_for_load_state("networkidle")
            heading = page.locator("article h1").first.inner_text()
            assert heading.startswith(f"{SHOWN} 村（鳥取県）令和8年度"), heading
            assert page.evaluate(live) == 0

            page.goto(urljoin(served, f"{PREF_PAGE}.html"))
            page.wait_for_load_state("networkidle")
            link = page.locator(f'article a[href="../municipalities/{CODE}.html"]').first.inner_text()
            assert SHOWN in link, link
            assert page.evaluate(live) == 0

            page.goto(urljoin(served, "search.html?q=alert"))
            page.wait_for_function(
                "() => document.querySelectorAll('.pagefind-ui__result-link').length > 0"
                " && !document.querySelector('.pagefind-ui__result .pagefind-ui__loading')",
                timeout=30_000,
            )
            titles = page.eval_on_selector_all(
                ".pagefind-ui__result-link", "as => as.map(a => a.textContent)"
            )
            assert any(SHOWN in t for t in titles), titles
            assert page.evaluate(live) == 0
            page.wait_for_timeout(500)  # an onerror handler would fire once the broken image has failed
        finally:
            browser.close()
    assert dialogs == [], f"the name ran as code: {dialogs}"


# --- the importer: cached values only, no formula evaluated, no link followed -----------------------------------

EXTERNAL_LINK_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/externalLink"


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"4")

    do_HEAD = do_POST = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def trap() -> Iterator[tuple[str, list[str]]]:
    """A local web server that counts every request: where the workbook's formulas and links point."""
    hits: list[str] = []
    handler = type("Trap", (_Counting,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _with_external_link(src: Path, dst: Path, url: str) -> Path:
    """Add an external workbook reference ([1] → ``url``) to a written workbook, as Excel stores one: the
    externalLink part with its own cached copy of the linked cell (4), a relationship and the content type."""
    link = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<externalBook r:id="rId1"><sheetNames><sheetName val="Sheet1"/></sheetNames><sheetDataSet>'
        '<sheetData sheetId="0"><row r="1"><cell r="A1"><v>4</v></cell></row></sheetData>'
        "</sheetDataSet></externalBook></externalLink>"
    )
    link_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        f'externalLinkPath" Target="{url}/linked.xlsx" TargetMode="External"/></Relationships>'
    )
    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout,
    ):
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/workbook.xml":
                data = data.replace(
                    b"</sheets>",
                    b'</sheets><externalReferences><externalReference r:id="rId99"/></externalReferences>',
                )
            elif info.filename == "xl/_rels/workbook.xml.rels":
                rel = f'<Relationship Id="rId99" Type="{EXTERNAL_LINK_TYPE}" Target="externalLinks/externalLink1.xml"/>'
                data = data.replace(b"</Relationships>", rel.encode() + b"</Relationships>")
            elif info.filename == "[Content_Types].xml":
                override = (
                    '<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml"/>'
                )
                data = data.replace(b"</Types>", override.encode() + b"</Types>")
            zout.writestr(info, data)
        zout.writestr("xl/externalLinks/externalLink1.xml", link)
        zout.writestr("xl/externalLinks/_rels/externalLink1.xml.rels", link_rels)
    return dst


def test_importer_reads_cached_values_and_never_evaluates_or_follows_links(tmp_path_factory, trap):
    """Three score cells of a valid workbook become formulas whose cached value is the true points (0), while
    evaluating them would give 4: ``2+2``, ``WEBSERVICE`` on a local server, and a reference into an external
    workbook on that server (whose cached copy in the file also says 4). The importer must read 0 for each,
    accept the file, and the server must never be asked for anything."""
    from kofukin.ingest import read_results_workbook

    url, hits = trap
    factory = tmp_path_factory.getbasetemp() / "factory"  # shared with test_bad_inputs when both run
    factory.mkdir(exist_ok=True)
    truth, base = wf.valid_workbook(factory, "R7")
    cells = wf.cells_of(truth)
    item = "R7-suishin-I-taisei-1-ア"  # max 4
    zero = [c for c in truth.points.index if truth.points.at[c, item] == 0][:3]
    assert len(zero) == 3
    formulas = {
        zero[0]: "2+2",
        zero[1]: f'WEBSERVICE("{url}/webservice")',
        zero[2]: "[1]Sheet1!$A$1",
    }

    def edit(sheet: wf.SheetXml) -> None:
        for code, formula in formulas.items():
            ref = cells.ref(code, item)
            row = int(re.sub(r"^[A-Z]+", "", ref))
            sheet.cells(row)[wf.col_index(re.sub(r"\d+$", "", ref))] = (
                f'<c r="{ref}"><f>{escape(formula)}</f><v>0</v></c>'
            )

    edited = wf.edit_xlsx(base, tmp_path_factory.mktemp("formulas") / "R7_formulas.xlsx", edit)
    path = _with_external_link(edited, edited.with_name("R7_links.xlsx"), url)
    with zipfile.ZipFile(path) as zf:
        sheet = zf.read(wf.SHEET_XML).decode()
        assert sheet.count("<f>") == 3 and "xl/externalLinks/externalLink1.xml" in zf.namelist()

    result = read_results_workbook(path)
    points = result.item_points.set_index(["lg_code6", "item_id"])["points"]
    for code in formulas:
        assert points.at[(code, item)] == 0, f"{formulas[code]}: the cached value, not an evaluation"
    assert result.subtotals.set_index("lg_code6").loc[zero, "grand_total"].tolist() == [
        int(truth.subtotals.at[c, "grand_total"]) for c in zero
    ]
    assert hits == [], f"the importer contacted the linked server: {hits}"
