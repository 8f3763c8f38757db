"""``run_reports``: decide what needs running, run it on warm-kernel worker processes, record everything.

The parent process never touches a kernel: it hashes inputs, skips what is current, hands the rest to a
``ProcessPoolExecutor`` (spawned workers, jobs pulled one at a time, so a slow report never holds up a queue),
appends each result to the manifest as it arrives and finally writes the failure report.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from kofukin.runner.failures import write_failure_report
from kofukin.runner.jobs import Failure, JobResult, ReportJob, RunSummary, file_digest, input_hash
from kofukin.runner.kernel import WarmKernel
from kofukin.runner.manifest import entity_states, is_current, manifest_writer, read_manifest
from kofukin.runner.worker import WorkerSettings, init_worker, run_in_process, run_job

DEFAULT_TIMEOUT = 600.0


# A kernel is replaced after this many notebooks. Each replacement costs ~10 s of CPU (imports, the store, the
# per-kernel national tables of kofukin.bookdata), while a kernel's memory stays flat across reports (measured:
# 1,306 MB after 5 municipality reports, 1,311 MB after 160): every 1,000 still bounds a leak, yet the whole
# book (~900 reports per worker on two cores) runs on one kernel per worker instead of paying ~36 restarts
# (every 50, ≈ 6 CPU-minutes) or 2 (every 500).
RESTART_EVERY = 1000


def run_reports(
    jobs: Iterable[ReportJob],
    *,
    workers: int,
    restart_every: int = RESTART_EVERY,
    manifest_path: Path,
    failure_report: Path,
    force: bool = False,
    progress: bool = True,
    extra_hash_inputs: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    kernel: WarmKernel | None = None,
) -> RunSummary:
    """Execute every job whose inputs changed since its last successful run, ``workers`` at a time.

    Args:
        jobs: the reports; entity ids and output paths must be distinct.
        workers: worker processes, each with one warm kernel (one per core is right: kernels are single-threaded).
        restart_every: notebooks a kernel executes before it is replaced by a fresh one.
        manifest_path: the JSON Lines run log that also decides what is skipped (see ``manifest.py``).
        failure_report: Markdown report of this run's failures, rewritten every run; ``.json`` sibling,
            ``failed/`` notebooks and ``kernel-stderr.log`` go beside it.
        force: execute every job even if its inputs are unchanged.
        progress: show a rich progress bar with ETA on stderr.
        extra_hash_inputs: further inputs of every report (e.g. ``{"store": <content hash>}``); a change
            re-executes everything.
        timeout: seconds one notebook may take before it is stopped and counted as failed.
        kernel: a kernel the caller launched ahead (:meth:`WarmKernel.launch`) for a run of one report, which
            then executes in this process; it is stopped when the run ends. Ignored (and stopped) otherwise.

    Returns:
        The counts, the failures in job order and every job's result. It never raises for a failing report.
    """
    jobs = list(jobs)
    _validate(jobs, workers, restart_every, timeout)
    t0 = time.perf_counter()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    manifest_path, failure_report = Path(manifest_path), Path(failure_report)
    todo, finished = _plan(jobs, read_manifest(manifest_path), force, extra_hash_inputs, manifest_path.parent)
    settings = _settings(failure_report, restart_every, timeout)
    summary = RunSummary(manifest_path=manifest_path, failure_report=failure_report)
    with manifest_writer(manifest_path, run_id) as record, _progress_bar(progress, len(todo)) as advance:
        for result in finished:
            _collect(summary, result, record)
        advance(summary, 0)
        for result in _execute(todo, workers, settings, kernel):
            _collect(summary, result, record)
            advance(summary, 1)
    order = {job.entity_id: i for i, job in enumerate(jobs)}
    summary.failures.sort(key=lambda f: order[f.entity_id])
    summary.results.sort(key=lambda r: order[r.entity_id])
    summary.seconds = round(time.perf_counter() - t0, 3)
    write_failure_report(failure_report, summary.failures, run_id, len(jobs))
    return summary


def _validate(jobs: list[ReportJob], workers: int, restart_every: int, timeout: float) -> None:
    """Reject runs whose results would overwrite each other in the manifest or on disk."""
    if workers < 1 or restart_every < 1 or timeout <= 0:
        raise ValueError("workers and restart_every must be >= 1 and timeout > 0")
    for what, keys in (
        ("entity_id", Counter(j.entity_id for j in jobs)),
        ("output", Counter(j.output.resolve() for j in jobs)),
    ):
        shared = [str(k) for k, n in keys.items() if n > 1]
        if shared:
            raise ValueError(f"jobs must have distinct {what}s; shared: {', '.join(shared[:5])}")


def _plan(
    jobs: list[ReportJob],
    records: list[dict],
    force: bool,
    extra: Mapping[str, str] | None,
    manifest_dir: Path,
) -> tuple[list[tuple[ReportJob, str]], list[JobResult]]:
    """The jobs to run (with their input hash) and the results known without running: skips, and failures of
    templates that cannot be read."""
    states = entity_states(records)
    digests: dict[Path, str | OSError] = {}
    todo, finished = [], []
    for job in jobs:
        path = job.template.resolve()
        if path not in digests:
            try:
                digests[path] = file_digest(path)
            except OSError as e:
                digests[path] = e
        digest = digests[path]
        if isinstance(digest, OSError):
            finished.append(_unreadable(job, digest))
            continue
        h = input_hash(job, digest, extra)
        if not force and is_current(states.get(job.entity_id), h, job.output, manifest_dir):
            finished.append(_result(job, h, "skipped"))
        else:
            todo.append((job, h))
    return todo, finished


def _settings(failure_report: Path, restart_every: int, timeout: float) -> WorkerSettings:
    """Debugging aids live beside the failure report; the kernel log is started afresh for each run."""
    kernel_log = failure_report.parent / "kernel-stderr.log"
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    kernel_log.write_text("", encoding="utf-8")
    return WorkerSettings(restart_every, timeout, failure_report.parent / "failed", kernel_log)


def _result(job: ReportJob, h: str, status, failure: Failure | None = None) -> JobResult:
    return JobResult(
        job.entity_id, status, 0.0, h, str(job.output.resolve()), str(job.template), failure=failure
    )


def _unreadable(job: ReportJob, e: OSError) -> JobResult:
    tb = "".join(traceback.format_exception(e))
    failure = Failure(job.entity_id, str(job.template), type(e).__name__, str(e), tb)
    return _result(job, "", "failed", failure)


def _collect(summary: RunSummary, result: JobResult, record: Callable[[JobResult], None]) -> None:
    record(result)
    summary.results.append(result)
    setattr(summary, result.status, getattr(summary, result.status) + 1)
    if result.failure is not None:
        summary.failures.append(result.failure)


def _execute(
    todo: list[tuple[ReportJob, str]], workers: int, settings: WorkerSettings, kernel: WarmKernel | None
) -> Iterator[JobResult]:
    """Results in completion order. A worker process that dies (not its kernel: the worker itself) breaks the
    pool; the jobs it takes down are reported as failed, and a re-run picks them up."""
    if len(todo) == 1:  # one report: run it here rather than spawn a worker that imports everything again
        yield run_in_process(*todo[0], settings, kernel)
        return
    if kernel is not None:
        kernel.stop()
    if not todo:
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that holds zmq sockets or threads
    counter = ctx.Value("i", 0)
    n = min(workers, len(todo))
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=init_worker, initargs=(settings, counter))
    try:
        futures: dict[Future, tuple[ReportJob, str]] = {pool.submit(run_job, j, h): (j, h) for j, h in todo}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as e:  # BrokenProcessPool; run_job itself never raises
                job, h = futures[future]
                tb = "".join(traceback.format_exception(e))
                note = "the worker process died; re-run to retry"
                failure = Failure(job.entity_id, str(job.template), type(e).__name__, f"{e} ({note})", tb)
                yield _result(job, h, "failed", failure)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[RunSummary, int], None]]:
    """A rich progress bar on stderr over the reports that actually run (skips are instant and would distort
    the ETA); yields the function that advances it and shows the counts so far."""
    if not enabled:
        yield lambda summary, n: None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("reports", total=total)

        def advance(s: RunSummary, n: int) -> None:
            text = f"reports ✓{s.executed} ✗{s.failed} ↷{s.skipped}"
            bar.update(task, advance=n, description=text)

        yield advance


def default_workers() -> int:
    """One worker per core the process may use (each worker's kernel is single-threaded)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
