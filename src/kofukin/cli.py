"""The ``kofukin`` command line: one sub-command per stage of the book, each a thin shell over the package.

Errors that a user can fix (bad workbook, unknown municipality) are printed as one clear message with exit
code 1 or 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from kofukin.paths import ProjectPaths, project_paths

if TYPE_CHECKING:
    from kofukin.runner.kernel import WarmKernel

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="インセンティブ交付金 分析ブック (kofukin)"
)
err = Console(stderr=True)
out = Console()


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path | None, typer.Option("--out", help="default: data/raw/demo")] = None,
    seed: Annotated[int, typer.Option(help="random seed (the bundled panel uses the default)")] = 20240401,
    quiet: bool = False,
) -> None:
    """合成データ: write the synthetic R6–R8 workbooks in MHLW's layout and print the calibration table."""
    from kofukin.synthetic import write_demo_data

    paths = project_paths()
    target = out_dir or paths.demo_raw
    report = write_demo_data(target, seed=seed)
    if target == paths.demo_raw:  # the book's own demo data: `kofukin build` need not write it again
        from kofukin.pipeline import write_demo_stamp

        write_demo_stamp(paths, seed)
    if not quiet:
        out.print(report.to_string())


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="workbooks or folders (default: data/raw/)")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="default: data/processed")] = None,
) -> None:
    """Read MHLW results workbooks (real or synthetic) into the tidy store, validating everything."""
    from kofukin.derived import ensure_derived
    from kofukin.ingest import IngestError, ingest_paths

    p = project_paths()
    t0 = time.perf_counter()
    try:
        summary = ingest_paths(paths or [p.raw], store or p.processed)
    except IngestError as e:
        err.print(
            f"[bold red]取り込みエラー[/]: {escape(str(e))}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    ensure_derived(store or p.processed)  # so that a first `kofukin report` finds them
    out.print(f"{summary} ({time.perf_counter() - t0:.1f} s)", highlight=False, markup=False, soft_wrap=True)


@app.command()
def summary(
    query: Annotated[
        str, typer.Argument(help="JIS code (5/6 digits), insurer number or name (上尾市, 埼玉県上尾市)")
    ],
    year: Annotated[str | None, typer.Option("--year", help="R6/R7/R8 (default: latest)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One municipality's totals and competition ranks."""
    from kofukin.codes import AmbiguousMunicipality, UnknownMunicipality
    from kofukin.profile import municipality_summary
    from kofukin.store import load_store

    try:
        s = load_store(project_paths().processed)
        res = municipality_summary(s, query, year)
    except (AmbiguousMunicipality, UnknownMunicipality, FileNotFoundError, ValueError) as e:
        err.print(str(e), highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(res, ensure_ascii=False, indent=2) + "\n")
    else:
        for k, v in res.items():
            out.print(f"{k:>16}: {v}", highlight=False)


@app.command()
def reports(
    all_: Annotated[bool, typer.Option("--all", help="every municipality and prefecture")] = False,
    prefecture: Annotated[
        list[str] | None, typer.Option(help="prefecture code (e.g. 11); repeatable")
    ] = None,
    municipality: Annotated[
        list[str] | None, typer.Option(help="municipality code or name; repeatable")
    ] = None,
    year: Annotated[str | None, typer.Option(help="R6/R7/R8 (default: latest)")] = None,
    jobs: Annotated[int, typer.Option(help="parallel workers")] = 2,
    force: Annotated[bool, typer.Option(help="re-run even when inputs are unchanged")] = False,
) -> None:
    """Execute the report notebooks (papermill, warm kernels) into book/."""
    from kofukin.pipeline import Selection, SelectionError, run_report_stage
    from kofukin.reference import ReferenceDataError

    sel = Selection(all=all_, prefectures=list(prefecture or []), municipalities=list(municipality or []))
    try:
        summary_ = run_report_stage(project_paths(), sel, year=year, workers=jobs, force=force)
    except (SelectionError, ReferenceDataError) as e:
        err.print(str(e), markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(str(summary_), markup=False, highlight=False)
    if summary_.failed:
        err.print(
            f"{summary_.failed} 件のレポートが失敗しました（詳細: book/_manifest/failures.md）", markup=False
        )
        raise typer.Exit(1)


@app.command()
def export(
    year: Annotated[str | None, typer.Option(help="R6/R7/R8 (default: all years)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="default: data/exports")] = None,
) -> None:
    """Write the analysts' CSV downloads (UTF-8, and utf-8-sig for Excel)."""
    from kofukin.bookdata import book_data, regression_coefficients
    from kofukin.export import export_tables

    p = project_paths()
    data = book_data(p.processed)
    res = export_tables(
        data.store, out_dir or p.exports, year, regression=regression_coefficients(data), derived=data.derived
    )
    out.print(f"{res}", markup=False, highlight=False)


@app.command()
def report(
    query: Annotated[str, typer.Argument(help="JIS code, insurer number or name (上尾市, 埼玉県上尾市)")],
    year: Annotated[str | None, typer.Option(help="R6/R7/R8 (default: latest)")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="also print an A4 PDF (Debian chromium)")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="default: _build/reports")] = None,
) -> None:
    """One municipality's report as a standalone HTML file (and A4 PDF)."""
    import os
    import tempfile

    from kofukin.vouch import vouch_for_children

    p = project_paths()
    os.environ["KOFUKIN_ROOT"] = str(p.root)
    vouch_for_children()  # validated below, while the kernel boots
    with tempfile.TemporaryDirectory(prefix="kofukin-report-") as tmp, _kernel_ahead(Path(tmp)) as kernel:
        _report(p, query, year, pdf, out_dir, Path(tmp), kernel)


# Run by the kernel of `kofukin report` while it boots: the template's imports and the store, ~2 s that
# overlap the command's own imports and the search for the municipality.
REPORT_PRELOAD = (
    "import kofukin.display, kofukin.figures, kofukin.report; kofukin.figures.setup(); "
    "kofukin.report.book_data().panel"
)


@contextmanager
def _kernel_ahead(tmp: Path) -> Iterator[WarmKernel]:
    """A kernel launched before anything else (it is stopped on the way out, used or not)."""
    from kofukin.paths import NOTEBOOKS_DIR
    from kofukin.runner.kernel import WarmKernel

    with (tmp / "kernel-ahead.log").open("a", encoding="utf-8") as log:
        kernel = WarmKernel(1, stderr=log, preload=REPORT_PRELOAD)
        try:
            kernel.launch(NOTEBOOKS_DIR.resolve())
            yield kernel
        finally:
            kernel.stop()


def _report(
    p: ProjectPaths,
    query: str,
    year: str | None,
    pdf: bool,
    out_dir: Path | None,
    tmp: Path,
    kernel: WarmKernel,
) -> None:
    from kofukin.codes import AmbiguousMunicipality, UnknownMunicipality, resolve_municipality
    from kofukin.pipeline import TEMPLATES, current_book_report, latest_year
    from kofukin.reference import ReferenceDataError, load_master, validate_reference
    from kofukin.runner import ReportJob, run_reports
    from kofukin.standalone import notebook_to_html, synthetic_banner
    from kofukin.standalone import warm_up as warm_up_html

    master = load_master()
    try:
        code = resolve_municipality(query, master)
        year = year or latest_year(p)
    except (AmbiguousMunicipality, UnknownMunicipality, FileNotFoundError) as e:
        err.print(str(e), markup=False, highlight=False)
        raise typer.Exit(2) from None
    row = master.set_index("lg_code6").loc[code]
    title = f"{row['name']}（{row['pref_name']}）令和{int(year[1:])}年度"
    target = out_dir or p.build / "reports"
    html_path = target / f"{code}_{year}.html"
    book_nb = current_book_report(p, code, year)
    if book_nb is not None:  # the book's page is up to date: same content, no kernel
        notebook_to_html(book_nb, html_path, banner=synthetic_banner(p.processed), title=title)
        out.print("本の実行済みノートブックから作成しました（入力が同じため再実行は不要）", markup=False)
        out.print(f"HTML: {html_path}", markup=False, highlight=False, soft_wrap=True)
        _report_pdf(pdf, html_path, target)
        return
    nb_path = tmp / f"{code}.ipynb"
    job = ReportJob(code, TEMPLATES["municipality"], {"code": code, "year": year}, nb_path, title)
    with ThreadPoolExecutor(max_workers=1) as background:
        # While the kernel boots and runs, this process would only wait: it checks the reference tables the
        # kernel was told it need not check, and compiles nbconvert's templates for the conversion below.
        checked = background.submit(lambda: (validate_reference(), warm_up_html()))
        res = run_reports(
            [job],
            workers=1,
            manifest_path=tmp / "runs.jsonl",
            failure_report=tmp / "failures.md",
            force=True,
            progress=False,
            kernel=kernel,
        )
        try:
            checked.result()
        except ReferenceDataError as e:
            err.print(str(e), markup=False, highlight=False)
            raise typer.Exit(1) from None
    if res.failed:
        err.print((tmp / "failures.md").read_text(encoding="utf-8"), markup=False, highlight=False)
        raise typer.Exit(1)
    notebook_to_html(nb_path, html_path, banner=synthetic_banner(p.processed), title=title)
    out.print(f"HTML: {html_path}", markup=False, highlight=False, soft_wrap=True)
    _report_pdf(pdf, html_path, target)


def _report_pdf(pdf: bool, html_path: Path, target: Path) -> None:
    if not pdf:
        return
    from kofukin.pdf import PdfError, html_to_pdf

    try:
        html_to_pdf([html_path], target, workers=1)
    except PdfError as e:
        err.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None
    out.print(f"PDF:  {html_path.with_suffix('.pdf')}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def site(
    jobs: Annotated[int, typer.Option(help="Sphinx parallel jobs")] = 2,
    pdf: Annotated[bool, typer.Option("--pdf", help="also print every municipality page to A4 PDF")] = False,
    pdf_workers: Annotated[int, typer.Option(help="pages printed at once")] = 2,
) -> None:
    """Build the static site (jupyter-book + Pagefind) into _build/html; the old site survives a failure.

    Refuses to start while any report page is stale (see ``pipeline.stale_pages``): after an interrupted
    ``kofukin reports`` or a new ingest the pages would not match the data the site names."""
    from kofukin.pipeline import stale_pages
    from kofukin.site import SiteBuildError, build_site

    p = project_paths()
    stale = stale_pages(p)
    if stale:
        shown = "、".join(stale[:5]) + (" …" if len(stale) > 5 else "")
        err.print(
            f"サイトを作成しませんでした：book/ の {len(stale)} ページが現在のデータとコードで実行されていません"
            f"（{shown}）。中断された `kofukin reports` の残りや、取り込み後に再実行していないページです。"
            "`kofukin reports` を実行してから（最新のページは再実行されません）、もう一度 `kofukin site` を"
            "実行してください。前回のサイトはそのままです。",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    try:
        build_site(p, jobs=jobs, pdf=pdf, pdf_workers=pdf_workers, echo=_echo)  # echoes its own summary
    except SiteBuildError as e:
        err.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def build(
    jobs: Annotated[int, typer.Option(help="parallel workers")] = 2,
    seed: Annotated[int, typer.Option(help="synthetic-data seed")] = 20240401,
    timings: Annotated[Path | None, typer.Option(help="write seconds per stage as JSON (benchmarks)")] = None,
) -> None:
    """The whole book: demo-data → ingest → reports → export → site, skipping unchanged stages."""
    from kofukin.ingest import IngestError
    from kofukin.pipeline import build as build_book
    from kofukin.reference import ReferenceDataError
    from kofukin.site import SiteBuildError

    try:
        timer = build_book(project_paths(), workers=jobs, seed=seed, echo=_echo)
    except (IngestError, ReferenceDataError, SiteBuildError, RuntimeError) as e:
        err.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None
    _echo(timer.table().to_string(index=False))
    if timings is not None:
        timings.write_text(json.dumps(timer.stages, ensure_ascii=False), encoding="utf-8")


def _echo(text: object) -> None:
    out.print(str(text), markup=False, highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    finally:
        # The process ends here. Python's last collection would scan every object still alive — pandas,
        # matplotlib, nbconvert, the store: ~0.4 s of a `kofukin report` — to free memory the OS takes back
        # anyway; frozen objects are skipped. Nothing of ours waits on a collection (files are closed by
        # their `with` blocks), and reference counting still finalises everything else as before.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
