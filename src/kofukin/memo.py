"""Memoisation of pure table functions on the *identity* of their DataFrame arguments.

A warm report kernel calls the same national-level helpers (ranks of a year, the catalogue's item bands and
labels, a crosswalk's year pairs) with the very same panel, catalogue and crosswalk objects for 1,790 reports
in a row. DataFrames are not hashable and hashing their content would cost as much as the work saved, so the
cache key is the object itself: a cached result is returned only while the argument it was computed from is
still alive (a weak reference proves it is the same object, not a new one that reuses a freed ``id``).

Safety rests on three rules, all enforced here rather than trusted to callers:

* only **frozen** tables are cache keys: :func:`freeze` marks a table its owner promises never to change in
  place (:mod:`kofukin.bookdata` freezes the store's tables and the reference it builds once per kernel). Any
  other table — a test's hand-built panel, an analyst's edited copy — is simply computed every time, so
  ``panel.loc[...] = ...`` followed by a second call can never return the old answer;
* the memoised functions are pure and never mutate their inputs (the library's style);
* callers get a **copy** of a cached DataFrame or Series, so mutating a result never corrupts the cache.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pandas as pd

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T", pd.DataFrame, pd.Series)

MAX_ENTRIES = 64
_FROZEN = "kofukin_frozen"


def freeze(table: T) -> T:
    """Mark ``table`` as never changed in place from now on, which makes it usable as a cache key.

    The mark is the object's own ``id``, so a copy or a slice (pandas propagates ``attrs``) is not frozen.
    """
    table.attrs[_FROZEN] = id(table)
    return table


def is_frozen(table: pd.DataFrame | pd.Series) -> bool:
    return table.attrs.get(_FROZEN) == id(table)


class _NotFrozen(Exception):
    """An argument table is not frozen: compute without the cache."""


def _key_part(value: Any, refs: list[weakref.ref]) -> Any:
    """Hashable stand-in for one argument: a frame by identity (with a weak reference kept), else the value."""
    if isinstance(value, pd.DataFrame | pd.Series):
        if not is_frozen(value):
            raise _NotFrozen
        refs.append(weakref.ref(value))
        return ("frame", id(value))
    if isinstance(value, list | set | frozenset | tuple):
        return (
            "seq",
            type(value).__name__,
            tuple(sorted(value) if isinstance(value, set | frozenset) else value),
        )
    return value


def _fresh(result: Any) -> Any:
    if isinstance(result, pd.DataFrame | pd.Series):
        return result.copy()
    if isinstance(result, tuple):
        return tuple(_fresh(r) for r in result)
    return result


def by_identity(func: Callable[P, R]) -> Callable[P, R]:
    """Cache ``func``'s results keyed on its arguments, DataFrames/Series by identity (see the module)."""
    cache: OrderedDict[tuple, tuple[list[weakref.ref], Any]] = OrderedDict()

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        refs: list[weakref.ref] = []
        try:
            key = (
                tuple(_key_part(a, refs) for a in args),
                tuple(sorted((k, _key_part(v, refs)) for k, v in kwargs.items())),
            )
            hash(key)
        except (TypeError, _NotFrozen):  # unhashable or not frozen: compute without caching
            return func(*args, **kwargs)
        hit = cache.get(key)
        if hit is not None and all(r() is not None for r in hit[0]):
            cache.move_to_end(key)
            return _fresh(hit[1])
        result = func(*args, **kwargs)
        cache[key] = (refs, result)
        cache.move_to_end(key)
        while len(cache) > MAX_ENTRIES:
            cache.popitem(last=False)
        return _fresh(result)

    wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
    return wrapper
