"""How report tables reach the page: data never becomes markup, and a line break in a name is a space.

pandas' ``to_html`` prints a line break inside a cell as a literal ``\\n``; a municipality name read from a
workbook cell can hold one (tests/test_hostile_names.py builds a whole book with such a name).
"""

from __future__ import annotations

import copy

import nbformat
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofukin import display
from kofukin.report import Report

NAME = "<b>x</b>\r\n南\n村"


@pytest.fixture
def shown(monkeypatch):
    out: list[str] = []
    monkeypatch.setattr(display, "display", lambda obj: out.append(obj.data))
    return out


def _frame(dtype) -> pd.DataFrame:
    return pd.DataFrame({"コード": ["019999"], "市町村": pd.Series([NAME], dtype=dtype), "総合得点": [12.5]})


@pytest.mark.parametrize("dtype", ["str", object])
def test_report_table_shows_a_line_break_as_a_space_and_escapes_the_name(shown, dtype):
    rep = Report(tables={"t": _frame(dtype)})
    display.table(rep, "t")
    (html,) = shown
    assert "<td>&lt;b&gt;x&lt;/b&gt; 南 村</td>" in html
    assert "\\n" not in html and "\\r" not in html
    assert "<td>12.5</td>" in html


@pytest.mark.parametrize("dtype", ["str", object])
def test_linked_table_escapes_every_text_cell(shown, dtype):
    frame = _frame(dtype).assign(備考=pd.Series(["<script>alert(1)</script>"], dtype=dtype))
    display.html_table(frame, link_column="市町村", href="../municipalities/{}.html")
    display.html_table(frame)  # without a link column the text is escaped all the same
    linked, plain = shown
    assert '<td><a href="../municipalities/019999.html">&lt;b&gt;x&lt;/b&gt; 南 村</a></td>' in linked
    for html in (linked, plain):
        assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
        assert "<script>" not in html and "\\n" not in html
    assert "<td>&lt;b&gt;x&lt;/b&gt; 南 村</td>" in plain


@pytest.fixture
def glued(monkeypatch):
    out: dict[str, object] = {}
    monkeypatch.setattr(display, "glue", lambda name, obj, display: out.setdefault(name, obj))
    return out


@pytest.mark.parametrize("shown", [True, False])
def test_glue_publishes_what_myst_nb_glue_publishes(monkeypatch, shown):
    import myst_nb
    import myst_nb.ext.glue
    from IPython.display import HTML, Image, Markdown

    published: dict[str, list] = {"ours": [], "myst_nb": []}
    monkeypatch.setattr(display, "ipy_display", lambda *a, **k: published["ours"].append((a, k)))
    monkeypatch.setattr(myst_nb.ext.glue, "ipy_display", lambda *a, **k: published["myst_nb"].append((a, k)))
    values = [
        ("md", Markdown("**太字** & <b>")),
        ("text", display._plain("上尾市")),
        ("n", display._plain(pd.Series([12]).iloc[0])),
        ("f", 0.25),
        ("t", HTML("<table></table>")),
        ("png", Image(data=b"\x89PNG\r\n\x1a\n", format="png")),
    ]
    for name, value in values:
        display.glue(name, value, display=shown)
        myst_nb.glue(name, value, display=shown)
    assert published["ours"] == published["myst_nb"]
    assert len(published["ours"]) == len(values)


def test_glued_tables_and_figures_are_what_the_cells_showed(glued):
    """The municipality template glues its tables and figures in one cell; the page places them with ``{glue}``."""
    rows = pd.DataFrame({"項目": [f"<i>{i}</i>" for i in range(5)]})
    rep = Report(
        tables={"t": _frame(object), "long": rows, "none": rows.iloc[0:0]}, figures={"f": b"\x89PNG"}
    )
    display.glue_table(rep, "t")
    display.glue_table(rep, "long", max_rows=3)
    display.glue_table(rep, "none", empty="<該当>なし")
    display.glue_figure(rep, "f")
    display.glue_figure(rep, "absent")
    assert "<td>&lt;b&gt;x&lt;/b&gt; 南 村</td>" in glued["table_t"].data
    long = glued["table_long"].data
    assert long.count("<td>") == 3 and "&lt;i&gt;2&lt;/i&gt;" in long and "&lt;i&gt;3" not in long
    assert long.endswith("<p><em>ほか 2 行（CSVダウンロードに全件）</em></p>")
    assert glued["table_none"].data == "<p><em>&lt;該当&gt;なし</em></p>"
    assert glued["figure_f"].data == b"\x89PNG"
    assert glued["figure_absent"].data == "", "a missing figure still has its key (the page would warn)"


def test_item_tables_are_left_out_of_the_search_index(glued):
    """Only the tables a report names in ``item_tables`` carry Pagefind's ignore attribute, glued or shown."""
    rows = pd.DataFrame({"項目": ["認知症施策"], "配点": [10]})
    rep = Report(tables={"items": rows, "peers": rows}, item_tables=frozenset({"items"}))
    display.glue_table(rep, "items")
    display.glue_table(rep, "peers")
    assert glued["table_items"].data.startswith('<div class="kofukin-table-wrap" data-pagefind-ignore><table')
    assert glued["table_peers"].data.startswith('<div class="kofukin-table-wrap"><table')
    assert "data-pagefind-ignore" not in glued["table_peers"].data


def test_standalone_html_places_glued_blocks_and_never_rescans_a_value():
    from kofukin.standalone import resolve_glue

    values = {
        "table_t": ("html", '<div class="kofukin-table-wrap"><table></table></div>'),
        "figure_f": ("png", "iVBO\nRw0K\n"),
        "name": ("text", "{glue:md}`secret_md` & <b>"),
        "secret_md": ("md", "**never shown**"),
        "n": ("text", "12345"),
    }
    source = (
        "## 表\n\n```{glue} table_t\n```\n\n```{glue} figure_f\n```\n\n{glue:text}`name` {glue:text}`n:,`"
    )
    out = resolve_glue(source, values)
    assert '\n<div class="kofukin-table-wrap"><table></table></div>\n' in out
    assert '<img src="data:image/png;base64,iVBORw0K" alt="">' in out
    assert "never shown" not in out and "12,345" in out and "```" not in out
    with pytest.raises(KeyError, match="table_missing"):
        resolve_glue("```{glue} table_missing\n```", values)


def _glued(name: str, data: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output(
        "display_data", data=data, metadata={"scrapbook": {"name": name, "mime_prefix": ""}}
    )


@settings(max_examples=15, deadline=None)
@given(cell_text=st.text(alphabet="ab &<>\"'南村—0.;", max_size=12), n_rows=st.integers(0, 40))
def test_tables_put_in_after_nbconvert_give_the_page_nbconvert_makes_of_them(cell_text, n_rows):
    """The standalone page's tables and figures go in after nbconvert (:func:`put_blocks`): read as HTML, the
    page is the very document nbconvert makes when they go through it, whatever the cells hold."""
    from bs4 import BeautifulSoup

    from kofukin.display import frame_html
    from kofukin.standalone import _exporter, convert, glued_values, put_blocks, resolve_glue

    table = frame_html(pd.DataFrame({"名称": [cell_text] * n_rows, "得点": range(n_rows)}))
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "",
                metadata={"tags": ["remove-cell"]},
                outputs=[
                    _glued("table_t", {"text/html": table, "text/plain": "t"}),
                    _glued("figure_f", {"image/png": "iVBORw0KGgo=\n", "text/plain": "f"}),
                    _glued("name", {"text/plain": cell_text or "x"}),
                ],
            ),
            nbformat.v4.new_markdown_cell(
                "# {glue:text}`name`\n\n```{glue} table_t\n```\n\n本文\n\n```{glue} figure_f\n```\n\n"
                "```{glue} table_t\n```"
            ),
        ]
    )
    direct = copy.deepcopy(nb)
    values = glued_values(direct)
    for cell in direct.cells:
        if cell.cell_type == "markdown":
            cell.source = resolve_glue(cell.source, values)
    through, _ = _exporter().from_notebook_node(direct, resources={"metadata": {"name": "x"}})
    page = convert(nb, "x")
    assert 'data-kofukin-glue="' not in page
    assert page.count("iVBORw0KGgo=") == 1 and page.count("<table") == 2
    assert str(BeautifulSoup(page, "html.parser")) == str(BeautifulSoup(through, "html.parser"))
    with pytest.raises(ValueError, match="placeholders lost"):
        put_blocks("<p>nothing</p>", {"kofukin-glue-0a-0": "<table></table>"})


_TEXT = st.one_of(st.none(), st.text(alphabet="ab &<>\"'南村—0.", max_size=6))
_COLUMNS = {
    "text": lambda n: st.lists(_TEXT, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object)),
    "str": lambda n: st.lists(_TEXT, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="str")),
    "int": lambda n: st.lists(st.integers(-(10**9), 10**9), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="int64")
    ),
    "float": lambda n: st.lists(
        st.one_of(
            st.floats(-2e7, 2e7, allow_nan=False), st.just(float("nan")), st.sampled_from([0.05, 1.25, -0.0])
        ),
        min_size=n,
        max_size=n,
    ).map(lambda v: pd.Series(v, dtype="float64")),
    "bool": lambda n: st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=bool)),
}


@st.composite
def _frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 4))
    kinds = draw(st.lists(st.sampled_from(sorted(_COLUMNS)), min_size=1, max_size=5))
    names = draw(
        st.lists(
            st.text(alphabet="列<&>a ", min_size=1, max_size=3),
            min_size=len(kinds),
            max_size=len(kinds),
            unique=True,
        )
    )
    return pd.DataFrame({name: draw(_COLUMNS[kind](n)) for name, kind in zip(names, kinds, strict=True)})


@settings(max_examples=300, deadline=None)
@given(_frames())
def test_tables_are_written_as_pandas_writes_them(frame):
    """The report tables skip pandas' slow HTML formatter: the text must be what ``to_html`` gives."""
    expected = frame.to_html(**display.TO_HTML, float_format=display._fmt)
    assert display.frame_html(frame) == expected
