"""The reference data in ``data/reference/``: provenance hashes, loaders, and the facts the README claims.

These tests pin real published values (北塩原村's totals, MHLW's 26-column maxima, the budget tables),
so a hand edit of a reference file — or a change to the scoring rules — that breaks one fails here first.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kofukin import layout, reference, scoring, vouch
from kofukin.paths import REFERENCE_DIR
from kofukin.scoring import FILE_SUBTOTAL_KEYS, FISCAL_YEARS, TARGET_KEYS, TARGET_MAX

PROVENANCE = REFERENCE_DIR / "provenance.yml"
# Files that describe the others and therefore carry no hash of their own.
UNHASHED = {"README.md", "provenance.yml"}
REQUIRED_FIELDS = frozenset(
    ("file", "producer", "title", "published", "source", "accessed", "licence", "citation", "sha256")
)


# --- provenance --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provenance() -> list[dict]:
    with PROVENANCE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)["files"]


def _sha256(name: str) -> str:
    return hashlib.sha256((REFERENCE_DIR / name).read_bytes()).hexdigest()


def test_every_reference_file_has_exactly_one_provenance_record(provenance: list[dict]) -> None:
    recorded = [r["file"] for r in provenance]
    assert len(recorded) == len(set(recorded)), f"duplicate records: {sorted(recorded)}"
    on_disk = {p.name for p in REFERENCE_DIR.iterdir() if p.is_file() and p.name not in UNHASHED}
    unrecorded = sorted(on_disk - set(recorded))
    assert not unrecorded, f"files without a provenance record: {unrecorded}"
    assert set(recorded) - on_disk == set(), f"records without a file: {sorted(set(recorded) - on_disk)}"


def test_provenance_records_are_complete(provenance: list[dict]) -> None:
    for rec in provenance:
        missing = REQUIRED_FIELDS - rec.keys()
        assert not missing, f"{rec['file']}: missing {sorted(missing)}"
        assert rec["citation"].startswith("出典："), f"{rec['file']}: citation must be a Japanese 出典 line"
        assert {"name", "url"} <= rec["licence"].keys(), f"{rec['file']}: licence needs name and url"
        assert rec["licence"]["url"].startswith("https://"), rec["file"]
        assert rec["source"], f"{rec['file']}: no source"
        for src in rec["source"]:
            assert src.keys() & {"url", "repository", "document"}, f"{rec['file']}: source without a locator"
            if "commit" in src and re.fullmatch(r"[0-9a-f]+", src["commit"]):
                assert len(src["commit"]) == 40, f"{rec['file']}: abbreviated commit {src['commit']}"
        assert rec["accessed"] in ("2026-11-22", "not applicable"), rec["file"]


def test_sha256_of_every_file_matches_its_record(provenance: list[dict]) -> None:
    changed = {r["file"]: _sha256(r["file"]) for r in provenance if _sha256(r["file"]) != r["sha256"]}
    assert not changed, (
        "reference files changed without updating data/reference/provenance.yml "
        f"(new sha256 shown): {changed}"
    )


def test_mhlw_figures_are_attributed_under_pdl(provenance: list[dict]) -> None:
    by_file = {r["file"]: r for r in provenance}
    for name in ("indicators.csv", "indicator_subtotals.csv", "golden_kitashiobara.csv", "budgets.csv"):
        rec = by_file[name]
        assert "PDL1.0" in rec["licence"]["name"]
        assert (
            rec["licence"]["url"] == "https://www.digital.go.jp/resources/open_data/public_data_license_v1.0"
        )
        assert "（厚生労働省）" in rec["citation"] and rec["citation"].endswith("を加工して作成")


# --- loaders -----------------------------------------------------------------------------------------------


def test_loaders_validate_and_have_the_documented_sizes() -> None:
    assert len(reference.load_master()) == 1741
    assert len(reference.load_prefectures()) == 47
    cat = reference.load_catalogue()
    assert len(cat) == 892
    assert cat.groupby("fiscal_year").size().to_dict() == {"R6": 296, "R7": 297, "R8": 299}
    subs = reference.load_subtotal_catalogue()
    assert subs.groupby("fiscal_year").size().to_dict() == {"R6": 23, "R7": 23, "R8": 23}
    assert set(subs["target"]) == set(FILE_SUBTOTAL_KEYS)
    assert len(reference.load_golden_kitashiobara()) == 961
    assert len(reference.load_published()) == 1453
    assert len(reference.load_budgets()) == 32
    assert len(reference.load_unions()) == 3
    assert len(reference.load_crosswalk()) == 1069


@pytest.fixture
def reference_copy(tmp_path: Path) -> Path:
    for name in reference.VALIDATED:
        shutil.copy(REFERENCE_DIR / name, tmp_path / name)
    return tmp_path


def _break_share(directory: Path) -> None:
    """The second catalogue row's 該当率 no longer equals its count / 1741."""
    path = directory / "indicators.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[1, "share_scoring"] = "0.5" if frame.loc[1, "share_scoring"] != "0.5" else "0.25"
    frame.to_csv(path, index=False)


def test_a_broken_reference_table_is_refused_with_its_file_and_check(reference_copy: Path) -> None:
    reference.validate_reference(reference_copy)  # the bundled tables pass
    _break_share(reference_copy)
    with pytest.raises(reference.ReferenceDataError) as e:
        reference.validate_reference(reference_copy)
    assert str(e.value).startswith(f"{reference_copy / 'indicators.csv'}: ")
    assert "share_scoring = n_scoring / 1741" in str(e.value)


def test_a_vouch_covers_exactly_the_files_it_names(reference_copy: Path, monkeypatch) -> None:
    """A kernel skips the schemas only for the content its command validated: an edit made after the vouch
    changes the fingerprint, so the edited file is checked (and refused) again."""
    broken_dir = reference_copy
    _break_share(broken_dir)
    broken = reference._read_catalogue(broken_dir)
    assert vouch.reference_fingerprint(broken_dir) != vouch.reference_fingerprint()
    monkeypatch.setenv(vouch.VOUCHED_ENV, vouch.reference_fingerprint())
    assert reference._checked("indicators.csv", broken) is broken  # vouched: not checked here
    monkeypatch.setenv(vouch.VOUCHED_ENV, vouch.reference_fingerprint(broken_dir))
    with pytest.raises(reference.ReferenceDataError, match="share_scoring"):
        reference._checked("indicators.csv", broken)


def test_a_vouched_report_kernel_never_imports_pandera() -> None:
    """What the vouch is for: the report kernel's imports and data load leave pandera (and hypothesis, which
    pandera imports) out, ~0.3 s of every cold ``kofukin report``. A fresh interpreter, as a kernel is."""
    code = (
        "import sys, kofukin.display, kofukin.figures, kofukin.report, kofukin.reference as r;"
        "r.load_master(); r.load_catalogue();"
        "print(sorted(m for m in ('pandera', 'hypothesis') if m in sys.modules))"
    )
    env = {**os.environ, vouch.VOUCHED_ENV: vouch.reference_fingerprint()}
    vouched = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    env.pop(vouch.VOUCHED_ENV)
    unvouched = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert vouched.stdout.strip() == "[]"
    assert "pandera" in unvouched.stdout


def test_master_kind_and_prefecture_counts() -> None:
    master = reference.load_master()
    assert master["kind"].value_counts().to_dict() == {"shi": 792, "machi": 743, "mura": 183, "ku": 23}
    per_pref = master.groupby("pref_code").size()
    assert per_pref[["01", "07", "11", "13", "47"]].tolist() == [179, 59, 63, 62, 41]
    prefs = reference.load_prefectures().set_index("pref_code")["pref_name"]
    assert (master["pref_name"] == master["pref_code"].map(prefs)).all()


def test_published_prefecture_group_sizes_match_the_master() -> None:
    """Every 県内 ranking size in the published figures equals the master's count for that prefecture."""
    pub = reference.load_published()
    sizes = pub[pub["measure"].str.startswith("n_ranked_pref:")]
    counts = reference.load_master().groupby("pref_name").size()
    assert len(sizes) == 21
    assert (sizes["value"] == sizes["pref_name"].map(counts)).all()
    assert set(sizes["value"]) == {179, 59, 63}


# --- the catalogue -----------------------------------------------------------------------------------------


def test_every_item_is_all_or_nothing() -> None:
    cat = reference.load_catalogue()
    p = cat["share_scoring"]
    assert ((cat["national_mean"] - cat["max_points"] * p).abs() < 1e-9).all()
    assert ((cat["national_sd"] - cat["max_points"] * (p * (1 - p)).pow(0.5)).abs() < 1e-9).all()


def test_subtotal_maxima_follow_mhlw_26_column_pattern() -> None:
    assert [TARGET_MAX[k] for k in TARGET_KEYS] == [
        64, 36, 100, 68, 32, 100, 64, 36, 100, 100, 400,
        52, 48, 100, 64, 36, 100, 68, 32, 100, 100, 400,
        380, 220, 200, 800,
    ]  # fmt: skip
    subs = reference.load_subtotal_catalogue()
    for year in FISCAL_YEARS:
        got = subs[subs["fiscal_year"] == year].set_index("target")["max_points"]
        assert got.to_dict() == {k: TARGET_MAX[k] for k in FILE_SUBTOTAL_KEYS}, year


def test_full_marks_reach_every_maximum_under_the_scoring_rules() -> None:
    """Items sum to 160 in goal Ⅳ and to 57 in 支援Ⅰ(ⅱ); 択一 and the cap bring them to 100 and 48."""
    cat = reference.load_catalogue()
    items = cat.assign(lg_code6="999999", points=cat["max_points"])
    wide = scoring.subtotals_from_items(items, cat)
    for year in FISCAL_YEARS:
        assert wide.loc[(year, "999999")].to_dict() == TARGET_MAX, year
    raw = cat.groupby(["fiscal_year", "grant", "goal", "group"])["max_points"].sum()
    assert raw[("R8", "suishin", "IV", "outcome")] == 160
    assert raw[("R8", "shien", "I", "katsudo")] == 57


def _item_target(cat: pd.DataFrame) -> pd.Series:
    goal = cat["grant"] + "_" + cat["goal"]
    return goal.where(cat["goal"] == "IV", goal + "_" + cat["group"])


def _members(target: str) -> list[str]:
    """The item-level targets (``grant_goal_group``, ``grant_IV``) that make up one of the 23 columns."""
    parts = target.split("_")
    if target == "grand_total":
        return [m for g in scoring.GRANTS for m in _members(f"{g}_total")]
    if parts[1] == "total":
        return [m for goal in scoring.GOALS for m in _members(f"{parts[0]}_{goal}")]
    if len(parts) == 2 and parts[1] != "IV":
        return [f"{target}_taisei", f"{target}_katsudo"]
    return [target]


def test_sum_of_item_national_means_equals_each_subtotal_mean() -> None:
    """Holds under the rules: the file records 択一 points only in the counting branch, and post-cap."""
    cat = reference.load_catalogue()
    item_means = cat.assign(t=_item_target(cat)).groupby(["fiscal_year", "t"])["national_mean"].sum()
    subs = reference.load_subtotal_catalogue()
    assert len(subs) == 69
    for row in subs.itertuples():
        expected = sum(item_means[(row.fiscal_year, m)] for m in _members(row.target))
        assert math.isclose(expected, row.national_mean, abs_tol=1e-9), (row.fiscal_year, row.target)


def test_goal_iv_shien_copy_is_identical_to_suishin() -> None:
    cat = reference.load_catalogue()
    cols = ["fiscal_year", "indicator_no", "branch", "sub_branch", "max_points", "n_scoring", "scoring_rule"]
    s = cat[(cat["goal"] == "IV") & (cat["grant"] == "suishin")][cols].reset_index(drop=True)
    d = cat[(cat["goal"] == "IV") & (cat["grant"] == "shien")]
    assert d["outcome_duplicate"].all() and not cat.loc[cat["goal"] != "IV", "outcome_duplicate"].any()
    pd.testing.assert_frame_equal(s, d[cols].reset_index(drop=True))
    assert len(s) == 96  # 32 items per year


# --- 北塩原村 (the golden municipality) ---------------------------------------------------------------------


def _golden_items() -> pd.DataFrame:
    g = reference.load_golden_kitashiobara()
    items = g[g["row_type"] == "item"].copy()
    base = (
        items["fiscal_year"] + "-" + items["grant"] + "-" + items["goal"] + "-" + items["group"] + "-"
        + items["indicator_no"] + "-" + items["branch"]
    )  # fmt: skip
    items["item_id"] = base.where(items["sub_branch"] == "", base + "-" + items["sub_branch"])
    items["lg_code6"] = "074021"
    return items


def _golden_subtotals() -> pd.DataFrame:
    g = reference.load_golden_kitashiobara()
    subs = g[g["row_type"] == "subtotal"].copy()
    level = subs["group"]
    subs["target"] = (subs["grant"] + "_" + subs["goal"] + "_" + level).mask(
        level == "goal_total", subs["grant"] + "_" + subs["goal"]
    )
    subs.loc[level == "grant_total", "target"] = subs["grant"] + "_total"
    subs.loc[level == "grand_total", "target"] = "grand_total"
    return subs


def test_golden_items_map_onto_the_catalogue() -> None:
    items = _golden_items()
    cat = reference.load_catalogue().set_index("item_id")
    assert len(items) == 892 and items["item_id"].is_unique
    assert set(items["item_id"]) == set(cat.index)
    assert (items["max_points"].to_numpy() == cat.loc[items["item_id"], "max_points"].to_numpy()).all()
    columns = items["source_column"].astype("int64").to_numpy()
    assert (columns == cat.loc[items["item_id"], "source_column"].to_numpy()).all()
    # the village never has partial points
    assert ((items["points"] == 0) | (items["points"] == items["max_points"])).all()


@pytest.mark.parametrize("year,total", [("R6", 295), ("R7", 339), ("R8", 447)])
def test_kitashiobara_items_aggregate_to_its_published_subtotals(year: str, total: int) -> None:
    items = _golden_items()
    cat = reference.load_catalogue()
    wide = scoring.subtotals_from_items(items[items["fiscal_year"] == year], cat)
    got = wide.loc[(year, "074021")]
    published = _golden_subtotals()
    published = published[published["fiscal_year"] == year].set_index("target")["points"]
    assert len(published) == 23
    mismatches = {k: (int(got[k]), int(v)) for k, v in published.items() if got[k] != v}
    assert not mismatches, f"{year} computed vs published: {mismatches}"
    assert got["grand_total"] == total
    assert got["all_taisei"] + got["all_katsudo"] + got["all_outcome"] == total


def test_kitashiobara_known_goal_iv_points() -> None:
    subs = _golden_subtotals()
    iv = subs[subs["target"] == "suishin_IV"].set_index("fiscal_year")["points"]
    assert iv.to_dict() == {"R6": 65, "R7": 70, "R8": 45}


def test_kitashiobara_r8_matches_the_kennai_comparison_in_published_figures() -> None:
    pub = reference.load_published()
    rows = pub[(pub["municipality_name"] == "北塩原村") & pub["measure"].str.startswith("score:")]
    assert len(rows) == 11
    subs = _golden_subtotals()
    r8 = subs[subs["fiscal_year"] == "R8"].set_index("target")["points"]
    for row in rows.itertuples():
        assert r8[row.measure.removeprefix("score:")] == row.value, row.measure


# --- published figures: the 規模区分 correction ------------------------------------------------------------


def _profile(name: str, measure: str) -> float:
    pub = reference.load_published()
    hit = pub[(pub["municipality_name"] == name) & (pub["measure"] == measure) & (pub["fiscal_year"] != "R6")]
    assert len(hit) == 1, (name, measure)
    return float(hit["value"].iloc[0])


@pytest.mark.parametrize(
    "name,population,insured,size_class",
    [
        ("富良野市", 19_624, 6_936, 2),
        ("北広島市", 56_495, 19_464, 3),
        ("平取町", 4_435, 1_640, 1),
        ("矢祭町", 5_145, 2_109, 1),
        ("西会津町", 5_408, 2_713, 1),
    ],
)
def test_size_class_is_defined_by_elderly_insured_not_population(
    name: str, population: int, insured: int, size_class: int
) -> None:
    assert _profile(name, "population") == population
    assert _profile(name, "n_insured_1go") == insured
    assert _profile(name, "size_class") == size_class
    assert layout.size_class_of(insured) == size_class
    assert layout.size_class_of(population) != size_class  # the population reading contradicts the source


def test_r8_size_class_and_kaso_tables_cover_all_municipalities() -> None:
    pub = reference.load_published()
    n = pub[(pub["measure"] == "n_municipalities") & pub["municipality_name"].str.startswith("[")]
    counts = n.set_index("municipality_name")["value"]
    sizes = [counts[f"[size_class={k}]"] for k in range(1, 6)]
    assert sizes == [451, 535, 608, 83, 64] and sum(sizes) == 1741
    assert counts["[kaso=1]"] + counts["[kaso=0]"] == 1741


# --- budgets ------------------------------------------------------------------------------------------------


def _budget(year: str, grant: str, level: str, frame: str) -> int:
    b = reference.load_budgets()
    key = b["fiscal_year"] + "/" + b["grant"] + "/" + b["level"] + "/" + b["frame"]
    hit = b[key == f"{year}/{grant}/{level}/{frame}"]
    assert len(hit) == 1, (year, grant, level, frame)
    return int(hit["amount_kyen"].iloc[0])


def test_budget_frames_add_up_to_published_totals() -> None:
    assert _budget("R7", "suishin", "municipal", "total") == 9_549_149 == 7_220_000 + 1_805_000 + 524_149
    assert _budget("R8", "suishin", "municipal", "total") == 9_022_000 == 6_718_400 + 1_679_600 + 624_000
    for year in ("R7", "R8"):
        assert _budget(year, "shien", "municipal", "total") == 19_000_000 == 18_050_000 + 950_000
        assert _budget(year, "shien", "prefectural", "total") == 1_000_000
    b = reference.load_budgets()
    published = b[(b["status"] == "published") & (b["level"] != "all")]
    key = ["fiscal_year", "grant", "level"]
    parts = published[published["frame"] != "total"].groupby(key)["amount_kyen"].sum()
    totals = published[published["frame"] == "total"].set_index(key)["amount_kyen"]
    assert len(totals) == 8
    assert parts.sort_index().equals(totals.sort_index())


def test_budget_totals_match_the_printed_rounded_figures() -> None:
    r7 = _budget("R7", "suishin", "municipal", "total") + _budget("R7", "suishin", "prefectural", "total")
    assert r7 == 10_051_735  # 「101億円」
    r8 = {
        g: _budget("R8", g, "municipal", "total") + _budget("R8", g, "prefectural", "total")
        for g in ("suishin", "shien")
    }
    assert r8 == {"suishin": 9_500_000, "shien": 20_000_000}  # 「95億円」「200億円」, 295億円 in all
    assert _budget("R6", "suishin", "all", "total") == 10_000_000
    b = reference.load_budgets()
    assert set(b.loc[b["status"] == "assumed", "fiscal_year"]) == {"R6"}
