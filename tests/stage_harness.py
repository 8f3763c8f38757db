"""Running the real ``kofukin`` command line on a scratch project, interrupting it and fingerprinting its output.

The reliability tests (interrupted stages, reproducibility, hostile names) drive the stages exactly as a user
does — ``kofukin ingest``, ``kofukin reports``, ``kofukin site`` in a separate process with ``KOFUKIN_ROOT``
pointing at a temporary project — because what they check (a killed process, a second independent run, a
name that travels from a workbook to a browser) only exists across process boundaries.

Each command runs in its own session (``start_new_session=True``), so one ``killpg`` reaches it and every
process it started in its group (Sphinx, Pagefind, the runner's workers). Jupyter kernels start their own
sessions and are not in that group; they exit on their own when their worker dies, which
:func:`wait_gone` checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kofukin.paths import ProjectPaths

T = TypeVar("T")

# The console script next to this interpreter (the project's virtual environment), else the module.
_SCRIPT = Path(sys.executable).with_name("kofukin")
KOFUKIN: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "kofukin.cli"]
CLI_TIMEOUT = 900.0


def make_project(root: Path, workbooks: Path) -> ProjectPaths:
    """A scratch project root: the book's configuration and chapters from the repository, the workbooks in
    ``data/raw/demo`` (copied, so that a test may change them)."""
    from kofukin.site import copy_book_sources

    paths = copy_book_sources(ProjectPaths(root.resolve()))
    shutil.copytree(workbooks, paths.demo_raw)
    return paths


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a command on ``root``: this one, the project root, one BLAS thread per process."""
    env = dict(os.environ)
    env.update(
        KOFUKIN_ROOT=str(root),
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(args: list[str], root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``kofukin ARGS`` on ``root`` to the end; a non-zero exit fails the test with its output."""
    proc = subprocess.run(
        [*KOFUKIN, *args],
        cwd=root,
        env=env or cli_env(root),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"kofukin {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


@dataclass
class Running:
    """A command started in its own session; its output goes to a log file beside the project."""

    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_cli(args: list[str], root: Path, env: dict[str, str] | None = None) -> Running:
    log = root.parent / f"{root.name}-{args[0]}.log"
    with log.open("w", encoding="utf-8") as f:
        proc = subprocess.Popen(
            [*KOFUKIN, *args],
            cwd=root,
            env=env or cli_env(root),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(proc, log)


def wait_for(
    run: Running, probe: Callable[[], T | None], *, timeout: float = 300.0, every: float = 0.002
) -> T:
    """Poll ``probe`` until it returns something truthy; fail if the command ends first or time runs out.

    The probe looks at the files the command writes (a staging directory, a record of a finished report), so
    the test interrupts the command when it is demonstrably in the middle of its work, not after a guess.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if run.proc.poll() is not None:
            raise AssertionError(
                f"the command ended (exit {run.proc.returncode}) before it could be interrupted:\n{run.output()}"
            )
        time.sleep(every)
    raise AssertionError(f"no sign of the awaited state after {timeout:g} s:\n{run.output()}")


def freeze(run: Running) -> list[int]:
    """SIGSTOP the command's process group (nothing in it moves on while the test looks at its files) and
    return every process it has started, kernels in other sessions included."""
    os.killpg(run.proc.pid, signal.SIGSTOP)
    return descendants(run.proc.pid)


def kill(run: Running) -> None:
    """SIGKILL the whole process group — no handler, no ``finally``, no clean-up runs — and reap the command.

    Also the clean-up of a test that failed before the kill: a group that is already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.proc.pid, signal.SIGKILL)
    run.proc.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Exists and is not a zombie (a killed child that nobody reaped yet is gone for our purposes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: Iterable[int], timeout: float = 20.0) -> list[int]:
    """Wait until none of ``pids`` is alive; return the survivors (killed here so that no test leaks them)."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    survivors = [p for p in pids if alive(p)]
    for p in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return survivors


def tree_digest(directory: Path, *, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Relative path → sha256 of every file under ``directory`` (top-level names in ``exclude`` skipped)."""
    skip = set(exclude)
    out = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if rel.parts[0] in skip or not path.is_file():
            continue
        out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the good book every interruption starts from -------------------------------------------------------------

CODES = (
    "312011",
    "312029",
    "313025",
    "313840",
)  # 鳥取市, 米子市, 岩美町, 日吉津村 (all in 鳥取県: one prefecture)


def report_args(year: str | None = None) -> list[str]:
    args = ["reports", *(a for c in CODES for a in ("--municipality", c)), "--jobs", "2"]
    return [*args, "--year", year] if year else args


def pages(paths: ProjectPaths) -> dict[str, str]:
    """sha256 of every report page (executed notebook) under book/, outside the runner's own folder."""
    digest = tree_digest(paths.book, exclude=("_manifest",))
    return {page: d for page, d in digest.items() if page.endswith(".ipynb")}


@dataclass
class GoodBook:
    """A project after one successful ingest, reports run (R8, :data:`CODES`) and site build, with the
    fingerprints of what each stage published."""

    paths: ProjectPaths
    store: dict[str, str]
    pages: dict[str, str]
    site: dict[str, str]

    def copy(self, target: Path) -> ProjectPaths:
        """A copy to interrupt (the original stays intact for the other tests): byte-identical but for the
        runner's manifest, whose records name each page by absolute path and now name the copy's."""
        shutil.copytree(self.paths.root, target, symlinks=True)
        paths = ProjectPaths(target.resolve())
        runs = paths.runs_manifest
        runs.write_text(
            runs.read_text(encoding="utf-8").replace(str(self.paths.root), str(paths.root)), "utf-8"
        )
        return paths


def build_good_book(root: Path, workbooks: Path) -> GoodBook:
    paths = make_project(root, workbooks)
    run_cli(["ingest"], paths.root)
    run_cli(report_args(), paths.root)
    run_cli(["site", "--jobs", "1"], paths.root)
    return GoodBook(paths, tree_digest(paths.processed), pages(paths), tree_digest(paths.build / "html"))
