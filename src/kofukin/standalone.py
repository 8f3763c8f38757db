"""One municipality's report as a standalone HTML file (and A4 PDF): ``kofukin report CODE``.

For an official who wants only their own report, building the whole book is overkill. The same template is
executed (one warm-kernel job, so the content is identical to the book's page) and converted with nbconvert.
nbconvert does not know myst-nb's ``{glue}`` roles and directives, so :func:`resolve_glue` substitutes the glued
values into the Markdown first — text values escaped, so data never becomes markup; glued tables (HTML the
report escaped when it made them) and figures (PNG, as a data URI) in place of their ```` ```{glue} ```` blocks.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import re
import secrets
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from kofukin.narrative import md

_ROLE = re.compile(r"\{glue:(text|md)\}`([^`:]+)(?::([^`]*))?`")
_DIRECTIVE = re.compile(r"^```\{glue\} *([^\s`]+) *\n```[ \t]*$", re.MULTILINE)
# One pass over both: a value put in is never scanned again, so data that reads like a role stays text.
_GLUE = re.compile(f"{_DIRECTIVE.pattern}|{_ROLE.pattern}", re.MULTILINE)
FONT_STACK = "'IPAexGothic', 'Noto Sans CJK JP', 'Hiragino Kaku Gothic ProN', 'Yu Gothic', Meiryo, sans-serif"
BANNER_STYLE = "background:#fff3cd;border:1px solid #e0a800;padding:0.6em 1em;margin:0 0 1em;font-weight:bold"


def glued_values(nb: nbformat.NotebookNode) -> dict[str, tuple[str, str]]:
    """name → (mime kind 'text'|'md'|'html'|'png', value) of every glued output (PNG as base64)."""
    out: dict[str, tuple[str, str]] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            data = o.get("data", {})
            for kind, mime in (("png", "image/png"), ("html", "text/html"), ("md", "text/markdown")):
                key = next((k for k in data if k.endswith(mime)), None)
                if key:
                    out[meta["name"]] = (kind, data[key])
                    break
            else:
                key = next((k for k in data if k.endswith("text/plain")), None)
                if key:
                    out[meta["name"]] = ("text", data[key])
    return out


def _format(text: str, spec: str | None) -> str:
    if not spec:
        return text
    try:
        value: float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return text
    return format(value, spec)


def _value(values: dict[str, tuple[str, str]], name: str) -> tuple[str, str]:
    if name not in values:
        raise KeyError(f"glue value {name!r} is not in the executed notebook")
    return values[name]


def _block(kind: str, value: str) -> str:
    """A glued output as Markdown: HTML (and a PNG as an image) is a raw HTML block, kept apart by blank lines."""
    if kind == "png":
        return f'\n<img src="data:image/png;base64,{"".join(value.split())}" alt="">\n'
    if kind == "html":
        return f"\n{value}\n"
    return value if kind == "md" else md(value)


def resolve_glue(
    source: str, values: dict[str, tuple[str, str]], blocks: dict[str, str] | None = None
) -> str:
    """Markdown with ``{glue:text}`name:fmt```, ``{glue:md}`name``` and ```` ```{glue} name ```` blocks
    replaced by their values.

    With ``blocks``, a glued table or figure becomes an empty placeholder element instead, and its HTML goes into
    ``blocks`` (placeholder → HTML) for :func:`put_blocks` once the Markdown is HTML."""
    nonce = secrets.token_hex(6)

    def sub(m: re.Match) -> str:
        block, kind, name, spec = m.groups()
        if block is not None:
            kind, value = _value(values, block)
            html_block = _block(kind, value)
            if blocks is None or kind not in ("html", "png"):
                return html_block
            key = f"kofukin-glue-{nonce}-{len(blocks)}"
            blocks[key] = html_block.strip("\n")
            return f'\n<div data-kofukin-glue="{key}"></div>\n'
        _, value = _value(values, name)
        return value if kind == "md" else md(_format(value, spec))

    return _GLUE.sub(sub, source)


_PLACEHOLDER = re.compile(r'<div data-kofukin-glue="(kofukin-glue-[0-9a-f]+-\d+)"></div>')


def put_blocks(html_text: str, blocks: dict[str, str]) -> str:
    """The converted page with every placeholder of :func:`resolve_glue` replaced by its table or figure.

    They are put in after nbconvert, not before: its exporter parses and re-serialises the whole page with
    BeautifulSoup, and the report's tables and images were most of what it parsed — 0.2 s of each conversion. Our
    tables are already escaped HTML (:func:`kofukin.display.frame_html`) and images carry their ``alt``, so that
    pass had nothing to change in them; a test checks the page is the same document either way."""
    found: list[str] = []

    def sub(m: re.Match) -> str:
        found.append(m.group(1))
        return blocks[m.group(1)]

    out = _PLACEHOLDER.sub(sub, html_text)
    if sorted(found) != sorted(blocks):
        raise ValueError(
            f"placeholders lost or repeated in the conversion: {sorted(set(blocks) ^ set(found))}"
        )
    return out


@functools.cache
def _exporter() -> HTMLExporter:
    """One exporter per process: nbconvert loads and compiles its templates on an exporter's first conversion."""
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(
        TagRemovePreprocessor(
            remove_cell_tags={"remove-cell", "injected-parameters"},
            remove_input_tags={"remove-input"},
            remove_all_outputs_tags={"remove-output"},
        ),
        enabled=True,
    )
    return exporter


def warm_up() -> None:
    """Convert a small notebook in memory, so that the report's own conversion finds nbconvert's templates
    compiled (~0.4 s of the first conversion): ``kofukin report`` does this while its kernel runs."""
    cells = [
        nbformat.v4.new_markdown_cell("# 報告書\n\n<div><table><tr><td>1</td></tr></table></div>"),
        nbformat.v4.new_code_cell(
            "x",
            outputs=[
                nbformat.v4.new_output("display_data", data={"text/html": "<p>x</p>", "text/plain": "x"})
            ],
        ),
    ]
    _exporter().from_notebook_node(
        nbformat.v4.new_notebook(cells=cells), resources={"metadata": {"name": "x"}}
    )


def notebook_to_html(nb_path: Path, html_path: Path, *, banner: str = "", title: str = "") -> None:
    """Convert an executed report notebook to one self-contained HTML file (written atomically)."""
    nb = nbformat.read(nb_path, as_version=4)
    body = convert(nb, title or nb_path.stem)
    body = body.replace("</head>", _font_style() + "</head>", 1)
    if banner:
        body = body.replace("<body", '<body data-kofukin="standalone"', 1)
        body = re.sub(
            r"(<body[^>]*>)",
            lambda m: (
                m.group(1) + f'<div class="kofukin-banner" style="{BANNER_STYLE}">{html.escape(banner)}</div>'
            ),
            body,
            count=1,
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=html_path.parent, suffix=".tmp", delete=False
    ) as f:
        f.write(body)
    Path(f.name).chmod(0o644)
    Path(f.name).replace(html_path)


def convert(nb: nbformat.NotebookNode, name: str) -> str:
    """The executed notebook as one HTML page: glue resolved, tables and figures put in after nbconvert."""
    values = glued_values(nb)
    blocks: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = resolve_glue(cell.source, values, blocks)
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": name}})
    return put_blocks(body, blocks)


def _font_style() -> str:
    """Japanese text needs a Japanese font: the IPAex font that matplotlib-fontja ships (so printing works on a
    machine with no Japanese fonts), then the usual system fonts for a reader who opens the file elsewhere.

    The font is found, not imported: importing matplotlib-fontja imports matplotlib, 0.25 s of the command."""
    spec = importlib.util.find_spec("matplotlib_fontja")
    ttf = Path(spec.origin).parent / "fonts" / "ipaexg.ttf" if spec is not None and spec.origin else None
    face = (
        f"@font-face{{font-family:'IPAexGothic';src:url('{ttf.as_uri()}') format('truetype');}}"
        if ttf is not None and ttf.exists()
        else ""
    )
    return f"<style>{face}body,.jp-Notebook,.jp-RenderedHTMLCommon,table{{font-family:{FONT_STACK} !important;}}</style>"


def synthetic_banner(processed: Path) -> str:
    manifest = json.loads((processed / "manifest.json").read_text(encoding="utf-8"))
    years = sorted(
        {s["fiscal_year"] for s in manifest.get("sources", []) if s.get("synthetic") and s.get("fiscal_year")}
    )
    if not years:
        return ""
    yj = "・".join(f"令和{int(y[1:])}年度" for y in years)
    return f"合成データ：{yj}の数値は合成データ（架空の値）です。実際の市町村の評価結果ではありません。"
