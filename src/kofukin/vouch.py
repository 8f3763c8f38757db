"""The vouch a command gives its kernels for the reference tables it validates (see :mod:`kofukin.reference`).

Apart from the loaders, and free of pandas: ``kofukin report`` vouches before it launches its kernel, which it
does before it imports pandas.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kofukin.paths import REFERENCE_DIR, sha256_file

VOUCHED_ENV = "KOFUKIN_REFERENCE_VOUCHED"
VALIDATED_FILES = ("municipalities.csv", "indicators.csv")  # the tables with a pandera schema


def reference_fingerprint(directory: Path | None = None) -> str:
    """The content of the validated files, as one sha256 (what a vouch names)."""
    h = hashlib.sha256()
    for name in VALIDATED_FILES:
        h.update(name.encode())
        h.update(sha256_file((directory or REFERENCE_DIR) / name).encode())
    return h.hexdigest()


def vouch_for_children() -> None:
    """Processes started from now on skip the schemas for these very files; the caller must then run
    :func:`kofukin.reference.validate_reference` before it uses anything they compute (``kofukin report`` does
    it while its kernel boots)."""
    os.environ[VOUCHED_ENV] = reference_fingerprint()


def is_vouched_for() -> bool:
    """True in a process whose parent vouched for exactly the files on disk now."""
    vouched = os.environ.get(VOUCHED_ENV)
    return bool(vouched) and vouched == reference_fingerprint()
