"""How report tables reach the page: data never becomes markup, and a line break in a name is a space.

pandas' ``to_html`` prints a line break inside a cell as a literal ``\\n``; a municipality name read from a
workbook cell can hold one (tests/test_hostile_names.py builds a whole book with such a name).
"""

from __future__ import annotations

import pandas as pd
import pytest

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
