"""Write a results workbook in MHLW's layout (:mod:`kofukin.layout`) from tidy tables.

Used by the synthetic generator and by tests that need a workbook with a planted defect. The writer knows
nothing about how the numbers were made: it takes attributes, item points and subtotals and lays them out
with merged header cells and national statistics rows, in the catalogue's real column order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

from kofukin import layout
from kofukin.reference import load_catalogue, load_subtotal_catalogue


@dataclass(frozen=True)
class ScoreColumn:
    """One score column: an item (``item_id``) or a subtotal (``target`` key), with its header path."""

    key: str
    is_item: bool
    max_points: int
    labels: tuple[str, ...]  # rows 2..8: grant, goal, group, indicator_no, indicator_name, branch, sub_branch


def score_columns(fiscal_year: str) -> list[ScoreColumn]:
    """The score columns of a year's workbook in the real order (the catalogue's ``source_column``)."""
    cat = load_catalogue()
    cat = cat[cat["fiscal_year"] == fiscal_year]
    subs = load_subtotal_catalogue()
    subs = subs[subs["fiscal_year"] == fiscal_year]
    cols: list[tuple[int, ScoreColumn]] = []
    for r in cat.itertuples():
        labels = (
            layout.GRANT_LABEL[r.grant],
            layout.goal_label(r.goal, r.goal_ja),
            layout.group_label(fiscal_year, r.grant, r.goal, r.group),
            str(r.indicator_no),
            r.indicator_name_ja,
            r.branch,
            r.sub_branch,
        )
        cols.append((r.source_column, ScoreColumn(r.item_id, True, int(r.max_points), labels)))
    goal_names = cat.drop_duplicates(["grant", "goal"]).set_index(["grant", "goal"])["goal_ja"].to_dict()
    for r in subs.itertuples():
        grant = r.grant if r.grant != "both" else None
        grant_label = layout.GRANT_LABEL[grant] if grant else layout.GRAND_TOTAL_GRANT_LABEL
        goal = r.goal or None
        goal_label = layout.goal_label(goal, goal_names[(grant, goal)]) if (goal and grant) else ""
        group_label = (
            layout.group_label(fiscal_year, grant, goal, r.level)
            if (grant and goal and r.level in ("taisei", "katsudo"))
            else ""
        )
        label = layout.subtotal_label(grant or "both", goal, r.level)
        labels = (grant_label, goal_label, group_label, "", label, "", "")
        cols.append((r.source_column, ScoreColumn(r.target, False, int(r.max_points), labels)))
    cols.sort(key=lambda t: t[0])
    return [c for _, c in cols]


def write_results_workbook(
    path: Path,
    fiscal_year: str,
    rows: pd.DataFrame,
    *,
    synthetic: bool,
    columns: Sequence[ScoreColumn] | None = None,
    leading: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Write one year's workbook.

    Parameters
    ----------
    rows
        One row per insurer row of the file, in file order. Attribute columns use the keys of
        :data:`kofukin.layout.ATTRIBUTES` (``kaso`` as bool, codes as strings); score columns are named by
        ``item_id`` or target key. A union row has NaN scores.
    columns, leading, title
        Override the layout (tests use this to plant a defect: a missing column, a wrong title …).
    """
    columns = list(columns if columns is not None else score_columns(fiscal_year))
    leading = list(leading if leading is not None else layout.LEADING_COLUMNS[fiscal_year])
    trailing = [c for c in layout.TRAILING_COLUMNS if c in rows.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "nan_inf_to_errors": False})
    _fix_timestamps(wb)
    try:
        ws = wb.add_worksheet(layout.SHEET_NAME)
        fmt = _formats(wb)
        ws.write_string(
            0, 0, title if title is not None else layout.title(fiscal_year, synthetic), fmt["title"]
        )
        _write_attribute_headers(ws, leading, 0, fmt)
        first_score = len(leading)
        _write_score_headers(ws, columns, first_score, fmt)
        _write_stat_rows(ws, rows, columns, first_score, fmt)
        _write_attribute_headers(ws, trailing, first_score + len(columns), fmt)
        _write_data(ws, rows, leading, columns, trailing)
        ws.freeze_panes(layout.HEADER_ROWS, first_score)
    finally:
        wb.close()


def _fix_timestamps(wb: xlsxwriter.Workbook) -> None:
    """A fixed creation date, so the same tables always give byte-identical files (reproducible builds)."""
    wb.set_properties({"created": datetime(2024, 4, 1, tzinfo=UTC), "author": "kofukin"})


def _formats(wb: xlsxwriter.Workbook) -> dict:
    return {
        "title": wb.add_format({"bold": True}),
        "head": wb.add_format({"align": "center", "valign": "vcenter", "text_wrap": True, "border": 1}),
        "stat": wb.add_format({"num_format": "0.00"}),
    }


def _write_attribute_headers(ws, keys: Sequence[str], start: int, fmt: dict) -> None:
    top, bottom = layout.ROW_GRANT - 1, layout.ROW_SUB_BRANCH - 1
    for j, key in enumerate(keys):
        ws.merge_range(top, start + j, bottom, start + j, layout.ATTRIBUTES[key].label, fmt["head"])


def _write_score_headers(ws, columns: Sequence[ScoreColumn], start: int, fmt: dict) -> None:
    """Header rows 2–8, merging runs of equal labels the way MHLW's file does (hierarchically)."""
    n_levels = 7
    for level in range(n_levels):
        row = layout.ROW_GRANT - 1 + level
        j = 0
        while j < len(columns):
            text = columns[j].labels[level]
            k = j
            # A run continues while this level and every level above it stay the same.
            while (
                k + 1 < len(columns) and columns[k + 1].labels[: level + 1] == columns[j].labels[: level + 1]
            ):
                k += 1
            if level >= 3:  # 指標番号 and below never run across a subtotal column
                k = j if not columns[j].is_item else k
            if not text:
                j = k + 1
                continue
            if k > j:
                ws.merge_range(row, start + j, row, start + k, text, fmt["head"])
            else:
                ws.write_string(row, start + j, text, fmt["head"])
            j = k + 1


def _write_stat_rows(ws, rows: pd.DataFrame, columns: Sequence[ScoreColumn], start: int, fmt: dict) -> None:
    scored = rows.reindex(columns=[c.key for c in columns]).dropna(how="all")
    label_col = start - 1
    for i, label in enumerate(layout.STAT_ROWS):
        ws.write_string(layout.FIRST_STAT_ROW - 1 + i, label_col, label)
    for j, col in enumerate(columns):
        v = scored[col.key].to_numpy(dtype=float)
        n = len(v)
        stats = (
            col.max_points,
            v.sum(),
            v.mean() if n else 0.0,
            v.mean() if n else 0.0,
            (v.mean() / col.max_points) if n else 0.0,
            float(np.median(v)) if n else 0.0,
            v.std() if n else 0.0,
            int((v > 0).sum()),
            ((v > 0).mean()) if n else 0.0,
        )
        for i, value in enumerate(stats):
            ws.write_number(layout.FIRST_STAT_ROW - 1 + i, start + j, float(value), fmt["stat"])


def _write_data(
    ws, rows: pd.DataFrame, leading: Sequence[str], columns: Sequence[ScoreColumn], trailing
) -> None:
    score_keys = [c.key for c in columns]
    scores = rows.reindex(columns=score_keys).to_numpy(dtype=float)
    for i, rec in enumerate(rows.reindex(columns=[*leading, *trailing]).itertuples(index=False)):
        r = layout.FIRST_DATA_ROW - 1 + i
        values = list(rec)
        for j, (key, value) in enumerate(zip(leading, values[: len(leading)], strict=True)):
            _write_attribute(ws, r, j, key, value)
        row_scores = scores[i]
        if not np.isnan(row_scores).all():
            ws.write_row(r, len(leading), [None if np.isnan(x) else int(x) for x in row_scores])
        for j, (key, value) in enumerate(zip(trailing, values[len(leading) :], strict=True)):
            _write_attribute(ws, r, len(leading) + len(columns) + j, key, value)


def _write_attribute(ws, r: int, c: int, key: str, value: object) -> None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return
    if key == "kaso":
        if value is True or value == 1:
            ws.write_string(r, c, layout.KASO_YES)
        elif isinstance(value, str) and value:
            ws.write_string(r, c, value)
        return
    if isinstance(value, (bool, np.bool_)):
        ws.write_number(r, c, int(value))
    elif isinstance(value, (int, np.integer, float, np.floating)):
        ws.write_number(r, c, float(value))
    else:
        ws.write_string(r, c, str(value))


def write_outcome_workbook(path: Path, fiscal_year: str, rows: pd.DataFrame, *, synthetic: bool) -> None:
    """The outcome-value workbook (our documented layout, :data:`kofukin.layout.OUTCOME_VALUE_COLUMNS`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    _fix_timestamps(wb)
    try:
        ws = wb.add_worksheet("アウトカム指標値")
        mark = f"【{layout.SYNTHETIC_MARK}】" if synthetic else ""
        ws.write_string(0, 0, f"令和{int(fiscal_year[1:])}年度 {layout.OUTCOME_TITLE}{mark}")
        labels = [layout.ATTRIBUTES[k].label for k in layout.OUTCOME_ID_COLUMNS] + list(
            layout.OUTCOME_VALUE_COLUMNS
        )
        ws.write_row(1, 0, labels)
        ids = rows[list(layout.OUTCOME_ID_COLUMNS)].astype(str).to_numpy()
        values = rows[list(layout.OUTCOME_VALUE_COLUMNS)].to_numpy(dtype=float)
        for i in range(len(rows)):
            ws.write_row(2 + i, 0, list(ids[i]))
            ws.write_row(2 + i, len(ids[i]), [float(v) for v in values[i]])
    finally:
        wb.close()
