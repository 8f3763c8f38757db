"""Every path the project uses, derived from one root.

Notebooks and scripts never build paths by hand. The root can be moved with ``KOFUKIN_ROOT`` so that tests and
benchmarks can build a small book in a temporary directory without touching the working tree.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parents[1]


@dataclass(frozen=True)
class ProjectPaths:
    """Locations under one project root (the repository, or a scratch copy for tests)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def reference(self) -> Path:
        return self.data / "reference"

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def demo_raw(self) -> Path:
        return self.raw / "demo"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def exports(self) -> Path:
        return self.data / "exports"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def book(self) -> Path:
        return self.root / "book"

    @property
    def runs_manifest(self) -> Path:
        """The report runner's manifest (:mod:`kofukin.runner.manifest`); its failure report sits beside it."""
        return self.book / "_manifest" / "runs.jsonl"

    @property
    def build(self) -> Path:
        return self.root / "_build"


def project_paths() -> ProjectPaths:
    """The active project root: ``$KOFUKIN_ROOT`` if set, else the repository holding this package."""
    env = os.environ.get("KOFUKIN_ROOT")
    return ProjectPaths(Path(env).resolve() if env else SOURCE_ROOT)


# Reference data always comes from the repository (it is versioned with the code), never from outside it.
REFERENCE_DIR = SOURCE_ROOT / "data" / "reference"
NOTEBOOKS_DIR = SOURCE_ROOT / "notebooks"


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (workbooks, the store, exports). Here rather than in the store
    module so the Sphinx extension can hash downloads without importing pandas and pandera."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary sibling and rename, so a reader never sees half a file (a toc, a cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
