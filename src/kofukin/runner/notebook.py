"""Notebook documents before and after execution: papermill's parameterisation, the readable parameters box,
error extraction and the atomic write.

Everything papermill itself would do to a notebook is done with papermill's own functions, so an executed
report is indistinguishable from ``papermill template.ipynb out.ipynb -r code 01000`` apart from two additions
for the rendered book: the injected cell is tagged ``remove-cell`` (jupyter-book drops it) and a markdown cell
tagged ``kofukin-parameters`` shows the parameters as a small table instead.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4.nbjson import BytesEncoder
from nbformat.v4.rwbase import split_lines, strip_transient
from papermill.exceptions import PapermillExecutionError
from papermill.execute import prepare_notebook_metadata, raise_for_execution_errors, remove_error_markers
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from kofukin.narrative import md
from kofukin.runner.jobs import ReportJob

INJECTED_TAG = "injected-parameters"
BOX_TAG = "kofukin-parameters"
BOX_TITLE = "この報告書のパラメータ"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_BOX_STYLE = "border:1px solid #ccc;border-radius:4px;padding:0.4em 0.8em;margin:0.5em 0 1em;font-size:0.9em"
_UMASK = os.umask(0)
os.umask(_UMASK)


def prepare_notebook(job: ReportJob) -> NotebookNode:
    """The template with papermill's injected-parameters cell (hidden in the book) and the parameters box."""
    nb = load_notebook_node(str(job.template))
    kernel_name = nb.metadata.get("kernelspec", {}).get("name", "python3")
    nb = parameterize_notebook(nb, job.parameters, kernel_name=kernel_name, language="python")
    nb = prepare_notebook_metadata(nb, str(job.template), str(job.output))
    nb = remove_error_markers(nb)
    index = _injected_index(nb)
    nb.cells[index].metadata["tags"].append("remove-cell")
    nb.cells[index]["id"] = (
        "injected-parameters"  # fixed ids: two runs of the same inputs write the same bytes
    )
    nb.cells.insert(index + 1, parameters_cell(job.parameters))
    if job.title is not None:
        set_title(nb, job.title)
    return nb


def set_title(nb: NotebookNode, title: str) -> None:
    """Replace the first level-1 heading of the notebook: jupyter-book takes the page title from a real
    heading, not from a heading printed in an output."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            lines = cell.source.lstrip().split("\n")
            cell.source = "\n".join([f"# {md(title)}", *lines[1:]])
            return
    raise ValueError("the template has no '# ' heading to carry the page title")


def _injected_index(nb: NotebookNode) -> int:
    for i, cell in enumerate(nb.cells):
        if INJECTED_TAG in cell.metadata.get("tags", []):
            return i
    raise ValueError("papermill did not inject a parameters cell")  # cannot happen with papermill >= 2


def parameters_cell(parameters: Mapping[str, Any]) -> NotebookNode:
    """A markdown cell with the parameters as an HTML table, every name and value escaped.

    Raw HTML rather than a Markdown table because Markdown would need its own escaping (pipes, backticks,
    ``$`` for dollarmath) on top of HTML's. The block must not contain a blank line: CommonMark ends an HTML
    block there and would parse the rest as Markdown, so newlines inside values become ``<br>``.
    """
    rows = [
        f'<tr><th scope="row"><code>{_text(name)}</code></th><td>{_text(_display(value))}</td></tr>'
        for name, value in parameters.items()
    ] or ['<tr><td colspan="2">（なし）</td></tr>']
    lines = [
        f'<div class="kofukin-parameters" style="{_BOX_STYLE}">',
        f"<strong>{BOX_TITLE}</strong>",
        "<table>",
        *rows,
        "</table>",
        "</div>",
    ]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines), id="parameters-box")
    cell.metadata["tags"] = [BOX_TAG]
    return cell


def _display(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _text(value: str) -> str:
    return _NEWLINES.sub("<br>", html.escape(str(value), quote=True))


def execution_error(nb: NotebookNode, debug_path: Path) -> PapermillExecutionError | None:
    """Papermill's verdict on an executed notebook; on error it also writes the notebook, with papermill's red
    error banner, to ``debug_path`` for inspection."""
    debug_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        raise_for_execution_errors(nb, str(debug_path))
    except PapermillExecutionError as e:
        return e
    return None


def running_cell(nb: NotebookNode) -> int | None:
    """The cell that was executing when the kernel died or timed out: the last one papermill started."""
    started = [i for i, c in enumerate(nb.cells) if c.metadata.get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def first_line(source: str) -> str:
    """The first non-blank source line: what a reader needs to find the failing cell in the template."""
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def plain_traceback(lines: list[str] | str) -> str:
    """A kernel traceback without its ANSI colours, as one string."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    return _ANSI.sub("", text)


def write_atomic(nb: NotebookNode, path: Path) -> None:
    """Write via a temporary file in the same directory and rename it into place.

    The rename is atomic on one file system, so a reader (or jupyter-book) sees either the previous good
    report or the new one, never half a file; a failed or interrupted run leaves the previous one untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        nbformat.validate(nb)  # raises: an invalid report is a failure, not a logged warning
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(consume_to_json(nb))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; reports must be readable like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def consume_to_json(nb: NotebookNode) -> str:
    """``nbformat.writes(nb)``, character for character, for a notebook that is not used afterwards.

    nbformat deep-copies the notebook before splitting its text into lines (so as not to change the caller's
    copy) and validates it a second time; a report's notebook (~70 outputs, its figures) is written once, right
    after :func:`write_atomic` validated it, so its lines are split in place instead.
    """
    if nb.get("nbformat") != 4:
        return nbformat.writes(nb)
    nb = strip_transient(split_lines(nb))
    return json.dumps(
        nb, cls=BytesEncoder, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False
    )


def write_debug(nb: NotebookNode, path: Path) -> None:
    """Write a failed notebook as far as it got (no atomicity needed: it is only for reading)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb), encoding="utf-8")
