"""Seconds per report: the warm-kernel runner against a plain ``papermill`` CLI loop on the same sample.

    python benchmarks/bench_runner.py --n 20
    python benchmarks/bench_runner.py --n 40 --template notebooks/municipality.ipynb --param code \\
        --values codes.txt --set year=R7

Both sides execute the same N parameter sets of the same template: the runner with ``--workers`` processes
(2 by default), papermill as one ``python -m papermill`` subprocess per notebook, which is what a shell loop
or a Makefile would do. Times are wall-clock, end to end (the runner's worker spawn and kernel starts
included). CPU seconds (this process and all its children, kernels included) are printed as well: unlike
wall-clock time they hardly depend on what else the machine is doing.
``--baseline-n`` runs papermill on a prefix of the sample only, since it is the slow side; per-notebook times
are compared either way.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kofukin.runner import ReportJob, run_reports

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = ROOT / "tests" / "notebooks" / "bench_figure.ipynb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="notebooks in the sample (default 20)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--restart-every", type=int, default=50)
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    p.add_argument("--param", default="code", help="the parameter that varies between notebooks")
    p.add_argument("--values", type=Path, help="file with one value per line (default: 5-digit codes)")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a fixed string parameter"
    )
    p.add_argument("--baseline-n", type=int, help="papermill notebooks (default: --n)")
    p.add_argument("--keep", type=Path, help="write outputs here instead of a temporary directory")
    return p.parse_args(argv)


def sample(args: argparse.Namespace) -> list[dict[str, str]]:
    """N parameter sets, all strings (as the CLI passes them with ``-r``)."""
    if args.values:
        values = [v.strip() for v in args.values.read_text(encoding="utf-8").splitlines() if v.strip()]
    else:
        values = [f"{i:02d}{100 + i:03d}" for i in range(1, args.n + 1)]
    if len(values) < args.n:
        raise SystemExit(f"--values has {len(values)} values, --n asks for {args.n}")
    fixed = dict(item.split("=", 1) for item in args.set)
    return [{args.param: v, **fixed} for v in values[: args.n]]


def cpu_seconds() -> float:
    """User + system CPU of this process and of every finished child (and their children)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_runner(args: argparse.Namespace, params: list[dict[str, str]], out: Path) -> tuple[float, float]:
    jobs = [ReportJob(f"n{i:04d}", args.template, p, out / f"n{i:04d}.ipynb") for i, p in enumerate(params)]
    t0, c0 = time.perf_counter(), cpu_seconds()
    summary = run_reports(
        jobs,
        workers=args.workers,
        restart_every=args.restart_every,
        manifest_path=out / "manifest.jsonl",
        failure_report=out / "failures.md",
        force=True,
        progress=False,
    )
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if summary.failed:
        raise SystemExit(f"runner: {summary.failed} notebooks failed, see {out / 'failures.md'}")
    return seconds, cpu


def time_papermill(args: argparse.Namespace, params: list[dict[str, str]], out: Path) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), cpu_seconds()
    for i, p in enumerate(params):
        raw = [arg for name, value in p.items() for arg in ("-r", name, value)]
        cmd = [sys.executable, "-m", "papermill", str(args.template), str(out / f"n{i:04d}.ipynb"), *raw]
        cmd += ["--no-progress-bar", "--cwd", str(args.template.resolve().parent)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"papermill failed on {p}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0, cpu_seconds() - c0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = sample(args)
    baseline = params[: args.baseline_n or args.n]
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        root = args.keep or Path(tmp)
        runner_s, runner_cpu = time_runner(args, params, root / "runner")
        (root / "papermill").mkdir(parents=True, exist_ok=True)
        papermill_s, papermill_cpu = time_papermill(args, baseline, root / "papermill")
    print(f"template: {args.template}")
    print(f"runner ({args.workers} workers): {_line(len(params), runner_s, runner_cpu)}")
    print(f"papermill CLI loop:  {_line(len(baseline), papermill_s, papermill_cpu)}")
    wall = (papermill_s / len(baseline)) / (runner_s / len(params))
    cpu = (papermill_cpu / len(baseline)) / (runner_cpu / len(params))
    print(f"speed-up: {wall:.1f}x wall-clock, {cpu:.1f}x CPU")


def _line(n: int, seconds: float, cpu: float) -> str:
    return (
        f"{n:4d} notebooks in {seconds:6.1f} s = {seconds / n:.3f} s/notebook (CPU {cpu / n:.3f} s/notebook)"
    )


if __name__ == "__main__":
    main()
