"""The report runner behind ``kofukin reports``: executes ~1,800 parameterised notebooks like papermill, fast.

Usage::

    summary = run_reports(
        [ReportJob("13101", Path("notebooks/municipality.ipynb"), {"code": "13101"}, Path("m/13101.ipynb"))],
        workers=2, manifest_path=Path("_build/reports/manifest.jsonl"),
        failure_report=Path("_build/reports/failures.md"), extra_hash_inputs={"store": store_hash},
    )
    raise SystemExit(1 if summary.failed else 0)

How it works and what it guarantees:

* **papermill's output.** Parameters are injected by ``papermill.parameterize.parameterize_notebook`` and
  cells are executed by papermill's nbclient client, so outputs carry ``metadata.papermill`` and the cell
  tagged ``injected-parameters``. For the book that cell is also tagged ``remove-cell`` and followed by a
  markdown cell tagged ``kofukin-parameters`` showing the parameters (HTML-escaped) in a box titled
  この報告書のパラメータ.
* **Speed.** Each worker process keeps one warm kernel and resets only the user namespace between notebooks
  (``kernel.py`` lists exactly what is reset); the kernel is replaced every ``restart_every`` notebooks and
  after any failure.
* **Atomic outputs.** A report is written to a temporary file beside its output and renamed into place only
  when it succeeded; a failed report leaves the previous output byte-identical.
* **Incremental.** A report is skipped when its input hash (template bytes, parameters,
  ``kofukin.__version__``, the runner's format version, ``extra_hash_inputs``) matches its last successful run
  recorded in the manifest and the output still exists (``manifest.py`` documents the JSON Lines format).
  ``force=True`` runs everything.
* **Fault isolation.** A failing report never stops the others. Failures are listed in ``failure_report``
  (Markdown) and its ``.json`` sibling with entity, cell index, first line of the cell, error and traceback;
  the executed notebook goes to ``failed/<entity>.ipynb`` beside the report and kernel stderr to
  ``kernel-stderr.log``. A kernel death is retried once on a fresh kernel; a second death, a timeout
  (``timeout`` seconds per notebook, default 600) or a cell error is a failure. ``RunSummary.failed`` counts
  them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kofukin.runner.jobs import Failure, JobResult, ReportJob, RunSummary, input_hash
    from kofukin.runner.manifest import read_manifest
    from kofukin.runner.run import DEFAULT_TIMEOUT, default_workers, run_reports

# Imported when first used: ``kofukin report`` launches its kernel (kofukin.runner.kernel) before it imports
# papermill and the pool (~0.5 s), so that the kernel boots while the command does the rest of its work.
_HOME = {
    "DEFAULT_TIMEOUT": "run",
    "Failure": "jobs",
    "JobResult": "jobs",
    "ReportJob": "jobs",
    "RunSummary": "jobs",
    "default_workers": "run",
    "input_hash": "jobs",
    "read_manifest": "manifest",
    "run_reports": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


__all__ = [
    "DEFAULT_TIMEOUT",
    "Failure",
    "JobResult",
    "ReportJob",
    "RunSummary",
    "default_workers",
    "input_hash",
    "read_manifest",
    "run_reports",
]
