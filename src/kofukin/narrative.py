"""Japanese sentences of the reports, generated from the analysis tables.

Each function takes the tables of :mod:`kofukin.profile`, :mod:`kofukin.gains` … and returns Markdown. Names
that come from data are escaped (:func:`md`), so a municipality called ``<script>`` is printed, not run.
"""

from __future__ import annotations

import re

import pandas as pd

_LINE_BREAKS = re.compile(r"[\r\n]+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~\"'&$:])")


def one_line(text: object) -> str:
    """Line breaks folded to one space: a name from a workbook cell can hold one, and a title, a sentence or a
    table cell must not break (or show ``\\n``) there."""
    return _LINE_BREAKS.sub(" ", str(text))


def md(text: object) -> str:
    """Data as literal Markdown/MyST text: ASCII punctuation backslash-escaped, newlines folded to a space,
    so a name like ``<script>`` or ``**`` shows as text (page titles, sentences, standalone glue)."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def year_ja(year: str) -> str:
    return f"令和{int(year[1:])}年度"


def num(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def signed(x: float, digits: int = 0) -> str:
    return f"{x:+,.{digits}f}"


def rank_phrase(rank: int, n: int) -> str:
    return f"{rank:,}位／{n:,}"


def headline(info: dict, ranks: pd.DataFrame, year: str) -> str:
    """総合得点, its rate, the gap to the national mean and the three ranks."""
    g = ranks.set_index("key").loc["grand_total"]
    diff = g["score"] - g["national_mean"]
    above = "上回って" if diff > 0 else ("下回って" if diff < 0 else "と同じで")
    gap = (
        f"全国平均{num(g['national_mean'], 1)}点を{num(abs(diff), 1)}点{above}います"
        if diff
        else "全国平均と同じです"
    )
    return (
        f"{year_ja(year)}の{md(info['name'])}の総合得点は**{int(g['score'])}点**（800点満点、得点率"
        f"{num(100 * g['score'] / 800, 1)}%）で、{gap}。全国順位は{rank_phrase(g['rank_national'], g['n_national'])}、"
        f"{md(info['pref_name'])}内では{rank_phrase(g['rank_pref'], g['n_pref'])}、同じ規模区分・過疎区分の市町村"
        f"（同条件）の中では{rank_phrase(g['rank_peer'], g['n_peer'])}です。"
    )


def trend_sentence(trend: pd.DataFrame, notes: list[str]) -> str:
    """The three-year course of the grand total, with the national mean and the rank beside it."""
    t = trend[trend["key"] == "grand_total"].sort_values("fiscal_year")
    if len(t) < 2:
        return "比較できる前年度の評価結果がありません。"
    parts = [
        f"{year_ja(r.fiscal_year)} {int(r.score)}点（全国{int(r.rank_national):,}位）" for r in t.itertuples()
    ]
    nation = "→".join(num(v, 1) for v in t["national_mean"])
    text = "総合得点の推移は " + " → ".join(parts) + f" です。同じ期間の全国平均は {nation} 点でした。"
    if notes:
        text += " " + " ".join(md(n) for n in notes)
        text += "（得点が横ばいや微増でも、全国の得点が上がれば順位は下がります。）"
    return text


def gains_sentence(
    by_goal: pd.DataFrame, items: pd.DataFrame, not_comparable: pd.DataFrame, years: tuple[str, str]
) -> str:
    gained = items[items["status"] == "gained"]
    lost = items[items["status"] == "lost"]
    net = int(by_goal["actual_change"].sum())
    text = (
        f"{year_ja(years[0])}から{year_ja(years[1])}にかけて、年度間で比較できる項目のうち"
        f"{len(gained)}項目（計{int(gained['points_to'].sum())}点）を新たに獲得し、"
        f"{len(lost)}項目（計{int(lost['points_from'].sum())}点）を失いました。"
        f"両交付金の合計では{signed(net)}点です。"
    )
    if len(by_goal):
        best = by_goal.loc[by_goal["actual_change"].idxmax()]
        worst = by_goal.loc[by_goal["actual_change"].idxmin()]
        if best["actual_change"] > 0:
            text += f"最も伸びたのは{best['label_ja']}（{signed(best['actual_change'])}点）"
            text += (
                f"、最も減ったのは{worst['label_ja']}（{signed(worst['actual_change'])}点）です。"
                if worst["actual_change"] < 0
                else "です。"
            )
    n_nc = not_comparable["item_id"].nunique() if len(not_comparable) else 0
    if n_nc:
        text += f"指標の新設・廃止・再編で年度間の対応が取れない{n_nc}項目は、別表に分けて示します（比較には含めていません）。"
    return text


def reach_sentence(items: pd.DataFrame, n_comparison: int, threshold: float, persistent: pd.DataFrame) -> str:
    if n_comparison == 0:
        return "比較対象となる市町村がありません。"
    n = len(items)
    pts = int(items["recoverable"].sum()) if n else 0
    text = (
        f"同じ規模区分・過疎区分の市町村（{n_comparison:,}団体）の{num(100 * threshold)}%以上が得点している項目のうち、"
        f"この市町村が0点の項目は{n}項目で、すべて得点すると最大{pts}点（採点ルール適用後）の上積みになります。"
    )
    if len(persistent):
        text += f"また、3年度続けて0点の項目が{len(persistent)}項目あります（下の別表）。"
    return text


def whatif_sentence(name: str, rows: list[tuple[str, int, int, int]]) -> str:
    """``rows``: (label, new grand total, new national rank, new prefecture rank)."""
    parts = [
        f"{label}なら総合得点{score}点で全国{rank:,}位（県内{prank}位）" for label, score, rank, prank in rows
    ]
    return f"他の市町村の得点が変わらないと仮定すると、{md(name)}は" + "、".join(parts) + "になります。"


def grant_sentence(row: pd.Series, year: str) -> str:
    status = (
        "（" + year_ja(year) + "の基本配分枠は公表値が無いため令和7年度の額を仮定）"
        if row["suishin_budget_status"] == "assumed"
        else ""
    )
    return (
        f"**概算**：基本配分枠を「得点×第1号被保険者数」の全国シェアで配分したとすると、推進交付金は約"
        f"{num(row['suishin_estimate_kyen'])}千円、支援交付金は約{num(row['shien_estimate_kyen'])}千円、"
        f"合計約{num(row['total_estimate_kyen'])}千円です{status}。追加配分枠・成果指向型配分枠や所要額による調整を"
        "含まないため、実際の交付額とは一致しません。"
    )


def outcome_sentence(row: pd.Series, union_name: str | None) -> str:
    unit = f"（{md(union_name)}の構成市町村として、広域連合全体の値）" if union_name else ""
    return (
        f"目標Ⅳ（アウトカム指標）の得点は{num(row['observed'])}点{unit}です。小規模な保険者ほど年度ごとの振れが大きいため、"
        f"同規模・同程度の取組の保険者からの予測で補正した推定値（経験ベイズ推定）は{num(row['estimate'], 1)}点"
        f"（95%区間 {num(row['ci_low'], 1)}〜{num(row['ci_high'], 1)}点）です。"
    )
