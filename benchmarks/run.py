"""`make bench`: every speed target of issue 6, measured in one run on this machine, with pass/fail, written to
benchmarks/results.md.

What runs, in ``benchmarks/_work/`` (git-ignored; the working tree's ``data/`` and ``book/`` are never touched):

1. a clean ``git clone`` of this repository's HEAD becomes a scratch project (``KOFUKIN_ROOT``); its synthetic
   workbooks are written first (not timed: the target starts from raw workbooks);
2. **full build** — ``kofukin build``: ingest + 1,741 municipality + 47 prefecture + national + outcomes
   reports + export + site, seconds per stage, and the peak memory of the whole process tree (the sum of every
   process's resident set, sampled twice a second: an upper bound, shared pages count once per process);
3. **no-change rebuild** — ``kofukin build`` again;
4. **one-chapter edit** — a sentence appended to ``book/methodology.md``, then ``kofukin build``;
5. **``kofukin report``** — HTML and ``--pdf``, median of 3: *cold* (a year the book has not executed, so a
   kernel runs the template on the ingested store) and *book current* (the book's page is reused);
6. **ingest** of the three years, median of 3;
7. **runner vs papermill** — the warm-kernel runner (2 workers, every 12th municipality: 146) against a plain
   ``papermill`` CLI loop (the first 6 of them) on the same template, seconds per report and their ratio;
8. **scaling** — the reports and site stages at 200 and 800 municipalities (in a second clone), beside the
   1,788 of the full build.

The code measured is the installed ``kofukin`` (this checkout's ``src/``, editable); the clones only provide
the book's pages and data layout. ``--quick`` skips steps 2–4 and 8 (minutes instead of most of an hour).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
RESULTS = ROOT / "benchmarks" / "results.md"
CHAPTER = "book/methodology.md"
REPORT_CODE = "112194"  # 上尾市 (seed 001)

# The runner's sample: every 12th municipality (146). Its fixed cost — two kernels importing pandas and
# loading the store once each — is what it amortises over a book's 1,790 reports, so a sample of a couple of
# dozen would measure mostly start-up; papermill pays that start-up for every notebook and is timed on the
# first 6 of the same sample (its per-notebook time does not depend on how many it runs).
RUNNER_STEP = 12


@dataclass
class Target:
    name: str
    measured: float | None
    unit: str
    goal: float
    higher_is_better: bool = False
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    def row(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "not run"}[self.passed]
        value = "—" if self.measured is None else f"{self.measured:,.1f} {self.unit}"
        goal = f"{'≥' if self.higher_is_better else '≤'} {self.goal:g} {self.unit}"
        return f"| {self.name} | {value} | {goal} | {mark} | {self.note} |"


class PeakMemory:
    """Peak of the summed RSS of this process and all its descendants (kernels, workers, Sphinx, Pagefind)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kofukin(root: Path, *args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run the CLI against the scratch project; wall-clock seconds and the finished process."""
    env = {
        **os.environ,
        "KOFUKIN_ROOT": str(root),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "kofukin.cli", *args], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - t0
    if check and res.returncode != 0:
        raise RuntimeError(f"kofukin {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return seconds, res


def clone(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True)
    return dest


def median_of(n: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(n))


def full_build(root: Path, jobs: int, log: list[str]) -> tuple[dict[str, float], float, float]:
    """Stage seconds, total seconds and peak memory (GB) of a build from raw workbooks."""
    timings = root / "build_timings.json"
    with PeakMemory() as mem:
        seconds, res = kofukin(root, "build", "--jobs", str(jobs), "--timings", str(timings))
    log.append(res.stdout[-2000:])
    stages = json.loads(timings.read_text(encoding="utf-8"))
    return stages, seconds, mem.peak / 1e9


def rebuild(root: Path, jobs: int) -> float:
    return kofukin(root, "build", "--jobs", str(jobs))[0]


def chapter_edit(root: Path, jobs: int) -> float:
    chapter = root / CHAPTER
    chapter.write_text(
        chapter.read_text(encoding="utf-8") + f"\n\n（ベンチマークによる編集 {time.time():.0f}）\n",
        encoding="utf-8",
    )
    return kofukin(root, "build", "--jobs", str(jobs))[0]


def report_times(root: Path) -> dict[str, float]:
    out = root / "_build" / "bench_reports"

    def one(*extra: str) -> Callable[[], float]:
        return lambda: kofukin(root, "report", REPORT_CODE, "--out", str(out), *extra)[0]

    return {
        "cold_html": median_of(3, one("--year", "R7")),
        "cold_pdf": median_of(3, one("--year", "R7", "--pdf")),
        "book_html": median_of(3, one()),
        "book_pdf": median_of(3, one("--pdf")),
    }


def ingest_median(root: Path) -> float:
    return median_of(3, lambda: kofukin(root, "ingest")[0])


def runner_vs_papermill(root: Path) -> tuple[str, float | None]:
    from kofukin.reference import load_master

    sample = list(load_master()["lg_code6"])[::RUNNER_STEP]
    values = WORK / "codes.txt"
    values.write_text("\n".join(sample) + "\n", encoding="utf-8")
    env = {**os.environ, "KOFUKIN_ROOT": str(root), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_runner.py"),
        "--n",
        str(len(sample)),
        "--baseline-n",
        "6",
        "--template",
        str(ROOT / "notebooks" / "municipality.ipynb"),
        "--param",
        "code",
        "--values",
        str(values),
        "--set",
        "year=R8",
    ]
    text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip()
    ratio = None
    for line in text.splitlines():
        if line.startswith("speed-up:"):
            ratio = float(line.split()[1].rstrip("x"))
    return text, ratio


def scaling(jobs: int, full: dict[str, float]) -> list[str]:
    """Reports and site seconds at 200 and 800 municipalities (plus the national and outcomes chapters)."""
    root = clone(WORK / "scale")
    kofukin(root, "demo-data")
    kofukin(root, "ingest")
    from kofukin.reference import load_master

    master = list(load_master()["lg_code6"])
    rows = [
        "| municipalities | reports (s) | s per report | site (s) | s per page |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n in (200, 800):
        args = ["reports", "--jobs", str(jobs), "--force"]
        for c in master[:: len(master) // n][:n]:  # spread over every prefecture
            args += ["--municipality", c]
        t_rep = kofukin(root, *args)[0]
        shutil.rmtree(root / "_build", ignore_errors=True)  # a full site build, not an incremental one
        t_site = kofukin(root, "site", "--jobs", str(jobs))[0]
        pages = n + 2  # and national + outcomes; prefectures are not part of a municipality selection
        rows.append(
            f"| {n:,} | {t_rep:,.0f} | {t_rep / (n + 2):.2f} | {t_site:,.0f} | {t_site / pages:.3f} |"
        )
    if full:
        n = 1741
        rows.append(
            f"| {n:,} (full build) | {full['reports']:,.0f} | {full['reports'] / (n + 49):.2f} | "
            f"{full['site']:,.0f} | {full['site'] / (n + 49 + 8):.3f} |"
        )
    return rows


@dataclass
class Results:
    """What has been measured so far; printed and written to results.md after every step, so an interrupted
    run still leaves its figures."""

    jobs: int
    started: datetime
    load0: float
    targets: list[Target]
    stages: dict[str, float]
    scale_rows: list[str]
    runner_text: str = ""

    def add(self, target: Target) -> None:
        self.targets.append(target)
        print(target.row(), flush=True)
        self.write()

    def write(self) -> None:
        lines = [
            "# Benchmarks",
            "",
            f"Run {self.started:%Y-%m-%d %H:%M} UTC on {platform.node()}: **{os.cpu_count()} cores**, "
            f"{psutil.virtual_memory().total / 1e9:.0f} GB RAM, Python {platform.python_version()}, "
            f"`--jobs {self.jobs}`. Load average (1 min) at start {self.load0:.1f}, when written "
            f"{os.getloadavg()[0]:.1f} — the machine is shared: compare ratios measured in one run.",
            "",
            "| target | measured | goal | result | note |",
            "| --- | --- | --- | --- | --- |",
            *(t.row() for t in self.targets),
        ]
        if self.stages:
            lines += ["", "## Full build, seconds per stage", "", "| stage | seconds |", "| --- | --- |"]
            lines += [f"| {k} | {v:,.1f} |" for k, v in self.stages.items()]
        if self.scale_rows:
            lines += ["", "## Scaling", "", *self.scale_rows]
        if self.runner_text:
            lines += [
                "",
                "## Reports: warm-kernel runner vs. a plain papermill CLI loop (same template, same sample)",
                "",
                "```",
                self.runner_text,
                "```",
            ]
        RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the full build, rebuilds and scaling")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    res = Results(args.jobs, datetime.now(UTC), os.getloadavg()[0], [], {}, [])
    log: list[str] = []
    root = clone(WORK / "book")
    print(f"scratch project: {root}", flush=True)
    kofukin(root, "demo-data")

    if not args.quick:
        print("full build …", flush=True)
        res.stages, total, peak = full_build(root, args.jobs, log)  # demo data exists already: not rebuilt
        res.add(Target("full build: ingest + 1,790 reports + export + site", total, "s", 600))
        res.add(Target("peak memory of the full build (process tree)", peak, "GB", 4))
        res.add(Target("rebuild, nothing changed", rebuild(root, args.jobs), "s", 30))
        res.add(Target(f"rebuild after editing {CHAPTER}", chapter_edit(root, args.jobs), "s", 30))
    else:
        kofukin(root, "ingest")
    rt = report_times(root)
    book_note = "book page current: {:.1f} s" if not args.quick else "no book built (--quick)"
    res.add(
        Target(
            "`kofukin report` HTML, kernel run",
            rt["cold_html"],
            "s",
            5,
            note=book_note.format(rt["book_html"]),
        )
    )
    res.add(
        Target(
            "`kofukin report --pdf`, kernel run",
            rt["cold_pdf"],
            "s",
            10,
            note=book_note.format(rt["book_pdf"]),
        )
    )
    res.add(Target("ingest, three years (median of 3)", ingest_median(root), "s", 60))
    res.runner_text, ratio = runner_vs_papermill(root)
    res.add(Target("reports: runner vs papermill CLI loop", ratio, "×", 10, higher_is_better=True))
    if not args.quick:
        print("scaling …", flush=True)
        res.scale_rows = scaling(args.jobs, res.stages)
        res.write()
    print(RESULTS.read_text(encoding="utf-8"))
    failed = [t.name for t in res.targets if t.passed is False]
    if failed:
        print(f"\n{len(failed)} target(s) missed: " + "; ".join(failed), file=sys.stderr)


if __name__ == "__main__":
    main()
