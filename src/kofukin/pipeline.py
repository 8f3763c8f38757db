"""The book's stages end to end: synthetic data → ingest → reports → site, each skipped when its inputs are
unchanged. The CLI (``kofukin build``, ``kofukin reports``) is a thin shell over these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kofukin.paths import NOTEBOOKS_DIR, PACKAGE_DIR, ProjectPaths
from kofukin.reference import load_master, load_prefectures
from kofukin.scoring import FISCAL_YEARS
from kofukin.store import MANIFEST, store_hash

TEMPLATES = {
    "national": NOTEBOOKS_DIR / "national.ipynb",
    "outcomes": NOTEBOOKS_DIR / "outcomes.ipynb",
    "prefecture": NOTEBOOKS_DIR / "prefecture.ipynb",
    "municipality": NOTEBOOKS_DIR / "municipality.ipynb",
}


class SelectionError(ValueError):
    """Unknown codes in a report selection (raised before any kernel starts)."""


@dataclass
class Selection:
    """Which reports to run: everything, some prefectures (with their municipalities), some municipalities."""

    all: bool = False
    prefectures: list[str] = field(default_factory=list)
    municipalities: list[str] = field(default_factory=list)


# Modules that only build the site, never a report's content: editing them must not re-run 1,800 reports.
SITE_ONLY_MODULES = frozenset({"site.py", "sphinx_ext.py", "pdf.py", "toc.py", "cli.py", "standalone.py"})


def code_hash() -> str:
    """A hash of the package's source: a code change re-runs reports even when the version string did not move."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.parent == PACKAGE_DIR and path.name in SITE_ONLY_MODULES:
            continue
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def latest_year(paths: ProjectPaths) -> str:
    manifest = json.loads((paths.processed / MANIFEST).read_text(encoding="utf-8"))
    years = manifest.get("years") or sorted({s["fiscal_year"] for s in manifest.get("sources", [])})
    return max(years, key=FISCAL_YEARS.index)


def resolve_selection(sel: Selection) -> tuple[list[str], list[str]]:
    """Prefecture and municipality codes to run, validated against the master; unknown codes are an error."""
    master = load_master()
    prefs = load_prefectures()
    if sel.all:
        return list(prefs["pref_code"]), list(master["lg_code6"])
    bad: list[str] = []
    pref_codes = []
    for p in sel.prefectures:
        code = str(p).zfill(2)
        (pref_codes if code in set(prefs["pref_code"]) else bad).append(
            code if code in set(prefs["pref_code"]) else str(p)
        )
    munis = list(master.loc[master["pref_code"].isin(pref_codes), "lg_code6"])
    from kofukin.codes import UnknownMunicipality, resolve_municipality

    for q in sel.municipalities:
        try:
            munis.append(resolve_municipality(str(q), master))
        except (UnknownMunicipality, LookupError):
            bad.append(str(q))
    if bad:
        raise SelectionError(f"不明なコード（レポートは実行していません）: {', '.join(bad)}")
    for code in munis:
        if code[:2] not in pref_codes:
            pref_codes.append(code[:2])
    return sorted(set(pref_codes)), sorted(set(munis))


def report_jobs(paths: ProjectPaths, sel: Selection, year: str | None = None) -> list:
    """The runner's jobs: the national and outcomes chapters, the selected prefectures and municipalities."""
    from kofukin.runner import ReportJob

    year = year or latest_year(paths)
    pref_codes, munis = resolve_selection(sel)
    master = load_master().set_index("lg_code6")
    prefs = load_prefectures().set_index("pref_code")
    yj = f"令和{int(year[1:])}年度"
    jobs = [
        ReportJob(
            "national",
            TEMPLATES["national"],
            {"year": year},
            paths.book / "national.ipynb",
            f"全国の評価結果（{yj}）",
        ),
    ]
    if TEMPLATES["outcomes"].exists():
        jobs.append(
            ReportJob(
                "outcomes",
                TEMPLATES["outcomes"],
                {"year": year},
                paths.book / "outcomes.ipynb",
                "アウトカム指標の回帰分析",
            )
        )
    for p in pref_codes:
        name = prefs.loc[p, "pref_name"]
        jobs.append(
            ReportJob(
                f"pref-{p}",
                TEMPLATES["prefecture"],
                {"pref_code": p, "year": year},
                paths.book / "prefectures" / f"{p}.ipynb",
                f"{name}（{yj}）",
            )
        )
    for c in munis:
        row = master.loc[c]
        jobs.append(
            ReportJob(
                c,
                TEMPLATES["municipality"],
                {"code": c, "year": year},
                paths.book / "municipalities" / f"{c}.ipynb",
                f"{row['name']}（{row['pref_name']}）{yj}",
            )
        )
    return jobs


def run_report_stage(
    paths: ProjectPaths,
    sel: Selection,
    *,
    year: str | None,
    workers: int,
    force: bool = False,
    progress: bool = True,
):
    """Execute the selected reports with warm kernels; the store and code hashes decide what is up to date.

    The national tables every report derives (:mod:`kofukin.derived`) are brought up to date first, once,
    instead of in every kernel."""
    from kofukin.derived import ensure_derived
    from kofukin.reference import validate_reference
    from kofukin.runner import run_reports
    from kofukin.vouch import vouch_for_children

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one BLAS thread per kernel: workers already use every core
    os.environ["KOFUKIN_ROOT"] = str(paths.root)
    jobs = report_jobs(paths, sel, year)
    if jobs:
        ensure_derived(paths.processed, jobs=workers)
        validate_reference()  # once here, not in every kernel
        vouch_for_children()
    return run_reports(
        jobs,
        workers=workers,
        manifest_path=paths.runs_manifest,
        failure_report=paths.runs_manifest.parent / "failures.md",
        force=force,
        progress=progress,
        extra_hash_inputs={"store": store_hash(paths.processed), "code": code_hash()},
    )


def current_book_report(paths: ProjectPaths, code: str, year: str) -> Path | None:
    """The book's executed notebook of ``code`` in ``year`` if it is up to date, else None.

    Up to date means what the reports stage itself would skip: the manifest's last run of the entity succeeded
    with the same input hash (template, parameters, title, version, store and code hashes) and the notebook is
    there. ``kofukin report`` then only converts it — the same content, in a second instead of a kernel run.
    """
    from kofukin.runner.jobs import file_digest, input_hash
    from kofukin.runner.manifest import entity_states, is_current, read_manifest

    manifest = paths.runs_manifest
    if not manifest.exists():
        return None
    jobs = [j for j in report_jobs(paths, Selection(municipalities=[code]), year) if j.entity_id == code]
    if not jobs:
        return None
    job = jobs[0]
    extra = {"store": store_hash(paths.processed), "code": code_hash()}
    h = input_hash(job, file_digest(job.template.resolve()), extra)
    state = entity_states(read_manifest(manifest)).get(code)
    return job.output if is_current(state, h, job.output, manifest.parent) else None


GENERATED_PAGES = ("national.ipynb", "outcomes.ipynb", "prefectures/*.ipynb", "municipalities/*.ipynb")


def stale_pages(paths: ProjectPaths) -> list[str]:
    """Report pages in ``book/`` that the current store, code and templates would not reproduce.

    A page is current when the reports stage itself would skip it (:func:`kofukin.runner.manifest.is_current`):
    the runner's manifest says its last run succeeded with the input hash the page gets now, for one of the
    store's fiscal years. Every other page is stale — left by a reports run that was killed after the store
    changed (so the book mixes two stores), not re-run after an ingest or a code change, or unknown to the
    manifest. ``kofukin site`` refuses to publish stale pages under the current data's banner and checksums.
    """
    from kofukin.runner.jobs import file_digest, input_hash
    from kofukin.runner.manifest import entity_states, is_current, read_manifest

    pages = sorted({p for pattern in GENERATED_PAGES for p in paths.book.glob(pattern) if p.is_file()})
    if not pages or not (paths.processed / MANIFEST).exists():
        return [p.relative_to(paths.root).as_posix() for p in pages]
    manifest = json.loads((paths.processed / MANIFEST).read_text(encoding="utf-8"))
    expected: dict[Path, list] = {}
    for year in manifest.get("years", []):
        for job in report_jobs(paths, Selection(all=True), year):
            expected.setdefault(job.output.resolve(), []).append(job)
    runs = paths.runs_manifest
    states = entity_states(read_manifest(runs))
    extra = {"store": store_hash(paths.processed), "code": code_hash()}
    digests = {t: file_digest(t) for t in {j.template.resolve() for jobs in expected.values() for j in jobs}}

    def current(page: Path) -> bool:
        return any(
            is_current(
                states.get(j.entity_id),
                input_hash(j, digests[j.template.resolve()], extra),
                j.output,
                runs.parent,
            )
            for j in expected.get(page.resolve(), [])
        )

    return [p.relative_to(paths.root).as_posix() for p in pages if not current(p)]


@dataclass
class StageTimer:
    """Seconds per stage, printed at the end of ``kofukin build`` and read by the benchmarks."""

    stages: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.stages[name] = time.perf_counter() - t0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"stage": list(self.stages), "seconds": [round(v, 1) for v in self.stages.values()]}
        )


def demo_data_is_current(paths: ProjectPaths, seed: int) -> bool:
    """True when data/raw/demo was written by this generator version and seed (the files are deterministic)."""
    stamp = paths.demo_raw / ".stamp.json"
    if not stamp.exists():
        return False
    return json.loads(stamp.read_text(encoding="utf-8")) == _demo_stamp(seed, paths)


def _demo_stamp(seed: int, paths: ProjectPaths) -> dict:
    h = hashlib.sha256()
    for path in [*sorted((PACKAGE_DIR / "synthetic").rglob("*.py")), PACKAGE_DIR / "layout.py"]:
        h.update(path.read_bytes())
    files = sorted(p.name for p in paths.demo_raw.glob("*") if not p.name.startswith("."))
    return {"seed": seed, "generator": h.hexdigest(), "files": files}


def write_demo_stamp(paths: ProjectPaths, seed: int) -> None:
    (paths.demo_raw / ".stamp.json").write_text(json.dumps(_demo_stamp(seed, paths)), encoding="utf-8")


def store_is_current(paths: ProjectPaths) -> bool:
    """True when the store was built from exactly the files now under data/raw/ by this code."""
    stamp = paths.data / ".ingest_stamp"
    return (
        (paths.processed / MANIFEST).exists() and stamp.exists() and stamp.read_text() == ingest_stamp(paths)
    )


def write_ingest_stamp(paths: ProjectPaths) -> None:
    (paths.data / ".ingest_stamp").write_text(ingest_stamp(paths))


def ingest_stamp(paths: ProjectPaths) -> str:
    from kofukin.store import sha256_file

    files = sorted(p for p in paths.raw.rglob("*") if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256(code_hash().encode())
    for f in files:
        h.update(
            f.relative_to(paths.root).as_posix().encode() if f.is_relative_to(paths.root) else str(f).encode()
        )
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def _tree_hash(paths_: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths_):
        if p.is_file():
            h.update(p.as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def site_stamp(paths: ProjectPaths) -> str:
    """Everything the site is built from: pages, configuration, exports and the site's own code."""
    files = [
        *(p for p in paths.book.rglob("*") if "_manifest" not in p.parts),
        paths.root / "_config.yml",
        paths.root / "_toc.yml",
        *paths.exports.glob("*.csv"),
        *(PACKAGE_DIR / m for m in SITE_ONLY_MODULES),
        paths.processed / MANIFEST,
    ]
    return _tree_hash(files)


def build(paths: ProjectPaths, *, workers: int, seed: int, echo=print) -> StageTimer:
    """The whole book: each stage runs only when its inputs changed since the last successful run."""
    from kofukin.bookdata import book_data, regression_coefficients
    from kofukin.export import export_tables
    from kofukin.ingest import ingest_paths
    from kofukin.site import build_site
    from kofukin.synthetic import write_demo_data

    timer = StageTimer()
    if demo_data_is_current(paths, seed):
        echo("合成データ: 変更なし（スキップ）")
    else:
        timer.run("demo-data", write_demo_data, paths.demo_raw, seed=seed)
        write_demo_stamp(paths, seed)
    if store_is_current(paths):
        echo("ingest: 変更なし（スキップ）")
    else:
        echo(timer.run("ingest", ingest_paths, [paths.raw], paths.processed))
        write_ingest_stamp(paths)
    res = timer.run("reports", run_report_stage, paths, Selection(all=True), year=None, workers=workers)
    echo(str(res))
    if res.failed:
        raise RuntimeError(f"{res.failed} reports failed: see {paths.book / '_manifest' / 'failures.md'}")
    export_stamp = paths.data / ".export_stamp"
    current = store_hash(paths.processed) + code_hash()
    if export_stamp.exists() and export_stamp.read_text() == current and paths.exports.exists():
        echo("export: 変更なし（スキップ）")
    else:
        data = book_data(paths.processed)
        timer.run(
            "export",
            export_tables,
            data.store,
            paths.exports,
            regression=regression_coefficients(data),
            derived=data.derived,
        )
        export_stamp.write_text(current)
    stamp_file = paths.build / ".site_stamp"
    stamp = site_stamp(paths)
    if (
        stamp_file.exists()
        and stamp_file.read_text() == stamp
        and (paths.build / "html" / "index.html").exists()
    ):
        echo("site: 変更なし（スキップ）")
    else:
        timer.run("site", build_site, paths, jobs=workers, echo=echo)  # it echoes its own summary
        stamp_file.write_text(stamp)
    echo(
        f"完成：{paths.build / 'html' / 'index.html'} をブラウザで開いてください（検索は `python -m kofukin.site serve` で）。"
    )
    return timer
