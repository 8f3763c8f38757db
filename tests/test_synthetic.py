"""The synthetic default panel (合成データ, ``kofukin demo-data``): determinism, calibration, scoring rules,
unions, persistence and the planted outcome model.

The full panel is generated twice in this module (the fixture, and once inside ``write_demo_data``) and
written twice; everything else reuses those. Expected numbers are the published ones (data/reference) or
structural facts of the generator, never "whatever came out".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from kofukin import codes, layout, scoring
from kofukin.reference import load_catalogue, load_master, load_unions
from kofukin.synthetic import CalibrationReport, generate_panel, write_demo_data
from kofukin.synthetic import truth as truth_mod
from kofukin.synthetic.attributes import designated_cities, generate_attributes, load_anchors
from kofukin.synthetic.demo import demo_files, outcome_file, results_file
from kofukin.synthetic.outcomes import noise_sd, systematic_part
from kofukin.synthetic.unions import generate_unions

SEED = 20240401
YEARS = ("R6", "R7", "R8")
pytestmark = pytest.mark.slow


# --- Fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel():
    return generate_panel(SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, CalibrationReport]:
    """``write_demo_data`` as the CLI calls it (it generates its own panel)."""
    out = tmp_path_factory.mktemp("demo_a") / "demo"
    return out, write_demo_data(out, seed=SEED)


@pytest.fixture(scope="module")
def report(written) -> CalibrationReport:
    return written[1]


@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return load_catalogue()


@pytest.fixture(scope="module")
def items_wide(panel) -> dict[str, pd.DataFrame]:
    """Per year: municipalities × item_id points (item_points is stored municipality by municipality)."""
    out = {}
    for year in YEARS:
        ip = panel.item_points[panel.item_points["fiscal_year"] == year]
        out[year] = ip.pivot(index="lg_code6", columns="item_id", values="points")
    return out


def _r8(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["fiscal_year"] == "R8"]


def _sheet(path: Path) -> list[list]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


# --- Determinism ------------------------------------------------------------------------------------------


def test_parts_are_deterministic():
    """Attributes and unions drawn twice from one seed are identical, and another seed differs (the whole
    panel's determinism is the byte-identity test below)."""
    a1, a2 = generate_attributes(SEED), generate_attributes(SEED)
    pd.testing.assert_frame_equal(a1, a2)
    r8 = _r8(a1)
    anchors = load_anchors().codes
    pd.testing.assert_frame_equal(generate_unions(SEED, r8, anchors), generate_unions(SEED, r8, anchors))
    assert not _r8(generate_attributes(SEED + 1))["n_insured_1go"].equals(r8["n_insured_1go"])


def test_two_write_demo_data_runs_are_byte_identical(written, panel, tmp_path):
    """One run generated its own panel, the other reuses the fixture's: same seed, same bytes, every file."""
    first, _ = written
    second = tmp_path / "demo"
    second.mkdir()
    (second / "stale.xlsx").write_text("left over from an older run")
    write_demo_data(second, seed=SEED, panel=panel)  # replaces the whole folder
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(demo_files()) == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_write_leaves_no_temporary_folders(written):
    first, _ = written
    assert not list(first.parent.glob(".demo.tmp-*")) and not list(first.parent.glob(".demo.old"))
    assert first.stat().st_mode & 0o777 != 0o700  # not mkdtemp's private mode


# --- Calibration ------------------------------------------------------------------------------------------


def test_every_calibration_target_is_within_tolerance(report):
    t = report.table
    assert list(t.columns) == ["metric", "fiscal_year", "target", "achieved", "tolerance", "ok"]
    assert len(t) > 230 and report.ok, "\n" + report.failures().to_string()
    assert "236 checks, 0 outside tolerance" in report.to_string()


@pytest.mark.parametrize(
    ("year", "key", "mean", "median", "sd"),
    [
        ("R6", "grand_total", 422.354968, 428, 95.908129),
        ("R7", "grand_total", 434.987938, 446, 92.327187),
        ("R8", "grand_total", 455.126364, 469, 87.695672),
        ("R7", "suishin_IV", 47.840322, 50, 16.326642),
        ("R8", "shien_I_katsudo", 20.406663, 20, 6.355724),
    ],
)
def test_published_national_statistics(panel, year, key, mean, median, sd):
    """Published R6–R8 figures (indicator_subtotals.csv): mean ±2 %, median ±5 % (goal Ⅳ: one 5-point step),
    SD ±15 %."""
    v = panel.subtotals.loc[panel.subtotals["fiscal_year"] == year, key].to_numpy(float)
    assert abs(v.mean() - mean) <= 0.02 * mean
    assert abs(np.median(v) - median) <= max(0.05 * median, 5 if key.endswith("_IV") else 0)
    assert abs(v.std() - sd) <= 0.15 * sd


def test_item_shares_match_the_catalogue(panel, cat):
    """Goals Ⅰ–Ⅲ: exactly n_scoring municipalities per item, except where indicator 9's cap leaves a band
    short; goal Ⅳ (banded from the values): within 2 percentage points."""
    scoring_count = panel.item_points["points"].gt(0).groupby(panel.item_points["item_id"]).sum()
    c = cat.set_index("item_id").loc[scoring_count.index]
    diff = scoring_count - c["n_scoring"]
    capped = c["scoring_rule"] == "capped_inferred"
    assert (diff[(c["goal"] != "IV") & ~capped] == 0).all()
    assert (diff[capped].abs() / 1741).max() <= 0.02
    assert (diff[c["goal"] == "IV"].abs() / 1741).max() <= 0.02


def test_size_class_and_kaso_means_follow_the_published_r8_ones(panel):
    """golden_published [size_class=k] 407.6/448.8/481.1/508/527.8, [kaso=1] 437.4, [kaso=0] 473.5: within 15
    points, in the same order."""
    p = _r8(panel.subtotals).merge(_r8(panel.attributes), on=["fiscal_year", "lg_code6"])
    by_class = p.groupby("size_class")["grand_total"].mean()
    np.testing.assert_allclose(by_class.to_numpy(), [407.6, 448.8, 481.1, 508.0, 527.8], atol=15)
    assert by_class.is_monotonic_increasing
    by_kaso = p.groupby("kaso")["grand_total"].mean()
    np.testing.assert_allclose([by_kaso[True], by_kaso[False]], [437.4, 473.5], atol=15)


# --- Attributes -------------------------------------------------------------------------------------------


def test_real_municipalities_with_the_published_class_and_kaso_counts(panel):
    master = load_master()
    for year in YEARS:
        a = panel.attributes[panel.attributes["fiscal_year"] == year]
        assert sorted(a["lg_code6"]) == sorted(master["lg_code6"])
        assert (a["size_class"] == a["n_insured_1go"].map(layout.size_class_of)).all()
    r8 = _r8(panel.attributes)
    assert r8["size_class"].value_counts().sort_index().tolist() == [451, 535, 608, 83, 64]
    assert r8["kaso"].sum() == 885
    wards = r8["lg_code6"].isin(master.loc[master["kind"] == "ku", "lg_code6"])
    assert wards.sum() == 23 and not r8.loc[wards, "kaso"].any()
    assert (
        r8.groupby("kaso")["n_insured_1go"].median()[True]
        < 0.5 * r8.groupby("kaso")["n_insured_1go"].median()[False]
    )


def test_published_anchors_and_largest_cities(panel):
    """The seven profiled municipalities keep population, 第1号, 規模区分 and 過疎; the R6 list keeps its R6
    第1号; the 20 政令市 are the 20 largest; 八王子市 has more than 150,000 elderly."""
    a = panel.attributes.set_index(["fiscal_year", "name", "pref_name"])
    profiles = {  # name: (population, 第1号, class, kaso) — golden_published.csv
        ("富良野市", "北海道"): (19624, 6936, 2, True),
        ("平取町", "北海道"): (4435, 1640, 1, True),
        ("北広島市", "北海道"): (56495, 19464, 3, False),
        ("音威子府村", "北海道"): (601, 202, 1, True),
        ("奥尻町", "北海道"): (2138, 946, 1, True),
        ("矢祭町", "福島県"): (5145, 2109, 1, True),
        ("西会津町", "福島県"): (5408, 2713, 1, True),
    }
    for (name, pref), expected in profiles.items():
        row = a.loc[("R8", name, pref)]
        assert (row["population"], row["n_insured_1go"], row["size_class"], bool(row["kaso"])) == expected
    assert a.loc[("R6", "音威子府村", "北海道"), "n_insured_1go"] == 223
    assert a.loc[("R6", "東大阪市", "大阪府"), "n_insured_1go"] == 134622
    r8 = _r8(panel.attributes).merge(load_master()[["lg_code6", "lg_code5", "kind"]], on="lg_code6")
    designated = designated_cities(r8)
    assert designated.sum() == 20
    assert set(r8.nlargest(20, "n_insured_1go")["lg_code6"]) == set(r8.loc[designated, "lg_code6"])
    assert set(r8.nlargest(20, "population")["lg_code6"]) == set(r8.loc[designated, "lg_code6"])
    assert r8.set_index("name").loc["八王子市", "n_insured_1go"] > 150_000


def test_ratio_and_yearly_decline_are_plausible(panel):
    a = panel.attributes
    ratio = a["n_insured_1go"] / a["population"]
    assert ratio.between(0.2, 0.51).all()  # 西会津町's published figures give 0.502
    r8 = _r8(a)
    r = r8["n_insured_1go"] / r8["population"]
    small = r8["size_class"] == 1
    assert r[small].mean() > r[r8["size_class"] == 5].mean() + 0.08
    assert r[r8["kaso"]].mean() > r[~r8["kaso"]].mean()
    pop = a.pivot(index="lg_code6", columns="fiscal_year", values="population")
    assert (pop["R7"] < pop["R6"]).all() and (pop["R8"] < pop["R7"]).all()
    assert ((pop["R6"] - pop["R8"]) / pop["R6"]).max() < 0.08


def test_ranks_and_previous_year(panel):
    """rank = competition rank of this year's total; 前年度得点/順位 are last year's (R6's from a synthetic R5)."""
    a = panel.attributes.merge(panel.subtotals[["fiscal_year", "lg_code6", "grand_total"]])
    for year in YEARS:
        y = a[a["fiscal_year"] == year]
        assert (y["rank"] == scoring.competition_rank(y["grand_total"])).all()
        assert (y["prev_rank"] == scoring.competition_rank(y["prev_total"])).all()
        assert y["rank"].min() == 1 and y["rank"].max() <= 1741
    total = a.pivot(index="lg_code6", columns="fiscal_year", values="grand_total")
    prev = a.pivot(index="lg_code6", columns="fiscal_year", values="prev_total")
    assert (prev["R7"] == total["R6"]).all() and (prev["R8"] == total["R7"]).all()
    assert prev["R6"].between(0, 800).all() and 0.6 < prev["R6"].corr(total["R6"]) < 0.98
    assert prev["R6"].mean() < total["R6"].mean()


# --- Unions -----------------------------------------------------------------------------------------------


def test_unions_real_one_plus_synthetic_neighbours(panel):
    u = panel.unions
    master = load_master().sort_values("lg_code6").set_index("lg_code6")
    assert list(u.columns[:5]) == [
        "union_insurer_no",
        "union_name",
        "pref_code",
        "member_lg_code6",
        "member_name",
    ]
    assert u["union_insurer_no"].nunique() == 38 and len(u) == 206 and u["member_lg_code6"].is_unique
    real = load_unions()
    daisetsu = u[u["union_name"] == "大雪地区広域連合"]
    assert sorted(daisetsu["member_lg_code6"]) == sorted(real["member_lg_code6"])
    synthetic = u[u["union_name"] != "大雪地区広域連合"]
    assert synthetic["union_name"].str.fullmatch(r"合成第\d{2}広域連合（.+）").all()
    assert (master.loc[u["member_lg_code6"], "kind"].isin(["machi", "mura"])).mean() > 0.9
    for _, g in synthetic.groupby("union_insurer_no"):
        positions = master.index.get_indexer(g["member_lg_code6"])
        assert (np.diff(np.sort(positions)) == 1).all()  # consecutive codes
        assert (g["pref_code"] == g["member_lg_code6"].str[:2]).all() and len(g) >= 3
    numbers = u["union_insurer_no"].unique()
    assert all(codes.is_valid_insurer_no(n) and n[2] == "8" for n in numbers)
    assert not set(n[:5] for n in numbers) & set(master["lg_code5"])


def test_member_rows_keep_their_own_insurer_number(panel):
    a = _r8(panel.attributes).merge(load_master()[["lg_code6", "lg_code5"]], on="lg_code6")
    assert (a["insurer_no"] == a["lg_code5"].map(codes.insurer_no_from_code5)).all()
    members = a["lg_code6"].isin(panel.unions["member_lg_code6"])
    assert (a.loc[members, "insurer_kind"] == "広域連合構成市町村").all()
    assert (a.loc[~members, "insurer_kind"] == "単独").all() and a.loc[~members, "union_name"].isna().all()
    union_of = panel.unions.set_index("member_lg_code6")["union_name"]
    assert (a.loc[members, "union_name"] == a.loc[members, "lg_code6"].map(union_of)).all()


def test_union_members_share_goal_iv(panel, items_wide, cat):
    """Members of one union have the same eight outcome values and the same goal Ⅳ points every year."""
    union_of = panel.unions.set_index("member_lg_code6")["union_insurer_no"]
    v = panel.outcome_values[panel.outcome_values["lg_code6"].isin(union_of.index)]
    spread = v.groupby(["fiscal_year", v["lg_code6"].map(union_of), "measure"])["value"].agg(np.ptp)
    assert (spread == 0).all()
    for year in YEARS:
        iv = cat.loc[(cat["fiscal_year"] == year) & (cat["goal"] == "IV"), "item_id"]
        pts = items_wide[year].loc[union_of.index, iv]
        assert (pts.groupby(union_of).nunique() == 1).all().all()
    singles = panel.outcome_values[~panel.outcome_values["lg_code6"].isin(union_of.index)]
    assert singles.groupby(["fiscal_year", "measure"])["value"].nunique().min() == 1741 - 206


# --- Scoring rules ----------------------------------------------------------------------------------------


def test_items_are_all_or_nothing_and_subtotals_follow_the_rules(panel, cat):
    m = panel.item_points.merge(cat[["item_id", "max_points"]], on="item_id")
    assert ((m["points"] == 0) | (m["points"] == m["max_points"])).all()
    assert len(panel.item_points) == 1741 * cat.groupby("fiscal_year").size().sum()
    # The panel passes only scoring rows to subtotals_from_items; all rows give the same (200 municipalities).
    some = panel.item_points["lg_code6"].isin(load_master()["lg_code6"].iloc[::9])
    recomputed = scoring.subtotals_from_items(panel.item_points[some], cat).reset_index()
    expected = panel.subtotals[panel.subtotals["lg_code6"].isin(recomputed["lg_code6"])].reset_index(
        drop=True
    )
    assert len(recomputed) == 3 * 194
    pd.testing.assert_frame_equal(recomputed, expected, check_dtype=False)


def test_choose_one_branches_are_exclusive_and_iv_copies_identical(items_wide, cat):
    for year in YEARS:
        w = items_wide[year]
        c = cat[(cat["fiscal_year"] == year) & (cat["goal"] == "IV")]
        for grant in ("suishin", "shien"):
            for ind in (1, 3, 5):
                branch = c[(c["grant"] == grant) & (c["indicator_no"] == ind)]
                a = w[branch.loc[branch["branch"] == "ア", "item_id"]].sum(axis=1)
                b = w[branch.loc[branch["branch"] == "イ", "item_id"]].sum(axis=1)
                assert not ((a > 0) & (b > 0)).any()
                assert ((a > 0) | (b > 0)).mean() >= 1218 / 1741  # ア's ① alone covers the top 70 %
        suishin = c.loc[c["grant"] == "suishin", "item_id"]
        shien = suishin.str.replace("-suishin-", "-shien-")
        assert set(shien) == set(c.loc[c["grant"] == "shien", "item_id"])
        assert (w[suishin.tolist()].to_numpy() == w[shien.tolist()].to_numpy()).all()


def test_indicator_9_is_capped_and_activity_bands_are_nested(items_wide, cat):
    for year in YEARS:
        w = items_wide[year]
        c = cat[cat["fiscal_year"] == year]
        ind9 = c[
            (c["grant"] == "shien")
            & (c["goal"] == "I")
            & (c["group"] == "katsudo")
            & (c["indicator_no"] == 9)
        ]
        total9 = w[ind9["item_id"]].sum(axis=1)
        assert total9.max() == 4 and (total9 == 4).sum() > 50  # the cap binds for some
        for (grant, goal, ind, branch), g in c[c["group"] == "katsudo"].groupby(
            ["grant", "goal", "indicator_no", "branch"]
        ):
            if (g["sub_branch"] == "").all():
                continue
            held = w[g["item_id"]].to_numpy() > 0  # ①..④ in order
            assert (held[:, 1:] <= held[:, :-1]).all(), (year, grant, goal, ind, branch)
        band = c[
            (c["grant"] == "suishin")
            & (c["goal"] == "I")
            & (c["group"] == "katsudo")
            & (c["indicator_no"] == 1)
        ]
        held = w[band["item_id"]].to_numpy() > 0  # ア..エ = 上位7/5/3/1割
        assert (held[:, 1:] <= held[:, :-1]).all()
        np.testing.assert_allclose(held.mean(axis=0), band["share_scoring"], atol=1e-12)


# --- Persistence ------------------------------------------------------------------------------------------


def test_scores_persist_from_year_to_year(panel, items_wide, cat):
    total = panel.subtotals.pivot(index="lg_code6", columns="fiscal_year", values="grand_total")
    assert total["R6"].corr(total["R7"]) >= 0.7 and total["R7"].corr(total["R8"]) >= 0.7
    # Item level: taisei items present in both years agree far more often than independent draws would.
    phis = []
    for item in cat.loc[(cat["fiscal_year"] == "R7") & (cat["group"] == "taisei"), "item_id"]:
        nxt = "R8" + item[2:]
        if nxt in items_wide["R8"].columns:
            x, y = items_wide["R7"][item] > 0, items_wide["R8"][nxt] > 0
            if 0.05 < x.mean() < 0.95:
                phis.append(np.corrcoef(x, y)[0, 1])
    assert len(phis) > 30 and np.mean(phis) > 0.5


# --- The planted outcome model ----------------------------------------------------------------------------


def _regressors(panel, year: str) -> pd.DataFrame:
    f = panel.subtotals[panel.subtotals["fiscal_year"] == year][["lg_code6", "all_taisei", "all_katsudo"]]
    a = panel.attributes[panel.attributes["fiscal_year"] == year]
    return a[["lg_code6", "population", "kaso", "n_insured_1go", "union_name"]].merge(f, on="lg_code6")


def test_outcome_values_follow_the_planted_model(panel):
    """Non-union municipalities: (value − systematic part) / σᵢ is standard normal, and a weighted least
    squares of measures 2 and 4 (independent noise) on the true regressors with prefecture dummies, pooled
    over the three years (fresh noise every year), covers beta_taisei and beta_katsudo in their 95 %
    intervals. σᵢ is known, so the covariance is (XᵀWX)⁻¹ with W = 1/σᵢ²."""
    truth = panel.truth
    prefs = [f"{k:02d}" for k in range(1, 48)]
    X, y, w = [], [], []
    for year in YEARS:
        f = _regressors(panel, year)
        f = f[f["union_name"].isna()].reset_index(drop=True)
        base = systematic_part(f, truth["pref_effect"])
        sd = noise_sd(f["n_insured_1go"].to_numpy(float))
        v = panel.outcome_values[panel.outcome_values["fiscal_year"] == year]
        v = v.pivot(index="lg_code6", columns="measure", values="value").loc[f["lg_code6"]]
        z = (v.to_numpy() - base[:, None]) / sd[:, None]
        assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
        dummies = (f["lg_code6"].str[:2].to_numpy()[:, None] == np.array(prefs)[None, :]).astype(float)
        design = np.column_stack(
            [f["all_taisei"], f["all_katsudo"], np.log(f["population"]), f["kaso"].astype(float), dummies]
        )
        for m in ("2", "4"):
            X.append(design)
            y.append(v[m].to_numpy())
            w.append(1 / sd**2)
    X, y, w = np.vstack(X), np.concatenate(y), np.concatenate(w)
    xtwx = X.T @ (X * w[:, None])
    beta = np.linalg.solve(xtwx, X.T @ (w * y))
    se = np.sqrt(np.diag(np.linalg.inv(xtwx)))
    for j, key in enumerate(("beta_taisei", "beta_katsudo")):
        assert abs(beta[j] - truth[key]) <= 1.96 * se[j], (key, beta[j], se[j])
    assert se[1] < truth["beta_katsudo"] / 3  # the slope is clearly identified
    u = np.array([truth["pref_effect"][p] for p in prefs])
    assert np.corrcoef(beta[4:], u)[0, 1] > 0.5  # the dummies find the drawn prefecture effects (noisily)


def test_truth_file_holds_the_planted_relationship(written, panel):
    out, _ = written
    t = json.loads((out / "planted_truth_合成データ.json").read_text("utf-8"))
    for key, value in truth_mod.PLANTED.items():
        assert t[key] == value
    assert sorted(t["pref_effect"]) == [f"{k:02d}" for k in range(1, 48)]
    assert abs(np.std(list(t["pref_effect"].values())) - truth_mod.PLANTED["pref_sd"]) < 0.1
    assert set(t["noise_corr_branches"]) == set(YEARS)
    assert all(0 <= r <= 1 for y in t["noise_corr_branches"].values() for r in y.values())
    assert t == json.loads(json.dumps(panel.truth))


# --- The files --------------------------------------------------------------------------------------------


def test_results_workbooks_in_mhlw_layout(written, panel):
    out, _ = written
    sheets = {year: _sheet(out / results_file(year)) for year in ("R6", "R7")}
    for year, rows in sheets.items():
        assert rows[0][0] == layout.title(year, synthetic=True) and "【合成データ】" in rows[0][0]
        assert len(rows) == layout.HEADER_ROWS + 1741 + 38
        labels = [rows[1][j] for j in range(len(layout.LEADING_COLUMNS[year]))]
        assert labels == [layout.ATTRIBUTES[k].label for k in layout.LEADING_COLUMNS[year]]
        assert ("規模区分" in labels) == (year != "R6")
        data = rows[layout.HEADER_ROWS :]
        assert [r[0] for r in data] == list(range(1, 1780))  # 通し番号, file order
        unions = [r for r in data if r[2] == layout.INSURER_KIND_UNION]
        assert len(unions) == 38 and all(all(v == "" for v in r[len(labels) :]) for r in unions)
        assert {r[3] for r in unions} == set(panel.unions["union_insurer_no"])
    # 通し番号 is stable across years
    key = lambda rows: [(r[0], r[3]) for r in rows[layout.HEADER_ROWS :]]  # noqa: E731
    assert key(sheets["R6"]) == key(sheets["R7"])


def test_outcome_workbook_and_union_csv(written, panel):
    out, _ = written
    rows = _sheet(out / outcome_file("R8"))
    assert "【合成データ】" in rows[0][0] and len(rows) == 2 + 1741
    header = rows[1]
    assert header[:3] == [layout.ATTRIBUTES[k].label for k in layout.OUTCOME_ID_COLUMNS]
    values = pd.DataFrame([r[3:] for r in rows[2:]], columns=header[3:], index=[r[0] for r in rows[2:]])
    daisetsu = panel.unions.loc[panel.unions["union_name"] == "大雪地区広域連合", "member_lg_code6"]
    insurers = [codes.insurer_no_from_code5(c[:5]) for c in daisetsu]
    assert values.loc[insurers].nunique().eq(1).all()
    csv = pd.read_csv(out / "広域連合構成市町村_合成データ.csv", dtype=str)
    assert list(csv.columns) == [
        "union_insurer_no",
        "union_name",
        "pref_code",
        "member_lg_code6",
        "member_name",
    ]
    assert len(csv) == 206 and csv["member_lg_code6"].str.fullmatch(r"\d{6}").all()
    assert all("合成データ" in name for name in demo_files())


def test_report_prints_a_readable_table(report):
    text = report.to_string()
    assert text.startswith("【合成データ】較正表")
    assert "R7   grand_total" in text and "count:size_class=1" in text
    assert "[" not in text  # printed through rich, where [..] would be taken for markup
    assert math.isclose(
        report.table.query("metric == 'mean:grand_total' and fiscal_year == 'R7'")["target"].item(),
        434.987938,
    )
