"""The site: generated toc, _config.yml invariants, the build-time banner and facts, and the atomic build.

The fast tests need no Sphinx. The ``slow`` ones build a stand-in book (two prefectures, six municipalities) in
a scratch project root three times (~20 s): a good build, a build broken by one missing reference (must fail
in nitpicky mode and leave the first site in place), and a rebuild after the manifest changed.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kofukin import site, sphinx_ext, toc
from kofukin.export import write_tables
from kofukin.paths import SOURCE_ROOT, ProjectPaths
from kofukin.reference import load_master, load_prefectures

CONFIG = yaml.safe_load((SOURCE_ROOT / "_config.yml").read_text(encoding="utf-8"))


# --- table of contents --------------------------------------------------------------------------------------


def test_full_toc_is_national_then_prefectures_then_municipalities():
    full = toc.toc_dict(toc.master_entries())
    (results,) = [p for p in full["parts"] if p["caption"] == "評価結果"]
    (national,) = results["chapters"]
    assert national["file"] == "book/national"
    prefs = national["sections"]
    assert [p["file"] for p in prefs] == [f"book/prefectures/{c}" for c in load_prefectures()["pref_code"]]
    assert len(prefs) == 47
    master = load_master()
    n = 0
    for p in prefs:
        code = p["file"].rsplit("/", 1)[1]
        munis = [m["file"].rsplit("/", 1)[1] for m in p["sections"]]
        expected = sorted(master.loc[master["pref_code"] == code, "lg_code6"])
        assert munis == expected, (
            f"prefecture {code}: municipalities in code order, each under its prefecture"
        )
        assert all("sections" not in m for m in p["sections"]), "municipalities are leaves"
        n += len(munis)
    assert n == 1741
    docs = toc.toc_docnames(full)
    assert len(docs) == len(set(docs)) == 1 + 2 + 1 + 47 + 1741 + 1 + 5
    assert docs[0] == "book/index"


def test_toc_titles_come_from_the_master():
    full = toc.toc_dict(toc.master_entries())
    national = full["parts"][1]["chapters"][0]
    saitama = next(p for p in national["sections"] if p["file"] == "book/prefectures/11")
    assert saitama["title"] == "埼玉県"
    ageo = next(m for m in saitama["sections"] if m["file"] == "book/municipalities/112194")
    assert ageo["title"] == "上尾市"


def test_committed_toc_equals_a_fresh_generation():
    committed = (SOURCE_ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert committed == toc.full_toc_text(), "stale _toc.yml: run `python -m kofukin.site toc`"


def test_committed_toc_is_valid_for_sphinx_external_toc():
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(SOURCE_ROOT / "_toc.yml")
    assert site_map.root.docname == "book/index"
    assert len(site_map) == 1 + 2 + 1 + 47 + 1741 + 1 + 5


def test_hand_written_chapters_in_the_toc_exist():
    for doc in toc.HAND_WRITTEN_DOCS:
        assert (SOURCE_ROOT / f"{doc}.md").exists(), doc
    on_disk = {f"book/{p.stem}" for p in (SOURCE_ROOT / "book").glob("*.md")}
    assert on_disk == set(toc.HAND_WRITTEN_DOCS), (
        "every hand-written chapter is listed in toc.py (and only those)"
    )


def test_reduced_toc_keeps_present_pages_and_drops_orphans():
    present = {
        *toc.HAND_WRITTEN_DOCS,
        *toc.REQUIRED_GENERATED_DOCS,
        "book/prefectures/11",
        "book/municipalities/112194",
        "book/municipalities/112011",
        "book/municipalities/131016",  # its prefecture page (13) is absent: left out with it
    }
    reduced = toc.toc_dict(toc.master_entries(), present=present)
    docs = toc.toc_docnames(reduced)
    assert "book/municipalities/131016" not in docs
    assert [d for d in docs if d.startswith("book/municipalities/")] == [
        "book/municipalities/112011",
        "book/municipalities/112194",
    ]
    assert set(docs) <= present


def test_prepare_toc_refuses_a_book_without_required_pages(tmp_path):
    paths = ProjectPaths(tmp_path)
    (tmp_path / "book").mkdir()
    for doc in toc.HAND_WRITTEN_DOCS:
        (tmp_path / f"{doc}.md").write_text("# x\n", encoding="utf-8")
    with pytest.raises(site.SiteBuildError, match="book/national"):
        site.prepare_toc(paths, echo=lambda _: None)


# --- _config.yml --------------------------------------------------------------------------------------------


def test_config_never_executes_and_builds_only_toc_files():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["only_build_toc_files"] is True


def test_config_is_japanese_with_a_collapsed_navbar():
    sphinx_config = CONFIG["sphinx"]["config"]
    assert sphinx_config["language"] == "ja"
    theme = sphinx_config["html_theme_options"]
    assert theme["collapse_navbar"] is True, "a flat 1,800-entry sidebar makes the build ~10x slower"
    assert "kofukin.sphinx_ext" in CONFIG["sphinx"]["extra_extensions"]


def test_config_excludes_everything_but_the_book():
    excluded = set(CONFIG["exclude_patterns"])
    assert {".venv", "_build", "data", "src", "tests", "notebooks"} <= excluded


def test_config_has_no_math_extension_that_would_need_a_cdn():
    assert "dollarmath" not in CONFIG["parse"]["myst_enable_extensions"]
    assert "amsmath" not in CONFIG["parse"]["myst_enable_extensions"]


def test_config_passes_jupyter_books_schema():
    from jupyter_book.config import validate_yaml

    messages: list[str] = []
    validate_yaml(CONFIG, print_func=messages.append)
    assert messages == []


# --- banner, footer and facts from the manifest ------------------------------------------------------------


def _manifest(synthetic: dict[str, bool]) -> dict:
    return {
        "package_version": "0.1.0",
        "sources": [
            {"fiscal_year": y, "path": f"data/raw/{y}.xlsx", "sha256": f"{i}" * 64, "synthetic": s}
            for i, (y, s) in enumerate(synthetic.items(), start=1)
        ],
    }


def test_banner_names_exactly_the_synthetic_years():
    m = _manifest({"R6": True, "R7": True, "R8": False})
    assert sphinx_ext.synthetic_years(m) == ["R6", "R7"]
    text = sphinx_ext.banner_html(m)
    assert "合成データ" in text
    assert "令和6年度（R6）・令和7年度（R7）の市町村別得点は" in text
    assert "令和8年度（R8）は厚生労働省の評価結果を加工した数値" in text


def test_banner_for_an_all_synthetic_panel():
    text = sphinx_ext.banner_html(_manifest({"R6": True, "R7": True, "R8": True}))
    assert "令和6年度（R6）・令和7年度（R7）・令和8年度（R8）" in text
    assert "厚生労働省の評価結果を加工" not in text


def test_no_banner_for_real_data_and_a_warning_without_manifest():
    assert sphinx_ext.banner_html(_manifest({"R6": False, "R7": False, "R8": False})) == ""
    assert "来歴が不明" in sphinx_ext.banner_html(None)


def test_attribution_follows_the_public_data_licence():
    m = _manifest({"R6": True, "R7": False, "R8": False})
    text = sphinx_ext.attribution_text(m)
    assert (
        "出典：「令和7年度保険者機能強化推進交付金等（市町村分）に係る評価結果」、"
        "「令和8年度保険者機能強化推進交付金等（市町村分）に係る評価結果」（厚生労働省）を加工して作成"
    ) in text
    assert "令和6年度（R6）の市町村別得点は合成データ" in text


def test_footer_carries_code_version_and_a_data_fingerprint():
    m = _manifest({"R6": True, "R7": False})
    footer = sphinx_ext.footer_html(m, "abc123def456")
    assert "kofukin " in footer and 'git <span class="kofukin-footer__commit">abc123def456</span>' in footer
    deferred = sphinx_ext.footer_html(m, None, deferred=True)
    assert deferred.replace(sphinx_ext.COMMIT_PLACEHOLDER, "abc123def456") == footer, (
        "kofukin.site fills in the commit when it publishes the pages"
    )
    assert f"データ 2 ファイル（合成: R6）指紋 sha256:{sphinx_ext.data_fingerprint(m)[:12]}" in footer
    other = _manifest({"R6": True, "R7": False})
    other["sources"][1]["sha256"] = "f" * 64
    assert sphinx_ext.data_fingerprint(other) != sphinx_ext.data_fingerprint(m), "any file change shows"


def test_source_rows_name_the_content_and_survive_yearless_files():
    m = _manifest({"R6": True})
    m["sources"].append({"fiscal_year": None, "kind": "unions", "path": "data/raw/u.csv", "sha256": "0" * 64})
    rows = sphinx_ext.source_rows(m)
    assert [(r["fiscal_year"], r["content"]) for r in rows] == [("R6", ""), ("—", "広域連合の構成")]
    assert sphinx_ext.synthetic_years(m) == ["R6"] and sphinx_ext.real_years(m) == []


def test_page_kinds_and_pdf_links():
    assert sphinx_ext.page_kind("book/municipalities/112194") == "市町村"
    assert sphinx_ext.page_kind("book/prefectures/11") == "都道府県"
    assert sphinx_ext.page_kind("book/national") == "全国"
    assert sphinx_ext.page_kind("book/methodology") == "解説"
    assert sphinx_ext.pdf_href("book/municipalities/112194", "112194") == "../../pdf/112194.pdf"


def test_provenance_table_covers_every_reference_file():
    rows = sphinx_ext.provenance_rows(SOURCE_ROOT / "data" / "reference" / "provenance.yml")
    assert {"indicators.csv", "municipalities.csv", "budgets.csv"} <= {r["file"] for r in rows}
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["sha256"]) for r in rows)


# --- hand-written chapters ----------------------------------------------------------------------------------


def test_introduction_quotes_the_budgets_of_the_reference_table():
    """The budget table in the introduction is typed by hand: it must agree with budgets.csv."""
    text = (SOURCE_ROOT / "book" / "introduction.md").read_text(encoding="utf-8")
    budgets = pd.read_csv(SOURCE_ROOT / "data" / "reference" / "budgets.csv", dtype={"amount_kyen": int})
    municipal = budgets[(budgets["level"] == "municipal") & (budgets["fiscal_year"].isin(["R7", "R8"]))]
    for amount in municipal["amount_kyen"]:
        assert f"{amount:,}" in text, amount
    assert "7,220,000（仮定）" in text and "18,050,000（仮定）" in text


def test_chapters_use_no_dollar_math_and_no_remote_resources():
    for md in (SOURCE_ROOT / "book").glob("*.md"):
        text = md.read_text(encoding="utf-8")
        assert "$" not in text, f"{md.name}: math needs MathJax from a CDN"
        assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?://""", text), md.name


# --- downloads ----------------------------------------------------------------------------------------------


def _export(out: Path, n: int) -> None:
    peers = pd.DataFrame(
        {"fiscal_year": ["R8"] * n, "of_lg_code6": ["011002"] * n, "lg_code6": ["012025"] * n}
    )
    coef = pd.DataFrame({"term": ["a", "b"], "estimate": [0.5, n / 3]})
    write_tables({"peers": peers, "regression_coefficients": coef}, out, synthetic_years=["R8"], years=["R8"])


def test_downloads_zip_every_table_with_identical_bytes_and_reuse_the_zips(tmp_path):
    exports, cache = tmp_path / "exports", tmp_path / "cache"
    _export(exports, 3)
    downloads = sphinx_ext.prepare_downloads(exports, cache)
    zipped = {d.source.name: d.path for d in downloads if d.zipped}
    tables = sorted(f.name for f in exports.glob("*.csv") if not f.stem.startswith("columns"))
    assert (
        sorted(zipped)
        == tables
        == [
            "peers.csv",
            "peers_excel.csv",
            "regression_coefficients.csv",
            "regression_coefficients_excel.csv",
        ]
    )
    for name, path in zipped.items():
        assert path.name == name.replace(".csv", ".zip")
        with zipfile.ZipFile(path) as zf:
            assert zf.namelist() == [name]
            assert zf.read(name) == (exports / name).read_bytes(), name
    plain = sorted(d.path.name for d in downloads if not d.zipped)
    assert plain == ["README.txt", "columns.csv", "columns_excel.csv", "export_manifest.json"]
    assert all(d.path.parent == exports for d in downloads if not d.zipped)

    inodes = {n: p.stat().st_ino for n, p in zipped.items()}
    sphinx_ext.prepare_downloads(exports, cache)
    assert {n: p.stat().st_ino for n, p in zipped.items()} == inodes, "unchanged tables are not zipped again"

    published = tmp_path / "site"
    site_zip = sphinx_ext.publish_downloads(downloads, published)
    old_peers = (published / "peers.zip").read_bytes()
    _export(exports, 4)  # new peers rows; the regression table changes too (n / 3)
    again = sphinx_ext.prepare_downloads(exports, cache)
    assert {d.path.name: d.path.stat().st_ino for d in again if d.zipped}["peers.zip"] != inodes["peers.csv"]
    assert (published / "peers.zip").read_bytes() == old_peers, "a published ZIP is never rewritten in place"
    with zipfile.ZipFile(cache / "peers.zip") as zf:
        assert zf.read("peers.csv") == (exports / "peers.csv").read_bytes()
    assert len(site_zip) == len(downloads)


# --- a real build (slow) ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    paths = site.make_demo_root(root, synthetic=("R6", "R7"))
    result = site.build_site(paths, jobs=1, echo=lambda _: None)
    return paths, result


@pytest.mark.slow
def test_build_writes_a_complete_site(built):
    paths, result = built
    html = paths.build / "html"
    assert result.html_dir == html and result.reduced
    for rel in (
        "index.html",
        "search.html",
        "book/national.html",
        "book/prefectures/11.html",
        "book/municipalities/112194.html",
        "pagefind/pagefind-ui.js",
        "downloads/scores_R8.zip",
        "_static/fonts/ipaexg.ttf",
        "_static/kofukin.css",
    ):
        assert (html / rel).exists(), rel
    assert not (html / "searchindex.js").exists(), "Sphinx's own index is off; Pagefind searches"
    assert not list(paths.build.glob(".site.tmp-*")), "the staging directory is removed"
    assert not (html / "downloads/scores_R8.csv").exists(), "tables are published zipped only"
    log = result.log.read_text(encoding="utf-8")
    assert "WARNING" not in log and "build succeeded" in log


@pytest.mark.slow
def test_every_page_carries_banner_footer_and_pagefind_body(built):
    paths, _ = built
    html = paths.build / "html"
    for page in ("book/index.html", "book/national.html", "book/municipalities/112194.html"):
        text = (html / page).read_text(encoding="utf-8")
        assert "令和6年度（R6）・令和7年度（R7）の市町村別得点は" in text, page
        assert "令和8年度（R8）は厚生労働省の評価結果を加工した数値" in text, page
        assert "ビルド情報：kofukin" in text, page
        assert sphinx_ext.COMMIT_PLACEHOLDER not in text, page
        commit = sphinx_ext.commit_html(sphinx_ext.code_commit())
        assert f'<span class="kofukin-footer__commit">{commit}</span>' in text, (
            "the code's commit is filled in"
        )
        assert text.count("data-pagefind-body") == 1, page
    facts = (html / "book/data_sources.html").read_text(encoding="utf-8")
    assert "c" * 64 in facts, "the build facts list each source's sha256"  # R8's stand-in checksum


@pytest.mark.slow
def test_no_page_loads_anything_from_the_web(built):
    paths, _ = built
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")
    for page in (paths.build / "html").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not remote.search(text), page
        assert "unpkg.com" not in text and "cdn.jsdelivr" not in text, page


@pytest.mark.slow
def test_sidebar_cache_changes_no_byte_of_any_page(built, tmp_path):
    """The per-prefecture sidebar cache (kofukin_toctree_html) must give exactly the theme's own HTML, and the
    patches of myst-nb (no notebook copies, one parser for pasted Markdown) must change nothing either."""
    paths, _ = built
    other = site.make_demo_root(tmp_path / "nocache", synthetic=("R6", "R7"))
    site.build_site(other, jobs=1, nav_cache=False, echo=lambda _: None)
    a, b = paths.build / "html", other.build / "html"
    pages = sorted(p.relative_to(a) for p in a.rglob("*.html") if "pagefind" not in p.parts)
    assert len([p for p in pages if p.parts[:2] == ("book", "municipalities")]) == 6
    for rel in pages:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    images = sorted(p.name for p in (a / "_images").iterdir())
    assert images and images == sorted(p.name for p in (b / "_images").iterdir())
    cache = paths.build / ".site-cache"
    for name in images:
        assert (a / "_images" / name).read_bytes() == (b / "_images" / name).read_bytes(), name
        assert os.path.samefile(cache / "html" / "_images" / name, cache / "jupyter_execute" / name), (
            "Sphinx's output links myst-nb's file instead of copying it"
        )


def test_images_are_linked_and_a_shared_target_is_replaced_not_overwritten(tmp_path):
    from types import SimpleNamespace

    src = tmp_path / "src" / "jupyter_execute"
    src.mkdir(parents=True)
    (src / "a.png").write_bytes(b"new figure")
    (src / "b.png").write_bytes(b"same")
    out = tmp_path / "out"
    (out / "_images").mkdir(parents=True)
    (out / "_images" / "a.png").write_bytes(b"old figure")
    live = tmp_path / "live.png"
    os.link(out / "_images" / "a.png", live)  # the published site shares the old file
    os.link(src / "b.png", out / "_images" / "b.png")
    builder = SimpleNamespace(
        images={"jupyter_execute/a.png": "a.png", "jupyter_execute/b.png": "b.png"},
        srcdir=str(tmp_path / "src"),
        outdir=str(out),
        imagedir="_images",
    )
    assert sphinx_ext.link_image_files(builder) == 2
    assert os.path.samefile(out / "_images" / "a.png", src / "a.png")
    assert live.read_bytes() == b"old figure", "the live site's file is left alone"
    assert os.path.samefile(out / "_images" / "b.png", src / "b.png")
    assert sorted(p.name for p in (out / "_images").iterdir()) == ["a.png", "b.png"]


def test_sidebar_cache_marks_the_right_page():
    nav = (
        '<ul><li class="toctree-l3"><a class="reference internal" href="112011.html">川越市</a></li>\n'
        '<li class="toctree-l3 current active"><a class="current reference internal" href="#">上尾市</a></li>\n'
        '<li class="toctree-l3"><a class="reference internal" href="112259.html">入間市</a></li></ul>'
    )
    neutral = sphinx_ext.neutral_nav(nav, "112194")
    assert neutral is not None and 'href="#"' not in neutral
    assert sphinx_ext.nav_for(neutral, "112194") == nav
    kawagoe = sphinx_ext.nav_for(neutral, "112011")
    assert kawagoe is not None
    assert '<a class="current reference internal" href="#">川越市</a>' in kawagoe
    assert 'href="112194.html">上尾市' in kawagoe
    assert sphinx_ext.nav_for(neutral, "131016") is None, (
        "a page of another prefecture is not in this sidebar"
    )
    assert sphinx_ext.neutral_nav(nav.replace('href="#"', 'href="x.html"'), "112194") is None


@pytest.mark.slow
def test_failed_build_keeps_the_previous_site_then_a_good_one_replaces_it(built):
    paths, _ = built
    html = paths.build / "html"
    stamp = (html / ".kofukin-build.json").read_text(encoding="utf-8")
    index = paths.book / "index.md"
    original = index.read_text(encoding="utf-8")
    try:
        index.write_text(original + "\n{doc}`no_such_page`\n", encoding="utf-8")
        with pytest.raises(site.SiteBuildError, match="no_such_page"):
            site.build_site(paths, jobs=1, echo=lambda _: None)
        assert (html / ".kofukin-build.json").read_text(encoding="utf-8") == stamp, "previous site untouched"
        assert not list(paths.build.glob(".site.tmp-*"))
        assert not list(paths.build.glob(".html.old"))
    finally:
        index.write_text(original, encoding="utf-8")

    manifest_path = paths.processed / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for s in manifest["sources"]:
        s["synthetic"] = s["fiscal_year"] == "R8"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    site.build_site(paths, jobs=1, echo=lambda _: None)
    page = (html / "book/municipalities/112194.html").read_text(encoding="utf-8")
    assert "令和8年度（R8）の市町村別得点は、手法の検証用に生成した合成データです" in page
    assert "令和6年度（R6）・令和7年度（R7）は厚生労働省の評価結果を加工した数値" in page


def test_swap_failure_before_rename_leaves_site(tmp_path, monkeypatch):
    """Without Sphinx: a stage that raises after staging leaves the old tree and no staging directory."""
    paths = site.make_demo_root(tmp_path / "p", codes=("112194",))
    old = paths.build / "html"
    old.mkdir(parents=True)
    (old / "marker").write_text("old", encoding="utf-8")

    def fake_sphinx(root: Path, outdir: Path, *args, **kwargs):
        outdir.mkdir(parents=True)
        (outdir / "index.html").write_text("new", encoding="utf-8")
        return []

    def broken_pagefind(html_dir: Path, log: Path, *args) -> str:
        raise site.SiteBuildError("pagefind failed")

    monkeypatch.setattr(site, "run_sphinx", fake_sphinx)
    monkeypatch.setattr(site, "run_pagefind", broken_pagefind)
    with pytest.raises(site.SiteBuildError, match="pagefind"):
        site.build_site(paths, echo=lambda _: None)
    assert (old / "marker").read_text(encoding="utf-8") == "old"
    assert not list(paths.build.glob(".site.tmp-*"))
