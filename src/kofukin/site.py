"""Build the static site: Sphinx (via Jupyter Book) → optional PDFs → Pagefind index → atomic swap.

Entry points::

    python -m kofukin.site toc [--check]        # regenerate (or check) the committed _toc.yml
    python -m kofukin.site build [--jobs N] [--pdf]
    python -m kofukin.site serve [--port 8000]  # Pagefind needs http://, not file://
    python -m kofukin.site demo OUT_DIR [--full] [--jobs N] [--pdf]
                                                # a stand-in book (2 prefectures, or all 1,741 with --full)

:func:`build_site` is what ``kofukin site`` / ``kofukin build`` call. The pages themselves (``book/national.ipynb``,
``book/prefectures/*.ipynb``, ``book/municipalities/*.ipynb``, ``book/outcomes.ipynb``) are executed notebooks
written by the report runner; this module only assembles them.

Why the pieces are arranged this way:

* Sphinx runs in a **subprocess** (``python -m kofukin.site _sphinx``) with Jupyter Book's own
  ``build_sphinx`` and the flags of ``jupyter-book build -n -W --keep-going``, plus ``jobs`` for parallel
  reading/writing (the ``jupyter-book`` CLI has no ``-j``). Its whole output goes to ``_build/logs/site.log``;
  a single warning — a missing reference in nitpicky mode included — fails the build and the first warnings
  are quoted in the error.
* Sphinx is **incremental**: its output, doctrees and environment are kept in ``_build/.site-cache/``
  (:class:`SiteCache`; myst-nb's figures live beside them in ``jupyter_execute/``), so a rebuild reads only new
  and changed pages. What Sphinx alone gets wrong is handled in :mod:`kofukin.sphinx_ext` (pages showing other
  pages' titles, stale outputs) and here: the cache is keyed on the extension's code and package versions,
  marked busy while Sphinx runs (a killed build starts afresh next time), and pages that warned in a failed
  build are read again by the next one, so a warning can never be skipped by not re-reading its page.
* Everything the reader gets is assembled in a **staging directory** under ``_build/`` (same filesystem) and
  swapped into ``_build/html`` by renames only (:func:`kofukin.store.swap_directory`), so a failed build, a
  failed Pagefind run or a failed PDF leaves the previous site intact. :func:`publish` fills it from Sphinx's
  output: files unchanged since the live site was published are hard-linked from the live site, the others
  copied — never linked to Sphinx's output, which the next build may rewrite in place. The footer's git
  commit is filled in here too (it changes with every commit, and would otherwise make Sphinx rewrite every
  page).
* **Search** is two Pagefind bundles merged by ``search.html`` (:data:`SEARCH_INDEXES`): the report pages and the
  hand-written chapters. A bundle whose pages did not change is hard-linked from the live site; editing a
  chapter re-indexes the chapters only (seconds), not the 1,790 report pages (most of a minute).
* The export tables are published **zipped** (``data/exports/*.csv`` → ``<html>/downloads/*.zip``, made once per
  export in ``_build/.downloads/``) and the bundled Japanese font copied by :mod:`kofukin.sphinx_ext` when Sphinx
  finishes, so a plain ``jupyter-book build .`` gets them too; PDFs go to ``<html>/pdf/<lg_code6>.pdf``
  (:mod:`kofukin.pdf`), printed from the staged pages before the swap — or taken from the live site when
  neither the page nor the stylesheets changed.
* A book with fewer pages than the master (a test book, a partial run) is built from a **reduced toc** written
  to ``_build/_toc.reduced.yml``; the committed ``_toc.yml`` is never rewritten by a build.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kofukin.paths import ProjectPaths, project_paths
from kofukin.store import staging_dir, swap_directory
from kofukin.toc import (
    HAND_WRITTEN_DOCS,
    REQUIRED_GENERATED_DOCS,
    TOC_FILE,
    full_toc_text,
    master_entries,
    present_docnames,
    render_toc,
    toc_dict,
    toc_docnames,
    write_text_atomic,
)

LOG_NAME = "site.log"
CACHE_DIR = ".site-cache"
BUILD_FACTS = ".kofukin-build.json"
REDUCED_TOC = "_toc.reduced.yml"
WARNING_LINE = re.compile(r"(WARNING|ERROR|CRITICAL|SEVERE):|Validation errors in config")
PROGRESS_LINE = re.compile(r"^(?P<phase>reading sources|writing output)\.\.\. \[\s*(?P<pct>\d+)%\]")
MUNICIPALITY_HTML = "book/municipalities"


class SiteBuildError(RuntimeError):
    """The site could not be built; the previous ``_build/html`` is untouched."""


@dataclass
class SiteBuild:
    """What a build produced and how long each stage took (seconds)."""

    html_dir: Path
    log: Path
    toc: Path
    n_pages: int
    n_municipalities: int
    reduced: bool
    seconds: dict[str, float] = field(default_factory=dict)
    n_pdfs: int = 0
    pagefind: str = ""
    n_copied: int = 0
    n_linked: int = 0
    search_reused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        kind = "縮小版" if self.reduced else "全体"
        reused = f"、検索索引の再利用 {'・'.join(self.search_reused)}" if self.search_reused else ""
        return (
            f"サイト（{kind}: {self.n_pages} ページ、市町村 {self.n_municipalities}、PDF {self.n_pdfs}）: {times}\n"
            f"  公開ファイル: 新規 {self.n_copied}、前回から再利用 {self.n_linked}{reused}\n"
            f"  開く: {self.html_dir / 'index.html'}\n"
            f"  検索も使うには: python -m kofukin.site serve  →  http://127.0.0.1:8000/\n"
            f"  ビルドログ: {self.log}"
        )


# --------------------------------------------------------------------------------------------------------------
# Table of contents


def check_toc(paths: ProjectPaths) -> bool:
    """Does the committed ``_toc.yml`` equal a fresh generation from the master?"""
    path = paths.root / TOC_FILE
    return path.exists() and path.read_text(encoding="utf-8") == full_toc_text()


def write_full_toc(paths: ProjectPaths) -> Path:
    path = paths.root / TOC_FILE
    write_text_atomic(path, full_toc_text())
    return path


def prepare_toc(paths: ProjectPaths, echo: Callable[[str], None] = print) -> tuple[Path, dict]:
    """The toc file to build from: the committed one for a full book, a reduced one otherwise.

    Raises
    ------
    SiteBuildError
        If a hand-written chapter or a required generated page (national, outcomes) is missing: the
        hand-written chapters link to them, so the book cannot be built without them.
    """
    present = present_docnames(paths.root)
    missing = [d for d in (*HAND_WRITTEN_DOCS, *REQUIRED_GENERATED_DOCS) if d not in present]
    if missing:
        hint = " (run `kofukin reports` first)" if set(missing) & set(REQUIRED_GENERATED_DOCS) else ""
        raise SiteBuildError(f"pages missing from book/: {', '.join(missing)}{hint}")
    entries = master_entries()
    full = toc_dict(entries)
    if set(toc_docnames(full)) <= present:
        if not check_toc(paths):
            echo(f"{TOC_FILE} was out of date with the master: regenerated")
            write_full_toc(paths)
        return paths.root / TOC_FILE, full
    reduced = toc_dict(entries, present=present)
    path = paths.build / REDUCED_TOC
    write_text_atomic(path, render_toc(reduced))
    n = sum(d.startswith("book/municipalities/") for d in toc_docnames(reduced))
    echo(f"縮小版のブック: 市町村ページ {n} / 1,741（目次 {path}）")
    return path, reduced


# --------------------------------------------------------------------------------------------------------------
# Sphinx's cache between builds


@dataclass(frozen=True)
class SiteCache:
    """Sphinx's output, doctrees and environment, kept between builds in ``_build/.site-cache/``.

    Never served: :func:`publish` copies (or hard-links unchanged files of the live site) into the staging
    directory, so Sphinx writing a file in place can never touch the published site. ``html/`` is Sphinx's
    output directory; myst-nb writes the notebooks' figures to ``jupyter_execute/`` next to it while reading,
    and the doctrees point at them, so the three live and die together.
    """

    root: Path

    @property
    def outdir(self) -> Path:
        return self.root / "html"

    @property
    def doctrees(self) -> Path:
        return self.root / "doctrees"

    @property
    def key_file(self) -> Path:
        return self.root / "key"

    @property
    def busy_file(self) -> Path:
        """Present while Sphinx runs and after a failure that cannot be pinned on pages: wipe before use."""
        return self.root / "busy"

    @property
    def reread_file(self) -> Path:
        """Pages that warned in the last (failed) build: read again by the next one."""
        return self.root / "reread.json"

    @property
    def record_file(self) -> Path:
        """What the live site was published from (see :func:`publish`)."""
        return self.root / "published.json"


SPHINX_PACKAGES = (
    "sphinx",
    "docutils",
    "jupyter-book",
    "myst-nb",
    "myst-parser",
    "sphinx-book-theme",
    "pydata-sphinx-theme",
    "sphinx-external-toc",
)


def cache_key(root: Path, toc: Path) -> str:
    """What Sphinx's cache is only valid for: this project root and toc, the extension's code and the versions
    of Sphinx and its extensions. Sphinx itself notices changed pages, configuration and templates, but not a
    changed extension (its version string stays) or an upgraded package."""
    from importlib.metadata import PackageNotFoundError, version

    from kofukin import __version__
    from kofukin.paths import PACKAGE_DIR

    h = hashlib.sha256()
    for part in (__version__, sys.version, str(root.resolve()), str(toc.resolve())):
        h.update(part.encode() + b"\0")
    for name in SPHINX_PACKAGES:
        try:
            h.update(f"{name}=={version(name)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{name} missing\0".encode())
    for module in ("sphinx_ext.py", "toc.py"):
        h.update((PACKAGE_DIR / module).read_bytes())
    return h.hexdigest()


def open_cache(build: Path, key: str, echo: Callable[[str], None] = print) -> SiteCache:
    """The cache for ``key``, emptied first if it was made for another key or a build died while using it."""
    cache = SiteCache(build / CACHE_DIR)
    reason = ""
    if cache.busy_file.exists():
        reason = "前回のビルドが途中で終わったため"
    elif cache.key_file.exists() and cache.key_file.read_text(encoding="utf-8") != key:
        reason = "コードまたはパッケージが変わったため"
    if reason or not cache.key_file.exists():
        if reason:
            echo(f"Sphinx のキャッシュを作り直します（{reason}）")
        shutil.rmtree(cache.root, ignore_errors=True)
        cache.root.mkdir(parents=True, exist_ok=True)
        cache.key_file.write_text(key, encoding="utf-8")
    return cache


LOCATED_WARNING = re.compile(
    r"^(?P<path>/[^:]+?\.(?:md|ipynb|rst))(?::\d+)?: (?:WARNING|ERROR|CRITICAL|SEVERE):"
)


def warned_docs(warnings: Iterable[str], root: Path) -> set[str] | None:
    """The pages the warnings are about, or ``None`` if any warning names no page of ``root``.

    Sphinx only repeats a warning when it reads or writes the page again; an incremental build after a failed
    one must therefore re-read these pages, or it would publish them without a word.
    """
    docs: set[str] = set()
    base = root.resolve()
    for line in warnings:
        m = LOCATED_WARNING.match(line)
        if not m:
            return None
        try:
            rel = Path(m["path"]).resolve().relative_to(base)
        except ValueError:
            return None
        docs.add(rel.with_suffix("").as_posix())
    return docs


# --------------------------------------------------------------------------------------------------------------
# Stages


def run_sphinx(
    root: Path,
    outdir: Path,
    doctrees: Path,
    toc: Path,
    *,
    jobs: int,
    pdf_links: bool,
    log: Path,
    echo: Callable[[str], None] = print,
    nav_cache: bool = True,
    reread: Iterable[str] = (),
    defer_commit: bool = False,
    fresh: bool = True,
) -> list[str]:
    """Run Sphinx in a subprocess, logging everything; echo progress every 10 % and warnings as they come.

    ``fresh`` builds from scratch; otherwise Sphinx reuses the environment and output in ``doctrees`` and
    ``outdir`` and reads only new and changed pages (plus ``reread``). ``defer_commit`` leaves the footer's
    commit as :data:`kofukin.sphinx_ext.COMMIT_PLACEHOLDER` for :func:`publish` to fill in.

    Returns the warning lines (always empty: any warning raises).

    Raises
    ------
    SiteBuildError
        On a non-zero exit or any warning, quoting the first warnings and naming the log. Its ``warnings``
        attribute holds every warning line, and ``crashed`` whether Sphinx stopped without finishing.
    """
    cmd = [
        sys.executable,
        "-m",
        "kofukin.site",
        "_sphinx",
        str(root),
        str(outdir),
        str(doctrees),
        str(toc),
        "--jobs",
        str(jobs),
    ]
    if pdf_links:
        cmd.append("--pdf-links")
    if not nav_cache:
        cmd.append("--no-nav-cache")
    if not fresh:
        cmd.append("--incremental")
    if defer_commit:
        cmd.append("--defer-commit")
    for doc in sorted(set(reread)):
        cmd += ["--reread", doc]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KOFUKIN_ROOT": str(root)}
    warnings: list[str] = []
    shown: dict[str, int] = {}
    finished = False
    with log.open("w", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        with subprocess.Popen(
            cmd,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                f.write(line)
                if WARNING_LINE.search(line):
                    warnings.append(line.rstrip())
                    echo(line.rstrip())
                elif m := PROGRESS_LINE.match(line):
                    step = int(m["pct"]) // 10 * 10
                    if step > shown.get(m["phase"], -1):
                        shown[m["phase"]] = step
                        echo(f"  {m['phase']} {step}%")
                elif line.startswith(("build succeeded", "build finished with problems")):
                    finished = True
        returncode = proc.returncode
    if returncode != 0 or warnings:
        quoted = "\n".join(warnings[:20]) or log.read_text(encoding="utf-8", errors="replace")[-3000:]
        error = SiteBuildError(
            f"Sphinx failed (exit {returncode}, {len(warnings)} warnings; log: {log}):\n{quoted}"
        )
        error.warnings = warnings  # type: ignore[attr-defined]
        error.crashed = not finished  # type: ignore[attr-defined]
        raise error
    return warnings


def sphinx_stage(
    paths: ProjectPaths,
    toc: Path,
    log: Path,
    *,
    jobs: int,
    pdf_links: bool,
    nav_cache: bool,
    incremental: bool,
    echo: Callable[[str], None],
) -> SiteCache:
    """Bring Sphinx's cached output up to date (or build it afresh); returns the cache holding it.

    The cache is marked busy while Sphinx runs. A failure whose warnings all name pages leaves the cache usable
    and those pages to be read again next time; any other failure (or a killed build) leaves it marked, and the
    next build starts from scratch.
    """
    cache = open_cache(paths.build, cache_key(paths.root, toc), echo)
    if not incremental:
        shutil.rmtree(cache.outdir, ignore_errors=True)
        shutil.rmtree(cache.doctrees, ignore_errors=True)
    reread: list[str] = []
    if cache.reread_file.exists():
        reread = json.loads(cache.reread_file.read_text(encoding="utf-8"))
    cache.busy_file.write_text(str(os.getpid()), encoding="utf-8")
    try:
        run_sphinx(
            paths.root,
            cache.outdir,
            cache.doctrees,
            toc,
            jobs=jobs,
            pdf_links=pdf_links,
            log=log,
            echo=echo,
            nav_cache=nav_cache,
            reread=reread,
            defer_commit=True,
            fresh=not (cache.doctrees / "environment.pickle").exists(),
        )
    except SiteBuildError as e:
        docs = None if getattr(e, "crashed", True) else warned_docs(getattr(e, "warnings", []), paths.root)
        if docs is not None:
            cache.reread_file.write_text(json.dumps(sorted(set(reread) | docs)), encoding="utf-8")
            cache.busy_file.unlink()
        raise
    cache.reread_file.unlink(missing_ok=True)
    cache.busy_file.unlink()
    return cache


@dataclass
class Published:
    """What :func:`publish` put into the staging directory."""

    files: dict[str, list[int]]  # relative path → [size, mtime_ns] of the file in Sphinx's output
    digests: dict[str, str]  # page → SHA-256 of the page as Sphinx wrote it (commit not filled in)
    changed: set[str]  # files whose published bytes differ from the live site's (or that it lacks)
    linked: int


# Sphinx's output files that are hard-linked from it rather than copied: written by kofukin.sphinx_ext as new
# files (ZIPs are renamed into place), never rewritten in place, and big.
LINK_FROM_OUTPUT = re.compile(r"^downloads/[^/]+\.zip$")


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except OSError:
        return False  # gone from the live site, or another file system: the caller copies
    return True


def publish(outdir: Path, staging: Path, live: Path | None, record: dict | None, commit: str) -> Published:
    """Fill ``staging`` with Sphinx's output, the footer's commit filled in, reusing the live site's files.

    A file is hard-linked from the live site when its size and modification time in ``outdir`` equal the ones
    recorded when the live site was published (for a page: and the commit is the same), or when its
    published bytes equal the live file's (Sphinx rewrites some pages and assets on every build). Every other
    file is copied into a new file — pages with :data:`kofukin.sphinx_ext.COMMIT_PLACEHOLDER` replaced. So
    nothing in ``staging`` shares a file with ``outdir``, which the next Sphinx run may rewrite in place, and
    the live site's files are never written to: the site is replaced by renames only (:func:`swap_directory`).
    """
    import filecmp

    from kofukin.sphinx_ext import COMMIT_PLACEHOLDER, commit_html

    placeholder = COMMIT_PLACEHOLDER.encode()
    replacement = commit_html(commit).encode()
    old = (record or {}) if live is not None else {}
    old_files: dict[str, list[int]] = old.get("files", {})
    old_digests: dict[str, str] = old.get("digests", {})
    same_commit = old.get("commit") == commit
    result = Published(files={}, digests={}, changed=set(), linked=0)
    base = str(outdir)
    for dirpath, dirnames, filenames in os.walk(outdir):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, base)
        target_dir = staging if rel_dir == "." else staging / rel_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            src = Path(dirpath) / name
            dst = target_dir / name
            st = src.stat()
            stamp = [st.st_size, st.st_mtime_ns]
            result.files[rel] = stamp
            unchanged = live is not None and old_files.get(rel) == stamp
            if not name.endswith(".html"):
                if unchanged and _link(live / rel, dst):  # type: ignore[operator]
                    result.linked += 1
                    continue
                same_as_live = (
                    live is not None
                    and (live / rel).is_file()
                    and filecmp.cmp(src, live / rel, shallow=False)
                    and _link(live / rel, dst)
                )
                if same_as_live or (LINK_FROM_OUTPUT.match(rel) and _link(src, dst)):
                    result.linked += 1
                else:
                    shutil.copy2(src, dst)
                    result.changed.add(rel)
                continue
            data = None
            if unchanged and rel in old_digests:
                digest = old_digests[rel]
            else:
                data = src.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
            result.digests[rel] = digest
            if same_commit and old_digests.get(rel) == digest and _link(live / rel, dst):  # type: ignore[operator]
                result.linked += 1
                continue
            if data is None:
                data = src.read_bytes()
            dst.write_bytes(data.replace(placeholder, replacement))
            shutil.copystat(src, dst)
            result.changed.add(rel)
    return result


@dataclass(frozen=True)
class SearchIndex:
    """One Pagefind bundle of the site: the pages it covers (a Pagefind glob) and where it is written.

    The site has two, merged in the browser by ``search.html`` (``mergeIndex``): the ~1,790 generated report
    pages, whose index takes most of a minute and is rebuilt only when one of them changed, and the
    hand-written chapters, indexed in about two seconds. Editing a chapter re-indexes only the chapters.
    """

    bundle: str
    glob: str


SEARCH_INDEXES: tuple[SearchIndex, ...] = (
    SearchIndex("pagefind", "book/{national,outcomes,prefectures/*,municipalities/*}.html"),
    SearchIndex(
        "pagefind-chapters",
        "book/{" + ",".join(d.removeprefix("book/") for d in HAND_WRITTEN_DOCS) + "}.html",
    ),
)


def _expand(glob: str) -> list[str]:
    """The fnmatch patterns of a Pagefind glob with one ``{a,b,…}`` group."""
    m = re.fullmatch(r"(?P<head>[^{]*)\{(?P<alts>[^}]*)\}(?P<tail>[^{]*)", glob)
    if not m:
        return [glob]
    return [f"{m['head']}{alt}{m['tail']}" for alt in m["alts"].split(",")]


def index_pages(index: SearchIndex, files: Iterable[str]) -> list[str]:
    """The site files (relative paths) that ``index`` covers; ``*`` does not cross ``/`` as in Pagefind."""
    patterns = [re.compile(re.escape(p).replace(r"\*", "[^/]*")) for p in _expand(index.glob)]
    return sorted(f for f in files if any(p.fullmatch(f) for p in patterns))


def pagefind_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pagefind")
    except PackageNotFoundError:  # pragma: no cover - in requirements.lock
        return "?"


def index_key(index: SearchIndex, published: Published) -> str:
    """Changes whenever a page of ``index`` changes (its bytes as Sphinx wrote them) or Pagefind does.

    The footer's commit is not part of it: it is outside ``data-pagefind-body`` and never indexed.
    """
    h = hashlib.sha256(f"{pagefind_version()}\0{' '.join(PAGEFIND_ARGS)}\0{index.glob}\0".encode())
    for rel in index_pages(index, published.digests):
        h.update(f"{rel}\0{published.digests[rel]}\0".encode())
    return h.hexdigest()


PAGEFIND_ARGS = ("--force-language", "ja")


def run_pagefind(html_dir: Path, log: Path, indexes: Iterable[SearchIndex] = SEARCH_INDEXES) -> str:
    """Index the site with Pagefind's extended binary (it segments Japanese); returns its summary lines.

    Each index is one Pagefind process writing ``<html_dir>/<bundle>/``; they run at the same time.
    """
    procs = []
    for index in indexes:
        cmd = [
            sys.executable,
            "-m",
            "pagefind",
            "--site",
            str(html_dir),
            *PAGEFIND_ARGS,
            "--glob",
            index.glob,
            "--output-subdir",
            index.bundle,
        ]
        procs.append(
            (index, cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        )
    lines = []
    failed = []
    for index, cmd, proc in procs:
        out, err = proc.communicate()
        with log.open("a", encoding="utf-8") as f:
            f.write(f"\n$ {' '.join(cmd)}\n{out}{err}")
        if proc.returncode != 0 or not (html_dir / index.bundle / "pagefind.js").exists():
            failed.append(f"{index.bundle} (exit {proc.returncode}): {err[-1000:]}")
        lines += [f"{index.bundle}: {line.strip()}" for line in out.splitlines() if "Indexed" in line]
    if failed:
        raise SiteBuildError(f"pagefind failed (log: {log}):\n" + "\n".join(failed))
    return "\n".join(lines)


def link_tree(src: Path, dst: Path) -> int:
    """Hard-link every file of ``src`` into a new tree ``dst``; returns the number of files."""
    n = 0
    for dirpath, _dirnames, filenames in os.walk(src):
        target = dst / os.path.relpath(dirpath, src)
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            os.link(os.path.join(dirpath, name), target / name)
            n += 1
    return n


def municipality_html(html_dir: Path) -> list[Path]:
    d = html_dir / MUNICIPALITY_HTML
    return sorted(d.glob("[0-9]" * 6 + ".html")) if d.is_dir() else []


def _live_record(cache: SiteCache, live: Path) -> dict | None:
    """The record of the live site, if it is the site this cache published (else nothing can be reused)."""
    try:
        record = json.loads(cache.record_file.read_text(encoding="utf-8"))
        facts = json.loads((live / BUILD_FACTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("build_id") is None or record.get("build_id") != facts.get("build_id"):
        return None
    return record


def build_site(
    paths: ProjectPaths,
    *,
    jobs: int = 1,
    pdf: bool = False,
    pdf_workers: int = 2,
    echo: Callable[[str], None] = print,
    nav_cache: bool = True,
    incremental: bool = True,
) -> SiteBuild:
    """Build ``_build/html`` from the pages in ``book/``; the old site survives any failure.

    Parameters
    ----------
    paths
        The project (``project_paths()``; tests pass a scratch copy).
    jobs
        Sphinx processes for reading and writing (``-j``).
    pdf
        Also print every municipality page to ``_build/html/pdf/<lg_code6>.pdf`` (A4) and link it from the
        page. Off by default: see :mod:`kofukin.pdf` for the throughput. PDFs of pages that did not change
        are taken from the live site.
    pdf_workers
        Pages printed concurrently by the one headless Chromium.
    echo
        Where progress lines go.
    nav_cache
        Render each prefecture's sidebar once for all its municipality pages, and take the other shortcuts of
        :mod:`kofukin.sphinx_ext` (no notebook copies, one parser for pasted Markdown); ``False`` only to check
        that they change nothing.
    incremental
        Reuse Sphinx's cache, the live site's unchanged files and search indexes (default). ``False`` builds
        everything afresh — the reference an incremental build must equal.

    Returns
    -------
    SiteBuild with the timings per stage and the paths of the site, its log and the toc used.
    """
    from kofukin.sphinx_ext import code_commit

    t_all = time.perf_counter()
    toc_path, toc = prepare_toc(paths, echo)
    docnames = toc_docnames(toc)
    paths.build.mkdir(parents=True, exist_ok=True)
    log = paths.build / "logs" / LOG_NAME
    target = paths.build / "html"
    result = SiteBuild(
        html_dir=target,
        log=log,
        toc=toc_path,
        n_pages=len(docnames),
        n_municipalities=sum(d.startswith("book/municipalities/") for d in docnames),
        reduced=toc_path != paths.root / TOC_FILE,
    )
    with _build_lock(paths.build):
        echo(f"Sphinx ({len(docnames)} ページ, jobs={jobs}) …")
        t = time.perf_counter()
        cache = sphinx_stage(
            paths,
            toc_path,
            log,
            jobs=jobs,
            pdf_links=pdf,
            nav_cache=nav_cache,
            incremental=incremental,
            echo=echo,
        )
        result.seconds["sphinx"] = time.perf_counter() - t
        record = _live_record(cache, target) if incremental and target.is_dir() else None
        live = target if record is not None else None
        # _build/.site.tmp-<pid>-…; what a killed build left there is swept by the next one
        staging = staging_dir(paths.build / "site")
        html_dir = staging / "html"
        try:
            t = time.perf_counter()
            commit = code_commit()
            published = publish(cache.outdir, html_dir, live, record, commit or "")
            result.n_copied, result.n_linked = len(published.changed), published.linked
            result.seconds["publish"] = time.perf_counter() - t
            pdf_reused = 0
            if pdf:
                from kofukin.pdf import html_to_pdf

                pages = municipality_html(html_dir)
                reusable = (
                    live is not None
                    and bool(record and record.get("pdf"))
                    and not any(rel.startswith("_static/") for rel in published.changed)
                )
                todo = []
                (html_dir / "pdf").mkdir(exist_ok=True)
                for page in pages:
                    rel = page.relative_to(html_dir).as_posix()
                    old = (live / "pdf" / f"{page.stem}.pdf") if live is not None else None
                    if reusable and rel not in published.changed and old is not None and old.exists():
                        os.link(old, html_dir / "pdf" / old.name)
                        pdf_reused += 1
                    else:
                        todo.append(page)
                echo(f"PDF ({len(todo)} 市町村, 再利用 {pdf_reused}, workers={pdf_workers}) …")
                t = time.perf_counter()
                if todo:
                    html_to_pdf(todo, html_dir / "pdf", workers=pdf_workers)
                result.seconds["pdf"] = time.perf_counter() - t
                result.n_pdfs = len(list((html_dir / "pdf").glob("*.pdf")))
            t = time.perf_counter()
            keys = {index.bundle: index_key(index, published) for index in SEARCH_INDEXES}
            old_keys = (record or {}).get("search", {})
            todo_indexes = []
            for index in SEARCH_INDEXES:
                old_bundle = live / index.bundle if live is not None else None
                if old_keys.get(index.bundle) == keys[index.bundle] and old_bundle and old_bundle.is_dir():
                    link_tree(old_bundle, html_dir / index.bundle)
                    result.search_reused.append(index.bundle)
                else:
                    todo_indexes.append(index)
            echo(f"Pagefind ({', '.join(i.bundle for i in todo_indexes) or '再利用'}) …")
            if todo_indexes:
                result.pagefind = run_pagefind(html_dir, log, todo_indexes)
            result.seconds["pagefind"] = time.perf_counter() - t
            for required in ("index.html", "search.html", "book/index.html", "pagefind/pagefind-ui.js"):
                if not (html_dir / required).exists():
                    raise SiteBuildError(f"the built site has no {required}")
            build_id = f"{time.time_ns():x}-{os.getpid()}"
            (html_dir / BUILD_FACTS).write_text(
                json.dumps(
                    {
                        "build_id": build_id,
                        "pages": len(docnames),
                        "reduced": result.reduced,
                        "seconds": result.seconds,
                    },
                    ensure_ascii=False,
                    indent=2,
                ),
                encoding="utf-8",
            )
            cache.record_file.unlink(missing_ok=True)
            swap_directory(html_dir, target)
            new_record = {
                "build_id": build_id,
                "commit": commit or "",
                "pdf": pdf,
                "search": keys,
                "files": published.files,
                "digests": published.digests,
            }
            tmp = cache.record_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(new_record, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, cache.record_file)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    result.seconds["total"] = time.perf_counter() - t_all
    echo(result.summary())
    return result


@contextlib.contextmanager
def _build_lock(build: Path) -> Iterator[None]:
    """One site build per project at a time: two would share Sphinx's cache and the staging swap."""
    import fcntl

    build.mkdir(parents=True, exist_ok=True)
    with (build / ".site.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SiteBuildError(f"another site build is running in {build}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fast_yaml() -> None:
    """Parse YAML with libyaml in this (Sphinx) process: sphinx-external-toc reads the 1,800-entry toc with
    ``yaml.safe_load``, which in pure Python takes ~2 s of every build, a rebuild of one chapter included.
    ``CSafeLoader`` is the same safe loader in C; without libyaml nothing changes."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None or getattr(yaml.safe_load, "_kofukin", False):
        return

    def safe_load(stream: Any) -> Any:
        return yaml.load(stream, Loader=loader)

    safe_load._kofukin = True  # type: ignore[attr-defined]
    yaml.safe_load = safe_load


def _sphinx_main(
    root: Path,
    outdir: Path,
    doctrees: Path,
    toc: Path,
    jobs: int,
    pdf_links: bool,
    nav_cache: bool = True,
    *,
    incremental: bool = False,
    defer_commit: bool = False,
    reread: Iterable[str] = (),
) -> int:
    """The subprocess: Jupyter Book's ``build_sphinx`` as ``jupyter-book build -n -W --keep-going`` calls it."""
    from jupyter_book.sphinx import build_sphinx
    from sphinx.util.console import nocolor

    nocolor()  # a plain log: warnings are counted by pattern
    _fast_yaml()
    result = build_sphinx(
        str(root),
        str(outdir),
        use_external_toc=True,
        noconfig=True,
        path_config=str(root / "_config.yml"),
        confoverrides={
            "external_toc_path": toc.as_posix(),
            "latex_individualpages": False,
            "nitpicky": True,
            "kofukin_root": str(root),
            "kofukin_pdf_links": pdf_links,
            "kofukin_nav_cache": nav_cache,
            "kofukin_defer_commit": defer_commit,
            "kofukin_reread_docs": list(reread),
            "kofukin_write_workers": jobs if jobs > 1 else 0,
        },
        doctreedir=str(doctrees),
        freshenv=not incremental,
        warningiserror=True,
        keep_going=True,
        jobs=jobs,
    )
    return result if isinstance(result, int) else 1


# --------------------------------------------------------------------------------------------------------------
# Stand-in pages: a tiny book that exercises every part of the site without the report runner


STANDIN_CODES: tuple[str, ...] = ("112011", "112194", "112259", "131016", "131024", "132012")


def tiny_png(width: int = 240, height: int = 120) -> bytes:
    """A small bar-chart-like PNG drawn with NumPy (no plotting library in the test path)."""
    import numpy as np

    from kofukin.pngwrite import encode

    bars = np.array([0.3, 0.8, 0.55, 0.9, 0.4])
    x = np.arange(width)
    top = bars[np.minimum(x * len(bars) // width, len(bars) - 1)]
    on = ((height - np.arange(height))[:, None] / height <= top) & ((x % (width // len(bars))) > 6)
    pixels = np.where(on[..., None], np.uint8([31, 119, 180]), np.uint8([255, 255, 255])).astype(np.uint8)
    return encode(pixels, level=9)


def _notebook(cells_md: Iterable[str], with_figure: bool) -> dict:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    cells = [new_markdown_cell(md) for md in cells_md]
    if with_figure:
        png = base64.b64encode(tiny_png()).decode()
        cells.append(
            new_code_cell(
                "plot_scores()",
                execution_count=1,
                outputs=[
                    new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}, metadata={})
                ],
                metadata={"tags": ["remove-input"]},
            )
        )
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    nbformat.validate(nb)
    return nb


def write_standin_pages(paths: ProjectPaths, codes: Iterable[str] = STANDIN_CODES) -> list[str]:
    """Write trivial executed-looking pages for national, outcomes, the prefectures of ``codes`` and ``codes``.

    Stand-ins carry what the site tests need: a figure PNG, links down and up the hierarchy, a municipality
    name in the title and Japanese compounds (人口減少率, 成果指向型) in the body text. Returns the docnames.
    """
    import nbformat

    from kofukin.reference import load_master

    master = load_master().set_index("lg_code6")
    codes = list(codes)
    prefs = sorted({c[:2] for c in codes})
    pref_names = {p: master.loc[next(c for c in codes if c[:2] == p), "pref_name"] for p in prefs}
    book = paths.book
    (book / "prefectures").mkdir(parents=True, exist_ok=True)
    (book / "municipalities").mkdir(parents=True, exist_ok=True)
    written = []

    def save(doc: str, nb: dict) -> None:
        nbformat.write(nbformat.from_dict(nb), paths.root / f"{doc}.ipynb")
        written.append(doc)

    pref_rows = "\n".join(f"| [{pref_names[p]}](prefectures/{p}.ipynb) | {p} |" for p in prefs)
    save(
        "book/national",
        _notebook(
            [
                "# 全国の評価結果（スタンドイン）\n\n"
                "これは検証用のスタンドインページです。全国の総合得点の分布と、都道府県別の平均を示します。\n\n"
                f"| 都道府県 | コード |\n|---|---|\n{pref_rows}\n",
                "## 配分\n\n成果指向型配分枠は全国で15市町村が対象です。",
            ],
            with_figure=True,
        ),
    )
    save(
        "book/outcomes",
        _notebook(
            [
                "# 成果指標の回帰分析（スタンドイン）\n\n成果指標（目標Ⅳ）の得点を体制・取組指標群と活動指標群で説明します。"
            ],
            with_figure=True,
        ),
    )
    for p in prefs:
        rows = "\n".join(
            f"| [{master.loc[c, 'name']}](../municipalities/{c}.ipynb) | {c} |" for c in codes if c[:2] == p
        )
        save(
            f"book/prefectures/{p}",
            _notebook(
                [
                    f"# {pref_names[p]}の評価結果（スタンドイン）\n\n[全国の評価結果](../national.ipynb)に戻る。\n\n"
                    f"| 市町村 | コード |\n|---|---|\n{rows}\n"
                ],
                with_figure=True,
            ),
        )
    for c in codes:
        name, pref = master.loc[c, "name"], master.loc[c, "pref_name"]
        save(
            f"book/municipalities/{c}",
            _notebook(
                [
                    f"# {name}（{pref}）\n\n[{pref}の評価結果](../prefectures/{c[:2]}.ipynb)に戻る。\n\n"
                    f"{name}の総合得点は全国平均を上回りました。同規模の市町村と比べ、人口減少率が小さく、"
                    "第1号被保険者の割合は全国平均並みです。",
                    "## 取り戻せる得点\n\n同じ規模区分の市町村の30%以上が得点している項目を示します。",
                ],
                with_figure=True,
            ),
        )
    return written


def copy_book_sources(paths: ProjectPaths) -> ProjectPaths:
    """Give a scratch project root what a site build reads from the repository: ``_config.yml``, the
    hand-written chapters ``book/*.md`` and ``book/_static`` / ``book/_templates``."""
    from kofukin.paths import SOURCE_ROOT

    paths.book.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOURCE_ROOT / "_config.yml", paths.root / "_config.yml")
    for md in (SOURCE_ROOT / "book").glob("*.md"):
        shutil.copy2(md, paths.book / md.name)
    for sub in ("_static", "_templates"):
        if (SOURCE_ROOT / "book" / sub).is_dir():
            shutil.copytree(SOURCE_ROOT / "book" / sub, paths.book / sub, dirs_exist_ok=True)
    return paths


def make_demo_root(
    target: Path, codes: Iterable[str] = STANDIN_CODES, *, synthetic: Iterable[str] = ("R6", "R7", "R8")
) -> ProjectPaths:
    """A scratch project root holding the site's own files, stand-in pages, a manifest and one export CSV.

    Copies what a build reads from the repository (``_config.yml``, ``book/*.md``, ``book/_static``,
    ``book/_templates``); reference data are read from the repository itself (:data:`kofukin.paths.REFERENCE_DIR`).
    """
    paths = copy_book_sources(ProjectPaths(target.resolve()))
    write_standin_pages(paths, codes)
    syn = set(synthetic)
    paths.processed.mkdir(parents=True, exist_ok=True)
    manifest = {
        "package_version": "0.1.0",
        "sources": [
            {
                "fiscal_year": y,
                "path": f"data/raw/{'demo/' if y in syn else ''}{y}_results.xlsx",
                "sha256": (f"{i:x}" * 64)[:64],
                "synthetic": y in syn,
            }
            for i, y in enumerate(("R6", "R7", "R8"), start=10)
        ],
    }
    (paths.processed / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8"
    )
    paths.exports.mkdir(parents=True, exist_ok=True)
    (paths.exports / "scores_R8.csv").write_text(
        "lg_code6,name,grand_total\n" + "".join(f"{c},stand-in,400\n" for c in codes), encoding="utf-8"
    )
    return paths


# --------------------------------------------------------------------------------------------------------------
# Command line


def serve(html_dir: Path, port: int = 8000) -> None:
    """Serve the site on 127.0.0.1 (Pagefind fetches its index, which browsers refuse over file://)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"http://127.0.0.1:{port}/  (Ctrl+C で終了)")
        httpd.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kofukin.site", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_toc = sub.add_parser("toc", help="write _toc.yml from the master (or --check it)")
    p_toc.add_argument("--check", action="store_true")
    p_build = sub.add_parser("build", help="build _build/html")
    p_build.add_argument("--jobs", type=int, default=1)
    p_build.add_argument("--pdf", action="store_true", help="also print the municipality pages to A4 PDFs")
    p_build.add_argument("--pdf-workers", type=int, default=2)
    p_serve = sub.add_parser("serve", help="serve _build/html on 127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_demo = sub.add_parser("demo", help="build a stand-in two-prefecture book in OUT_DIR")
    p_demo.add_argument("out_dir", type=Path)
    p_demo.add_argument("--pdf", action="store_true")
    p_demo.add_argument(
        "--full", action="store_true", help="all 1,741 municipalities (a build-time benchmark)"
    )
    p_demo.add_argument("--jobs", type=int, default=1)
    p_sph = sub.add_parser("_sphinx", help=argparse.SUPPRESS)
    for name in ("root", "outdir", "doctrees", "toc"):
        p_sph.add_argument(name, type=Path)
    p_sph.add_argument("--jobs", type=int, default=1)
    p_sph.add_argument("--pdf-links", action="store_true")
    p_sph.add_argument("--no-nav-cache", dest="nav_cache", action="store_false")
    p_sph.add_argument("--incremental", action="store_true")
    p_sph.add_argument("--defer-commit", action="store_true")
    p_sph.add_argument("--reread", action="append", default=[])
    args = parser.parse_args(argv)

    paths = project_paths()
    if args.cmd == "toc":
        if args.check:
            ok = check_toc(paths)
            print(f"{TOC_FILE}: {'up to date' if ok else 'OUT OF DATE — run `python -m kofukin.site toc`'}")
            return 0 if ok else 1
        print(write_full_toc(paths))
        return 0
    if args.cmd == "_sphinx":
        return _sphinx_main(
            args.root,
            args.outdir,
            args.doctrees,
            args.toc,
            args.jobs,
            args.pdf_links,
            args.nav_cache,
            incremental=args.incremental,
            defer_commit=args.defer_commit,
            reread=args.reread,
        )
    if args.cmd == "serve":
        serve(paths.build / "html", args.port)
        return 0
    try:
        if args.cmd == "demo":
            from kofukin.reference import load_master

            codes = list(load_master()["lg_code6"]) if args.full else STANDIN_CODES
            build_site(make_demo_root(args.out_dir, codes), jobs=args.jobs, pdf=args.pdf)
        else:
            build_site(paths, jobs=args.jobs, pdf=args.pdf, pdf_workers=args.pdf_workers)
    except SiteBuildError as e:
        print(f"サイトのビルドに失敗しました: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
