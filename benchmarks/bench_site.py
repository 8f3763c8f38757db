"""The site stage alone: a full site build, a rebuild with nothing changed, and one after editing a chapter.

``make bench`` (benchmarks/run.py) times whole ``kofukin build`` runs; this script takes the site stage apart
(Sphinx, publishing, Pagefind) on a book whose reports are already executed, so the site can be measured in a
few minutes instead of after an hour of reports::

    python benchmarks/bench_site.py [--source ROOT] [--jobs N]

It works in ``benchmarks/_work/site/`` (git-ignored): a scratch project whose executed report notebooks are
hard links to those of ``--source`` (default: this checkout; run ``kofukin build`` there first — with fewer
pages the book is a reduced one and the table says so) and whose chapters, configuration and data are copies.
The source project is only read. :func:`measure_site` is what other benchmarks call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from kofukin.paths import SOURCE_ROOT, ProjectPaths
from kofukin.site import SiteBuild, build_site

WORK = SOURCE_ROOT / "benchmarks" / "_work" / "site"
CHAPTER = "book/methodology.md"
STAGES = ("sphinx", "publish", "pagefind", "total")


def scratch_project(source: Path, dest: Path = WORK) -> ProjectPaths:
    """A fresh project in ``dest`` holding ``source``'s book: notebooks hard-linked, everything else copied."""
    if dest.exists():
        shutil.rmtree(dest)
    src = ProjectPaths(source.resolve())
    paths = ProjectPaths(dest.resolve())
    paths.book.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(src.root / name, paths.root / name)
    for md in src.book.glob("*.md"):
        shutil.copy2(md, paths.book / md.name)
    for sub in ("_static", "_templates"):
        shutil.copytree(src.book / sub, paths.book / sub)
    for nb in [
        *src.book.glob("*.ipynb"),
        *src.book.glob("prefectures/*.ipynb"),
        *src.book.glob("municipalities/*.ipynb"),
    ]:
        target = paths.book / nb.relative_to(src.book)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(nb, target)
    paths.processed.mkdir(parents=True)
    shutil.copy2(src.processed / "manifest.json", paths.processed / "manifest.json")
    if src.exports.is_dir():
        paths.exports.mkdir(parents=True)
        for f in src.exports.iterdir():
            if f.is_file():
                os.link(f, paths.exports / f.name)
    return paths


def site_megabytes(html: Path) -> float:
    return sum(p.stat().st_size for p in html.rglob("*") if p.is_file()) / 1e6


def measure_site(paths: ProjectPaths, jobs: int, echo: Callable[[str], None] = print) -> dict[str, SiteBuild]:
    """Three builds of ``paths``' site, in order: from scratch (no cache, no site), unchanged, chapter edited.

    The chapter edit appends a paragraph to ``book/methodology.md`` (in the scratch project).
    """
    shutil.rmtree(paths.build, ignore_errors=True)
    quiet = lambda _: None  # noqa: E731
    out: dict[str, SiteBuild] = {}
    echo("full site build (cold cache) …")
    out["full"] = build_site(paths, jobs=jobs, echo=quiet)
    echo("rebuild, nothing changed …")
    out["unchanged"] = build_site(paths, jobs=jobs, echo=quiet)
    chapter = paths.root / CHAPTER
    chapter.write_text(
        chapter.read_text(encoding="utf-8") + f"\n\n（ベンチマークによる編集 {time.time():.0f}）\n",
        encoding="utf-8",
    )
    echo(f"rebuild after editing {CHAPTER} …")
    out["chapter"] = build_site(paths, jobs=jobs, echo=quiet)
    return out


def table(results: dict[str, SiteBuild], size_mb: float) -> str:
    first = next(iter(results.values()))
    lines = [
        f"{first.n_pages:,} pages ({'reduced book' if first.reduced else 'full book'}), site {size_mb:,.0f} MB",
        "",
        "| build | " + " | ".join(STAGES) + " | files copied | files reused | search indexes reused |",
        "| --- | " + " | ".join("---:" for _ in STAGES) + " | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        secs = " | ".join(f"{r.seconds.get(s, 0):.1f}" for s in STAGES)
        reused = ", ".join(r.search_reused) or "—"
        lines.append(f"| {name} | {secs} | {r.n_copied:,} | {r.n_linked:,} | {reused} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE_ROOT, help="a project whose reports are executed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    paths = scratch_project(args.source)
    results = measure_site(paths, args.jobs)
    load1 = os.getloadavg()[0]
    print(
        f"\n{os.cpu_count()} cores, --jobs {args.jobs}, load average {load0:.1f} at start, {load1:.1f} at end"
    )
    print(table(results, site_megabytes(paths.build / "html")))


if __name__ == "__main__":
    main()
