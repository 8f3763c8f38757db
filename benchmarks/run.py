"""`make bench`: the speed targets, measured in one run on this machine, written to benchmarks/results.md.

Stages measured so far:

* ingest of the three years' workbooks (median of 3 runs);
* reports: seconds per municipality report for the warm-kernel runner (2 workers) against a plain
  ``papermill`` CLI loop over the same template and sample, and their ratio.

Everything runs in ``benchmarks/_work/`` (git-ignored) with its own synthetic panel, so the working tree's
``data/`` and ``book/`` are never touched.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
RESULTS = ROOT / "benchmarks" / "results.md"

# A spread of municipality sizes and regions: designated city, towns, villages, a union member, Tokyo wards.
SAMPLE = [
    "011002",
    "012025",
    "014583",
    "014702",
    "022012",
    "042021",
    "072044",
    "112194",
    "122033",
    "131016",
    "132012",
    "141003",
    "152048",
    "202011",
    "232017",
    "262013",
    "271004",
    "282014",
    "341002",
    "401307",
    "432041",
    "462012",
    "472018",
    "473821",
]


def prepare() -> None:
    from kofukin.ingest import ingest_paths
    from kofukin.paths import ProjectPaths
    from kofukin.synthetic import write_demo_data

    paths = ProjectPaths(WORK)
    if not (paths.demo_raw / "R8_評価結果（市町村分）_合成データ.xlsx").exists():
        write_demo_data(paths.demo_raw)
    if not (paths.processed / "manifest.json").exists():
        ingest_paths([paths.raw], paths.processed)


def bench_ingest(runs: int = 3) -> float:
    from kofukin.ingest import ingest_paths
    from kofukin.paths import ProjectPaths

    paths = ProjectPaths(WORK)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ingest_paths([paths.raw], paths.processed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_reports(n: int, baseline_n: int) -> str:
    values = WORK / "codes.txt"
    values.write_text("\n".join(SAMPLE[:n]) + "\n", encoding="utf-8")
    env = {**os.environ, "KOFUKIN_ROOT": str(WORK), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_runner.py"),
        "--n",
        str(n),
        "--baseline-n",
        str(baseline_n),
        "--template",
        str(ROOT / "notebooks" / "municipality.ipynb"),
        "--param",
        "code",
        "--values",
        str(values),
        "--set",
        "year=R8",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return res.stdout.strip()


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    prepare()
    ingest_s = bench_ingest()
    reports = bench_reports(n=len(SAMPLE), baseline_n=6)
    lines = [
        "# Benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} — {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. The machine is shared: compare ratios measured in one run.",
        "",
        "| target | measured | goal |",
        "| --- | --- | --- |",
        f"| ingest, three years (median of 3) | {ingest_s:.1f} s | ≤ 60 s |",
        "",
        "## Reports: warm-kernel runner vs. a plain papermill CLI loop (same template, same sample)",
        "",
        "```",
        reports,
        "```",
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
