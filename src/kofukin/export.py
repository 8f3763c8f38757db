"""Export the analysis tables as CSV files analysts can reuse (the one I/O edge of the analysis layer).

Files written to ``out_dir`` (default ``data/exports``; see :func:`export_tables`):

=============================  ==========================================================================
national_summary               per year and column of the 26: 配点, 平均点, 平均得点率, 中央値, 前年度平均
prefecture_summary             per year, prefecture, area (都道府県 / 区部・市部・町村部 / 規模区分 / 過疎) and
                               column: mean, rate, national rate, difference and the ±10-point flag
municipality_profiles          per municipality and year: ids, attributes, the 26 columns, and national /
                               prefecture / 同条件 ranks of both grant totals and the grand total with N
gains_losses                   per municipality and pair of consecutive years: the items gained or lost
                               (and kept with other points) through the crosswalk, and the not-comparable
                               items with points — items at 0 in both years are left out
gains_losses_by_goal           per municipality, pair of years, grant and goal: the net effect
within_reach                   per municipality (latest year): items at 0 that ≥ 30 % of the 同条件 group
                               scores, with the points they would add under the rules
peers                          per municipality (latest year): the 10 nearest on standardised covariates
regression_coefficients        only if a table is passed (the regressions are another module's)
=============================  ==========================================================================

Each file comes twice: ``<name>.csv`` — UTF-8 without BOM, LF, for R / pandas / Python — and
``<name>_excel.csv`` — UTF-8 with BOM, CRLF, codes written as ``="011002"`` so that Excel opens it with the
Japanese text and the leading zeros intact. Headers are Japanese; ``columns.csv`` maps every header of every
file to its stable English key (our choice over a second header row, which would break ``read_csv``), and
``README.txt`` says what the files are and whether the data are synthetic.

The directory is built in a temporary sibling and swapped in by renames (:func:`kofukin.store.swap_directory`),
so a reader never sees half an export. The directory belongs to the export: a non-empty directory without
our ``export_manifest.json`` is refused rather than replaced.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kofukin import __version__
from kofukin.gains import gains_losses_table, goal_effects
from kofukin.peers import nearest_peers_table
from kofukin.profile import profiles_table
from kofukin.reach import within_reach_table
from kofukin.reference import load_catalogue, load_crosswalk
from kofukin.scoring import TARGET_KEYS, TARGET_LABEL_JA
from kofukin.store import Store, staging_dir, swap_directory
from kofukin.summary import RANK_KEYS, area_cells, national_summary

if TYPE_CHECKING:
    from kofukin.derived import DerivedTables

MANIFEST = "export_manifest.json"
CODE_COLUMNS = ("lg_code6", "pref_code", "of_lg_code6")
FLOAT_DECIMALS = 6

_RANK_HEADERS = {
    f"rank_{scope}_{k}": f"{TARGET_LABEL_JA[k]} {ja}"
    for k in RANK_KEYS
    for scope, ja in (("national", "全国順位"), ("pref", "県内順位"), ("peer", "同条件順位"))
}

#: Every exported column, per file, in order: (English key, Japanese header).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "national_summary": [
        ("fiscal_year", "年度"),
        ("synthetic", "合成データ"),
        ("key", "指標キー"),
        ("label_ja", "区分"),
        ("grant", "交付金"),
        ("goal", "目標"),
        ("level", "集計区分"),
        ("max_points", "配点"),
        ("n", "市町村数"),
        ("mean", "平均点"),
        ("rate", "平均得点率"),
        ("median", "中央値"),
        ("prev_year", "前年度"),
        ("prev_mean", "前年度平均"),
        ("prev_rate", "前年度平均得点率"),
    ],
    "prefecture_summary": [
        ("fiscal_year", "年度"),
        ("pref_code", "都道府県コード"),
        ("pref_name", "都道府県名"),
        ("area_type", "区域の種類"),
        ("area", "区域"),
        ("n", "市町村数"),
        ("key", "指標キー"),
        ("label_ja", "区分"),
        ("max_points", "配点"),
        ("mean", "平均点"),
        ("rate", "平均得点率"),
        ("national_mean", "全国平均点"),
        ("national_rate", "全国平均得点率"),
        ("diff_pt", "全国との差（ポイント）"),
        ("flag", "判定（±10ポイント）"),
        ("group_national_rate", "全国同区分の得点率"),
        ("group_diff_pt", "全国同区分との差（ポイント）"),
    ],
    "municipality_profiles": [
        ("fiscal_year", "年度"),
        ("synthetic", "合成データ"),
        ("lg_code6", "市町村コード"),
        ("pref_code", "都道府県コード"),
        ("pref_name", "都道府県名"),
        ("name", "市町村名"),
        ("kind", "市区町村種別"),
        ("population", "人口"),
        ("n_insured_1go", "第1号被保険者数"),
        ("size_class", "規模区分"),
        ("kaso", "過疎地域"),
        ("union_name", "所属広域連合"),
        *[(k, TARGET_LABEL_JA[k]) for k in TARGET_KEYS],
        *_RANK_HEADERS.items(),
        ("n_national", "全国団体数"),
        ("n_pref", "県内団体数"),
        ("n_peer", "同条件団体数"),
    ],
    "gains_losses": [
        ("from_year", "比較元年度"),
        ("to_year", "比較先年度"),
        ("lg_code6", "市町村コード"),
        ("name", "市町村名"),
        ("pref_name", "都道府県名"),
        ("comparable", "比較可能"),
        ("status", "区分キー"),
        ("status_ja", "区分"),
        ("relation", "対応関係キー"),
        ("relation_ja", "対応関係"),
        ("grant", "交付金"),
        ("goal", "目標"),
        ("group", "指標群"),
        ("indicator_no", "指標番号"),
        ("from_item_id", "比較元項目ID"),
        ("to_item_id", "比較先項目ID"),
        ("points_from", "比較元得点"),
        ("points_to", "比較先得点"),
        ("change", "増減"),
        ("item_label", "項目"),
    ],
    "gains_losses_by_goal": [
        ("from_year", "比較元年度"),
        ("to_year", "比較先年度"),
        ("lg_code6", "市町村コード"),
        ("name", "市町村名"),
        ("pref_name", "都道府県名"),
        ("grant", "交付金"),
        ("goal", "目標"),
        ("label_ja", "区分"),
        ("kept_change", "維持項目の増減"),
        ("gained_points", "獲得"),
        ("lost_points", "喪失"),
        ("not_comparable_net", "比較不能項目の増減"),
        ("items_net", "項目増減計"),
        ("actual_change", "目標得点の増減"),
        ("rule_effect", "採点ルールによる差"),
    ],
    "within_reach": [
        ("fiscal_year", "年度"),
        ("lg_code6", "市町村コード"),
        ("name", "市町村名"),
        ("pref_name", "都道府県名"),
        ("item_id", "項目ID"),
        ("grant", "交付金"),
        ("goal", "目標"),
        ("group", "指標群"),
        ("indicator_no", "指標番号"),
        ("indicator_name_ja", "指標名"),
        ("branch", "枝番"),
        ("sub_branch", "枝番2"),
        ("band", "順位帯・段階（1=上位7割…4=上位1割）"),
        ("band_basis", "帯の種類（rank=全国順位帯, level=段階）"),
        ("max_points", "項目配点"),
        ("points", "得点"),
        ("peer_share", "同条件団体の該当率"),
        ("n_peers", "同条件団体数（本市町村を除く）"),
        ("national_share", "全国の該当率"),
        ("raw_gain", "項目の加点"),
        ("recoverable", "加点見込（ルール適用後）"),
        ("scoring_rule", "採点ルール"),
        ("item_label", "項目"),
    ],
    "peers": [
        ("fiscal_year", "年度"),
        ("of_lg_code6", "対象市町村コード"),
        ("peer_rank", "近さの順位"),
        ("lg_code6", "類似市町村コード"),
        ("name", "類似市町村名"),
        ("pref_code", "都道府県コード"),
        ("pref_name", "都道府県名"),
        ("distance", "距離（標準化した共変量のユークリッド距離）"),
        ("population", "人口"),
        ("n_insured_1go", "第1号被保険者数"),
        ("share_1go", "第1号被保険者割合"),
        ("size_class", "規模区分"),
        ("kaso", "過疎地域"),
        ("same_official_group", "同条件（規模区分・過疎）"),
        ("grand_total", "総合計"),
    ],
}

#: Headers for regression tables (columns not listed keep their name).
REGRESSION_HEADERS_JA = {
    "model": "モデル",
    "outcome": "目的変数",
    "term": "説明変数",
    "estimate": "係数",
    "coef": "係数",
    "std_error": "標準誤差",
    "se": "標準誤差",
    "statistic": "検定統計量",
    "p_value": "p値",
    "conf_low": "95%信頼区間下限",
    "conf_high": "95%信頼区間上限",
    "n": "観測数",
    "fiscal_year": "年度",
}


@dataclass(frozen=True)
class ExportResult:
    """What was written: rows per file, and the files skipped with the reason."""

    out_dir: Path
    rows: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)


def _gains_tables(
    store: Store,
    catalogue: pd.DataFrame,
    crosswalk: pd.DataFrame,
    pairs: list[tuple[str, str]],
    derived: DerivedTables | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = store.municipalities[["lg_code6", "name", "pref_name"]]
    long_parts, goal_parts = [], []
    for a, b in pairs:
        persisted = derived.get(f"gains-{a}-{b}") if derived is not None else None
        if persisted is not None:  # what the reports read (kofukin.derived): ~2.5 s a pair not recomputed
            items, nc, goals = persisted
        else:
            items, nc = gains_losses_table(store.item_points, catalogue, crosswalk, a, b)
            goals = goal_effects(items, nc, store.item_points, catalogue, a, b, subtotals=store.subtotals)
        changed = items[(items["status"].isin(["gained", "lost"])) | (items["change"] != 0)].assign(
            comparable=True
        )
        nc = nc[nc["points"] > 0].assign(
            comparable=False,
            status="not_comparable",
            status_ja="比較不能",
            from_year=a,
            to_year=b,
            from_item_id=lambda d: d["item_id"].where(d["side"] == "from", ""),
            to_item_id=lambda d: d["item_id"].where(d["side"] == "to", ""),
            points_from=lambda d: d["points"].where(d["side"] == "from"),
            points_to=lambda d: d["points"].where(d["side"] == "to"),
            change=lambda d: d["signed_points"],
        )
        long_parts += [changed, nc]
        goal_parts.append(goals)
    cols = [k for k, _ in COLUMNS["gains_losses"]]
    long = pd.concat(long_parts, ignore_index=True).merge(names, on="lg_code6", how="left")
    for c in ("points_from", "points_to", "change"):
        long[c] = long[c].astype("Int64")
    long = long.sort_values(
        ["from_year", "lg_code6", "comparable", "to_item_id", "from_item_id"],
        ascending=[True, True, False, True, True],
        kind="stable",
    )
    goals = pd.concat(goal_parts, ignore_index=True).merge(names, on="lg_code6", how="left")
    return long[cols].reset_index(drop=True), goals[[k for k, _ in COLUMNS["gains_losses_by_goal"]]]


def build_tables(
    store: Store,
    year: str | None = None,
    catalogue: pd.DataFrame | None = None,
    crosswalk: pd.DataFrame | None = None,
    regression: pd.DataFrame | None = None,
    k_peers: int = 10,
    threshold: float = 0.30,
    derived: DerivedTables | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The export tables with English keys (no I/O): ``({name: table}, {skipped name: reason})``.

    ``year`` None exports every year of the store (within_reach and peers: the latest); a year limits the
    yearly tables to it and gains to the pair of years ending at it. ``derived``: the store's current derived
    tables (:func:`kofukin.derived.open_derived`), read instead of recomputed where they hold the same table.
    """
    years = store.years
    if not years:
        raise ValueError("the store has no scored year")
    if year is not None and year not in years:
        raise ValueError(f"the store has no {year}; years: {', '.join(years)}")
    sel_years = years if year is None else [year]
    latest = sel_years[-1]
    synthetic = set(store.synthetic_years)
    panel = store.panel()
    names = store.municipalities[["lg_code6", "name", "pref_name"]]
    tables: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}

    nat = []
    for y in sel_years:
        s = national_summary(panel, y)
        nat.append(s.columns.assign(fiscal_year=y, synthetic=y in synthetic))
    tables["national_summary"] = pd.concat(nat, ignore_index=True)
    tables["prefecture_summary"] = pd.concat([area_cells(panel, y) for y in sel_years], ignore_index=True)
    prof = profiles_table(panel, sel_years)
    prof["synthetic"] = prof["fiscal_year"].isin(synthetic)
    tables["municipality_profiles"] = prof

    pairs = [(a, b) for a, b in itertools.pairwise(years) if b in sel_years]
    if not pairs:
        skipped["gains_losses"] = skipped["gains_losses_by_goal"] = "比較する前年度がありません"
    elif crosswalk is None:
        skipped["gains_losses"] = skipped["gains_losses_by_goal"] = (
            "項目対応表（item_crosswalk.csv）がありません"
        )
    elif store.item_points.empty:
        skipped["gains_losses"] = skipped["gains_losses_by_goal"] = "項目別得点がありません"
    else:
        tables["gains_losses"], tables["gains_losses_by_goal"] = _gains_tables(
            store, catalogue, crosswalk, pairs, derived
        )

    if store.item_points.empty or not (store.item_points["fiscal_year"] == latest).any():
        skipped["within_reach"] = "項目別得点がありません"
    else:
        reach = derived.get(f"reach-{latest}") if derived is not None else None
        if reach is not None and reach.threshold == threshold:
            wr = reach.items.assign(fiscal_year=latest)
        else:
            wr = within_reach_table(panel, store.item_points, catalogue, latest, threshold)
        tables["within_reach"] = wr.merge(names, on="lg_code6", how="left")
    tables["peers"] = nearest_peers_table(panel, latest, k_peers)
    if regression is not None:
        tables["regression_coefficients"] = regression.copy()
    return tables, skipped


def _headers(name: str, df: pd.DataFrame) -> list[tuple[str, str]]:
    if name in COLUMNS:
        return [(k, ja) for k, ja in COLUMNS[name] if k in df.columns]
    return [(c, REGRESSION_HEADERS_JA.get(c, c)) for c in df.columns]


def _prepare(df: pd.DataFrame, headers: list[tuple[str, str]]) -> pd.DataFrame:
    out = df[[k for k, _ in headers]].copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(FLOAT_DECIMALS)
        elif pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map({True: "true", False: "false"})
    return out.rename(columns=dict(headers))


def _write_csv(df: pd.DataFrame, plain: Path, excel: Path, code_headers: list[str]) -> None:
    df.to_csv(plain, index=False, encoding="utf-8", lineterminator="\n")
    x = df.copy()
    for c in code_headers:
        x[c] = x[c].map(lambda v: f'="{v}"' if isinstance(v, str) and v else v)
    x.to_csv(excel, index=False, encoding="utf-8-sig", lineterminator="\r\n")


def _readme(rows: dict[str, int], skipped: dict[str, str], synthetic: list[str], years: list[str]) -> str:
    lines = [
        "kofukin エクスポート（保険者機能強化推進交付金・介護保険保険者努力支援交付金 評価結果の分析表）",
        "",
        f"対象年度: {'・'.join(years)}",
    ]
    if synthetic:
        lines.append(f"注意: {'・'.join(synthetic)} は合成データ（実際の評価結果ではありません）です。")
    lines += [
        "",
        "各表は2種類あります。",
        "  <表名>.csv        UTF-8（BOMなし）・LF。R / Python / pandas 向け。コードは先頭の0を含む文字列です。",
        '  <表名>_excel.csv  UTF-8（BOMつき）・CRLF。Excel でそのまま開けます。コード列は ="011002" の形で',
        "                    書いてあり、先頭の0が消えません（数式として表示されます）。",
        "見出しは日本語です。columns.csv に、各表の見出しと英語のキー（変わらない列名）の対応があります。",
        "",
        "表:",
    ]
    lines += [f"  {name}.csv  {n}行" for name, n in rows.items()]
    for name, why in skipped.items():
        lines.append(f"  {name}.csv  （出力なし: {why}）")
    lines += [
        "",
        "gains_losses は得点が変わった項目（獲得・喪失・得点変化）と、得点のある比較不能項目だけを含みます。",
        "within_reach の加点見込は、択一・上限・順位帯の累積を適用した後の指標得点の増分です。",
        "順位はすべて競争順位（1, 2, 2, 4）です。",
    ]
    return "\n".join(lines) + "\n"


def write_tables(
    tables: dict[str, pd.DataFrame],
    out_dir: Path,
    skipped: dict[str, str] | None = None,
    synthetic_years: list[str] | None = None,
    years: list[str] | None = None,
    source_manifest: dict | None = None,
) -> ExportResult:
    """Write the tables (two CSV variants each), columns.csv, README.txt and the manifest; atomically."""
    skipped = dict(skipped or {})
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise ValueError(f"{out_dir} is not empty and was not written by the export; refusing to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(out_dir)
    try:
        rows: dict[str, int] = {}
        mapping = []
        files = {}
        for name, df in tables.items():
            headers = _headers(name, df)
            out = _prepare(df, headers)
            codes = [ja for k, ja in headers if k in CODE_COLUMNS]
            _write_csv(out, tmp / f"{name}.csv", tmp / f"{name}_excel.csv", codes)
            rows[name] = len(out)
            mapping += [{"file": f"{name}.csv", "column": ja, "key": k} for k, ja in headers]
            for f in (f"{name}.csv", f"{name}_excel.csv"):
                files[f] = hashlib.sha256((tmp / f).read_bytes()).hexdigest()
        cols = pd.DataFrame(mapping, columns=["file", "column", "key"])
        _write_csv(
            cols.rename(columns={"file": "ファイル", "column": "見出し", "key": "キー"}),
            tmp / "columns.csv",
            tmp / "columns_excel.csv",
            [],
        )
        (tmp / "README.txt").write_text(
            _readme(rows, skipped, synthetic_years or [], years or []), encoding="utf-8"
        )
        manifest = {
            "package_version": __version__,
            "years": years or [],
            "synthetic_years": synthetic_years or [],
            "rows": rows,
            "skipped": skipped,
            "sha256": files,
            "store_sources": (source_manifest or {}).get("sources", []),
        }
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True), "utf-8"
        )
        swap_directory(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out_dir=out_dir, rows=rows, skipped=skipped)


def export_tables(
    store: Store,
    out_dir: Path,
    year: str | None = None,
    regression: pd.DataFrame | None = None,
    catalogue: pd.DataFrame | None = None,
    crosswalk: pd.DataFrame | None = None,
    k_peers: int = 10,
    threshold: float = 0.30,
    derived: DerivedTables | None = None,
) -> ExportResult:
    """Build every export table from the store and write them to ``out_dir`` (see the module docstring).

    Parameters
    ----------
    store
        The processed store (:func:`kofukin.store.load_store`).
    out_dir
        Target directory, replaced as a whole (``data/exports`` for ``kofukin export``).
    year
        None for every year; else that year only (gains: the pair ending at it).
    regression
        Optional coefficient table from the regression module, written as regression_coefficients.csv.
    catalogue, crosswalk
        Default: the reference files. A missing crosswalk file skips the gains tables (noted in README.txt).
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    if crosswalk is None:
        try:
            crosswalk = load_crosswalk()
        except FileNotFoundError:
            crosswalk = None
    tables, skipped = build_tables(store, year, catalogue, crosswalk, regression, k_peers, threshold, derived)
    years = store.years if year is None else [year]
    synthetic = [y for y in store.synthetic_years if y in years]
    return write_tables(tables, out_dir, skipped, synthetic, years, store.manifest)


__all__ = [
    "COLUMNS",
    "ExportResult",
    "build_tables",
    "export_tables",
    "write_tables",
]
