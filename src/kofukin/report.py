"""What each report notebook shows, assembled from the analysis library.

A template calls one function (:func:`municipality_report`, :func:`prefecture_report`, :func:`national_report`)
and gets a context with display tables, figures, sentences and :attr:`glue` — every number the prose quotes,
under a stable name, so the notebook can ``glue`` them and the tests can compare them with the library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kofukin import figures, narrative
from kofukin.bookdata import BookData, book_data
from kofukin.layout import SIZE_CLASS_JA
from kofukin.peers import nearest_peers
from kofukin.profile import municipality_profile
from kofukin.summary import prefecture_summary
from kofukin.whatif import what_if_rank

SOURCE_NOTE = (
    "出典：「保険者機能強化推進交付金・介護保険保険者努力支援交付金（市町村分）に係る評価結果」（厚生労働省）"
    "を加工して作成"
)
SYNTHETIC_NOTE = (
    "この報告書の数値は合成データ（{years}）から計算したもので、実際の市町村の評価結果ではありません。"
)


@dataclass
class Report:
    """A report's content: ``glue`` (numbers and sentences quoted in the prose), tables and figures.

    ``item_tables`` names the tables whose rows are indicator items: the site's search leaves them out
    (:func:`kofukin.display.glue_table`).
    """

    glue: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    source: str = SOURCE_NOTE
    item_tables: frozenset[str] = frozenset()


# The municipality tables listed item by item. Every municipality page lists the same ~200 item labels, so
# a search for a word of one (認知症, 介護予防) would return all 1,741 pages — and bury the chapters that explain
# it; leaving them out of the index also halves Pagefind's work (the item tables are two thirds of a page's
# indexed text).
MUNICIPALITY_ITEM_TABLES = frozenset({"gains", "not_comparable", "reach", "persistent_zero", "bands"})


def _synthetic_note(data: BookData) -> str:
    years = data.synthetic_years
    return SYNTHETIC_NOTE.format(years="・".join(narrative.year_ja(y) for y in years)) if years else ""


def _info_glue(info: dict, year: str) -> dict[str, Any]:
    return {
        "code": info["lg_code6"],
        "name": info["name"],
        "pref_name": info["pref_name"],
        "year_ja": narrative.year_ja(year),
        "population": int(info["population"]),
        "n_insured_1go": int(info["n_insured_1go"]),
        "size_class_ja": SIZE_CLASS_JA[int(info["size_class"])],
        "kaso_ja": "過疎地域" if info["kaso"] else "非過疎地域",
    }


def municipality_report(code: str, year: str, data: BookData | None = None) -> Report:
    """Everything the municipality template shows for ``code`` in ``year``."""
    data = data or book_data()
    items = data.items_of(code)
    prof = municipality_profile(data.panel, year, code, achieved=data.achieved_of(code, year))
    rep = Report(item_tables=MUNICIPALITY_ITEM_TABLES)
    g = rep.glue
    g.update(_info_glue(prof.info, year))
    g["synthetic_note"] = _synthetic_note(data)
    _profile_part(rep, prof, year)
    _gains_part(rep, data, code, year, items)
    reach = data.reach_of(code, year)
    _reach_part(rep, reach)
    _whatif_part(rep, data, code, year, prof, reach)
    _peers_part(rep, data, code, year)
    _grant_part(rep, data, code, year)
    _outcome_part(rep, data, code, year, prof.info.get("union_name"))
    return rep


def _profile_part(rep: Report, prof, year: str) -> None:
    g, info = rep.glue, prof.info
    ranks = prof.ranks.set_index("key")
    gt = ranks.loc["grand_total"]
    for key, prefix in (("grand_total", ""), ("suishin_total", "suishin_"), ("shien_total", "shien_")):
        r = ranks.loc[key]
        g[f"{prefix}score" if prefix else "grand_total"] = int(r["score"])
        g[f"{prefix}rank_national"] = int(r["rank_national"])
        g[f"{prefix}rank_pref"] = int(r["rank_pref"])
    g["n_national"], g["n_pref"] = int(gt["n_national"]), int(gt["n_pref"])
    g["rank_peer"], g["n_peer"] = int(gt["rank_peer"]), int(gt["n_peer"])
    g["national_mean"] = round(float(gt["national_mean"]), 1)
    g["pref_mean"] = round(float(gt["pref_mean"]), 1)
    g["score_rate_pct"] = round(100 * float(gt["score"]) / 800, 1)
    g["headline_md"] = narrative.headline(info, prof.ranks, year)
    g["trend_md"] = narrative.trend_sentence(prof.trend, prof.notes)
    if prof.items is not None:
        for grant in ("suishin", "shien"):
            row = prof.items[(prof.items["grant"] == grant) & (prof.items["scope"] == "all")].iloc[0]
            g[f"items_achieved_{grant}"] = f"{int(row['n_achieved'])}/{int(row['n_items'])}"
    s = prof.scores
    rep.tables["scores"] = pd.DataFrame(
        {
            "区分": s["label_ja"],
            "配点": s["max_points"],
            "全国平均": s["national_mean"].round(1),
            "県内平均": s["pref_mean"].round(1),
            "同条件平均": s["peer_mean"].round(1),
            str(info["name"]): s["score"],
            "得点率（%）": (100 * s["score_rate"]).round(1),
            "全国平均との差": s["diff_national"].round(1),
        }
    )
    rep.tables["ranks"] = prof.ranks[
        ["label_ja", "score", "rank_national_label", "rank_pref_label", "rank_peer_label"]
    ].rename(
        columns={
            "label_ja": "区分",
            "score": "得点",
            "rank_national_label": "全国順位",
            "rank_pref_label": "県内順位",
            "rank_peer_label": "同条件順位",
        }
    )
    t = prof.trend[prof.trend["key"] == "grand_total"]
    rep.tables["trend"] = pd.DataFrame(
        {
            "年度": t["fiscal_year"].map(narrative.year_ja),
            "総合得点": t["score"],
            "全国平均": t["national_mean"].round(1),
            "全国順位": t["rank_national"],
            "県内順位": t["rank_pref"],
        }
    )
    rep.figures["goal_rates"] = figures.GOAL_RATES.png(s, info["name"], info["pref_name"])
    rep.figures["trend"] = figures.TREND.png(prof.trend, info["name"])


def _gains_part(rep: Report, data: BookData, code: str, year: str, items: pd.DataFrame) -> None:
    prev = data.previous_year(year)
    g = rep.glue
    if prev is None or not (items["fiscal_year"] == prev).any():
        g["gains_md"] = "前年度の評価結果が無いため、項目ごとの増減は示せません。"
        g["gained_points"] = g["lost_points"] = g["net_change"] = 0
        return
    gl = data.gains_of(code, prev, year)
    gained, lost = gl.of_status("gained"), gl.of_status("lost")
    g["gained_items"], g["gained_points"] = len(gained), int(gained["points_to"].sum())
    g["lost_items"], g["lost_points"] = len(lost), int(lost["points_from"].sum())
    g["net_change"] = int(gl.by_goal["actual_change"].sum())
    g["gains_md"] = narrative.gains_sentence(gl.by_goal, gl.items, gl.not_comparable, (prev, year))
    changed = pd.concat([gained, lost]).sort_values(
        ["grant", "goal", "change"], ascending=[True, True, False]
    )
    rep.tables["gains"] = changed[["item_label", "status_ja", "points_from", "points_to", "change"]].rename(
        columns={
            "item_label": "項目",
            "status_ja": "区分",
            "points_from": narrative.year_ja(prev),
            "points_to": narrative.year_ja(year),
            "change": "増減",
        }
    )
    nc = gl.not_comparable
    rep.tables["not_comparable"] = (
        nc[["item_label", "relation_ja", "side", "points"]].rename(
            columns={"item_label": "項目", "relation_ja": "年度間の関係", "side": "年度側", "points": "得点"}
        )
        if len(nc)
        else nc
    )
    rep.figures["gains"] = figures.GAINS_LOSSES.png(gl.by_goal)


def _reach_part(rep: Report, reach) -> None:
    g = rep.glue
    g["reach_items"] = len(reach.items)
    g["reach_points"] = int(reach.items["recoverable"].sum()) if len(reach.items) else 0
    g["reach_threshold_pct"] = round(100 * reach.threshold)
    g["reach_md"] = narrative.reach_sentence(
        reach.items, reach.n_comparison, reach.threshold, reach.persistent_zero
    )
    rep.tables["reach"] = (
        reach.items[["item_label", "max_points", "recoverable", "peer_share", "national_share"]]
        .assign(
            peer_share=lambda d: (100 * d["peer_share"]).round(1),
            national_share=lambda d: (100 * d["national_share"]).round(1),
        )
        .rename(
            columns={
                "item_label": "項目",
                "max_points": "配点",
                "recoverable": "上積み可能な点",
                "peer_share": "同条件で得点している割合（%）",
                "national_share": "全国の得点率（%）",
            }
        )
    )
    rep.tables["persistent_zero"] = (
        reach.persistent_zero[["item_label", "max_points", "peer_share"]]
        .assign(peer_share=lambda d: (100 * d["peer_share"]).round(1))
        .rename(
            columns={
                "item_label": "項目",
                "max_points": "配点",
                "peer_share": "同条件で得点している割合（%）",
            }
        )
    )
    b = reach.bands
    rep.tables["bands"] = (
        b[["grant", "goal", "indicator_name_ja", "measure", "band_label", "points", "max_points"]]
        .rename(
            columns={
                "grant": "交付金",
                "goal": "目標",
                "indicator_name_ja": "活動指標",
                "measure": "枝",
                "band_label": "到達した順位帯",
                "points": "得点",
                "max_points": "配点",
            }
        )
        .replace({"交付金": {"suishin": "推進", "shien": "支援"}})
    )


def _whatif_part(rep: Report, data: BookData, code: str, year: str, prof, reach) -> None:
    rows = []
    for extra in (10, 30):
        w = what_if_rank(data.panel, year, code, extra_points=extra)
        r = w.ranks.set_index("key").loc["grand_total"]
        rows.append(
            (f"あと{extra}点", int(r["new_score"]), int(r["new_rank_national"]), int(r["new_rank_pref"]))
        )
        rep.glue[f"whatif{extra}_rank_national"] = int(r["new_rank_national"])
    if len(reach.items):
        w = what_if_rank(data.panel, year, code, extra_points=data.reach_changes_of(reach))
        r = w.ranks.set_index("key").loc["grand_total"]
        rows.append(
            (
                "「手の届く項目」をすべて得点した場合",
                int(r["new_score"]),
                int(r["new_rank_national"]),
                int(r["new_rank_pref"]),
            )
        )
        rep.glue["whatif_reach_rank_national"] = int(r["new_rank_national"])
    rep.glue["whatif_md"] = narrative.whatif_sentence(prof.info["name"], rows)
    rep.tables["whatif"] = pd.DataFrame(rows, columns=["仮定", "総合得点", "全国順位", "県内順位"])


def _peers_part(rep: Report, data: BookData, code: str, year: str) -> None:
    p = nearest_peers(data.panel, year, code, k=10)
    rep.tables["peers"] = (
        p.assign(kaso=p["kaso"].map({True: "過疎", False: "非過疎"}))
        .rename(
            columns={
                "peer_rank": "近さの順",
                "name": "市町村",
                "pref_name": "都道府県",
                "population": "人口",
                "n_insured_1go": "第1号被保険者数",
                "kaso": "過疎",
                "grand_total": "総合得点",
                "distance": "距離",
            }
        )[["近さの順", "市町村", "都道府県", "人口", "第1号被保険者数", "過疎", "総合得点", "距離"]]
        .round({"距離": 3})
    )
    rep.glue["peers_mean_total"] = round(float(p["grand_total"].mean()), 1)


def _grant_part(rep: Report, data: BookData, code: str, year: str) -> None:
    est = data.grant_estimates
    row = est[(est["fiscal_year"] == year) & (est["lg_code6"] == code)].iloc[0]
    rep.glue["grant_estimate_kyen"] = round(float(row["total_estimate_kyen"]))
    rep.glue["grant_md"] = narrative.grant_sentence(row, year)


def _outcome_part(rep: Report, data: BookData, code: str, year: str, union_name: str | None) -> None:
    sh = data.shrunken[year]
    hit = sh[sh["unit_id"] == data.unit_of(code, year)]
    if hit.empty:
        rep.glue["outcome_md"] = "アウトカム指標の推定に必要なデータがありません。"
        return
    row = hit.iloc[0]
    for k in ("observed", "estimate", "ci_low", "ci_high"):
        rep.glue[f"outcome_{k}"] = round(float(row[k]), 1)
    rep.glue["outcome_md"] = narrative.outcome_sentence(
        row, union_name if isinstance(union_name, str) else None
    )
    nat = data.national(year).columns.set_index("key").loc["suishin_IV", "mean"]
    rep.figures["outcome"] = figures.SHRINKAGE_INTERVAL.png(row, float(nat))


# --- prefecture and national ------------------------------------------------------------------------------


def prefecture_report(pref_code: str, year: str, data: BookData | None = None) -> Report:
    data = data or book_data()
    ps = prefecture_summary(data.panel, year, pref_code)
    rep = Report()
    g = rep.glue
    g.update(
        pref_code=ps.pref_code,
        pref_name=ps.pref_name,
        year_ja=narrative.year_ja(year),
        synthetic_note=_synthetic_note(data),
    )
    h = ps.headline.set_index("key") if "key" in ps.headline.columns else ps.headline
    pan = data.panel[data.panel["fiscal_year"] == year]
    own = pan[pan["pref_code"] == ps.pref_code]
    g["n_municipalities"] = len(own)
    g["pref_mean"] = round(float(own["grand_total"].mean()), 1)
    g["national_mean"] = round(float(pan["grand_total"].mean()), 1)
    g["summary_md"] = " ".join(narrative.md(s) for s in ps.sentences_ja) or ""
    g["n_flags"] = int((ps.cells["flag"] != "").sum())
    rep.tables["headline"] = h.reset_index()
    rep.tables["areas"] = _area_table(ps)
    rep.tables["top"] = ps.top
    rep.tables["municipalities"] = _municipality_list(own, year)
    rep.figures["distribution"] = figures.png(
        figures.distribution(own["grand_total"], pan["grand_total"], ps.pref_name)
    )
    return rep


def _area_table(ps) -> pd.DataFrame:
    """Seed 004's table: one row per area, score rate per column, with ▲/▼ where ≥ 10 points off the nation."""
    c = ps.cells.copy()
    c["cell"] = (100 * c["rate"]).round(1).map(lambda v: f"{v:.1f}") + c["flag"].map(
        {"上回る": " ▲", "下回る": " ▼"}
    ).fillna("")
    w = c.pivot_table(
        index=["area_type", "area", "n"], columns="label_ja", values="cell", aggfunc="first", sort=False
    )
    order = list(dict.fromkeys(c["label_ja"]))
    return w[order].reset_index().rename(columns={"area": "区分", "n": "団体数"}).drop(columns="area_type")


def _municipality_list(own: pd.DataFrame, year: str) -> pd.DataFrame:
    from kofukin.scoring import competition_rank

    t = own[["lg_code6", "name", "suishin_total", "shien_total", "grand_total"]].copy()
    t["rank_pref"] = competition_rank(t["grand_total"])
    return t.sort_values(["rank_pref", "lg_code6"]).rename(
        columns={
            "lg_code6": "コード",
            "name": "市町村",
            "suishin_total": "推進",
            "shien_total": "支援",
            "grand_total": "総合得点",
            "rank_pref": "県内順位",
        }
    )


def national_report(year: str, data: BookData | None = None) -> Report:
    data = data or book_data()
    ns = data.national(year)
    rep = Report()
    head = ns.headline()
    g = rep.glue
    g.update(year_ja=narrative.year_ja(year), synthetic_note=_synthetic_note(data), n_municipalities=ns.n)
    g["mean_total"] = round(head["mean"], 1)
    g["rate_total_pct"] = round(100 * head["rate"], 1)
    top = ns.top.iloc[0]
    g["top_name"], g["top_pref"], g["top_score"] = (
        str(top["name"]),
        str(top["pref_name"]),
        int(top["grand_total"]),
    )
    g["domains_md"] = narrative.md(ns.sentence_ja)
    g["prev_md"] = "前年度の評価結果はこのデータにありません。"  # R6, or a store without the year before
    if head["prev_mean"] is not None:
        g["prev_mean_total"] = round(head["prev_mean"], 1)
        g["prev_md"] = f"前年度（{narrative.year_ja(head['prev_year'])}）は{g['prev_mean_total']}点でした。"
    rep.tables["mhlw"] = ns.mhlw_table()
    pan = data.panel[data.panel["fiscal_year"] == year]
    rep.tables["top10"] = pan.nlargest(10, "grand_total", keep="all")[
        ["name", "pref_name", "suishin_total", "shien_total", "grand_total"]
    ].rename(
        columns={
            "name": "市町村",
            "pref_name": "都道府県",
            "suishin_total": "推進",
            "shien_total": "支援",
            "grand_total": "総合得点",
        }
    )
    rep.figures["by_size"] = figures.png(
        figures.by_group(
            pan,
            "size_class",
            [1, 2, 3, 4, 5],
            [SIZE_CLASS_JA[i] for i in range(1, 6)],
            f"{narrative.year_ja(year)} 規模区分別の総合得点",
        )
    )
    rep.figures["by_kaso"] = figures.png(
        figures.by_group(
            pan,
            "kaso",
            [True, False],
            ["過疎", "非過疎"],
            f"{narrative.year_ja(year)} 過疎・非過疎別の総合得点",
        )
    )
    return rep


# --- outcome regressions ----------------------------------------------------------------------------------


def outcomes_report(year: str, data: BookData | None = None) -> Report:
    """The regression chapter: specification, coefficients, robustness, diagnostics and shrinkage."""
    from kofukin import outcomes as oc
    from kofukin import shrinkage as sk

    data = data or book_data()
    frame = data.outcome_frame
    rep = Report()
    g = rep.glue
    g.update(year_ja=narrative.year_ja(year), synthetic_note=_synthetic_note(data))
    g["n_units"] = int((frame["fiscal_year"] == year).sum())
    g["n_unions"] = int(((frame["fiscal_year"] == year) & (frame["unit_kind"] != "single")).sum())
    main = oc.fit_cross_section(frame, year)
    wls = oc.fit_cross_section(frame, year, weights=oc.WEIGHT)
    mixed = oc.fit_mixed(frame, year)
    fits = [main, wls, mixed]
    names = ["OLS（県固定効果）", "WLS（第1号で加重）", "混合モデル"]
    has_values = frame[list(oc.VALUE_COLUMNS)].notna().any().any()
    if has_values:
        fits.append(oc.fit_stacked(frame, years=year))
        names.append("指標値（8指標 積み重ね）")
    prev = data.previous_year(year)
    if prev:
        fits.append(oc.fit_change(frame, prev, year, oc.OUTCOME_SCORE))
        names.append(f"変化（{narrative.year_ja(prev)}→）")
    rep.tables["summary"] = (
        oc.summary_table(fits, names).tables[0].reset_index().rename(columns={"index": "説明変数"})
    )
    rep.glue["se_note"] = main.se_type
    t = oc.tidy(main).set_index("term")
    for term in oc.SCORE_TERMS:
        g[f"coef_{term}"] = round(float(t.loc[term, "coef"]), 3)
        g[f"ci_low_{term}"] = round(float(t.loc[term, "ci_low"]), 3)
        g[f"ci_high_{term}"] = round(float(t.loc[term, "ci_high"]), 3)
    g["r2_main"] = round(float(main.result.rsquared), 3)
    grid = oc.tidy(oc.fit_grid(frame, [year]))
    rep.figures["coefficients"] = figures.png(oc.figure_coefficients(grid))
    rep.tables["compare"] = oc.compare_specifications(fits[:3]).round(4)
    if has_values:
        stacked = oc.tidy(fits[3]).set_index("term")
        planted = _planted_table(stacked) if data.synthetic_years else None
        if planted is not None:
            rep.tables["planted"] = planted
    rep.tables["vif"] = oc.vif_table(main).round(2)
    rep.tables["spread"] = oc.residual_spread_by_size(main).round(2)
    rep.figures["residuals"] = figures.png(oc.figure_residuals(main))
    cooks = oc.residual_table(main).nlargest(10, "cooks_d")
    names = data.store.municipalities.set_index("lg_code6")["name"]
    rep.tables["influential"] = pd.DataFrame(
        {
            "保険者": cooks["unit_id"].map(lambda u: names.get(u, u)),
            "規模区分": cooks["size_class"],
            "実際の得点": cooks["observed"],
            "予測値": cooks["fitted"].round(1),
            "残差": cooks["resid"].round(1),
            "Cookの距離": cooks["cooks_d"].round(4),
        }
    )
    sh = data.shrunken[year]
    vc = sk.variance_components_of(sh)
    g["tau2"], g["kappa_10k"], g["exponent"] = (
        round(vc.tau2, 2),
        round(vc.kappa_10k, 1),
        round(vc.exponent, 2),
    )
    rep.tables["shrinkage_by_size"] = sk.shrinkage_by_size(sh).round(2)
    rep.figures["shrinkage"] = figures.png(sk.figure_shrinkage(sh))
    return rep


def _planted_table(stacked: pd.DataFrame) -> pd.DataFrame | None:
    """Estimates of the stacked value regression beside the truth planted in the synthetic panel."""
    from kofukin.synthetic.truth import PLANTED

    terms = {
        "all_taisei": "beta_taisei",
        "all_katsudo": "beta_katsudo",
        "log_population": "beta_log_population",
        "kaso": "beta_kaso",
    }
    rows = []
    for term, key in terms.items():
        if term not in stacked.index:
            continue
        r = stacked.loc[term]
        rows.append(
            {
                "説明変数": r["term_ja"],
                "埋め込んだ真値": PLANTED[key],
                "推定値": round(float(r["coef"]), 4),
                "95%区間 下限": round(float(r["ci_low"]), 4),
                "95%区間 上限": round(float(r["ci_high"]), 4),
                "区間に真値を含む": "はい" if r["ci_low"] <= PLANTED[key] <= r["ci_high"] else "いいえ",
            }
        )
    return pd.DataFrame(rows) if rows else None
