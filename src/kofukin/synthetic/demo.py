"""``kofukin demo-data``: write the synthetic panel as files in MHLW's layout (under data/raw/demo/).

Files (every name says 合成データ):

* ``R6_評価結果（市町村分）_合成データ.xlsx`` … ``R8_…`` — the results workbook (:mod:`kofukin.layout`): 1,741
  municipality rows and 38 empty 広域連合 rows, prefecture by prefecture, 通し番号 the same every year;
* ``R6_アウトカム指標値_合成データ.xlsx`` … ``R8_…`` — the goal Ⅳ values, one row per municipality (members of a
  広域連合 carry their union's value);
* ``広域連合構成市町村_合成データ.csv`` — union memberships;
* ``planted_truth_合成データ.json`` — the planted relationship and everything drawn for this seed.

Everything is written to a temporary sibling directory first and swapped in by rename, so an interrupted
run leaves the previous files in place; the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from kofukin import layout
from kofukin.reference import load_catalogue, load_master, load_prefectures
from kofukin.scoring import FILE_SUBTOTAL_KEYS
from kofukin.store import staging_dir, swap_directory
from kofukin.synthetic import truth
from kofukin.synthetic.calibration import CalibrationReport, calibration_report
from kofukin.synthetic.items import YEARS
from kofukin.synthetic.panel import DEFAULT_SEED, SyntheticPanel, generate_panel, serial_numbers
from kofukin.synthetic.unions import UNION_COLUMNS
from kofukin.synthetic.workbook import write_outcome_workbook, write_results_workbook

MARK = layout.SYNTHETIC_MARK
UNIONS_FILE = f"広域連合構成市町村_{MARK}.csv"
TRUTH_FILE = f"planted_truth_{MARK}.json"


def results_file(year: str) -> str:
    return f"{year}_評価結果（市町村分）_{MARK}.xlsx"


def outcome_file(year: str) -> str:
    return f"{year}_アウトカム指標値_{MARK}.xlsx"


def demo_files() -> list[str]:
    """Every file ``write_demo_data`` writes, in a fixed order."""
    return [*(results_file(y) for y in YEARS), *(outcome_file(y) for y in YEARS), UNIONS_FILE, TRUTH_FILE]


def write_demo_data(
    out_dir: Path, seed: int = DEFAULT_SEED, *, panel: SyntheticPanel | None = None
) -> CalibrationReport:
    """Generate (or take) the panel for ``seed``, write its files atomically, return the calibration table."""
    panel = panel if panel is not None else generate_panel(seed)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(out_dir)
    try:
        for year in YEARS:
            write_results_workbook(tmp / results_file(year), year, results_rows(panel, year), synthetic=True)
            write_outcome_workbook(tmp / outcome_file(year), year, outcome_rows(panel, year), synthetic=True)
        panel.unions[UNION_COLUMNS].to_csv(tmp / UNIONS_FILE, index=False, lineterminator="\n")
        (tmp / TRUTH_FILE).write_text(json.dumps(panel.truth, ensure_ascii=False, indent=2) + "\n", "utf-8")
        swap_directory(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return calibration_report(panel)


def results_rows(panel: SyntheticPanel, year: str) -> pd.DataFrame:
    """The rows of one year's results workbook in file order: municipalities and empty union rows."""
    attrs = panel.attributes[panel.attributes["fiscal_year"] == year].set_index("lg_code6")
    scores = _score_table(panel, year).reindex(attrs.index)
    muni = pd.concat([attrs, scores], axis=1).reset_index()
    rows = pd.concat([muni, _union_rows(panel)], ignore_index=True)
    return rows.sort_values("serial_no", kind="stable").reset_index(drop=True)


def _score_table(panel: SyntheticPanel, year: str) -> pd.DataFrame:
    """Items (columns = item_id) and the 23 file subtotals, one row per municipality."""
    items = panel.item_points[panel.item_points["fiscal_year"] == year]
    order = load_catalogue().query("fiscal_year == @year").sort_values("source_column")["item_id"].tolist()
    codes = items["lg_code6"].to_numpy()[:: len(order)]
    # item_points is stored municipality by municipality in catalogue order, so a reshape is the pivot
    assert (items["item_id"].to_numpy()[: len(order)] == np.array(order, dtype=object)).all()
    wide = pd.DataFrame(
        items["points"].to_numpy().reshape(len(codes), len(order)), index=codes, columns=order
    )
    subs = panel.subtotals[panel.subtotals["fiscal_year"] == year].set_index("lg_code6")[
        list(FILE_SUBTOTAL_KEYS)
    ]
    return pd.concat([wide, subs.reindex(codes)], axis=1)


def _union_rows(panel: SyntheticPanel) -> pd.DataFrame:
    """One row per 広域連合 insurer: identity only (the file gives it no scores)."""
    numbers = serial_numbers(load_master(), panel.unions)
    pref_names = load_prefectures().set_index("pref_code")["pref_name"]
    u = panel.unions.drop_duplicates("union_insurer_no")
    return pd.DataFrame(
        {
            "serial_no": u["union_insurer_no"].map(numbers).astype("int64").to_numpy(),
            "pref_code": u["pref_code"].to_numpy(),
            "insurer_kind": layout.INSURER_KIND_UNION,
            "insurer_no": u["union_insurer_no"].to_numpy(),
            "insurer_name": u["union_name"].to_numpy(),
            "name": u["union_name"].to_numpy(),
            "pref_name": u["pref_code"].map(pref_names).to_numpy(),
        }
    )


def outcome_rows(panel: SyntheticPanel, year: str) -> pd.DataFrame:
    """One row per municipality: insurer number, names and the eight measures (wide)."""
    v = panel.outcome_values[panel.outcome_values["fiscal_year"] == year]
    wide = v.pivot(index="lg_code6", columns="measure", values="value")[list(truth.MEASURES)]
    attrs = panel.attributes[panel.attributes["fiscal_year"] == year].set_index("lg_code6")
    out = attrs[["serial_no", "insurer_no", "pref_name", "name"]].join(wide)
    return out.sort_values("serial_no").reset_index(drop=True)
