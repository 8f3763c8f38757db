"""The value types of the runner: what to run (``ReportJob``), what happened (``JobResult``, ``Failure``) and
the total (``RunSummary``), plus the input hash that decides whether a report must be re-executed.

They are plain dataclasses because they cross process boundaries (pickled to and from the workers) and end up
as JSON in the manifest and the failure report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import kofukin
from kofukin.paths import sha256_file

# Bump when the runner changes what it writes into a notebook (parameters box, tags, metadata): every report
# is then re-executed once, because its output would differ even though none of its inputs did.
RUNNER_FORMAT = "kofukin-runner/1"

Status = Literal["executed", "skipped", "failed"]


@dataclass(frozen=True)
class ReportJob:
    """One notebook to execute: ``template`` run with ``parameters`` and written to ``output``.

    ``entity_id`` names the report in the manifest and the failure report; it must be unique within a run.
    Parameters must be JSON-serialisable because papermill records them in the notebook's metadata; strings
    stay strings all the way (``"01000"`` is injected as ``code = "01000"``).
    """

    entity_id: str
    template: Path
    parameters: Mapping[str, Any]
    output: Path
    title: str | None = None  # replaces the template's first "# " heading (the page title in the book)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", Path(self.template))
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "parameters", dict(self.parameters))
        try:
            json.dumps(self.parameters, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.entity_id}: parameters must be JSON-serialisable ({e})") from None


@dataclass(frozen=True)
class Failure:
    """Why one report failed, precise enough to fix the template without re-running it.

    ``cell_index`` counts cells of the executed notebook (the injected-parameters cell included) and is
    ``None`` when no cell was running (e.g. the template could not be read).
    """

    entity_id: str
    template: str
    ename: str
    evalue: str
    traceback: str
    cell_index: int | None = None
    execution_count: int | None = None
    cell_first_line: str = ""
    notebook: str | None = None
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class JobResult:
    """What a worker reports back for one job; also the body of a manifest record."""

    entity_id: str
    status: Status
    seconds: float
    input_hash: str
    output: str
    template: str
    worker: str | None = None
    attempt: int = 0
    kernel_pid: int | None = None
    failure: Failure | None = None


@dataclass
class RunSummary:
    """The outcome of ``run_reports``: counts for the CLI's exit code and the failures for its message."""

    executed: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    results: list[JobResult] = field(default_factory=list)
    manifest_path: Path | None = None
    failure_report: Path | None = None

    @property
    def total(self) -> int:
        return self.executed + self.skipped + self.failed

    def __str__(self) -> str:
        return (
            f"{self.total} reports: {self.executed} executed, {self.skipped} skipped, "
            f"{self.failed} failed in {self.seconds:.1f} s"
        )


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (templates are hashed once per run, not once per job)."""
    return sha256_file(path)


def input_hash(job: ReportJob, template_digest: str, extra: Mapping[str, str] | None = None) -> str:
    """The identity of a report's inputs: template bytes, parameters, package version, runner format and the
    caller's extra inputs (the processed store's content hash).

    Parameters are hashed in their given order because papermill injects them in that order, so a reordering
    changes the output notebook too. Each part is length-prefixed so that no two different inputs can collide
    by shifting bytes from one part to the next.
    """
    parts = (
        RUNNER_FORMAT,
        template_digest,
        json.dumps(job.parameters, ensure_ascii=False),
        job.title or "",
        kofukin.__version__,
        json.dumps(dict(extra or {}), ensure_ascii=False, sort_keys=True),
    )
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()
