"""MHLW's per-municipality results workbook (評価結果（市町村分）): the layout, as one contract.

The synthetic writer (:mod:`kofukin.synthetic.workbook`) writes this layout and the importer
(:mod:`kofukin.ingest`) reads it, so both sides share the labels defined here. What is known of the real file is
in ``data/reference/mhlw_workbook_layout.md``; what we had to choose ourselves is marked *[ours]* below.

Sheet: the first sheet. Rows are 1-based as in Excel.

* Row 1 — title, e.g. ``令和7年度 保険者機能強化推進交付金・介護保険保険者努力支援交付金 評価結果（市町村分）``.
  The year is read from it (``令和N年度``, full- or half-width digits); a synthetic file adds ``【合成データ】``.
* Rows 2–8 — the label path of every score column: 交付金, 目標, 指標群, 指標番号, 指標名, 枝番, 枝番2.
  Labels are merged across the columns they cover; the reader forward-fills them hierarchically (rows 2–4 to
  the right; rows 5–6 across an indicator's branches; row 7 across ①..④ of one branch), so a workbook whose
  merged cells were unmerged — value left only in the first cell, or repeated in every cell — reads the same.
* Rows 9–17 — national statistics per column: :data:`STAT_ROWS`, labelled in the last leading column.
* Row 18 *[ours]* — empty. The attribute columns' labels are in row 2, merged down to row 8.
* Data from row 19: one row per scored municipality, plus rows for 広域連合 insurers with empty scores.
* Leading attribute columns: :data:`LEADING_COLUMNS` (R6 has 12, R7/R8 14 — 規模区分 appears from R7). Only the
  ones marked known in the layout notes are certain; the others' positions are ours. The reader finds every
  attribute by its label, never by position.
* Score columns: the catalogue's items and the file's 23 subtotal columns, in the catalogue's ``source_column``
  order (the real column order); subtotal columns carry their label (``Ⅰ（ⅰ） 計`` …) in row 6 and nothing in
  rows 5, 7, 8. After 総合計 comes 今年度順位.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HEADER_ROWS = 18
FIRST_DATA_ROW = 19
ROW_TITLE = 1
ROW_GRANT = 2
ROW_GOAL = 3
ROW_GROUP = 4
ROW_INDICATOR_NO = 5
ROW_INDICATOR_NAME = 6
ROW_BRANCH = 7
ROW_SUB_BRANCH = 8
STAT_ROWS: tuple[str, ...] = (
    "配点",
    "全国合計",
    "平均点",
    "項目平均",
    "平均得点率",
    "中央値",
    "標準偏差",
    "該当市町村数",
    "該当率",
)
FIRST_STAT_ROW = 9

SHEET_NAME = "全国集計（市町村）"
SYNTHETIC_MARK = "合成データ"

GRANT_LABEL = {"suishin": "保険者機能強化推進交付金", "shien": "介護保険保険者努力支援交付金"}
GRAND_TOTAL_GRANT_LABEL = "推進・支援合計"
ROMAN = {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ"}
SMALL_ROMAN = {"taisei": "ⅰ", "katsudo": "ⅱ"}


@dataclass(frozen=True)
class Attribute:
    """A leading (or trailing) attribute column: our key, the label written, and labels accepted on reading."""

    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = True

    def matches(self, text: str) -> bool:
        t = compact(text)
        return any(t == compact(a) for a in (self.label, *self.aliases))


ATTRIBUTES: dict[str, Attribute] = {
    a.key: a
    for a in (
        Attribute("serial_no", "通し番号", ("No", "No.", "番号")),
        Attribute("pref_code", "都道府県番号", ("都道府県コード",), required=False),
        Attribute("insurer_kind", "保険者区分", (), required=False),
        Attribute("insurer_no", "保険者番号", ("保険者コード",)),
        Attribute("insurer_name", "保険者名", (), required=False),
        Attribute("name", "市町村名", ("市区町村名", "自治体名")),
        Attribute("pref_name", "都道府県名", ("都道府県",)),
        Attribute("union_name", "所属広域連合", ("広域連合名",), required=False),
        Attribute("population", "人口", ("総人口", "人口（住民基本台帳）")),
        Attribute("n_insured_1go", "第1号被保険者数", ("第１号被保険者数", "1号被保険者数")),
        Attribute("size_class", "規模区分", (), required=False),
        Attribute("kaso", "過疎地域", ("過疎",)),
        Attribute("prev_total", "前年度得点", ("前年度総合計", "前年度合計点"), required=False),
        Attribute("prev_rank", "前年度順位", (), required=False),
        Attribute("rank", "今年度順位", ("順位", "全国順位"), required=False),
    )
}

# Leading columns as written by the synthetic writer, per year (the reader does not depend on the order).
LEADING_COLUMNS: dict[str, tuple[str, ...]] = {
    "R6": (
        "serial_no",
        "pref_code",
        "insurer_kind",
        "insurer_no",
        "insurer_name",
        "pref_name",
        "name",
        "population",
        "n_insured_1go",
        "kaso",
        "prev_total",
        "prev_rank",
    ),
    "R7": (
        "serial_no",
        "pref_code",
        "insurer_kind",
        "insurer_no",
        "insurer_name",
        "name",
        "pref_name",
        "union_name",
        "population",
        "n_insured_1go",
        "size_class",
        "kaso",
        "prev_total",
        "prev_rank",
    ),
}
LEADING_COLUMNS["R8"] = LEADING_COLUMNS["R7"]
TRAILING_COLUMNS: tuple[str, ...] = ("rank",)

INSURER_KIND_SINGLE = "単独"
INSURER_KIND_UNION = "広域連合"
KASO_YES = "○"  # 過疎地域 (including 一部過疎); blank otherwise
KASO_PARTIAL = "一部"

# 規模区分 is by 第1号被保険者数 (not total population): the published R8 class counts 451/535/608/83/64 and the
# profiled towns (富良野市: population 19,624, 第1号 6,936, class 2) only fit the elderly count.
SIZE_CLASS_BOUNDS: tuple[int, ...] = (3_000, 10_000, 50_000, 100_000)
SIZE_CLASS_JA = {
    1: "3千人未満",
    2: "3千人以上1万人未満",
    3: "1万人以上5万人未満",
    4: "5万人以上10万人未満",
    5: "10万人以上",
}


def size_class_of(n_insured_1go: int) -> int:
    """規模区分 1–5 from 第1号被保険者数 (used when a workbook has no 規模区分 column, e.g. R6)."""
    return 1 + sum(n_insured_1go >= b for b in SIZE_CLASS_BOUNDS)


def title(fiscal_year: str, synthetic: bool) -> str:
    n = int(fiscal_year[1:])
    mark = f"【{SYNTHETIC_MARK}】" if synthetic else ""
    return f"令和{n}年度 保険者機能強化推進交付金・介護保険保険者努力支援交付金 評価結果（市町村分）{mark}"


def goal_label(goal: str, goal_ja: str) -> str:
    return f"目標{ROMAN[goal]} {goal_ja}"


def group_label(fiscal_year: str, grant: str, goal: str, group: str) -> str:
    """The 指標群 label as MHLW writes it that year (R6 prefixes 目標Xｰ; 支援Ⅱ's activity group is bare in R7/R8)."""
    if group == "outcome":
        return "目標Ⅳｰ成果指標群" if (fiscal_year == "R6" and grant == "suishin") else "成果指標群"
    body = "体制・取組指標群" if group == "taisei" else "活動指標群"
    if fiscal_year == "R6":
        return f"目標{ROMAN[goal]}ｰ（{SMALL_ROMAN[group]}）{body}"
    if grant == "shien" and goal == "II" and group == "katsudo":
        return body
    return f"（{SMALL_ROMAN[group]}）{body}"


def compact(text: object) -> str:
    """NFKC, no whitespace: labels compare equal across full/half width and stray spaces."""
    if text is None:
        return ""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)))


_YEAR_RE = re.compile(r"令和\s*(元|\d+)\s*年度")


def year_from_title(text: str) -> str | None:
    """``R7`` from ``令和７年度 …`` (full-width digits allowed); None if there is no 令和N年度."""
    m = _YEAR_RE.search(unicodedata.normalize("NFKC", text or ""))
    if not m:
        return None
    n = 1 if m.group(1) == "元" else int(m.group(1))
    return f"R{n}"


def parse_group(text: str) -> str | None:
    """taisei / katsudo / outcome from any year's 指標群 label."""
    t = compact(text)
    if "体制" in t:
        return "taisei"
    if "活動" in t:
        return "katsudo"
    if "成果" in t or "アウトカム" in t:
        return "outcome"
    return None


_ROMAN_ASCII = {"I": "I", "II": "II", "III": "III", "IV": "IV"}


def parse_goal(text: str) -> str | None:
    """I..IV from ``目標Ⅲ …`` (NFKC turns Ⅲ into III)."""
    m = re.search(r"目標\s*(IV|III|II|I)", unicodedata.normalize("NFKC", text or ""))
    return _ROMAN_ASCII[m.group(1)] if m else None


def parse_grant(text: str) -> str | None:
    t = compact(text)
    if "推進・支援" in t or t in ("合計", "総合計"):
        return "both"
    if "推進" in t:
        return "suishin"
    if "支援" in t:
        return "shien"
    return None


# Subtotal labels in the file ("Ⅰ（ⅰ） 計", "Ⅰ 合計", "推進合計", "推進・支援合計") -> target-key parts.
_SUBTOTAL_RE = re.compile(r"^(IV|III|II|I)(?:\((i|ii)\))?(計|合計)$")


def subtotal_label(grant: str, goal: str | None, level: str) -> str:
    """The label written in row 6 of a subtotal column."""
    if level == "grand_total":
        return "推進・支援合計"
    if level == "grant_total":
        return "推進合計" if grant == "suishin" else "支援合計"
    assert goal is not None
    if level == "goal_total":
        return f"{ROMAN[goal]} 合計"
    return f"{ROMAN[goal]}（{SMALL_ROMAN[level]}） 計"


def parse_subtotal(label: str, grant: str | None) -> str | None:
    """Target key (``suishin_I_taisei``, ``shien_total``, ``grand_total`` …) of a subtotal label, else None."""
    t = compact(label)
    if t in ("推進・支援合計", "総合計", "合計点"):
        return "grand_total"
    if t == "推進合計":
        return "suishin_total"
    if t == "支援合計":
        return "shien_total"
    m = _SUBTOTAL_RE.match(t)
    if not m or grant not in ("suishin", "shien"):
        return None
    goal, small, kind = m.groups()
    if small is None:
        return f"{grant}_{goal}" if kind == "合計" else None
    return f"{grant}_{goal}_{'taisei' if small == 'i' else 'katsudo'}"


# --- The outcome-value workbook [ours] --------------------------------------------------------------------
# MHLW publishes the underlying outcome values separately (04_（アウトカム）市町村評価指標Ⅳ.xlsx); its layout is not
# known here, so we define a simple one: row 1 title (令和N年度 … アウトカム指標値), row 2 column labels, data from
# row 3, one row per municipality. Values are oriented so that higher is better (improvement / extension).
OUTCOME_TITLE = "アウトカム指標値（目標Ⅳ）"
OUTCOME_ID_COLUMNS: tuple[str, ...] = ("insurer_no", "pref_name", "name")
OUTCOME_VALUE_COLUMNS: dict[str, tuple[int, str]] = {
    # column label -> (indicator_no, branch); branch "" for indicators with one measure
    "1ア": (1, "ア"),
    "1イ": (1, "イ"),
    "2": (2, ""),
    "3ア": (3, "ア"),
    "3イ": (3, "イ"),
    "4": (4, ""),
    "5ア": (5, "ア"),
    "5イ": (5, "イ"),
}
OUTCOME_INDICATOR_JA = {
    1: "短期的な要介護度の変化（要介護１・２）",
    2: "長期的な要介護度の変化（要介護１・２）",
    3: "短期的な要介護度の変化（要介護３～５）",
    4: "長期的な要介護度の変化（要介護３～５）",
    5: "健康寿命延伸の状況",
}
# Rank bands of goal Ⅳ and of the activity indicators: ① top 70 %, ② top 50 %, ③ top 30 %, ④ top 10 %.
RANK_BANDS: tuple[float, ...] = (0.7, 0.5, 0.3, 0.1)
RANK_BAND_JA = ("上位7割", "上位5割", "上位3割", "上位1割")
