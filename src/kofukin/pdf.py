"""A4 PDFs of report pages, printed by one headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``).

The PDF of a municipality is its built web page printed with print media: ``book/_static/kofukin.css`` hides the
navigation, keeps the synthetic-data banner and the footer's 出典 line, and sets A4 margins. Printing the
page the reader already sees (rather than a second rendering path such as LaTeX) keeps the two identical and
needs no TeX and no Japanese LaTeX fonts.

One browser is started per call and ``workers`` pages of one context are reused for all files: starting
Chromium costs ~1 s, a page ~0.1 s, and Chromium renders each page in its own process, so concurrent pages
use both cores. Playwright's own browser download is never used (it needs the network):
``executable_path`` points at the system Chromium.

Pages are loaded from ``file://`` with ``--allow-file-access-from-files`` so that the self-hosted font under
``_static/fonts/`` loads; each PDF is written to a temporary name and renamed, so an interrupted run never
leaves a truncated PDF behind.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path(os.environ.get("KOFUKIN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-file-access-from-files",
)
FOOTER = (
    '<div style="width:100%;font-size:7pt;color:#555;padding:0 12mm;display:flex;justify-content:space-between;">'
    '<span></span><span><span class="pageNumber"></span> / <span class="totalPages"></span></span></div>'
)


class PdfError(RuntimeError):
    """Printing failed for at least one page (the others are written)."""


@dataclass
class PdfReport:
    """What :func:`html_to_pdf` wrote and how fast."""

    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    startup_seconds: float = 0.0
    workers: int = 1

    @property
    def seconds_per_page(self) -> float:
        """Wall-clock seconds per page after the browser started (the throughput figure)."""
        n = len(self.written)
        return (self.seconds - self.startup_seconds) / n if n else float("nan")

    def summary(self) -> str:
        return (
            f"{len(self.written)} PDF, {self.seconds:.1f} s (browser start {self.startup_seconds:.1f} s, "
            f"{self.seconds_per_page:.2f} s/page with {self.workers} workers), {len(self.failed)} failed"
        )


def chromium_available() -> bool:
    return CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)


def html_to_pdf(
    html_paths: Iterable[Path], pdf_dir: Path, *, workers: int = 2, timeout_ms: int = 60_000
) -> PdfReport:
    """Print each HTML file to ``pdf_dir/<stem>.pdf`` (A4, backgrounds, page numbers in the footer).

    Parameters
    ----------
    html_paths
        Built pages, e.g. ``_build/html/book/municipalities/112194.html`` → ``pdf_dir/112194.pdf``.
    pdf_dir
        Created if missing.
    workers
        Pages printed concurrently in the one browser.
    timeout_ms
        Per page, for loading and printing.

    Returns
    -------
    PdfReport with the files written and the timing (``seconds_per_page`` is the throughput figure).

    Raises
    ------
    PdfError
        If Chromium is missing or any page failed; the message lists the failures.
    """
    paths = [Path(p).resolve() for p in html_paths]
    if not chromium_available():
        raise PdfError(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise PdfError("two HTML files have the same name; their PDFs would overwrite each other")
    pdf_dir.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(_print_all(paths, pdf_dir, max(1, workers), timeout_ms))
    if report.failed:
        first = "; ".join(f"{k}: {v}" for k, v in list(report.failed.items())[:5])
        raise PdfError(f"{len(report.failed)} of {len(paths)} pages failed to print: {first}")
    return report


async def _print_all(paths: list[Path], pdf_dir: Path, workers: int, timeout_ms: int) -> PdfReport:
    from playwright.async_api import async_playwright

    report = PdfReport(workers=workers)
    t0 = time.perf_counter()
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            context = await browser.new_context(viewport={"width": 1000, "height": 1400})
            pages = [await context.new_page() for _ in range(min(workers, len(paths)) or 1)]
            report.startup_seconds = time.perf_counter() - t0

            async def work(page) -> None:  # page: playwright.async_api.Page
                page.set_default_timeout(timeout_ms)
                await page.emulate_media(media="print")
                while True:
                    try:
                        src = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    target = pdf_dir / f"{src.stem}.pdf"
                    tmp = target.with_name(f".{target.name}.tmp")
                    try:
                        await page.goto(src.as_uri(), wait_until="load")
                        await page.evaluate("document.fonts.ready.then(() => true)")
                        await page.pdf(
                            path=str(tmp),
                            format="A4",
                            print_background=True,
                            prefer_css_page_size=True,
                            display_header_footer=True,
                            header_template="<span></span>",
                            footer_template=FOOTER,
                        )
                        os.replace(tmp, target)
                        report.written.append(target)
                    except Exception as e:  # one bad page must not stop the others
                        tmp.unlink(missing_ok=True)
                        report.failed[str(src)] = f"{type(e).__name__}: {e}".splitlines()[0]

            await asyncio.gather(*(work(p) for p in pages))
        finally:
            await browser.close()
    report.seconds = time.perf_counter() - t0
    report.written.sort()
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m kofukin.pdf OUT_DIR PAGE.html …`` — print pages and report the throughput."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m kofukin.pdf", description="HTML → A4 PDF (headless Chromium)"
    )
    parser.add_argument("pdf_dir", type=Path)
    parser.add_argument("html", type=Path, nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        print(html_to_pdf(args.html, args.pdf_dir, workers=args.workers).summary())
    except PdfError as e:
        print(e)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
