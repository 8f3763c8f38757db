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
* Everything is built in a **staging directory** under ``_build/`` (same filesystem) and swapped into
  ``_build/html`` by renames only (:func:`kofukin.store.swap_directory`), so a failed build, a failed Pagefind
  run or a failed PDF leaves the previous site intact. Doctrees live in the staging directory too: myst-nb
  writes notebook images next to the output directory while *reading*, so a persistent doctree cache would
  point at images of a deleted staging directory.
* The CSV exports (``data/exports/`` → ``<html>/downloads/``) and the bundled Japanese font are copied by
  :mod:`kofukin.sphinx_ext` when Sphinx finishes, so a plain ``jupyter-book build .`` gets them too; PDFs go
  to ``<html>/pdf/<lg_code6>.pdf`` (:mod:`kofukin.pdf`), printed from the staged pages before the swap.
* A book with fewer pages than the master (a test book, a partial run) is built from a **reduced toc** written
  to ``_build/_toc.reduced.yml``; the committed ``_toc.yml`` is never rewritten by a build.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

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

    def summary(self) -> str:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        kind = "縮小版" if self.reduced else "全体"
        return (
            f"サイト（{kind}: {self.n_pages} ページ、市町村 {self.n_municipalities}、PDF {self.n_pdfs}）: {times}\n"
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
) -> list[str]:
    """Run Sphinx in a subprocess, logging everything; echo progress every 10 % and warnings as they come.

    Returns the warning lines (always empty: any warning raises).

    Raises
    ------
    SiteBuildError
        On a non-zero exit or any warning, quoting the first warnings and naming the log.
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
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KOFUKIN_ROOT": str(root)}
    warnings: list[str] = []
    shown: dict[str, int] = {}
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
        returncode = proc.returncode
    if returncode != 0 or warnings:
        quoted = "\n".join(warnings[:20]) or log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SiteBuildError(
            f"Sphinx failed (exit {returncode}, {len(warnings)} warnings; log: {log}):\n{quoted}"
        )
    return warnings


def run_pagefind(html_dir: Path, log: Path) -> str:
    """Index the site with Pagefind's extended binary (it segments Japanese); returns its summary lines."""
    cmd = [sys.executable, "-m", "pagefind", "--site", str(html_dir), "--force-language", "ja"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0 or not (html_dir / "pagefind" / "pagefind-ui.js").exists():
        raise SiteBuildError(f"pagefind failed (exit {proc.returncode}; log: {log}):\n{proc.stderr[-2000:]}")
    return "\n".join(line.strip() for line in proc.stdout.splitlines() if "Indexed" in line)


def municipality_html(html_dir: Path) -> list[Path]:
    d = html_dir / MUNICIPALITY_HTML
    return sorted(d.glob("[0-9]" * 6 + ".html")) if d.is_dir() else []


def build_site(
    paths: ProjectPaths,
    *,
    jobs: int = 1,
    pdf: bool = False,
    pdf_workers: int = 2,
    echo: Callable[[str], None] = print,
    nav_cache: bool = True,
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
        page. Off by default: see :mod:`kofukin.pdf` for the throughput.
    pdf_workers
        Pages printed concurrently by the one headless Chromium.
    echo
        Where progress lines go.
    nav_cache
        Render each prefecture's sidebar once for all its municipality pages (:mod:`kofukin.sphinx_ext`);
        ``False`` only to check that the cache changes nothing.

    Returns
    -------
    SiteBuild with the timings per stage and the paths of the site, its log and the toc used.
    """
    t_all = time.perf_counter()
    toc_path, toc = prepare_toc(paths, echo)
    docnames = toc_docnames(toc)
    paths.build.mkdir(parents=True, exist_ok=True)
    log = paths.build / "logs" / LOG_NAME
    target = paths.build / "html"
    # _build/.site.tmp-<pid>-…; what a killed build left there is swept by the next one
    staging = staging_dir(paths.build / "site")
    html_dir = staging / "html"
    result = SiteBuild(
        html_dir=target,
        log=log,
        toc=toc_path,
        n_pages=len(docnames),
        n_municipalities=sum(d.startswith("book/municipalities/") for d in docnames),
        reduced=toc_path != paths.root / TOC_FILE,
    )
    try:
        echo(f"Sphinx ({len(docnames)} ページ, jobs={jobs}) …")
        t = time.perf_counter()
        run_sphinx(
            paths.root,
            html_dir,
            staging / ".doctrees",
            toc_path,
            jobs=jobs,
            pdf_links=pdf,
            log=log,
            echo=echo,
            nav_cache=nav_cache,
        )
        result.seconds["sphinx"] = time.perf_counter() - t
        if pdf:
            from kofukin.pdf import html_to_pdf

            pages = municipality_html(html_dir)
            echo(f"PDF ({len(pages)} 市町村, workers={pdf_workers}) …")
            t = time.perf_counter()
            report = html_to_pdf(pages, html_dir / "pdf", workers=pdf_workers)
            result.seconds["pdf"] = time.perf_counter() - t
            result.n_pdfs = len(report.written)
        echo("Pagefind …")
        t = time.perf_counter()
        result.pagefind = run_pagefind(html_dir, log)
        result.seconds["pagefind"] = time.perf_counter() - t
        for required in ("index.html", "search.html", "book/index.html"):
            if not (html_dir / required).exists():
                raise SiteBuildError(f"the built site has no {required}")
        (html_dir / ".kofukin-build.json").write_text(
            json.dumps(
                {"pages": len(docnames), "reduced": result.reduced, "seconds": result.seconds},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )
        swap_directory(html_dir, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.seconds["total"] = time.perf_counter() - t_all
    echo(result.summary())
    return result


def _sphinx_main(
    root: Path, outdir: Path, doctrees: Path, toc: Path, jobs: int, pdf_links: bool, nav_cache: bool = True
) -> int:
    """The subprocess: Jupyter Book's ``build_sphinx`` as ``jupyter-book build -n -W --keep-going`` calls it."""
    from jupyter_book.sphinx import build_sphinx
    from sphinx.util.console import nocolor

    nocolor()  # a plain log: warnings are counted by pattern
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
        },
        doctreedir=str(doctrees),
        freshenv=True,
        warningiserror=True,
        keep_going=True,
        jobs=jobs,
    )
    return result if isinstance(result, int) else 1


# --------------------------------------------------------------------------------------------------------------
# Stand-in pages: a tiny book that exercises every part of the site without the report runner


STANDIN_CODES: tuple[str, ...] = ("112011", "112194", "112259", "131016", "131024", "132012")


def tiny_png(width: int = 240, height: int = 120) -> bytes:
    """A small bar-chart-like PNG written with zlib only (no plotting library in the test path)."""
    rows = []
    bars = [0.3, 0.8, 0.55, 0.9, 0.4]
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            b = bars[min(x * len(bars) // width, len(bars) - 1)]
            on = (height - y) / height <= b and (x % (width // len(bars))) > 6
            row += bytes((31, 119, 180)) if on else bytes((255, 255, 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


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


def make_demo_root(
    target: Path, codes: Iterable[str] = STANDIN_CODES, *, synthetic: Iterable[str] = ("R6", "R7", "R8")
) -> ProjectPaths:
    """A scratch project root holding the site's own files, stand-in pages, a manifest and one export CSV.

    Copies what a build reads from the repository (``_config.yml``, ``book/*.md``, ``book/_static``,
    ``book/_templates``); reference data are read from the repository itself (:data:`kofukin.paths.REFERENCE_DIR`).
    """
    from kofukin.paths import SOURCE_ROOT

    paths = ProjectPaths(target.resolve())
    paths.book.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SOURCE_ROOT / "_config.yml", paths.root / "_config.yml")
    for md in (SOURCE_ROOT / "book").glob("*.md"):
        shutil.copy2(md, paths.book / md.name)
    for sub in ("_static", "_templates"):
        if (SOURCE_ROOT / "book" / sub).is_dir():
            shutil.copytree(SOURCE_ROOT / "book" / sub, paths.book / sub, dirs_exist_ok=True)
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
            args.root, args.outdir, args.doctrees, args.toc, args.jobs, args.pdf_links, args.nav_cache
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
