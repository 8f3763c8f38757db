"""Imported by ``report.ipynb`` from the kernel's working directory (the template's folder).

The warning is raised inside this module, so Python's "show once per location" registry lives here, outside
the user namespace: a warm kernel must still show it in every report, as a fresh kernel would.
"""

import warnings


def warn() -> None:
    warnings.warn("shown in every report", UserWarning, stacklevel=1)
