"""Sphinx extension of the kofukin book: data provenance on every page, Pagefind search, downloads, PDFs.

Listed in ``_config.yml`` under ``sphinx: extra_extensions``. It reads ``data/processed/manifest.json`` of the
project being built (the Sphinx source directory — the book root is the project root — unless
``kofukin_root`` says otherwise) *at build time*, so a book built from synthetic workbooks can never go out
without saying so:

* **synthetic-data banner** — sphinx-book-theme's ``announcement`` on every page names exactly the synthetic
  fiscal years (from the manifest's ``sources``); the banner is also printed into the PDFs;
* **build facts** — a footer line on every page (code version, git commit, data checksums) and the
  ``{kofukin-build-facts}`` directive with the full table (used in ``book/data_sources.md``);
* **search** — Sphinx's own index is switched off (it segments Japanese when indexing but not the query in
  the browser, so compounds such as 人口減少率 are never found); ``search.html`` is rendered from
  ``book/_templates/search.html`` with Pagefind's UI, and each page's article is marked ``data-pagefind-body``
  so that the sidebar (which lists sibling municipalities) does not make every page match every name;
* **downloads** — ``{kofukin-downloads}`` lists ``data/exports/``; each table is published as a ZIP in
  ``<html>/downloads/`` (made once per export, :func:`prepare_downloads`), the small files that describe the
  tables as they are;
* **incremental builds** — :mod:`kofukin.site` keeps Sphinx's environment between builds; this extension
  rewrites every page when a title or the navigation changed (:func:`nav_fingerprint`), deletes outputs of
  pages and figures no longer in the book (:func:`prune_outputs`), re-reads pages that warned last time, and
  can leave the footer's commit for :mod:`kofukin.site` to fill in;
* **speed** — parallel reading in fewer, larger chunks (:func:`read_chunks`), one more writer process than
  Sphinx's ``-j`` gives, no copy of every notebook written back by myst-nb (:func:`_skip_notebook_copies`)
  and one Markdown parser for all pasted glue instead of one per paste (:func:`_reuse_markdown_parsers`);
* **PDF links** — with ``kofukin_pdf_links = True`` each municipality page links to ``<html>/pdf/<code>.pdf``
  (written after the HTML build by :mod:`kofukin.pdf`; :func:`kofukin.site.build_site` sets the flag only
  when it will write them, so the link is never dead);
* **a Japanese font** — IPAex Gothic (from the ``matplotlib-fontja`` dependency, IPA Font License) is copied to
  ``_static/fonts/`` and used only as the last fallback, so machines and the headless PDF printer without any
  Japanese font still render text instead of empty boxes. Nothing is loaded from a CDN.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from kofukin import __version__
from kofukin.paths import SOURCE_ROOT, ProjectPaths, sha256_file

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
YEAR_JA = {"R6": "令和6年度", "R7": "令和7年度", "R8": "令和8年度"}
YEAR_ORDER = ("R6", "R7", "R8")
MUNICIPALITY_PAGE = re.compile(r"^book/municipalities/(\d{6})$")
PREFECTURE_PAGE = re.compile(r"^book/prefectures/(\d{2})$")
DOWNLOAD_SUFFIXES = (".csv", ".txt", ".xlsx", ".parquet", ".zip", ".json")
# CSV files of the export that describe the tables rather than hold data: small, published as they are.
PLAIN_TABLES = frozenset({"columns", "columns_excel"})
FONT_NAME = "ipaexg.ttf"
# The footer's git commit as Sphinx writes it when kofukin_defer_commit is on (see footer_html).
COMMIT_CLASS = "kofukin-footer__commit"
COMMIT_PLACEHOLDER = "@@kofukin-git-commit@@"


# --------------------------------------------------------------------------------------------------------------
# Facts about the build (pure functions: tests call them without Sphinx)


def read_manifest(root: Path) -> dict | None:
    """The processed store's manifest, or ``None`` when the store was never built."""
    path = ProjectPaths(root).processed / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def synthetic_years(manifest: dict | None) -> list[str]:
    """Fiscal years with at least one synthetic source, in R6, R7, R8 order (cf. ``Store.synthetic_years``)."""
    years = {s.get("fiscal_year") for s in (manifest or {}).get("sources", []) if s.get("synthetic")}
    return sorted((y for y in years if y), key=lambda y: YEAR_ORDER.index(y) if y in YEAR_ORDER else 99)


def real_years(manifest: dict | None) -> list[str]:
    years = {s.get("fiscal_year") for s in (manifest or {}).get("sources", []) if not s.get("synthetic")}
    years -= set(synthetic_years(manifest))
    return sorted((y for y in years if y), key=lambda y: YEAR_ORDER.index(y) if y in YEAR_ORDER else 99)


def _years_ja(years: list[str]) -> str:
    return "・".join(f"{YEAR_JA.get(y, y)}（{y}）" for y in years)


def banner_html(manifest: dict | None) -> str:
    """The announcement shown on every page; empty when every year comes from real MHLW workbooks.

    The wording names each synthetic year, says what the numbers are not, and names the real years if the
    panel is mixed — a reader who lands on one municipality page from a search engine must not mistake a
    synthetic score for a published one.
    """
    if manifest is None:
        return (
            '<span class="kofukin-banner kofukin-banner--unknown">'
            "データの来歴が不明です：data/processed/manifest.json がないまま作成されたビルドです。"
            "数値を引用しないでください。</span>"
        )
    syn = synthetic_years(manifest)
    if not syn:
        return ""
    real = real_years(manifest)
    tail = f" {_years_ja(real)}は厚生労働省の評価結果を加工した数値です。" if real else ""
    return (
        '<span class="kofukin-banner kofukin-banner--synthetic">'
        f"<strong>合成データ</strong>：{_years_ja(syn)}の市町村別得点は、手法の検証用に生成した合成データです。"
        "実在の市町村の評価結果ではありません。"
        f"{tail}</span>"
    )


def git_commit(root: Path) -> str | None:
    """Short commit of ``root`` plus ``+dirty`` if tracked files changed; ``None`` outside a repository.

    Read-only: ``GIT_OPTIONAL_LOCKS=0`` stops ``git status`` from refreshing the index file.
    """
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, env=env
        )
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return None  # a scratch copy inside some other repository is not that repository's commit
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            env=env,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            env=env,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return None


def code_commit() -> str | None:
    """The commit of the code that builds the book: the repository this package is imported from.

    Not the book root's: that may be a scratch directory (``KOFUKIN_ROOT``), while the code, the report templates
    and the reference data always come from this repository (:mod:`kofukin.paths`)."""
    return git_commit(SOURCE_ROOT)


SOURCE_KIND_JA = {"results": "評価結果", "outcome": "アウトカム指標値", "unions": "広域連合の構成"}


def source_rows(manifest: dict | None) -> list[dict[str, str]]:
    """One display row per source file of the store: year, content, synthetic or real, file name, sha256."""
    rows = []
    for s in (manifest or {}).get("sources", []):
        name = s.get("path") or s.get("file") or s.get("name") or ""
        kind = str(s.get("kind") or "")
        rows.append(
            {
                "fiscal_year": str(s.get("fiscal_year") or "—"),
                "content": SOURCE_KIND_JA.get(kind, kind),
                "kind": "合成" if s.get("synthetic") else "実データ",
                "file": Path(str(name)).name,
                "sha256": str(s.get("sha256", "")),
            }
        )
    return sorted(rows, key=lambda r: (r["fiscal_year"], r["content"], r["file"]))


def data_fingerprint(manifest: dict | None) -> str:
    """One checksum for the whole set of source files (their names and sha256s), for the footer.

    Two builds with the same fingerprint read byte-identical sources; the per-file list is on the data page.
    """
    h = hashlib.sha256()
    for r in source_rows(manifest):
        h.update(f"{r['file']}\t{r['sha256']}\n".encode())
    return h.hexdigest()


def manifest_scalars(manifest: dict | None) -> dict[str, str]:
    """The manifest's top-level scalar fields (package version, ingest time …), whatever the importer wrote."""
    return {
        k: str(v)
        for k, v in sorted((manifest or {}).items())
        if isinstance(v, str | int | float | bool) and k
    }


def commit_html(commit: str | None) -> str:
    """The footer's commit, as it is written into every page (also what :mod:`kofukin.site` substitutes)."""
    return html.escape(commit or "不明")


def footer_html(manifest: dict | None, commit: str | None, *, deferred: bool = False) -> str:
    """One short line of build facts for every page's footer.

    With ``deferred`` the commit is :data:`COMMIT_PLACEHOLDER`, which :mod:`kofukin.site` replaces when it
    publishes the pages. The commit changes with every commit (and turns ``+dirty`` with the first edit of a
    chapter); written by Sphinx it would be a configuration change that rewrites all 1,800 pages, whereas the
    replacement is a string substitution.
    """
    shown = COMMIT_PLACEHOLDER if deferred else commit_html(commit)
    parts = [f"kofukin {html.escape(__version__)}", f'git <span class="{COMMIT_CLASS}">{shown}</span>']
    rows = source_rows(manifest)
    if manifest is None:
        parts.append("データ: manifest なし")
    else:
        syn = synthetic_years(manifest)
        label = f"合成: {'・'.join(syn)}" if syn else "実データ"
        parts.append(f"データ {len(rows)} ファイル（{label}）指紋 sha256:{data_fingerprint(manifest)[:12]}")
    attribution = attribution_text(manifest)
    return (
        '<p class="kofukin-footer">'
        f'<span class="kofukin-footer__facts">ビルド情報：{" · ".join(parts)}</span><br>'
        f'<span class="kofukin-footer__source">{html.escape(attribution)}</span></p>'
    )


def attribution_text(manifest: dict | None) -> str:
    """The 出典 line per 公共データ利用規約 for real years, and a plain statement for synthetic ones."""
    real = real_years(manifest)
    syn = synthetic_years(manifest)
    out = []
    if real:
        docs = "、".join(
            f"「{YEAR_JA.get(y, y)}保険者機能強化推進交付金等（市町村分）に係る評価結果」" for y in real
        )
        out.append(f"出典：{docs}（厚生労働省）を加工して作成")
    if syn:
        out.append(f"{_years_ja(syn)}の市町村別得点は合成データ（厚生労働省の公表値ではありません）")
    if not out:
        out.append("データの来歴不明")
    return "。".join(out) + "。"


# --------------------------------------------------------------------------------------------------------------
# Sphinx wiring


def _root(app: Sphinx) -> Path:
    return Path(app.config.kofukin_root or app.srcdir).resolve()


def _on_config_inited(app: Sphinx, config: Any) -> None:
    root = _root(app)
    manifest = read_manifest(root)
    opts = dict(config.html_theme_options or {})
    banner = banner_html(manifest)
    if banner:
        opts["announcement"] = banner
    else:
        opts.pop("announcement", None)
    deferred = bool(config.kofukin_defer_commit)
    opts["extra_footer"] = footer_html(manifest, None if deferred else code_commit(), deferred=deferred)
    config.html_theme_options = opts
    app.add_css_file("kofukin.css")
    if manifest is None:
        logger.info("[kofukin] no manifest at %s: the banner says the data's provenance is unknown", root)


def _on_builder_inited(app: Sphinx) -> None:
    if app.builder.format == "html" and hasattr(app.builder, "search"):
        # Pagefind indexes the finished site instead; this also saves the TinySegmenter pass over every page.
        app.builder.search = False
    if app.builder.format == "html":
        _downloads(app)  # zip the exports now, in the main process: parallel readers inherit the result
    if app.parallel > 1:
        _install_read_chunks(app)
    if app.config.kofukin_nav_cache and hasattr(app.builder, "copy_image_files"):
        app.builder.copy_image_files = lambda: link_image_files(app.builder)  # type: ignore[method-assign]


def link_image_files(builder: Any) -> int:
    """Sphinx's ``copy_image_files``, hard-linking each figure instead of copying it; returns the number linked.

    myst-nb writes every figure of a notebook to ``jupyter_execute/<sha256 of the image>.png`` while reading, and
    Sphinx copies each to ``_images/`` after writing, one by one in the main process: ~7,200 report figures, ~16 s
    with one core idle. A hard link is the same file for nothing. A figure is named after its content, so neither
    side is ever rewritten in place; an existing target that is another file is replaced (never overwritten),
    as the live site may share it. Where a link is impossible (another file system) the file is copied.
    """
    if not builder.images:
        return 0
    target = Path(builder.outdir, builder.imagedir)
    target.mkdir(parents=True, exist_ok=True)
    for src, dest in builder.images.items():
        source, link = Path(builder.srcdir, src), target / dest
        if link.exists() and os.path.samefile(source, link):
            continue
        tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, link)
    logger.info("[kofukin] linked %d images", len(builder.images))
    return len(builder.images)


def _collect_search_page(app: Sphinx) -> list[tuple[str, dict, str]]:
    if app.builder.format != "html":
        return []
    return [("search", {"title": "検索"}, "search.html")]


def page_kind(pagename: str) -> str:
    """The Pagefind filter value of a page (lets a reader restrict results to municipalities)."""
    if MUNICIPALITY_PAGE.match(pagename):
        return "市町村"
    if PREFECTURE_PAGE.match(pagename):
        return "都道府県"
    if pagename == "book/national":
        return "全国"
    if pagename == "book/outcomes":
        return "分析"
    return "解説"


def pdf_href(pagename: str, lg_code6: str) -> str:
    """Relative link from a page to ``<html>/pdf/<code>.pdf``."""
    return "../" * pagename.count("/") + f"pdf/{lg_code6}.pdf"


# sphinx-thebe is always loaded by Jupyter Book; launch buttons are off, so its assets only carry a CDN URL.
_DROPPED_ASSETS = re.compile(r"sphinx-thebe|THEBE_JS_URL")


def _is_external(url: str | None) -> bool:
    return bool(url) and re.match(r"^(https?:)?//", str(url)) is not None


def _local_assets_only(app: Sphinx, pagename: str, context: dict) -> None:
    """Drop sphinx-thebe's assets and warn (= fail under ``-W``) about any other script or style from the web.

    The site must work offline and must not tell a third party which municipality a reader looks at.
    """
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not isinstance(assets, list):
            continue
        kept = []
        for a in assets:
            filename = str(getattr(a, "filename", a) or "")
            body = str(getattr(a, "attributes", {}).get("body", ""))
            if _DROPPED_ASSETS.search(filename) or _DROPPED_ASSETS.search(body):
                continue
            if _is_external(filename):
                logger.warning(
                    "[kofukin] %s would load %s from the web; the site serves everything locally",
                    pagename,
                    filename,
                    location=pagename,
                )
            kept.append(a)
        assets[:] = kept


def _on_html_page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: nodes.document | None
) -> None:
    _local_assets_only(app, pagename, context)
    for key in ("pagetitle", "root_title"):
        # sphinx-book-theme 1.3 sets these to the titles' plain text and prints them unescaped
        # (``<h1>{{ pagetitle }}</h1>`` in its print header): a title made from data — a municipality name —
        # would become live markup. Escaped here, after the theme's handler, they print as text.
        if isinstance(context.get(key), str):
            context[key] = html.escape(context[key])
    if doctree is None or "body" not in context:
        return  # genindex, search: not indexed
    prefix = f'<span data-pagefind-filter="種別:{page_kind(pagename)}" hidden></span>'
    m = MUNICIPALITY_PAGE.match(pagename)
    if m and app.config.kofukin_pdf_links:
        prefix += (
            '<p class="kofukin-pdf-link" data-pagefind-ignore>'
            f'<a class="reference external" href="{pdf_href(pagename, m.group(1))}">'
            '<i class="fa-solid fa-file-pdf" aria-hidden="true"></i>印刷用PDF（A4）</a></p>'
        )
    context["body"] = f'<div class="kofukin-page" data-pagefind-body>{prefix}{context["body"]}</div>'


# --------------------------------------------------------------------------------------------------------------
# Sidebar cache: one rendering per prefecture instead of one per municipality page

_NAV_CACHE: dict[tuple, str] = {}
_CURRENT_LEAF = '<li class="toctree-l3 current active"><a class="current reference internal" href="#">'


def _leaf(lg_code6: str) -> str:
    return f'<li class="toctree-l3"><a class="reference internal" href="{lg_code6}.html">'


def neutral_nav(html_text: str, lg_code6: str) -> str | None:
    """The sidebar of a municipality page with its own entry un-marked (``None`` if the markup is unexpected)."""
    if html_text.count(_CURRENT_LEAF) != 1 or html_text.count(' href="#"') != 1:
        return None
    return html_text.replace(_CURRENT_LEAF, _leaf(lg_code6))


def nav_for(neutral: str, lg_code6: str) -> str | None:
    """Mark ``lg_code6`` as the current page in a neutral sidebar (``None`` if its entry is not there once)."""
    leaf = _leaf(lg_code6)
    if neutral.count(leaf) != 1:
        return None
    return neutral.replace(leaf, _CURRENT_LEAF)


def _toctree_html_function(app: Sphinx, pagename: str, context: dict) -> Callable[..., str]:
    """``kofukin_toctree_html`` for ``book/_templates/sbt-sidebar-nav.html``.

    Same arguments and result as pydata-sphinx-theme's ``generate_toctree_html`` (looked up in the context at
    call time: the theme adds it after this handler ran). For a municipality page the sidebar is rendered once
    per prefecture and worker process; other municipalities of the prefecture get a copy with their own entry
    marked current. Any markup that does not look exactly as expected falls back to the theme's function.
    """

    def kofukin_toctree_html(kind: str, startdepth: int = 1, show_nav_level: int = 1, **kwargs: Any) -> str:
        generate = context["generate_toctree_html"]
        m = MUNICIPALITY_PAGE.match(pagename)
        if not (m and app.config.kofukin_nav_cache and kind == "sidebar"):
            return generate(kind, startdepth=startdepth, show_nav_level=show_nav_level, **kwargs)
        code = m.group(1)
        key = (code[:2], startdepth, show_nav_level, tuple(sorted(kwargs.items())))
        neutral = _NAV_CACHE.get(key)
        if neutral is not None and (html_text := nav_for(neutral, code)) is not None:
            return html_text
        html_text = str(generate(kind, startdepth=startdepth, show_nav_level=show_nav_level, **kwargs))
        if (fresh := neutral_nav(html_text, code)) is not None:
            _NAV_CACHE[key] = fresh
        return html_text

    return kofukin_toctree_html


def _on_html_page_context_early(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: nodes.document | None
) -> None:
    context["kofukin_toctree_html"] = _toctree_html_function(app, pagename, context)


def _copy_assets(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    publish_downloads(_downloads(app), out / "downloads")
    font = bundled_font()
    if font is not None:
        fonts = out / "_static" / "fonts"
        fonts.mkdir(parents=True, exist_ok=True)
        _copy_if_changed(font, fonts / FONT_NAME)
        licence = font.parent / "IPA_Font_License_Agreement_v1.0.txt"
        if licence.exists():
            _copy_if_changed(licence, fonts / licence.name)
    prune_outputs(app)


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy unless ``dst`` already has the same size and mtime: an unchanged file keeps its stamp, so
    :func:`kofukin.site.publish` can reuse the published copy instead of copying it again."""
    s = src.stat()
    if dst.exists():
        d = dst.stat()
        if (d.st_size, d.st_mtime_ns) == (s.st_size, s.st_mtime_ns):
            return
        dst.unlink()
    shutil.copy2(src, dst)


def bundled_font() -> Path | None:
    """IPAex Gothic as shipped by matplotlib-fontja (a dependency of the notebooks' plots)."""
    try:
        import matplotlib_fontja
    except ImportError:  # pragma: no cover - the package is in requirements.lock
        return None
    path = Path(matplotlib_fontja.__file__).parent / "fonts" / FONT_NAME
    return path if path.exists() else None


# --------------------------------------------------------------------------------------------------------------
# Downloads: the export tables as ZIP files, made once per export and reused by every site build


def export_files(exports: Path) -> list[Path]:
    if not exports.is_dir():
        return []
    return sorted(p for p in exports.iterdir() if p.is_file() and p.suffix in DOWNLOAD_SUFFIXES)


def is_table(path: Path) -> bool:
    """An export table (zipped for download), as opposed to the small files that describe the tables."""
    return path.suffix == ".csv" and path.stem not in PLAIN_TABLES


@dataclass(frozen=True)
class Download:
    """One file of ``<html>/downloads/``: ``path`` is what is published, ``source`` the export file it holds."""

    path: Path
    source: Path

    @property
    def zipped(self) -> bool:
        return self.path != self.source


def downloads_cache(root: Path) -> Path:
    """Where the ZIP files are kept between builds (outside the site, which is replaced by every build)."""
    return ProjectPaths(root).build / ".downloads"


def prepare_downloads(exports: Path, cache: Path) -> list[Download]:
    """The downloads of the site: every export table zipped, the files that describe them as they are.

    The tables are 180 MB of CSV (UTF-8 and Excel versions of each); zipped they are about 14 MB, which keeps
    the site small and every site build from copying them. A ZIP is rebuilt only when its table's SHA-256
    (from ``export_manifest.json``, else computed) differs from the one it was made from, and it is written
    to a new file and renamed into place, never rewritten in place: published sites hard-link it.
    ``kofukin export``'s files in ``data/exports/`` are left exactly as they are.
    """
    files = export_files(exports)
    tables = [f for f in files if is_table(f)]
    if not tables:
        return [Download(f, f) for f in files]
    cache.mkdir(parents=True, exist_ok=True)
    index_path = cache / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    known = export_manifest(exports).get("sha256", {})
    todo: list[tuple[Path, Path, str]] = []
    fresh: dict[str, str] = {}
    for f in tables:
        target = cache / f"{f.stem}.zip"
        digest = known.get(f.name) or sha256_file(f)
        fresh[target.name] = digest
        if index.get(target.name) != digest or not target.exists():
            todo.append((f, target, digest))
    if todo:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: _write_zip(job[0], job[1]), todo))  # zlib releases the GIL
    for stale in cache.glob("*.zip"):
        if stale.name not in fresh:
            stale.unlink()
    if fresh != index:
        tmp = index_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(fresh, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, index_path)
    return [Download(cache / f"{f.stem}.zip", f) if is_table(f) else Download(f, f) for f in files]


def _write_zip(src: Path, target: Path) -> None:
    """``target`` holds ``src`` under its own name, with its modification time; written beside, then renamed."""
    import time
    import zipfile

    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    stamp = time.localtime(max(src.stat().st_mtime, 315532800))  # ZIP dates start in 1980
    info = zipfile.ZipInfo(src.name, date_time=stamp[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    try:
        with zipfile.ZipFile(tmp, "w", compresslevel=6) as zf, src.open("rb") as f, zf.open(info, "w") as w:
            shutil.copyfileobj(f, w, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _downloads(app: Sphinx) -> list[Download]:
    """The downloads of this build, prepared once per build (in the main process, before reading)."""
    cached = getattr(app, "_kofukin_downloads", None)
    if cached is None:
        root = _root(app)
        cached = prepare_downloads(ProjectPaths(root).exports, downloads_cache(root))
        app._kofukin_downloads = cached  # type: ignore[attr-defined]
    return cached


def publish_downloads(downloads: list[Download], target: Path) -> list[Path]:
    """Put the downloads into the site (``<html>/downloads/``) as hard links (copies across file systems).

    Files of earlier builds that are no longer offered (the plain CSVs of older sites, a dropped table) are
    removed. Returns the published files.
    """
    if not downloads:
        if target.is_dir():
            shutil.rmtree(target)
        return []
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for d in downloads:
        dst = target / d.path.name
        if dst.exists():
            if os.path.samefile(dst, d.path):
                out.append(dst)
                continue
            dst.unlink()
        try:
            os.link(d.path, dst)
        except OSError:
            shutil.copy2(d.path, dst)
        out.append(dst)
    names = {p.name for p in out}
    for stale in target.iterdir():
        if stale.name not in names:
            stale.unlink()
    return out


# --------------------------------------------------------------------------------------------------------------
# Incremental builds: what Sphinx alone would get wrong when it keeps its environment between builds


def nav_fingerprint(env: BuildEnvironment) -> str:
    """A digest of everything one page shows of *other* pages: titles, toctrees, toc titles and labels.

    Sphinx rewrites only the pages it re-read, but every page's sidebar and previous/next links show other
    pages' titles, and ``{doc}``/``{ref}`` links show their titles and section names. When this digest
    changes, every page is rewritten (:func:`_on_env_updated`); an edit of a chapter's body leaves it as it is.
    """
    h = hashlib.sha256()
    for doc in sorted(env.found_docs):
        title = env.titles.get(doc)
        h.update(f"{doc}\t{title.astext() if title is not None else ''}\t".encode())
        h.update(json.dumps(list(env.toctree_includes.get(doc, [])), ensure_ascii=False).encode())
    site_map = getattr(env, "external_site_map", None)
    if site_map is not None:
        h.update(json.dumps(site_map.as_json(), ensure_ascii=False, sort_keys=True, default=str).encode())
    for domain in ("std",):
        data = env.domaindata.get(domain, {})
        for key in ("labels", "anonlabels"):
            h.update(repr(sorted(data.get(key, {}).items())).encode())
    return h.hexdigest()


def _on_env_updated(app: Sphinx, env: BuildEnvironment) -> list[str]:
    fingerprint = nav_fingerprint(env)
    previous = getattr(env, "kofukin_nav_fingerprint", None)
    env.kofukin_nav_fingerprint = fingerprint  # type: ignore[attr-defined]
    if previous is not None and previous != fingerprint:
        logger.info("[kofukin] titles or navigation changed: every page is rewritten")
        return sorted(env.found_docs)
    return []


def prune_outputs(app: Sphinx) -> list[Path]:
    """Delete what earlier builds wrote and this book no longer has; returns the deleted files.

    Sphinx never deletes output. With its environment kept between builds, the page of a municipality
    dropped from the book, the figures of a re-run report (named by their content) and myst-nb's copies of
    them would otherwise stay in the output — and be published and indexed for search.
    """
    env = app.env
    out = Path(app.outdir)
    gone: list[Path] = []
    pages = {Path(app.builder.get_outfilename(d)) for d in env.found_docs}
    book = out / "book"
    if book.is_dir():
        gone += [p for p in book.rglob("*.html") if p not in pages]
    images = {unique for _docs, unique in env.images.values()}
    imagedir = out / getattr(app.builder, "imagedir", "_images")
    if imagedir.is_dir():
        gone += [p for p in imagedir.iterdir() if p.is_file() and p.name not in images]
    executed = out.parent / "jupyter_execute"  # myst-nb's output folder: figures are read from here
    if executed.is_dir():
        srcdir = str(app.srcdir)
        used = {os.path.normpath(os.path.join(srcdir, f)) for f in env.images}
        gone += [p for p in executed.glob("*.png") if os.path.normpath(p) not in used]
    for p in gone:
        p.unlink(missing_ok=True)
    if gone:
        logger.info("[kofukin] removed %d outputs of pages and figures no longer in the book", len(gone))
    return gone


# Pages using the directives below show build-time facts, so they are re-read on every build.
def _dynamic_docs(env: BuildEnvironment) -> set[str]:
    if not hasattr(env, "kofukin_dynamic_docs"):
        env.kofukin_dynamic_docs = set()  # type: ignore[attr-defined]
    return env.kofukin_dynamic_docs  # type: ignore[attr-defined]


def _on_env_get_outdated(
    app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set
) -> list[str]:
    """Pages with build-time facts, and those :mod:`kofukin.site` asks for (they warned in a failed build:
    re-reading them repeats the warning instead of publishing the page unread)."""
    forced = set(app.config.kofukin_reread_docs or ())
    return sorted(d for d in _dynamic_docs(env) | forced if d in env.all_docs)


def _on_env_purge_doc(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    _dynamic_docs(env).discard(docname)


def _on_env_merge_info(app: Sphinx, env: BuildEnvironment, docnames: set, other: BuildEnvironment) -> None:
    _dynamic_docs(env).update(_dynamic_docs(other))


Cell = nodes.Node | str | list[nodes.Node | str]


def _table(header: list[str], rows: list[list[Cell]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["kofukin-facts"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    thead = nodes.thead()
    group += thead
    hrow = nodes.row()
    for h in header:
        hrow += nodes.entry("", nodes.paragraph(text=h))
    thead += hrow
    tbody = nodes.tbody()
    group += tbody
    for r in rows:
        row = nodes.row()
        for cell in r:
            entry = nodes.entry()
            for part in cell if isinstance(cell, list) else [cell]:  # a list: one paragraph per part
                para = nodes.paragraph()
                para += part if isinstance(part, nodes.Node) else nodes.Text(part)
                entry += para
            row += entry
        tbody += row
    return table


class BuildFactsDirective(SphinxDirective):
    """``{kofukin-build-facts}``: code version and every source file of the store with its checksum."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        _dynamic_docs(self.env).add(self.env.docname)
        root = _root(self.env.app)
        manifest = read_manifest(root)
        facts = nodes.bullet_list()
        items = [
            ("コード", f"kofukin {__version__}"),
            ("git コミット", code_commit() or "不明（リポジトリ外のコード）"),
            ("合成データの年度", "、".join(synthetic_years(manifest)) or "なし"),
            ("実データの年度", "、".join(real_years(manifest)) or "なし"),
        ]
        items += [(f"manifest: {k}", v) for k, v in manifest_scalars(manifest).items()]
        for k, v in items:
            para = nodes.paragraph()
            para += nodes.strong(text=k)
            para += nodes.Text(f"：{v}")
            facts += nodes.list_item("", para)
        out: list[nodes.Node] = [facts]
        if manifest is None:
            out.append(
                nodes.paragraph(text="data/processed/manifest.json がありません（取り込み前のビルド）。")
            )
            return out
        rows: list[list[Cell]] = [
            [r["fiscal_year"], r["content"], r["kind"], r["file"], nodes.literal(text=r["sha256"])]
            for r in source_rows(manifest)
        ]
        out.append(_table(["年度", "内容", "種別", "ファイル", "SHA-256"], rows, [6, 12, 8, 28, 46]))
        out.append(
            nodes.paragraph(
                text=f"ページ下部のビルド情報の「指紋」は、上の全ファイルの名前と SHA-256 から作った値です"
                f"（sha256:{data_fingerprint(manifest)[:12]}…）。"
            )
        )
        return out


def provenance_rows(path: Path) -> list[dict[str, str]]:
    """``data/reference/provenance.yml`` flattened for display: file, citation line, licence, sha256."""
    import yaml

    if not path.exists():
        return []
    records = yaml.safe_load(path.read_text(encoding="utf-8")).get("files", [])
    out = []
    for r in records:
        licence = r.get("licence") or {}
        out.append(
            {
                "file": str(r.get("file", "")),
                "citation": str(r.get("citation", "")),
                "licence": str(licence.get("name", "")) if isinstance(licence, dict) else str(licence),
                "accessed": str(r.get("accessed", "")),
                "sha256": str(r.get("sha256", "")),
            }
        )
    return out


class ProvenanceDirective(SphinxDirective):
    """``{kofukin-provenance}``: every reference file's 出典 line, licence and checksum, from provenance.yml.

    The table is read from the committed record at build time, so the page can never disagree with it.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        from kofukin.paths import REFERENCE_DIR

        path = REFERENCE_DIR / "provenance.yml"
        self.env.note_dependency(str(path))
        rows = provenance_rows(path)
        if not rows:
            return [nodes.paragraph(text="data/reference/provenance.yml が見つかりません。")]
        body: list[list[Cell]] = [
            [
                nodes.literal(text=r["file"]),
                r["citation"],
                r["licence"],
                r["accessed"],
                nodes.literal(text=r["sha256"][:16]),
            ]
            for r in rows
        ]
        return [
            _table(
                ["ファイル", "出典表記", "ライセンス", "取得日", "SHA-256（先頭16桁）"],
                body,
                [16, 40, 24, 10, 14],
            )
        ]


# What each table of `kofukin export` holds (kofukin.export); a table not listed here is shown without a note.
EXPORT_TABLES_JA: dict[str, str] = {
    "national_summary": "全国集計：年度・26区分ごとの配点、平均点、平均得点率、中央値、前年度平均",
    "prefecture_summary": "都道府県集計：年度・都道府県・地域区分（区部・市部・町村部、規模区分、過疎）・区分ごとの平均と得点率、全国との差",
    "municipality_profiles": "市町村別：属性、26区分の得点、全国・都道府県内・同条件の順位（年度ごと）",
    "gains_losses": "得点の増減：連続する2年度の間に獲得・喪失した項目（クロスウォークで対応させた項目）と比較できない項目",
    "gains_losses_by_goal": "得点の増減の目標別集計：市町村・年度の組・交付金・目標ごと",
    "within_reach": "手の届く項目：最新年度に0点で、同条件の30%以上が得点している項目と回復できる点",
    "peers": "似た市町村：最新年度の最も近い10市町村",
    "regression_coefficients": "回帰係数",
}
EXCEL_SUFFIX = "_excel"


def export_manifest(exports: Path) -> dict:
    path = exports / "export_manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


class DownloadsDirective(SphinxDirective):
    """``{kofukin-downloads}``: the export tables, one row per table with its UTF-8 and Excel files (zipped).

    Row counts come from ``export_manifest.json`` when the export wrote one (the tables run to 100 MB; counting
    lines at every build would be wasted time); files that are not a table pair are listed after the table.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        _dynamic_docs(self.env).add(self.env.docname)
        exports = ProjectPaths(_root(self.env.app)).exports
        downloads = _downloads(self.env.app)
        if not downloads:
            return [
                nodes.paragraph(
                    text="このビルドにはダウンロード用ファイルがありません（`kofukin export` で作成されます）。"
                )
            ]
        prefix = "../" * self.env.docname.count("/")
        by_name = {d.source.name: d for d in downloads}
        rows_of = export_manifest(exports).get("rows", {})

        def link(d: Download) -> nodes.Node:
            para = nodes.inline()
            para += nodes.reference(
                "", d.path.name, refuri=f"{prefix}downloads/{d.path.name}", internal=False
            )
            size = _size(d.path.stat().st_size)
            if d.zipped:
                para += nodes.Text(f"（ZIP {size}、展開後 {_size(d.source.stat().st_size)}）")
            else:
                para += nodes.Text(f"（{size}）")
            return para

        tables = sorted(
            d.source.stem
            for d in downloads
            if d.source.suffix == ".csv" and not d.source.stem.endswith(EXCEL_SUFFIX) and is_table(d.source)
        )
        used: set[str] = set()
        rows: list[list[Cell]] = []
        for name in tables:
            plain, excel = by_name[f"{name}.csv"], by_name.get(f"{name}{EXCEL_SUFFIX}.csv")
            used |= {plain.source.name, excel.source.name if excel else ""}
            n = rows_of.get(name)
            about: list[nodes.Node | str] = [nodes.strong(text=name)]
            if name in EXPORT_TABLES_JA:
                about.append(EXPORT_TABLES_JA[name])
            rows.append(
                [
                    about,
                    f"{n:,}" if isinstance(n, int) else _n_rows(plain.source),
                    [link(plain), link(excel)] if excel else [link(plain)],
                ]
            )
        out: list[nodes.Node] = []
        if rows:
            out.append(_table(["表と内容", "行数", "ファイル（UTF-8 版／Excel 版）"], rows, [55, 10, 35]))
        rest = [d for d in downloads if d.source.name not in used]
        if rest:
            items = nodes.bullet_list()
            for d in rest:
                items += nodes.list_item("", nodes.paragraph("", "", link(d)))
            out += [nodes.paragraph(text="その他のファイル（説明、列名の対応表、チェックサム）："), items]
        return out


def _size(n: int) -> str:
    return f"{n / 1024:,.0f} KB" if n < 1024**2 else f"{n / 1024**2:,.1f} MB"


def _n_rows(path: Path) -> str:
    if path.suffix != ".csv":
        return "—"
    with path.open("rb") as f:
        return f"{max(sum(1 for _ in f) - 1, 0):,}"


def _declare_multitoc_parallel_safe(app: Sphinx) -> None:
    """Let ``-j N`` read in parallel although sphinx-external-toc always loads sphinx-multitoc-numbering.

    That extension declares nothing, so Sphinx warns (an error under ``-W``) and reads serially. It only
    renumbers sections of a toc with ``numbered: true``, which this book never uses (the generated toc has
    no numbering), and it does so after the documents are merged; parallel reading is safe here.
    """
    ext = app.extensions.get("sphinx_multitoc_numbering")
    if ext is not None and ext.parallel_read_safe is None:
        ext.parallel_read_safe = True


# myst-nb versions whose code was read for _skip_notebook_copies and _reuse_markdown_parsers (each patches one
# module attribute; another version is left alone).
MYST_NB_CHECKED = ("1.4.0",)


class _NotebookWithoutCopy:
    """``nbformat`` as myst-nb's Sphinx parser sees it, except that ``writes`` returns nothing."""

    def __getattr__(self, name: str) -> Any:
        import nbformat

        return getattr(nbformat, name)

    @staticmethod
    def writes(nb: Any, *args: Any, **kwargs: Any) -> str:
        return ""


def _take_shortcuts(app: Sphinx, config: Any) -> None:
    """Patch myst-nb where it wastes time (both patches leave every page as it was: tests/test_site.py builds
    the stand-in book with and without them and compares every byte)."""
    if not config.kofukin_nav_cache:
        return  # the reference build of that test: no shortcut at all
    _skip_notebook_copies(config)
    _reuse_markdown_parsers()


def _skip_notebook_copies(config: Any) -> None:
    """Stop myst-nb from writing back a copy of every notebook it reads.

    myst-nb serialises each notebook and writes it to ``jupyter_execute/<page>.ipynb`` for the theme's
    download button, which this book does not show: 1,800 × 240 KB and ~12 ms each, a tenth of reading a
    report page. The copies become empty files. Only for the myst-nb versions this was checked against, and
    only while the download button is off (it would offer the copies).
    """
    import myst_nb
    import myst_nb.sphinx_ as parser

    options = config.html_theme_options or {}
    if myst_nb.__version__ not in MYST_NB_CHECKED or options.get("use_download_button", True):
        return
    if getattr(parser, "nbformat", None).__class__ is not _NotebookWithoutCopy:
        parser.nbformat = _NotebookWithoutCopy()  # type: ignore[assignment]


READ_CHUNKS_PER_PROCESS = 4


def read_chunks(
    docnames: list[str], nproc: int, per_process: int = READ_CHUNKS_PER_PROCESS
) -> list[list[str]]:
    """Split the pages to read in parallel into ``nproc × per_process`` chunks of (nearly) equal size.

    Each chunk is read in a forked process that sends back its *whole* environment — everything merged before
    the fork included — and the main process unpickles it. Sphinx's own chunking (√(n/nproc × 10) pages, 20
    chunks for 1,800 pages) therefore unpickles the growing environment 20 times, ~150 MB of docutils nodes; 8
    chunks halve that, at the price of a longer last chunk.
    """
    n = max(1, nproc * per_process)
    size = max(1, -(-len(docnames) // n))
    return [docnames[i : i + size] for i in range(0, len(docnames), size)]


def _install_read_chunks(app: Sphinx) -> None:
    """Use :func:`read_chunks` for Sphinx's parallel *reading* (its writing keeps Sphinx's chunks)."""
    import sphinx.builders as builders
    from sphinx.util.build_phase import BuildPhase

    original = getattr(builders.make_chunks, "_kofukin_original", builders.make_chunks)

    def make_chunks(arguments: Any, nproc: int, maxbatch: int = 10) -> list[Any]:
        if app.phase != BuildPhase.READING:
            return original(arguments, nproc, maxbatch)
        return read_chunks(list(arguments), nproc)

    make_chunks._kofukin_original = original  # type: ignore[attr-defined]
    builders.make_chunks = make_chunks


def _reuse_markdown_parsers() -> None:
    """Build myst-nb's CommonMark (and GFM) parser for pasted Markdown once, not once per paste.

    Every ``{glue:md}`` paste (seven on a municipality page) makes a new Markdown parser in myst-nb — ~3 ms,
    a tenth of reading a report page. The parser is only used to tokenise the pasted text (the page's own
    renderer renders the tokens) and keeps no state between parses, so one per configuration serves all.
    Only the two isolated configurations myst-nb creates for pastes are cached.
    """
    import myst_nb
    import myst_nb.core.render as render
    from myst_parser.config.main import MdParserConfig

    if myst_nb.__version__ not in MYST_NB_CHECKED:
        return
    original = getattr(render.create_md_parser, "_kofukin_original", render.create_md_parser)
    isolated = (MdParserConfig(commonmark_only=True), MdParserConfig(gfm_only=True))
    parsers: dict[tuple[int, type], Any] = {}

    def create_md_parser(config: MdParserConfig, renderer: Any) -> Any:
        for i, kind in enumerate(isolated):
            if config == kind:
                key = (i, renderer)
                if key not in parsers:
                    parsers[key] = original(config, renderer)
                return parsers[key]
        return original(config, renderer)

    create_md_parser._kofukin_original = original  # type: ignore[attr-defined]
    render.create_md_parser = create_md_parser


def _on_write_started(app: Sphinx, builder: Any) -> None:
    """Write with ``kofukin_write_workers`` processes besides the main one (Sphinx's ``-j N`` uses N − 1).

    In Sphinx's parallel write the main process unpickles and resolves every doctree and hands them to the
    workers, which render the pages; with ``-j 2`` a single worker renders while the main process waits for
    it most of the time, so one of two cores idles.
    """
    workers = int(app.config.kofukin_write_workers or 0)
    if workers > 0 and app.parallel > 1:
        app.parallel = workers + 1
    _copy_mystnb_css(app)


def _copy_mystnb_css(app: Sphinx) -> None:
    """Put myst-nb's stylesheet into ``_static/`` before the pages are written, not after (as myst-nb does).

    Sphinx appends ``?v=<checksum>`` to a stylesheet's link only if the file is already in the output. Copied
    at the end, the first build's pages link it without the checksum and every later build's with it, so a
    page rewritten by an incremental build would differ from the same page of a fresh build.
    """
    if app.builder.format != "html":
        return
    try:
        from myst_nb.sphinx_ext import add_global_html_resources
    except ImportError:  # pragma: no cover - myst-nb is what reads the notebooks
        return
    (Path(app.outdir) / "_static").mkdir(parents=True, exist_ok=True)
    add_global_html_resources(app, None)


def setup(app: Sphinx) -> dict[str, Any]:
    _declare_multitoc_parallel_safe(app)
    app.add_config_value("kofukin_root", "", "env", [str])
    app.add_config_value("kofukin_pdf_links", False, "html", [bool])
    app.add_config_value("kofukin_nav_cache", True, "html", [bool])
    # Set by kofukin.site, which keeps Sphinx's environment between builds: the footer's commit is substituted
    # when the pages are published, and pages that warned last time are read again ("" = no rebuild on change).
    app.add_config_value("kofukin_defer_commit", False, "html", [bool])
    app.add_config_value("kofukin_reread_docs", [], "", [list])
    app.add_config_value("kofukin_write_workers", 0, "", [int])
    app.connect("config-inited", _on_config_inited)
    app.connect("config-inited", _take_shortcuts)
    app.connect("write-started", _on_write_started)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("html-collect-pages", _collect_search_page)
    app.connect("html-page-context", _on_html_page_context_early, priority=400)  # before the theme renders
    app.connect("html-page-context", _on_html_page_context, priority=900)  # after assets are added
    app.connect("env-get-outdated", _on_env_get_outdated)
    app.connect("env-purge-doc", _on_env_purge_doc)
    app.connect("env-merge-info", _on_env_merge_info)
    app.connect("env-updated", _on_env_updated)
    app.connect("build-finished", _copy_assets)
    app.add_directive("kofukin-build-facts", BuildFactsDirective)
    app.add_directive("kofukin-downloads", DownloadsDirective)
    app.add_directive("kofukin-provenance", ProvenanceDirective)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
