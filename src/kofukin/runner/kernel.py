"""A warm IPython kernel that executes many notebooks, one after another, in papermill's way.

Starting a kernel and importing pandas/matplotlib costs 2–4 s, executing a report a fraction of that, so each
worker keeps one kernel and only resets the *user* state between notebooks:

* the user namespace is cleared (IPython's ``%reset -f``), the execution counter set back to 1, figures
  closed, warning registries invalidated (a library warning shown in one report is shown again in the next,
  exactly as in a fresh kernel) and the working directory set to the template's folder;
* imported modules stay in ``sys.modules`` – that is the point – and so does module-level state such as
  ``matplotlib.rcParams``. What survives a reset is moved to the garbage collector's permanent generation
  (``gc.freeze``), so the next reset's collection scans only the last notebook's objects, not all of pandas:
  this halves the per-notebook cost, and the restart every ``restart_every`` notebooks bounds what it keeps. Templates must therefore set styles by calling a function, not rely on a change a
  previous notebook made; they do set them identically in every report, so nothing leaks between reports.

The kernel is replaced every ``restart_every`` notebooks (bounding leaks of memory and module state) and
after any error. The kernel spec is built from this interpreter, so a clean clone needs no ``ipykernel
install`` and a stray user-level ``python3`` spec pointing at another Python can never be picked up.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from queue import Empty
from typing import IO, TYPE_CHECKING

import jupyter_client.jsonutil
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_core.utils import run_sync

if TYPE_CHECKING:  # nbformat is imported where notebooks are executed: launching a kernel does not need it
    from nbformat import NotebookNode

KERNEL_NAME = "python3"
KERNEL_MODULE = "kofukin.runner.kernel_main"  # the kernels' program (`python -m`): ipykernel, no debugger
START_TIMEOUT = 60.0
RESET_TIMEOUT = 60.0

# Runs silently (no execution count, no history) before every notebook.
_RESET = """
def _kofukin_reset(cwd):
    import gc, os, sys, warnings
    ip = get_ipython()
    ip.reset(new_session=False)  # its gc.collect() only scans what was allocated since the last freeze
    gc.freeze()
    ip.execution_count = 1
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()
    os.chdir(cwd)
_kofukin_reset({cwd!r})
"""

# Runs silently once per kernel. IPython flushes stdout and stderr before every display, and ipykernel's flush
# is a round trip to its I/O thread even when nothing was written: ~70 displays (glue, tables, figures) per
# report made that ~60 ms of kernel CPU. A stream is now flushed before a display only when it holds text, which
# keeps the order of printed text and displays exactly as before (a stream whose flush has already begun is
# sent by the I/O thread ahead of the display, which that thread sends next). Should ipykernel's stream lose the
# attributes read here, every flush happens as before.
_PREPARE = """
def _kofukin_quiet_flush():
    import sys
    def pending(stream):
        try:
            return (
                stream._flush_pending
                or stream._subprocess_flush_pending
                or any(buf.tell() for buf in list(stream._buffers.values()))
            )
        except AttributeError:
            return True
    def flush_streams():
        for stream in (sys.stdout, sys.stderr):
            if pending(stream):
                stream.flush()
    get_ipython().display_pub._flush_streams = flush_streams
_kofukin_quiet_flush()
del _kofukin_quiet_flush
"""

# nbclient logs kernel deaths and timeouts as errors; the runner reports them itself, so keep stderr clean for
# the progress bar.
_QUIET = logging.getLogger("kofukin.runner.nbclient")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _unvalidated_output(msg: dict) -> NotebookNode:
    """``nbformat.v4.output_from_msg`` without validating each output against the JSON schema on its own.

    nbformat validates every output with ``jsonschema`` (its fast validator cannot take a sub-schema): ~70
    outputs per report made that a quarter of the worker's CPU. The whole notebook is validated once, with
    the fast validator, before it is written (:func:`kofukin.runner.notebook.write_atomic`), so nothing
    invalid reaches the book.
    """
    from nbformat import from_dict
    from nbformat.v4 import output_from_msg

    content = msg["content"]
    kind = msg["header"]["msg_type"]
    if kind in ("display_data", "execute_result"):
        out = from_dict({"output_type": kind, "metadata": content["metadata"], "data": content["data"]})
        if kind == "execute_result":
            out.execution_count = content["execution_count"]
        return out
    return output_from_msg(msg)  # streams and errors: rare, validated as usual


def _nbclient_without_output_validation() -> None:
    """nbclient looks the function up in its own module when a message arrives; papermill's client (imported
    here, not with this module: launching a kernel does not need it) uses nbclient's."""
    import nbclient.client

    nbclient.client.output_from_msg = _unvalidated_output


def _parse_iso_date(text: str) -> datetime:
    """``dateutil.parser.isoparse`` for the timestamps of message headers, through the standard library.

    jupyter_client parses the two header dates of every message (~140 per report) with dateutil, a tenth of
    the worker's CPU; ``datetime.fromisoformat`` reads the same ISO 8601 stamps to the same instants (Python
    3.11 takes ``Z`` and short fractions) ten times faster. Anything it refuses still goes to dateutil.
    """
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _DATEUTIL_ISOPARSE(text)


# jupyter_client looks the parser up in its module for every date it reads.
# A reloaded module finds its own earlier function there, which keeps dateutil's.
_DATEUTIL_ISOPARSE = jupyter_client.jsonutil._dateutil_parse
_DATEUTIL_ISOPARSE = getattr(_DATEUTIL_ISOPARSE, "dateutil_isoparse", _DATEUTIL_ISOPARSE)
_parse_iso_date.dateutil_isoparse = _DATEUTIL_ISOPARSE  # type: ignore[attr-defined]
jupyter_client.jsonutil._dateutil_parse = _parse_iso_date


class ThisPythonKernelSpecs(KernelSpecManager):
    """Every kernel name resolves to ipykernel on ``sys.executable`` (the project's virtual environment),
    started without its debugger (:mod:`kofukin.runner.kernel_main`)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", KERNEL_MODULE, "-f", "{connection_file}"],
            display_name="Python 3 (ipykernel)",
            language="python",
            metadata={},
        )


class KernelResetError(RuntimeError):
    """The between-notebooks reset failed; the kernel is unusable and gets replaced."""


class WarmKernel:
    """One kernel process kept alive across notebooks; all methods are synchronous for the worker's loop."""

    def __init__(self, restart_every: int, stderr: IO[str] | None = None, preload: str = "") -> None:
        if "\n" in preload:
            raise ValueError("preload is one line of Python (IPython's exec_lines)")
        self.restart_every = restart_every
        self.stderr = stderr
        self.preload = preload
        self.km: AsyncKernelManager | None = None
        self.kc: AsyncKernelClient | None = None
        self.notebooks = 0
        self.booting = False  # launched, not yet known to be ready

    @property
    def pid(self) -> int | None:
        return getattr(self.km.provisioner, "pid", None) if self.km is not None else None

    def launch(self, cwd: Path) -> None:
        """Start the kernel process and return without waiting for it: it boots, and runs ``preload`` (imports,
        loading data), while the caller does its own work; :meth:`ready` then waits for it."""
        if self.km is None:
            run_sync(self._launch)(cwd)

    def ready(self, cwd: Path) -> None:
        """Make a live, reset kernel available; replace it if it ran ``restart_every`` notebooks or died."""
        run_sync(self._ready)(cwd)

    async def _ready(self, cwd: Path) -> None:
        if self.booting:
            await self._connect()
            await self._reset(cwd)
            return
        if self.km is not None and (self.notebooks >= self.restart_every or not await self.km.is_alive()):
            await self._stop()
        if self.km is not None:
            # A kernel the previous report left unusable (stuck thread, broken IPython) is replaced, so that
            # the next report does not pay for it.
            try:
                await self._reset(cwd)
                return
            except Exception:
                await self._stop()
        await self._start(cwd)
        await self._reset(cwd)

    async def _start(self, cwd: Path) -> None:
        await self._launch(cwd)
        await self._connect()

    async def _launch(self, cwd: Path) -> None:
        km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ThisPythonKernelSpecs())
        arguments = ["--HistoryManager.hist_file=:memory:"]  # as nbclient does: no shared sqlite
        if self.preload:
            # Run by IPython before the kernel answers; a failure does not stop the kernel, and the notebook
            # then does the work itself. What it loaded stays for the kernel's life: frozen, the first reset's
            # collection does not scan it (as every later reset skips what the one before kept).
            arguments.append(f"--IPKernelApp.exec_lines={self.preload}; import gc; gc.freeze()")
        await km.start_kernel(cwd=str(cwd), extra_arguments=arguments, stdout=self.stderr, stderr=self.stderr)
        kc = km.client()
        # No heartbeat channel: whether the kernel lives is asked of its manager (the process), by nbclient and
        # by jupyter_client's own client alike. Its thread only pinged the kernel, and one that got going after a
        # quick stop raised in the background (ZMQError on the destroyed context).
        kc.start_channels(hb=False)
        self.km, self.kc, self.notebooks, self.booting = km, kc, 0, True

    async def _connect(self) -> None:
        try:
            await self._handshake()
            await self._run_silently(_PREPARE)
        except BaseException:
            await self._stop()
            raise
        self.booting = False

    async def _handshake(self) -> None:
        """Wait until the kernel answers on the shell channel and publishes on IOPub.

        jupyter_client's ``wait_for_ready`` does the same, then drains IOPub until it has been quiet for 0.2 s:
        a fixed 0.2 s on every start, a tenth of a cold ``kofukin report``'s wait for its kernel. Nothing here
        needs that drain — :meth:`_run_silently` and nbclient match every reply and output to their request by
        ``msg_id`` — so the messages left on IOPub are skipped where they are read.
        """
        kc = self.kc
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            kc.kernel_info()  # queued by ZeroMQ until the kernel listens; a slow kernel answers them all
            with suppress(Empty):
                reply = await kc.get_shell_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply":
                    with suppress(Empty):
                        await kc.get_iopub_msg(timeout=0.2)  # IOPub connected: its messages reach us
                        return
            if not await self.km.is_alive():
                raise RuntimeError("the kernel died before it answered (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel did not answer within {START_TIMEOUT:.0f} s")

    async def _reset(self, cwd: Path) -> None:
        await self._run_silently(_RESET.format(cwd=str(cwd)))

    async def _run_silently(self, code: str) -> None:
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        while True:
            reply = await self.kc.get_shell_msg(timeout=RESET_TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise KernelResetError(f"{content.get('ename')}: {content.get('evalue')}")

    def execute(self, nb: NotebookNode, timeout_func: Callable[[NotebookNode], float]) -> NotebookNode:
        """Execute ``nb`` exactly as papermill's nbclient engine does, but on this kernel.

        This is ``papermill.engines.Engine.execute_notebook`` with the kernel client handed in: papermill's
        engine would create a second client on the same session, and the kernel would route replies to it.
        """
        from papermill.clientwrap import PapermillNotebookClient
        from papermill.engines import NotebookExecutionManager

        _nbclient_without_output_validation()
        manager = NotebookExecutionManager(nb, output_path=None, progress_bar=False, autosave_cell_every=0)
        manager.notebook_start()
        try:
            client = PapermillNotebookClient(
                manager,
                km=self.km,
                kernel_name=KERNEL_NAME,
                timeout_func=timeout_func,
                startup_timeout=int(START_TIMEOUT),
                log=_QUIET,
            )
            client.kc = self.kc
            client.execute()
        finally:
            manager.cleanup_pbar()
            manager.notebook_complete()
            self.notebooks += 1
        return manager.nb

    def stop(self) -> None:
        """Kill the kernel (its state is disposable) so the next ``ready`` starts a fresh one."""
        run_sync(self._stop)()

    async def _stop(self) -> None:
        km, kc = self.km, self.kc
        self.km, self.kc, self.notebooks, self.booting = None, None, 0, False
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            _kill_and_reap(km)
            try:
                await km.shutdown_kernel(now=True)
            except Exception:  # already dead or half-started: nothing left to clean but files
                with suppress(Exception):
                    await km.cleanup_resources()


def _kill_and_reap(km: AsyncKernelManager) -> None:
    """Kill the kernel's process and wait for it, which takes milliseconds.

    ``shutdown_kernel(now=True)`` kills it too, then polls every 0.1 s until it is gone: a tenth of a second on
    every stop, the last step of a cold ``kofukin report`` before its HTML. Reaped here, the process is found
    gone at the first poll; the shutdown then only cleans up (connection file, sockets)."""
    process = getattr(km.provisioner, "process", None)
    if process is None:
        return
    with suppress(OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait(timeout=5)
