"""The run manifest: an append-only JSON Lines file with one record per report per run.

Record fields::

    {"run_id": "20250401T101500Z-3f2a", "entity": "13101", "status": "executed",   # executed|skipped|failed
     "seconds": 0.41, "input_hash": "<sha256>", "output": "/abs/path/13101.ipynb",
     "output_rel": "../13101.ipynb",                                              # relative to the manifest
     "template": "notebooks/municipality.ipynb", "timestamp": "2025-04-01T10:15:03.2+00:00",
     "worker": "w2", "attempt": 1, "kernel_pid": 4242, "error": null}              # error: "ename: evalue"

``worker`` is ``null`` and ``attempt`` 0 for skipped records. Records are appended (and flushed) as reports
finish, so an interrupted run keeps what it completed and the next run skips it. A torn last line from a
killed process is ignored when reading.

An entity's *state* is its latest record that is not ``skipped`` (a skip re-confirms that state rather than
replacing it); a report is skipped when that state is ``executed`` with the same input hash and output path
and the output file still exists. The output path is compared as recorded (absolute) or relative to the
manifest's folder, so a project that was moved or copied whole keeps its state instead of re-running every report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kofukin.runner.jobs import JobResult


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """All well-formed records, oldest first (a missing file is an empty history)."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "entity" in record:
                records.append(record)
    return records


def entity_states(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest executed-or-failed record of each entity."""
    states: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("status") != "skipped":
            states[record["entity"]] = record
    return states


def is_current(state: dict[str, Any] | None, input_hash: str, output: Path, base: Path | None = None) -> bool:
    """Whether a report can be skipped: executed with these inputs into this file, which still exists.

    ``base`` is the manifest's folder: with it, the file is also recognised by its path relative to the
    manifest (the project was moved or copied with its manifest)."""
    return (
        state is not None
        and state.get("status") == "executed"
        and state.get("input_hash") == input_hash
        and _same_output(state, output, base)
        and output.exists()
    )


def _same_output(state: dict[str, Any], output: Path, base: Path | None) -> bool:
    if state.get("output") == str(output.resolve()):
        return True
    recorded = state.get("output_rel")
    return base is not None and recorded is not None and recorded == relative_output(output, base)


def relative_output(output: Path, base: Path) -> str:
    """``output`` relative to ``base`` (POSIX separators), the form the manifest records."""
    return Path(os.path.relpath(output.resolve(), base.resolve())).as_posix()


def to_record(result: JobResult, run_id: str, base: Path | None = None) -> dict[str, Any]:
    failure = result.failure
    return {
        "run_id": run_id,
        "entity": result.entity_id,
        "status": result.status,
        "seconds": result.seconds,
        "input_hash": result.input_hash,
        "output": result.output,
        "output_rel": relative_output(Path(result.output), base) if base is not None else None,
        "template": result.template,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "worker": result.worker,
        "attempt": result.attempt,
        "kernel_pid": result.kernel_pid,
        "error": f"{failure.ename}: {failure.evalue}" if failure else None,
    }


@contextmanager
def manifest_writer(path: Path, run_id: str) -> Iterator:
    """A function that appends one result as one line and flushes it immediately."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:

        def write(result: JobResult) -> None:
            f.write(json.dumps(to_record(result, run_id, path.parent), ensure_ascii=False) + "\n")
            f.flush()  # survives a killed run; fsync would only add power-loss safety to a cache

        yield write
