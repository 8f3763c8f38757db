"""Run a function on a module the moment it is first imported, by whoever imports it (a one-shot import hook).

The hook stands first in ``sys.meta_path`` until the module is looked for, then removes itself and lets the
usual finders find it; it only wraps the loader they return, so that ``then(module)`` runs right after the
module's own code. The module keeps its real loader (``__loader__``, ``__spec__.loader``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Protocol


def call_after_import(name: str, then: Callable[[ModuleType], None]) -> None:
    """``then(sys.modules[name])`` once the top-level module ``name`` has been imported (not yet imported)."""
    if name in sys.modules:
        raise ValueError(f"{name} is imported already: call then() on it directly")
    sys.meta_path.insert(0, _Finder(name, then))


class _Loader(Protocol):  # importlib.abc.Loader's two methods (importing importlib.abc costs 35 ms)
    def create_module(self, spec: ModuleSpec) -> ModuleType | None: ...

    def exec_module(self, module: ModuleType) -> None: ...


class _Finder:  # a meta path finder: find_spec is all the import system calls
    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenLoader(spec.loader, self.then)
        return spec


class _ThenLoader:
    def __init__(self, loader: _Loader, then: Callable[[ModuleType], None]) -> None:
        self.loader, self.then = loader, then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then(module)
