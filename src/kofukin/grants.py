"""An approximation of the grant amounts: the 基本配分枠 shared by points × 第1号被保険者数.

The rule for the basic frame is published (高砂市, quoted in ``data/reference/mhlw_workbook_layout.md``):
「各市町村の『評価指標ごとの加点数×第1号被保険者数』により算出した点数を基準として、全市町村の…合計に占める
割合に応じ国の予算の範囲内で交付」. So, per grant g and municipality i,

    estimate_i = B_g × s_i·n_i / Σ_j s_j·n_j        (千円)

with s the grant's points (of 400), n the 第1号被保険者数 and B_g the 基本配分枠 (municipal) of the year.

This is **an approximation of the basic frame only** (概算・基本配分枠のみ): it leaves out the 追加配分枠
(アウトカム指標配分枠, 保険者機能強化推進枠 — criteria not published) and the 成果指向型配分枠, the ceiling of
each municipality's 所要見込額 and the redistribution of what is left over, and a 広域連合's members are paid
through their union. The R6 basic frames are not published in the seeds; ``budgets.csv`` assumes R7's and
marks them ``assumed`` — that status is carried into every estimate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kofukin.scoring import GRANT_SHORT_JA, GRANTS
from kofukin.summary import scored_rows

BASIS_JA = "概算（基本配分枠のみ。追加配分枠・成果指向型配分枠を含まない）"
METHOD_JA = (
    "推計額 = 基本配分枠予算 × 得点×第1号被保険者数 ÷ Σ(得点×第1号被保険者数)。"
    "比較対象の市町村は公表得点に置き換え、Σ もその置換後の値で計算（第1号被保険者数はパネルの値）。"
)

# 八王子市's published amounts and scores (seed 002: 八王子市社会福祉審議会 資料4-1, 2025-08-15), 千円. R7 推進 is
# the 通常枠 (the 成果指向型配分枠 116,762千円 is a separate frame). Not in golden_published.csv.
HACHIOJI = "132012"
HACHIOJI_PUBLISHED = pd.DataFrame(
    [
        ("R6", HACHIOJI, "八王子市", "suishin", 310, 45_195),
        ("R6", HACHIOJI, "八王子市", "shien", 308, 90_749),
        ("R7", HACHIOJI, "八王子市", "suishin", 309, 40_676),
        ("R7", HACHIOJI, "八王子市", "shien", 269, 82_935),
    ],
    columns=["fiscal_year", "lg_code6", "name", "grant", "score", "amount_kyen"],
).assign(source="seed 002 (八王子市 資料4-1): 令和7年度/令和6年度 金額・得点")


def basic_budget(budgets: pd.DataFrame, year: str, grant: str) -> tuple[float, str, str]:
    """(amount in 千円, status, source) of the municipal 基本配分枠 of ``year`` and ``grant``."""
    b = budgets[
        (budgets["fiscal_year"] == year)
        & (budgets["grant"] == grant)
        & (budgets["level"] == "municipal")
        & (budgets["frame"] == "basic")
    ]
    if len(b) != 1:
        raise ValueError(
            f"budgets.csv needs exactly one municipal basic frame for {year} {grant}, found {len(b)}"
        )
    r = b.iloc[0]
    return float(r["amount_kyen"]), str(r["status"]), str(r.get("source", ""))


def basic_allocation_estimate(panel: pd.DataFrame, year: str, budgets: pd.DataFrame) -> pd.DataFrame:
    """Estimated 基本配分枠 per municipality and grant (千円), clearly an approximation.

    Parameters
    ----------
    panel
        The store's panel (grant totals and ``n_insured_1go``).
    year
        Fiscal year; its municipal basic frames come from ``budgets``.
    budgets
        :func:`kofukin.reference.load_budgets` (``fiscal_year, grant, level, frame, amount_kyen, status``).

    Returns
    -------
    One row per scored municipality: ids, ``n_insured_1go``, both grant totals, ``<grant>_estimate_kyen``,
    ``<grant>_share`` (of the frame), ``<grant>_budget_status`` (published / assumed), ``total_estimate_kyen``
    and ``basis`` (:data:`BASIS_JA`). ``attrs["basis"]`` says the same.
    """
    rows = scored_rows(panel, year)
    out = rows[
        [
            "fiscal_year",
            "lg_code6",
            "pref_code",
            "pref_name",
            "name",
            "n_insured_1go",
            "suishin_total",
            "shien_total",
        ]
    ].copy()
    n = rows["n_insured_1go"].astype(float)
    for grant in GRANTS:
        amount, status, _ = basic_budget(budgets, year, grant)
        w = rows[f"{grant}_total"].astype(float) * n
        total = w.sum()
        share = w / total if total > 0 else w * np.nan
        out[f"{grant}_share"] = share
        out[f"{grant}_estimate_kyen"] = amount * share
        out[f"{grant}_budget_status"] = status
    out["total_estimate_kyen"] = out["suishin_estimate_kyen"] + out["shien_estimate_kyen"]
    out["basis"] = BASIS_JA
    out = out.reset_index(drop=True)
    out.attrs["basis"] = BASIS_JA
    return out


def compare_published(
    panel: pd.DataFrame,
    budgets: pd.DataFrame,
    published: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Estimate ÷ published amount for municipalities whose amounts are published (default: 八王子市 R6/R7).

    Method (documented in :data:`METHOD_JA`): for each published (year, grant, municipality), the
    municipality's points in the panel are replaced by its published score — on a synthetic panel its points
    are made up, and on the real one the two agree — and

        estimate = B × s·n / Σ over the panel of s·n,

    the sum taken after the replacement, with n the panel's 第1号被保険者数. The ratio shows how far the
    basic-frame approximation is from what was paid (the 追加配分枠 and the other adjustments are not in it).

    Parameters
    ----------
    panel, budgets
        As for :func:`basic_allocation_estimate`.
    published
        ``fiscal_year, lg_code6, grant, score, amount_kyen`` (and optionally ``name``, ``source``); default
        :data:`HACHIOJI_PUBLISHED`. A missing score (NaN) falls back to the panel's (``score_source``).

    Returns
    -------
    One row per published amount and a ``total`` row per municipality and year: published score, panel
    score, 第1号, budget and its status, estimate, published amount and ``ratio`` = estimate / published.
    """
    pub = HACHIOJI_PUBLISHED if published is None else published
    recs = []
    for r in pub.itertuples():
        rows = scored_rows(panel, r.fiscal_year)
        me = rows[rows["lg_code6"] == r.lg_code6]
        if me.empty:
            raise ValueError(
                f"{r.lg_code6} has no scores in {r.fiscal_year}: cannot compare its published amount"
            )
        me = me.iloc[0]
        key = f"{r.grant}_total"
        panel_score = int(me[key])
        has_score = not pd.isna(r.score)
        score = float(r.score) if has_score else float(panel_score)
        s = rows[key].astype(float).where(rows["lg_code6"] != r.lg_code6, score)
        n = rows["n_insured_1go"].astype(float)
        amount, status, _ = basic_budget(budgets, r.fiscal_year, r.grant)
        estimate = amount * score * float(me["n_insured_1go"]) / float((s * n).sum())
        recs.append(
            {
                "fiscal_year": r.fiscal_year,
                "lg_code6": r.lg_code6,
                "name": getattr(r, "name", me["name"]),
                "grant": r.grant,
                "grant_ja": GRANT_SHORT_JA[r.grant],
                "published_score": score,
                "panel_score": panel_score,
                "score_source": "published" if has_score else "panel",
                "n_insured_1go": int(me["n_insured_1go"]),
                "budget_kyen": amount,
                "budget_status": status,
                "estimate_kyen": estimate,
                "published_kyen": float(r.amount_kyen),
                "ratio": estimate / float(r.amount_kyen),
                "source": getattr(r, "source", ""),
            }
        )
    out = pd.DataFrame(recs)
    totals = []
    for (year, code), g in out.groupby(["fiscal_year", "lg_code6"], sort=False):
        if set(g["grant"]) != set(GRANTS):
            continue
        totals.append(
            {
                "fiscal_year": year,
                "lg_code6": code,
                "name": g["name"].iloc[0],
                "grant": "total",
                "grant_ja": GRANT_SHORT_JA["both"],
                "published_score": g["published_score"].sum(),
                "panel_score": g["panel_score"].sum(),
                "score_source": "/".join(sorted(set(g["score_source"]))),
                "n_insured_1go": g["n_insured_1go"].iloc[0],
                "budget_kyen": g["budget_kyen"].sum(),
                "budget_status": "/".join(sorted(set(g["budget_status"]))),
                "estimate_kyen": g["estimate_kyen"].sum(),
                "published_kyen": g["published_kyen"].sum(),
                "ratio": g["estimate_kyen"].sum() / g["published_kyen"].sum(),
                "source": g["source"].iloc[0],
            }
        )
    out = pd.concat([out, pd.DataFrame(totals)], ignore_index=True)
    out["basis"] = BASIS_JA
    out.attrs["method"] = METHOD_JA
    return out


def published_amounts(golden: pd.DataFrame, master: pd.DataFrame) -> pd.DataFrame:
    """Published per-municipality amounts from ``golden_published.csv`` rows ``amount_kyen:<grant>[_plan|_final]``.

    Returns ``fiscal_year, lg_code6, name, grant, score, amount_kyen, kind, source`` for the two grants
    (``kind``: plan = 交付見込額（案）, final = 確定額, "" = unspecified); ``score`` comes from the same
    municipality's ``score:<grant>_total`` row when there is one (else NaN). Names are matched with the
    prefecture, so 府中市 stays ambiguous-free.
    """
    g = golden[
        golden["measure"].str.startswith("amount_kyen:") & (golden["municipality_name"] != "[all]")
    ].copy()
    part = g["measure"].str.removeprefix("amount_kyen:")
    g["grant"] = part.str.split("_").str[0]
    g["kind"] = part.str.split("_").str[1].fillna("")
    g = g[g["grant"].isin(GRANTS)]
    keys = ["municipality_name", "pref_name", "fiscal_year", "grant", "kind"]
    g = g.drop_duplicates(keys)
    scores = golden[golden["measure"].isin([f"score:{x}_total" for x in GRANTS])].copy()
    scores["grant"] = scores["measure"].str.removeprefix("score:").str.removesuffix("_total")
    scores = scores.drop_duplicates(["municipality_name", "pref_name", "fiscal_year", "grant"])
    g = g.merge(
        scores[["municipality_name", "pref_name", "fiscal_year", "grant", "value"]].rename(
            columns={"value": "score"}
        ),
        on=["municipality_name", "pref_name", "fiscal_year", "grant"],
        how="left",
    )
    codes = master[["pref_name", "name", "lg_code6"]].rename(columns={"name": "municipality_name"})
    g = g.merge(codes, on=["pref_name", "municipality_name"], how="left")
    out = g.rename(columns={"municipality_name": "name", "value": "amount_kyen"})
    return out[
        ["fiscal_year", "lg_code6", "name", "grant", "score", "amount_kyen", "kind", "source"]
    ].reset_index(drop=True)


__all__ = [
    "BASIS_JA",
    "HACHIOJI_PUBLISHED",
    "METHOD_JA",
    "basic_allocation_estimate",
    "basic_budget",
    "compare_published",
    "published_amounts",
]
