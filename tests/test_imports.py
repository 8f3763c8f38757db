"""What importing the package does to pandas, in fresh interpreters (a test process has pandas imported already).

``kofukin`` sets pandas' string storage without importing pandas (so ``kofukin report`` can start its kernel
first): whoever imports pandas first, before or after the package, gets the same configuration, and pandas
keeps its own loader.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


CHECK = (
    "import importlib.resources, pandas as pd;"
    "print(pd.get_option('mode.string_storage'), pd.Series(['a']).dtype.storage,"
    " type(pd.__spec__.loader).__name__, type(pd.__loader__).__name__, importlib.resources.files('pandas').name)"
)


@pytest.mark.parametrize(
    "order",
    [
        "import kofukin;" + CHECK,  # pandas imported after the package, through the hook
        "import pandas; import kofukin;" + CHECK,  # before it: configured directly
        "import kofukin.store;" + CHECK,  # by one of our modules
    ],
)
def test_pandas_stores_strings_as_python_objects_whoever_imports_it_first(order: str) -> None:
    assert _run(order) == "python python SourceFileLoader SourceFileLoader pandas"


def test_the_cli_and_the_package_import_without_pandas() -> None:
    """The point of the hook: the command line is ready to launch a kernel without pandas loaded; and the
    hook leaves ``sys.meta_path`` once pandas is found."""
    code = (
        "import sys, kofukin.cli, kofukin.runner.kernel, kofukin.vouch; before = 'pandas' in sys.modules;"
        "n = len(sys.meta_path); import pandas; print(before, len(sys.meta_path) - n)"
    )
    assert _run(code) == "False -1"


def test_the_hook_refuses_a_module_already_imported() -> None:
    from kofukin._after_import import call_after_import

    with pytest.raises(ValueError, match="imported already"):
        call_after_import("sys", lambda m: None)
