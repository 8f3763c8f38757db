"""The worker process: one warm kernel, jobs taken one at a time from the pool, a ``JobResult`` for each.

Everything that can go wrong with one notebook is turned into a ``Failure`` here, so that the pool (and the
other reports) never see an exception. A kernel death is retried once on a fresh kernel, because it is more
often the machine (memory pressure, a killed process) than the notebook; a second death is the notebook's.
"""

from __future__ import annotations

import atexit
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from kofukin.runner.jobs import Failure, JobResult, ReportJob
from kofukin.runner.kernel import WarmKernel
from kofukin.runner.notebook import (
    execution_error,
    first_line,
    plain_traceback,
    prepare_notebook,
    running_cell,
    write_atomic,
    write_debug,
)

MAX_ATTEMPTS = 2  # a kernel death is retried once


@dataclass(frozen=True)
class WorkerSettings:
    restart_every: int
    timeout: float
    debug_dir: Path
    kernel_log: Path


@dataclass
class _Worker:
    name: str
    settings: WorkerSettings
    kernel: WarmKernel
    log: IO[str]


_WORKER: _Worker | None = None


def init_worker(settings: WorkerSettings, counter, kernel: WarmKernel | None = None) -> None:
    """Pool initializer: name the worker (w1, w2, …) and create its (not yet started) kernel, or take
    ``kernel`` (one already launched)."""
    global _WORKER
    with counter.get_lock():
        counter.value += 1
        index = counter.value
    settings.kernel_log.parent.mkdir(parents=True, exist_ok=True)
    log = open(settings.kernel_log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives with the process)
    if kernel is None:
        kernel = WarmKernel(settings.restart_every, stderr=log)
    _WORKER = _Worker(f"w{index}", settings, kernel, log)
    atexit.register(_WORKER.kernel.stop)


def run_in_process(
    job: ReportJob, input_hash: str, settings: WorkerSettings, kernel: WarmKernel | None = None
) -> JobResult:
    """One job in this process's own kernel (or in ``kernel``), without a worker pool: a single report
    (``kofukin report``) does not pay for spawning a process that imports everything again. The kernel is
    stopped afterwards."""
    global _WORKER
    import multiprocessing

    previous = _WORKER
    init_worker(settings, multiprocessing.Value("i", 0), kernel)
    try:
        return run_job(job, input_hash)
    finally:
        assert _WORKER is not None
        _WORKER.kernel.stop()
        _WORKER.log.close()
        _WORKER = previous


def debug_path(debug_dir: Path, entity_id: str) -> Path:
    """Where the executed notebook of a failed report goes (entity ids may contain slashes)."""
    return debug_dir / (re.sub(r"[^\w.-]", "_", entity_id) + ".ipynb")


def run_job(job: ReportJob, input_hash: str) -> JobResult:
    """Execute one report in this worker's kernel; never raises."""
    assert _WORKER is not None, "run_job runs only in a worker started by run_reports"
    w = _WORKER
    t0 = time.perf_counter()
    failure, attempt, pid = None, 0, None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        failure, died, pid = _attempt(w, job, attempt)
        if not died:
            break
    return JobResult(
        entity_id=job.entity_id,
        status="failed" if failure else "executed",
        seconds=round(time.perf_counter() - t0, 3),
        input_hash=input_hash,
        output=str(job.output.resolve()),
        template=str(job.template),
        worker=w.name,
        attempt=attempt,
        kernel_pid=pid,
        failure=failure,
    )


def _attempt(w: _Worker, job: ReportJob, attempt: int) -> tuple[Failure | None, bool, int | None]:
    """One try: (failure or None, whether the kernel died, kernel pid)."""
    debug = debug_path(w.settings.debug_dir, job.entity_id)
    try:
        nb = prepare_notebook(job)
    except Exception as e:  # unreadable template: the warm kernel is not involved and stays warm
        return _failure(job, None, debug, e, attempt), False, None
    pid = None
    try:
        w.kernel.ready(job.template.resolve().parent)
        pid = w.kernel.pid
        deadline = time.monotonic() + w.settings.timeout
        nb = w.kernel.execute(nb, lambda cell: max(1.0, deadline - time.monotonic()))
    except DeadKernelError as e:
        w.kernel.stop()
        msg = "the kernel process exited (os._exit, a crash or out of memory)"
        return _failure(job, nb, debug, e, attempt, msg), True, pid
    except CellTimeoutError as e:
        w.kernel.stop()  # it is still busy with the cell
        msg = f"the report did not finish within {w.settings.timeout:g} s"
        return _failure(job, nb, debug, e, attempt, msg), False, pid
    except Exception as e:
        w.kernel.stop()
        return _failure(job, nb, debug, e, attempt), False, pid
    try:
        error = execution_error(nb, debug)
        if error is not None:
            w.kernel.stop()  # never reuse a kernel whose notebook failed half-way
            return _cell_failure(job, error, debug, attempt), False, pid
        write_atomic(nb, job.output)
    except Exception as e:  # disk full, no permission: the report ran but cannot be stored
        return _failure(job, None, debug, e, attempt), False, pid
    debug.unlink(missing_ok=True)  # a stale failure from an earlier run no longer applies
    return None, False, pid


def _cell_failure(job: ReportJob, error, debug: Path, attempt: int) -> Failure:
    return Failure(
        entity_id=job.entity_id,
        template=str(job.template),
        ename=error.ename,
        evalue=error.evalue,
        traceback=plain_traceback(error.traceback),
        cell_index=error.cell_index,
        execution_count=error.exec_count,
        cell_first_line=first_line(error.source),
        notebook=str(debug),
        attempt=attempt,
    )


def _failure(
    job: ReportJob,
    nb: NotebookNode | None,
    debug: Path,
    exc: BaseException,
    attempt: int,
    explanation: str | None = None,
) -> Failure:
    """A failure outside a cell's own error output: kernel death, timeout, unreadable template, …

    A death or timeout has no traceback worth reading (only nbclient's internals), so ``explanation``
    replaces it; anything unexpected keeps its full traceback.
    """
    index = running_cell(nb) if nb is not None else None
    cell = nb.cells[index] if index is not None else None
    if nb is not None:
        write_debug(nb, debug)
    tb = explanation or "".join(traceback.format_exception(exc)).rstrip()
    return Failure(
        entity_id=job.entity_id,
        template=str(job.template),
        ename=type(exc).__name__,
        evalue=_evalue(exc, explanation),
        traceback=tb,
        cell_index=index,
        execution_count=cell.get("execution_count") if cell is not None else None,
        cell_first_line=first_line(cell.source) if cell is not None else "",
        notebook=str(debug) if nb is not None else None,
        attempt=attempt,
    )


def _evalue(exc: BaseException, explanation: str | None) -> str:
    """The exception's message; for deaths and timeouts its first line plus what it means."""
    if not explanation:
        return str(exc)
    head = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{head} ({explanation})"
