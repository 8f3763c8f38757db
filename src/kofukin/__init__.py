"""kofukin — the incentive-grant analysis book.

All logic lives in this package; notebooks only call it. See README.md for the layout of the project.
"""

import sys
from types import ModuleType

__version__ = "0.1.0"


def _configure_pandas(pandas: ModuleType) -> None:
    # pandas 3 stores strings in Arrow arrays by default; the analysis slices and joins many small tables per
    # report, and Arrow's `take` made that ~2× slower than Python-object storage (measured: 3.0 s → 1.5 s per
    # municipality report; a cold report, 2026-11: 3.4 s → 1.1 s). The values and the `str` dtype are the same.
    pandas.set_option("mode.string_storage", "python")


# The package configures pandas without importing it: `kofukin report` starts its kernel before anything has
# imported pandas (~0.4 s sooner). Whoever imports pandas first — a module of ours, a notebook, a test — gets
# it configured before the import statement returns.
if "pandas" in sys.modules:
    _configure_pandas(sys.modules["pandas"])
else:
    from kofukin._after_import import call_after_import

    call_after_import("pandas", _configure_pandas)
