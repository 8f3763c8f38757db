"""The identity memo: a cached answer only for the very same live object, and never a shared mutable result."""

from __future__ import annotations

import gc

import pandas as pd

from kofukin.memo import by_identity, freeze

CALLS: list[int] = []


@by_identity
def column_sum(df: pd.DataFrame, column: str) -> pd.Series:
    CALLS.append(1)
    return df[[column]].sum()


def test_same_object_is_computed_once_and_copies_are_handed_out():
    CALLS.clear()
    df = freeze(pd.DataFrame({"a": [1, 2, 3]}))
    first = column_sum(df, "a")
    first["a"] = -99  # a caller mutating its result must not change the cache
    second = column_sum(df, "a")
    assert len(CALLS) == 1
    assert second["a"] == 6


def test_an_equal_but_different_object_is_recomputed():
    CALLS.clear()
    column_sum(freeze(pd.DataFrame({"a": [1, 2, 3]})), "a")
    other = freeze(pd.DataFrame({"a": [10, 20, 30]}))
    assert column_sum(other, "a")["a"] == 60
    assert len(CALLS) == 2


def test_a_freed_object_whose_id_is_reused_never_hits_the_old_entry():
    CALLS.clear()
    seen: dict[int, int] = {}
    for value in range(40):  # freed frames' ids are reused by CPython; each must get its own answer
        df = freeze(pd.DataFrame({"a": [value]}))
        seen[id(df)] = seen.get(id(df), 0) + 1
        assert column_sum(df, "a")["a"] == value
        del df
        gc.collect()
    assert len(CALLS) == 40
    assert max(seen.values()) > 1  # the test really exercised id reuse


def test_other_arguments_are_part_of_the_key():
    CALLS.clear()
    df = freeze(pd.DataFrame({"a": [1], "b": [2]}))
    assert column_sum(df, "a")["a"] == 1
    assert column_sum(df, "b")["b"] == 2
    assert len(CALLS) == 2


def test_a_table_that_is_not_frozen_is_never_cached():
    """An analyst's (or a test's) panel edited in place between two calls gets the new answer."""
    CALLS.clear()
    df = pd.DataFrame({"a": [1, 2, 3]})
    assert column_sum(df, "a")["a"] == 6
    df.loc[0, "a"] = 100
    assert column_sum(df, "a")["a"] == 105
    assert len(CALLS) == 2


def test_a_copy_of_a_frozen_table_is_not_frozen():
    CALLS.clear()
    df = freeze(pd.DataFrame({"a": [1, 2, 3]}))
    part = df[df["a"] > 1]  # pandas carries attrs over to the slice
    column_sum(part, "a")
    part.loc[part.index[0], "a"] = 50
    assert column_sum(part, "a")["a"] == 53
    assert len(CALLS) == 2
