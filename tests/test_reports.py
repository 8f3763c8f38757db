"""The report templates, executed for a few entities on the synthetic panel: glued values against the library.

Entities: a designated city (札幌市), a village (音威子府村), a 広域連合 member town (東川町, 大雪地区広域連合) and
a Tokyo ward (千代田区), plus their prefectures, the national page and the outcomes chapter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kofukin.paths import ProjectPaths
from kofukin.scoring import competition_rank
from kofukin.standalone import glued_values

CODES = {"city": "011002", "village": "014702", "union_member": "014583", "ward": "131016"}
YEAR = "R8"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book(tmp_path_factory, synthetic_panel):
    """A scratch project with the demo data ingested and the reports of :data:`CODES` executed."""
    from kofukin.ingest import ingest_paths
    from kofukin.pipeline import Selection, run_report_stage
    from kofukin.synthetic import write_demo_data

    root = tmp_path_factory.mktemp("book")
    paths = ProjectPaths(root)
    write_demo_data(paths.demo_raw, panel=synthetic_panel)
    ingest_paths([paths.raw], paths.processed)
    old = os.environ.get("KOFUKIN_ROOT")
    summary = run_report_stage(
        paths, Selection(municipalities=list(CODES.values())), year=YEAR, workers=2, progress=False
    )
    yield paths, summary
    if old is None:
        os.environ.pop("KOFUKIN_ROOT", None)
    else:
        os.environ["KOFUKIN_ROOT"] = old


def glued(nb_path: Path) -> dict[str, str]:
    """Every glued value of an executed notebook, as the text/plain (or markdown) the book renders."""
    import nbformat

    return {k: v for k, (_, v) in glued_values(nbformat.read(nb_path, as_version=4)).items()}


def test_every_report_executed(book):
    paths, summary = book
    assert summary.failed == 0, summary.failures
    assert summary.executed == 2 + 2 + 4  # national, outcomes, 北海道 and 東京都, four municipalities
    for code in CODES.values():
        assert (paths.book / "municipalities" / f"{code}.ipynb").exists()


@pytest.mark.parametrize("kind", list(CODES))
def test_glued_totals_and_ranks_match_an_independent_computation(book, kind):
    paths, _ = book
    code = CODES[kind]
    g = glued(paths.book / "municipalities" / f"{code}.ipynb")
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    attrs = pd.read_parquet(paths.processed / "attributes.parquet")
    year = sub[sub["fiscal_year"] == YEAR].merge(
        attrs[["fiscal_year", "lg_code6"]], on=["fiscal_year", "lg_code6"]
    )
    own = year.set_index("lg_code6").loc[code]
    # Competition rank by hand: 1 + number of municipalities with a strictly higher total.
    higher = int((year["grand_total"] > own["grand_total"]).sum())
    pref = year[year["lg_code6"].str[:2] == code[:2]]
    assert g["code"] == code
    assert int(g["grand_total"]) == own["grand_total"]
    assert int(g["suishin_score"]) == own["suishin_total"]
    assert int(g["shien_score"]) == own["shien_total"]
    assert int(g["rank_national"]) == higher + 1
    assert int(g["n_national"]) == 1741
    assert int(g["rank_pref"]) == int((pref["grand_total"] > own["grand_total"]).sum()) + 1
    assert int(g["n_pref"]) == len(pref)
    assert float(g["national_mean"]) == pytest.approx(round(year["grand_total"].mean(), 1))
    assert f"{int(own['grand_total'])}点" in g["headline_md"]
    assert f"{higher + 1:,}位／1,741" in g["headline_md"]


def test_search_skips_the_item_tables_and_indexes_the_rest(book):
    """Pagefind leaves out the tables listed item by item (the same labels on every page) and indexes the
    summary, rank, what-if and peer tables: their wrappers say so in the executed page."""
    import nbformat

    from kofukin.report import MUNICIPALITY_ITEM_TABLES

    paths, _ = book
    nb = nbformat.read(paths.book / "municipalities" / f"{CODES['city']}.ipynb", as_version=4)
    tables = {k: v for k, (kind, v) in glued_values(nb).items() if k.startswith("table_") and kind == "html"}
    assert {"table_scores", "table_peers", "table_gains", "table_bands"} <= set(tables)
    for key, html in tables.items():
        is_item_table = key.removeprefix("table_") in MUNICIPALITY_ITEM_TABLES
        has_rows = "<table" in html
        assert ("data-pagefind-ignore" in html) == (is_item_table and has_rows), key
        if is_item_table and has_rows:
            assert "<th>項目</th>" in html or "<th>活動指標</th>" in html, key


def test_union_member_reports_its_union_outcome(book):
    paths, _ = book
    g = glued(paths.book / "municipalities" / f"{CODES['union_member']}.ipynb")
    assert "大雪地区広域連合" in g["outcome_md"]
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    r8 = sub[sub["fiscal_year"] == YEAR].set_index("lg_code6")["suishin_IV"]
    members = ["014583", "014591", "014532"]
    assert r8.loc[members].nunique() == 1  # members share their goal Ⅳ points
    assert float(g["outcome_observed"]) == pytest.approx(float(r8.loc[CODES["union_member"]]))


def test_prefecture_and_national_pages(book):
    paths, _ = book
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    r8 = sub[sub["fiscal_year"] == YEAR]
    n = glued(paths.book / "national.ipynb")
    assert float(n["mean_total"]) == pytest.approx(round(r8["grand_total"].mean(), 1))
    assert int(n["top_score"]) == r8["grand_total"].max()
    t = glued(paths.book / "prefectures" / "13.ipynb")
    tokyo = r8[r8["lg_code6"].str.startswith("13")]
    assert int(t["n_municipalities"]) == 62
    assert float(t["pref_mean"]) == pytest.approx(round(tokyo["grand_total"].mean(), 1))
    html = (paths.book / "prefectures" / "13.ipynb").read_text(encoding="utf-8")
    assert "../municipalities/131016.html" in html


def test_outcomes_chapter_recovers_the_planted_truth(book):
    paths, _ = book
    nb = json.loads((paths.book / "outcomes.ipynb").read_text(encoding="utf-8"))
    text = json.dumps(nb, ensure_ascii=False)
    assert "埋め込んだ真値" in text
    assert "いいえ" not in text.split("埋め込んだ真値", 1)[1].split("</table>", 1)[0]


def test_competition_rank_helper_agrees():
    assert competition_rank(pd.Series([10, 9, 9, 7])).tolist() == [1, 2, 2, 4]


def test_templates_under_nbval_lax(book):
    """nbval re-executes the executed reports in a fresh kernel: every cell must run without error."""
    paths, _ = book
    notebooks = [str(paths.book / "municipalities" / f"{c}.ipynb") for c in (CODES["village"], CODES["ward"])]
    env = {**os.environ, "KOFUKIN_ROOT": str(paths.root), "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(paths.root),
            *notebooks,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths.root,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "passed" in res.stdout


def _kofukin(paths: ProjectPaths, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KOFUKIN_ROOT": str(paths.root)}
    return subprocess.run(
        [sys.executable, "-m", "kofukin.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_summary_cli_json_matches_an_independent_rank(book):
    paths, _ = book
    res = _kofukin(paths, "summary", "埼玉県上尾市", "--year", "R7", "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    r7 = sub[sub["fiscal_year"] == "R7"].set_index("lg_code6")
    own = r7.loc["112194"]
    saitama = r7[r7.index.str.startswith("11")]
    assert got["lg_code6"] == "112194" and got["name"] == "上尾市" and got["pref_name"] == "埼玉県"
    assert got["fiscal_year"] == "R7"
    assert (got["suishin_total"], got["shien_total"], got["grand_total"]) == (
        own["suishin_total"],
        own["shien_total"],
        own["grand_total"],
    )
    assert got["rank_national"] == int((r7["grand_total"] > own["grand_total"]).sum()) + 1
    assert got["n_national"] == 1741
    assert got["rank_pref"] == int((saitama["grand_total"] > own["grand_total"]).sum()) + 1
    assert got["n_pref"] == 63
    # The same municipality by 5-digit code and by insurer number (check digit 2,1,2,1,2).
    assert json.loads(_kofukin(paths, "summary", "11219", "--year", "R7", "--json").stdout) == got


def test_summary_cli_ambiguous_name_lists_candidates(book):
    paths, _ = book
    res = _kofukin(paths, "summary", "府中市")
    assert res.returncode == 2
    assert "132063" in res.stderr and "342084" in res.stderr


def test_report_cli_reuses_the_current_book_page_and_runs_other_years(book):
    """``kofukin report`` converts the book's notebook when its input hash is current (no kernel), and runs
    the template for a year the book has not executed; both HTML files quote the glued grand total."""
    from kofukin.pipeline import current_book_report

    paths, _ = book
    code = CODES["city"]
    page = paths.book / "municipalities" / f"{code}.ipynb"
    assert current_book_report(paths, code, YEAR) == page
    assert current_book_report(paths, code, "R7") is None  # the book ran R8 only
    total = glued(page)["grand_total"]
    res = _kofukin(paths, "report", code, "--out", str(paths.root / "out"))
    assert res.returncode == 0, res.stderr
    assert "本の実行済みノートブックから" in res.stdout
    html = (paths.root / "out" / f"{code}_{YEAR}.html").read_text(encoding="utf-8")
    assert f"総合得点は<strong>{total}点</strong>" in html
    r7 = _kofukin(paths, "report", code, "--year", "R7", "--out", str(paths.root / "out"))
    assert r7.returncode == 0, r7.stderr
    assert "本の実行済みノートブックから" not in r7.stdout
    sub = pd.read_parquet(paths.processed / "subtotals.parquet")
    r7_total = int(sub[(sub["fiscal_year"] == "R7") & (sub["lg_code6"] == code)]["grand_total"].iloc[0])
    r7_html = (paths.root / "out" / f"{code}_R7.html").read_text(encoding="utf-8")
    assert f"総合得点は<strong>{r7_total}点</strong>" in r7_html


def test_national_page_compares_with_the_previous_year_only_when_there_is_one(book):
    """R6 has no year before it in scope: the sentence says so instead of leaving a glue key undefined (which
    fails the strict site build)."""
    from kofukin.bookdata import book_data
    from kofukin.report import national_report

    paths, _ = book
    data = book_data(paths.processed)
    r8, r6 = national_report("R8", data), national_report("R6", data)
    r7_mean = round(float(data.panel.loc[data.panel["fiscal_year"] == "R7", "grand_total"].mean()), 1)
    assert r8.glue["prev_md"] == f"前年度（令和7年度）は{r7_mean}点でした。"
    assert r6.glue["prev_md"] == "前年度の評価結果はこのデータにありません。"
    assert "prev_mean_total" not in r6.glue
