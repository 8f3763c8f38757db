"""The failure report of a run: Markdown for people (``failures.md``) and JSON for tools (``failures.json``).

Both are rewritten on every run, also when nothing failed, so a stale report never outlives the problem it
described. The executed notebooks of failed reports are in the ``failed/`` folder next to them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kofukin.runner.jobs import Failure


def write_failure_report(path: Path, failures: list[Failure], run_id: str, total: int) -> None:
    """Write ``path`` (Markdown) and its ``.json`` sibling."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_markdown(failures, run_id, total), encoding="utf-8")
    payload = {"run_id": run_id, "total": total, "failed": len(failures)}
    payload["failures"] = [f.to_json() for f in failures]
    path.with_suffix(".json").write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def _markdown(failures: list[Failure], run_id: str, total: int) -> str:
    lines = [f"# 報告書の実行エラー: {len(failures)} / {total} 件", "", f"run `{run_id}`", ""]
    if not failures:
        lines.append("すべての報告書が正常に実行されました (no failures).")
    for f in failures:
        lines += _section(f)
    return "\n".join(lines).rstrip() + "\n"


def _section(f: Failure) -> list[str]:
    if f.cell_index is None:
        cell = "(no cell was running)"
    else:
        count = f" (In [{f.execution_count}])" if f.execution_count else ""
        cell = f"#{f.cell_index}{count}: {_code(f.cell_first_line)}"
    lines = [
        f"## {f.entity_id}",
        "",
        f"- error: {_code(f'{f.ename}: {f.evalue}')}",
        f"- cell: {cell}",
        f"- template: `{f.template}`",
        f"- attempt: {f.attempt}",
    ]
    if f.notebook:
        lines.append(f"- executed notebook: `{f.notebook}`")
    fence = "`" * max(3, _longest_backtick_run(f.traceback) + 1)
    return [*lines, "", f"{fence}text", f.traceback, fence, ""]


def _code(text: str) -> str:
    """Inline code that survives backticks in the text (Markdown's rule: a longer fence than any inside)."""
    text = " ".join(text.split())
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)
