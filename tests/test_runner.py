"""The report runner (:mod:`kofukin.runner`): papermill-identical outputs from warm kernels, skips, isolation.

Every test that executes notebooks uses ``tests/notebooks/report.ipynb``, whose ``mode`` parameter makes it
succeed, raise, kill its kernel (always or once) or hang. Runs are shared through module fixtures because each
one costs a worker spawn and a kernel start.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import papermill
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from kofukin.runner import ReportJob, input_hash, read_manifest, run_reports
from kofukin.runner.manifest import entity_states, is_current
from kofukin.runner.notebook import parameters_cell

NOTEBOOKS = Path(__file__).parent / "notebooks"
TEMPLATE = NOTEBOOKS / "report.ipynb"
FAILING_LINE = "result = compute(code, mode)"
FAILING_CELL = 9  # template cell 7, after the injected-parameters cell and the parameters box
XSS_NAME = "<script>alert(\"x\")</script> & 'q'\n\n# not a heading"


def job(entity: str, out: Path, template: Path = TEMPLATE, **params: str) -> ReportJob:
    return ReportJob(entity, template, params, out / f"{entity}.ipynb")


def run(jobs: list[ReportJob], out: Path, **kwargs):
    kwargs = {"workers": 1, "progress": False, **kwargs}
    return run_reports(
        jobs, manifest_path=out / "manifest.jsonl", failure_report=out / "failures.md", **kwargs
    )


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def stdout_of(nb: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"
    )


def kernel_pid(path: Path) -> int:
    return int(re.search(r"kernel_pid=(\d+)", stdout_of(read(path))).group(1))


# --- One mixed run on two workers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    marker = out / "died-once"
    jobs = [
        job("die", out, code="99003", mode="die"),  # first, so that one worker is busy for seconds
        job("01000", out, code="01000", name="札幌市"),
        job("13101", out, code="13101", name=XSS_NAME),
        job("47201", out, code="47201"),
        job("01100", out, code="01100"),
        job("27100", out, code="27100"),
        job("raise", out, code="99001", mode="raise"),
        job("die-once", out, code="99002", mode="die-once", marker=str(marker)),
    ]
    summary = run(jobs, out, workers=2)
    return summary, out, {r.entity_id: r for r in summary.results}


@pytest.mark.slow
def test_mixed_run_counts_and_isolation(mixed):
    summary, out, results = mixed
    assert (summary.executed, summary.skipped, summary.failed) == (6, 0, 2)
    assert [f.entity_id for f in summary.failures] == ["die", "raise"]
    for entity in ("01000", "13101", "47201", "01100", "27100", "die-once"):
        assert results[entity].status == "executed"
        assert (out / f"{entity}.ipynb").exists()
    assert not (out / "raise.ipynb").exists() and not (out / "die.ipynb").exists()
    assert {r.worker for r in summary.results} == {"w1", "w2"}


@pytest.mark.slow
def test_parameters_are_injected_as_strings(mixed):
    _, out, _ = mixed
    nb = read(out / "01000.ipynb")
    assert nb.metadata.papermill.parameters == {"code": "01000", "name": "札幌市"}
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'code = "01000"\n' in injected[0].source
    assert "type=str code=01000 leaked=None" in stdout_of(nb)
    assert nb.cells[-3].outputs[0].data["text/plain"].startswith("{'code': '01000'")


@pytest.mark.slow
def test_no_state_leaks_between_notebooks_in_one_kernel(mixed):
    _, out, results = mixed
    executed = [e for e, r in results.items() if r.status == "executed" and e != "die-once"]
    pids = [results[e].kernel_pid for e in executed]
    assert len(set(pids)) < len(pids), (
        "some kernel must have run several notebooks for this test to mean anything"
    )
    for entity in executed:
        nb = read(out / f"{entity}.ipynb")
        assert "leaked=None" in stdout_of(nb)  # the user namespace was reset
        stderr = "".join(
            o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"
        )
        assert "UserWarning: shown in every report" in stderr  # warning registries were reset
        code_counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert code_counts == list(range(1, len(code_counts) + 1))
        assert kernel_pid(out / f"{entity}.ipynb") == results[entity].kernel_pid


@pytest.mark.slow
def test_injected_cell_hidden_and_parameters_box_escaped(mixed):
    _, out, _ = mixed
    nb = read(out / "13101.ipynb")
    i = next(i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.tags)
    assert nb.cells[i].metadata.tags == ["injected-parameters", "remove-cell"]
    box = nb.cells[i + 1]
    assert box.cell_type == "markdown" and box.metadata.tags == ["kofukin-parameters"]
    assert "この報告書のパラメータ" in box.source
    assert "<script>" not in box.source and "\n\n" not in box.source
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;<br><br># not a heading"
        in box.source
    )
    html = MarkdownIt("commonmark").render(box.source)  # how MyST parses it: one HTML block, no markup
    assert "<script>" not in html and "<h1>" not in html
    assert "<td>13101</td>" in html and "&lt;script&gt;" in html


@pytest.mark.slow
def test_failure_report_names_entity_cell_and_error(mixed):
    summary, out, _ = mixed
    failure = next(f for f in summary.failures if f.entity_id == "raise")
    assert (failure.ename, failure.evalue) == ("ValueError", "no data for 99001")
    assert (failure.cell_index, failure.cell_first_line, failure.attempt) == (FAILING_CELL, FAILING_LINE, 1)
    assert "ValueError" in failure.traceback and "\x1b[" not in failure.traceback
    report = (out / "failures.md").read_text(encoding="utf-8")
    assert "## raise" in report and "`ValueError: no data for 99001`" in report
    assert f"#{FAILING_CELL} (In [{failure.execution_count}]): `{FAILING_LINE}`" in report
    as_json = json.loads((out / "failures.json").read_text(encoding="utf-8"))
    assert [f["entity_id"] for f in as_json["failures"]] == ["die", "raise"] and as_json["total"] == 8
    debug = read(out / "failed" / "raise.ipynb")
    assert any(
        o.output_type == "error" and o.ename == "ValueError"
        for c in debug.cells
        for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_kernel_death_is_retried_once_then_failed(mixed):
    summary, out, results = mixed
    assert (results["die-once"].status, results["die-once"].attempt) == ("executed", 2)
    assert (out / "died-once").exists()
    die = next(f for f in summary.failures if f.entity_id == "die")
    assert (die.ename, die.attempt, die.cell_index, die.cell_first_line) == (
        "DeadKernelError",
        2,
        FAILING_CELL,
        FAILING_LINE,
    )
    assert results["die"].attempt == 2


@pytest.mark.slow
def test_outputs_equal_a_papermill_run(mixed, tmp_path):
    _, out, _ = mixed
    records = [r for r in read_manifest(out / "manifest.jsonl") if r["status"] == "executed"]
    warm = next(  # a report that ran in a kernel that had already run another one
        r["entity"]
        for i, r in enumerate(records)
        if any(p["kernel_pid"] == r["kernel_pid"] for p in records[:i])
    )
    ours = read(out / f"{warm}.ipynb")
    ref_path = tmp_path / "ref.ipynb"
    params = dict(ours.metadata.papermill.parameters)
    papermill.execute_notebook(
        TEMPLATE, ref_path, params, cwd=NOTEBOOKS, progress_bar=False, kernel_name="python3"
    )
    ref = read(ref_path)
    ours.cells = [c for c in ours.cells if "kofukin-parameters" not in c.metadata.get("tags", [])]
    assert ours.metadata.papermill.parameters == ref.metadata.papermill.parameters
    assert len(ours.cells) == len(ref.cells)
    for a, b in zip(ours.cells, ref.cells, strict=True):
        assert [t for t in a.metadata.get("tags", []) if t != "remove-cell"] == b.metadata.get("tags", [])
        assert (a.cell_type, a.source, a.get("execution_count")) == (
            b.cell_type,
            b.source,
            b.get("execution_count"),
        )
        assert _normalised(a.get("outputs", [])) == _normalised(b.get("outputs", []))
        assert a.metadata.papermill.status == b.metadata.papermill.status == "completed"


def test_printed_text_and_displays_keep_their_order(mixed):
    """The kernels flush a stream before a display only when it holds text (kernel.py, ``_PREPARE``): text
    printed between displays must still land between them."""
    _, out, _ = mixed
    last = read(out / "01000.ipynb").cells[-1]
    shown = [
        o["text"].strip() if o["output_type"] == "stream" else o["data"]["text/html"] for o in last.outputs
    ]
    assert shown == ["before", "<p>first</p>", "to stderr", "<p>second</p>", "<p>third</p>", "after"]
    assert [o.get("name") for o in last.outputs if o["output_type"] == "stream"] == [
        "stdout",
        "stderr",
        "stdout",
    ]


def _normalised(outputs: list) -> str:
    """Outputs as JSON, kernel pids masked and adjacent stream chunks joined: how IPython splits one print into
    stream messages depends on timing (under load ``text`` and ``"\\n"`` may arrive apart), not on the runner,
    and every notebook viewer shows the joined text."""
    merged: list[dict] = []
    for o in outputs:
        o = dict(o)
        prev = merged[-1] if merged else None
        if prev and o.get("output_type") == prev.get("output_type") == "stream" and o["name"] == prev["name"]:
            prev["text"] += o["text"]
        else:
            merged.append(o)
    return re.sub(r"kernel_pid=\d+", "kernel_pid=N", json.dumps(merged, sort_keys=True))


# --- Skipping and atomic outputs ----------------------------------------------------------------------------


@pytest.mark.slow
def test_skip_rerun_and_atomic_outputs(tmp_path):
    src = tmp_path / "templates"
    src.mkdir()
    for name in ("report.ipynb", "warnhelper.py"):
        shutil.copy(NOTEBOOKS / name, src / name)
    t1, t2 = src / "report.ipynb", src / "other.ipynb"
    shutil.copy(t1, t2)
    out = tmp_path / "out"
    params = {e: {"code": c} for e, c in [("e1", "01000"), ("e2", "02000"), ("e3", "03000"), ("e4", "04000")]}

    def jobs(**over):
        return [
            job(e, out, t2 if e == "e2" else t1, **{**params[e], **over.get(e, {})})
            for e in ("e1", "e2", "e3", "e4")
        ]

    def statuses(summary):
        return {r.entity_id: r.status for r in summary.results}

    first = run(jobs(), out)
    assert statuses(first) == dict.fromkeys(params, "executed")
    assert statuses(run(jobs(), out)) == dict.fromkeys(params, "skipped")

    # One reason to re-run per entity: parameter, template bytes, missing output; e4 fails.
    params["e1"]["name"] = "changed parameter"
    t2_nb = read(t2)
    t2_nb.cells.append(nbformat.v4.new_markdown_cell("changed template"))
    nbformat.write(t2_nb, t2)
    (out / "e3.ipynb").unlink()
    good = (out / "e4.ipynb").read_bytes()
    changed = run(jobs(e4={"mode": "raise"}), out)
    assert statuses(changed) == {"e1": "executed", "e2": "executed", "e3": "executed", "e4": "failed"}
    assert changed.failed == 1 and changed.failures[0].entity_id == "e4"
    assert (out / "e4.ipynb").read_bytes() == good  # the failed run never touched the good output
    assert (out / "failed" / "e4.ipynb").exists()
    assert not list(out.glob(".*.tmp"))

    # Back to the inputs of the good output: re-run anyway, because the entity's last run failed.
    again = run(jobs(), out)
    assert statuses(again) == {"e1": "skipped", "e2": "skipped", "e3": "skipped", "e4": "executed"}
    assert not (out / "failed" / "e4.ipynb").exists()
    assert "no failures" in (out / "failures.md").read_text(encoding="utf-8")

    store_changed = run(jobs(), out, extra_hash_inputs={"store": "sha256:abc"})
    assert statuses(store_changed) == dict.fromkeys(params, "executed")
    forced = run(jobs(), out, extra_hash_inputs={"store": "sha256:abc"}, force=True)
    assert statuses(forced) == dict.fromkeys(params, "executed")

    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == 6 * 4 and {r["status"] for r in records} == {"executed", "skipped", "failed"}
    assert all(r["input_hash"] and r["timestamp"] and "attempt" in r and "worker" in r for r in records)


def test_a_moved_project_keeps_its_state(tmp_path):
    """The manifest records each output also relative to itself: a project moved (or copied) whole with its
    manifest skips what it had executed; a report whose file did not come along runs again."""
    first_out = tmp_path / "a" / "book"
    jobs = [job(e, first_out, code=c) for e, c in (("e1", "01000"), ("e2", "02000"))]
    assert {r.status for r in run(jobs, first_out).results} == {"executed"}
    assert read_manifest(first_out / "manifest.jsonl")[0]["output_rel"] == "e1.ipynb"

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")  # the old absolute paths lead nowhere now
    moved_out = tmp_path / "b" / "book"
    (moved_out / "e2.ipynb").unlink()
    moved = run([job(e, moved_out, code=c) for e, c in (("e1", "01000"), ("e2", "02000"))], moved_out)
    assert {r.entity_id: r.status for r in moved.results} == {"e1": "skipped", "e2": "executed"}

    elsewhere = tmp_path / "b" / "other"  # same manifest, another output file: not the recorded one
    state = entity_states(read_manifest(moved_out / "manifest.jsonl"))["e1"]
    assert not is_current(state, state["input_hash"], elsewhere / "e1.ipynb", moved_out)
    assert is_current(state, state["input_hash"], moved_out / "e1.ipynb", moved_out)
    assert not is_current(state, state["input_hash"], moved_out / "e1.ipynb")  # without the manifest's folder


# --- Kernel lifecycle and progress --------------------------------------------------------------------------


@pytest.mark.slow
def test_kernel_restarts_every_k_notebooks_with_progress_bar(tmp_path, capsys):
    out = tmp_path / "out"
    jobs = [job(f"r{i}", out, code=f"0{i}000") for i in range(3)]
    summary = run(jobs, out, restart_every=2, progress=True)
    assert summary.executed == 3
    order = [r["entity"] for r in read_manifest(out / "manifest.jsonl")]
    pids = [kernel_pid(out / f"{e}.ipynb") for e in order]
    assert pids[0] == pids[1] != pids[2]
    assert "3/3" in capsys.readouterr().err


@pytest.mark.slow
def test_timeout_and_broken_templates_fail_alone(tmp_path):
    out = tmp_path / "out"
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not a notebook", encoding="utf-8")
    jobs = [
        job("slow", out, mode="sleep"),
        job("broken", out, broken),
        job("missing", out, tmp_path / "missing.ipynb"),
        job("fast", out, code="12345"),
    ]
    summary = run(jobs, out, timeout=2)
    assert (summary.executed, summary.failed) == (1, 3)
    slow, bad, missing = summary.failures
    assert (slow.entity_id, slow.ename, slow.cell_first_line) == ("slow", "CellTimeoutError", FAILING_LINE)
    assert "within 2 s" in slow.evalue and slow.cell_index == FAILING_CELL
    assert (bad.entity_id, bad.cell_index) == ("broken", None) and bad.traceback
    assert (missing.entity_id, missing.ename) == ("missing", "FileNotFoundError")
    assert "type=str code=12345" in stdout_of(read(out / "fast.ipynb"))


# --- Pure functions -----------------------------------------------------------------------------------------


def test_input_hash_covers_every_input():
    j = ReportJob("a", TEMPLATE, {"code": "01000"}, Path("a.ipynb"))
    base = input_hash(j, "t1", {"store": "s1"})
    assert base == input_hash(
        ReportJob("b", TEMPLATE, {"code": "01000"}, Path("b.ipynb")), "t1", {"store": "s1"}
    )
    assert base != input_hash(j, "t2", {"store": "s1"})
    assert base != input_hash(j, "t1", {"store": "s2"})
    assert base != input_hash(
        ReportJob("a", TEMPLATE, {"code": "1000"}, Path("a.ipynb")), "t1", {"store": "s1"}
    )
    assert base != input_hash(
        ReportJob("a", TEMPLATE, {"code": 1000}, Path("a.ipynb")), "t1", {"store": "s1"}
    )


def test_jobs_are_validated():
    with pytest.raises(TypeError, match="JSON"):
        ReportJob("a", TEMPLATE, {"when": object()}, Path("a.ipynb"))
    twins = [ReportJob("a", TEMPLATE, {}, Path("a.ipynb")), ReportJob("a", TEMPLATE, {}, Path("b.ipynb"))]
    with pytest.raises(ValueError, match="entity_id"):
        run_reports(twins, workers=1, manifest_path=Path("m"), failure_report=Path("f"))


def test_parameters_box_without_parameters_and_with_non_strings():
    assert "（なし）" in parameters_cell({}).source
    source = parameters_cell({"year": 2024, "codes": ["01000", "<b>"]}).source
    assert "<td>2024</td>" in source and "<td>[&quot;01000&quot;, &quot;&lt;b&gt;&quot;]</td>" in source


def test_manifest_state_ignores_skips_and_torn_lines(tmp_path):
    out = tmp_path / "r.ipynb"
    out.write_text("{}")
    manifest = tmp_path / "manifest.jsonl"
    lines = [
        {"entity": "a", "status": "executed", "input_hash": "h", "output": str(out.resolve())},
        {"entity": "a", "status": "skipped", "input_hash": "h", "output": str(out.resolve())},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"entity": "a", "sta')
    states = entity_states(read_manifest(manifest))
    assert states["a"]["status"] == "executed"
    assert is_current(states["a"], "h", out) and not is_current(states["a"], "other", out)
    assert not is_current(states["a"], "h", tmp_path / "missing.ipynb")


@settings(max_examples=200, deadline=None)
@given(
    stamp=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    digits=st.integers(0, 6),
    offset=st.sampled_from(["Z", "+00:00", "+09:00", "-0530", "+0000"]),
)
def test_message_dates_read_as_dateutil_reads_them(stamp, digits, offset):
    """Every header timestamp (jupyter writes ``2026-11-23T08:00:00.123456Z``; other kernels shorter fractions
    or other offsets) becomes the same instant as through dateutil, the parser it replaces for speed."""
    from dateutil.parser import isoparse

    from kofukin.runner.kernel import _parse_iso_date

    text = (
        stamp.strftime("%Y-%m-%dT%H:%M:%S") + (stamp.strftime(".%f")[: digits + 1] if digits else "") + offset
    )
    assert _parse_iso_date(text) == isoparse(text)
    assert _parse_iso_date(text).utcoffset() == isoparse(text).utcoffset()


def test_a_report_is_written_as_nbformat_writes_it():
    """The runner writes each executed notebook without nbformat's deep copy; the text must not change."""
    import copy

    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from kofukin.runner.notebook import consume_to_json

    nb = new_notebook(
        cells=[
            new_markdown_cell("# 見出し\n\n本文 <b>x</b>\n"),
            new_code_cell(
                "print('a')\nshow()",
                outputs=[
                    new_output("stream", name="stdout", text="a\nb\n"),
                    new_output(
                        "display_data",
                        data={"text/html": "<table>\n<tr></tr>\n</table>", "image/png": "iVBORw0K\n"},
                        metadata={"scrapbook": {"name": "k", "mime_prefix": ""}},
                    ),
                    new_output("execute_result", data={"text/plain": "1\n2"}, execution_count=3),
                ],
                execution_count=3,
            ),
        ],
        metadata={"orig_nbformat": 4, "kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nb.cells[1].metadata["trusted"] = True
    expected = nbformat.writes(copy.deepcopy(nb))
    assert consume_to_json(nb) == expected
    assert '"trusted"' not in expected and '"orig_nbformat"' not in expected


@pytest.mark.slow
def test_a_kernel_launched_ahead_runs_its_preload_then_the_report(tmp_path):
    """``kofukin report`` launches its kernel first and lets it import and load while the command resolves the
    municipality: the report then runs in that very kernel, after the preload, with a clean namespace."""
    import psutil

    from kofukin.runner.kernel import WarmKernel

    stamp = tmp_path / "preloaded"
    preload = (
        f"import os; _previous_code = 'from the preload'; open({str(stamp)!r}, 'w').write(str(os.getpid()))"
    )
    with (tmp_path / "kernel.log").open("a") as log:
        kernel = WarmKernel(1, stderr=log, preload=preload)
        kernel.launch(NOTEBOOKS)
        pid = kernel.pid
        summary = run([job("01000", tmp_path, code="01000")], tmp_path, kernel=kernel)
    assert summary.executed == 1, summary.failures
    nb = read(tmp_path / "01000.ipynb")
    assert kernel_pid(tmp_path / "01000.ipynb") == pid == int(stamp.read_text())
    assert "leaked=None" in stdout_of(nb), "the preload's names are reset like a previous report's"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(ValueError, match="one line"):
        WarmKernel(1, preload="import os\nimport sys")


@pytest.mark.slow
def test_report_kernels_start_without_the_debugger_and_still_run_reports(tmp_path):
    from kofukin.runner.kernel import WarmKernel

    stamp = tmp_path / "debugpy"
    preload = f"import sys; open({str(stamp)!r}, 'w').write(repr(sys.modules.get('debugpy', 'absent')))"
    with (tmp_path / "kernel.log").open("a") as log:
        kernel = WarmKernel(1, stderr=log, preload=preload)
        kernel.launch(NOTEBOOKS)
        summary = run([job("01000", tmp_path, code="01000")], tmp_path, kernel=kernel)
    assert summary.executed == 1, summary.failures
    assert stamp.read_text() == "None", "debugpy is blocked, not imported"
    assert "type=str code=01000 leaked=None" in stdout_of(read(tmp_path / "01000.ipynb"))


@pytest.mark.slow
def test_a_kernel_that_dies_while_booting_is_reported_at_once_not_after_the_start_timeout(tmp_path):
    """The handshake polls the process: a kernel gone before its first answer fails ``ready`` in about a
    second (one unanswered kernel_info), not after ``START_TIMEOUT``; and nothing of it is left running."""
    from kofukin.runner.kernel import START_TIMEOUT, WarmKernel

    with (tmp_path / "kernel.log").open("a") as log:
        kernel = WarmKernel(1, stderr=log, preload="import os; os._exit(3)")
        kernel.launch(NOTEBOOKS)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="died before it answered"):
            kernel.ready(NOTEBOOKS)
    assert time.monotonic() - started < START_TIMEOUT / 4
    assert kernel.km is None and not kernel.booting


@pytest.mark.slow
def test_a_kernel_stopped_as_soon_as_it_is_launched_leaves_no_thread_raising(tmp_path, monkeypatch):
    """A pool run stops a kernel it cannot use right after its launch. The client's heartbeat thread, when it got
    going only then, raised ZMQError on the destroyed context (3 times in 10 here); the client runs no such
    thread now."""
    import threading

    from kofukin.runner.kernel import WarmKernel

    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    with (tmp_path / "kernel.log").open("a") as log:
        for _ in range(10):
            kernel = WarmKernel(1, stderr=log, preload="pass")
            kernel.launch(NOTEBOOKS)
            kernel.stop()
            assert kernel.km is None
    assert errors == []


def test_a_failing_preload_costs_the_report_nothing_and_a_pool_run_stops_the_kernel(tmp_path):
    from kofukin.runner.kernel import WarmKernel

    with (tmp_path / "kernel.log").open("a") as log:
        broken = WarmKernel(1, stderr=log, preload="import no_such_module_kofukin")
        broken.launch(NOTEBOOKS)
        one = run([job("01000", tmp_path, code="01000")], tmp_path, kernel=broken)
        unused = WarmKernel(1, stderr=log, preload="pass")
        unused.launch(NOTEBOOKS)
        two = run([job(c, tmp_path, code=c) for c in ("01100", "13101")], tmp_path, kernel=unused, workers=2)
    assert one.executed == 1 and two.executed == 2, (one.failures, two.failures)
    assert unused.km is None, "a kernel the run could not use is stopped"
