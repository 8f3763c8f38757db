"""Showing a :class:`kofukin.report.Report` in a notebook: glue, tables and figures.

Tables are rendered with ``DataFrame.to_html(escape=True)`` — names come from data and must never become
markup — and figures as PNG images with alternative text, so the page stays readable without them.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd
from IPython.core.formatters import format_display_data
from IPython.display import HTML, Image, Markdown, display
from IPython.display import display as ipy_display

from kofukin.narrative import one_line
from kofukin.report import Report

GLUE_PREFIX = "application/papermill.record/"  # where myst-nb's {glue} finds a value not displayed


def glue(name: str, variable: Any, display: bool = True) -> None:
    """``myst_nb.glue``: the same output, without importing ``myst_nb.ext.glue``, which imports nbformat and
    jsonschema — 0.1 s of a report kernel that never uses them. ``tests/test_display.py`` checks that the two
    publish the same data and metadata."""
    bundle, metadata = format_display_data(variable)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


def glue_report(rep: Report) -> None:
    """Glue every value of the report: ``*_md`` as Markdown sentences, the rest as plain values."""
    for name, value in rep.glue.items():
        glue(
            name,
            Markdown(value) if name.endswith("_md") or name == "synthetic_note" else _plain(value),
            display=False,
        )


class _Text(str):
    """A string whose repr is itself: ``{glue:text}`` shows the text, not a quoted Python literal."""

    def __repr__(self) -> str:
        return str(self)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return _Text(value)
    return value.item() if hasattr(value, "item") else value


def table(rep: Report, name: str, *, max_rows: int | None = None, empty: str = "該当なし") -> None:
    df = rep.tables.get(name)
    if df is None or len(df) == 0:
        display(Markdown(f"*{empty}*"))
        return
    display(HTML(_table_html(df, max_rows, indexed=name not in rep.item_tables)))
    if max_rows is not None and len(df) > max_rows:
        display(Markdown(f"*{_more_rows(len(df) - max_rows)}*"))


def _table_html(df: pd.DataFrame, max_rows: int | None, *, indexed: bool = True) -> str:
    """The table in its scrolling wrapper; ``indexed=False`` marks it ``data-pagefind-ignore`` (the site's search
    skips it, see :attr:`kofukin.report.Report.item_tables`)."""
    shown = _one_line(df if max_rows is None else df.head(max_rows))
    ignore = "" if indexed else " data-pagefind-ignore"
    return f'<div class="kofukin-table-wrap"{ignore}>{frame_html(shown)}</div>'


TO_HTML = {"index": False, "escape": True, "border": 0, "classes": "kofukin-table", "na_rep": "—"}


def frame_html(df: pd.DataFrame) -> str:
    """``df.to_html(**TO_HTML, float_format=_fmt)``, the same text, written directly for the kinds of column
    the reports show (text, integers, floats, booleans; anything else goes to pandas).

    pandas' HTML formatter costs ~0.1 ms a cell, and a municipality report has ~1,500 cells in ten tables:
    ~20 ms of every report, 1,741 times. ``tests/test_display.py`` compares the two on generated tables.
    """
    cells = [_column_cells(df[c]) for c in df.columns] if df.columns.is_unique else []
    if not cells or any(c is None for c in cells) or not all(isinstance(c, str) for c in df.columns):
        return df.to_html(**TO_HTML, float_format=_fmt)
    head = "".join(f"      <th>{_escape(c)}</th>\n" for c in df.columns)
    rows = "".join(
        "    <tr>\n" + "".join(f"      <td>{v}</td>\n" for v in row) + "    </tr>\n"
        for row in zip(*cells, strict=True)
    )
    return (
        '<table class="dataframe kofukin-table">\n  <thead>\n    <tr style="text-align: right;">\n'
        f"{head}    </tr>\n  </thead>\n  <tbody>\n{rows}  </tbody>\n</table>"
    )


def _escape(text: str) -> str:
    """As pandas writes a cell: ``&``, ``<`` and ``>`` escaped, surrounding whitespace stripped, and each pair of
    spaces left inside made two non-breaking ones."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").strip()
    return escaped.replace("  ", "&nbsp;&nbsp;")


def _column_cells(column: pd.Series) -> list[str] | None:
    """The column's cells as ``to_html`` writes them, or None for a kind of column left to pandas."""
    kind = column.dtype.kind
    values = column.tolist()
    if kind in "iub":  # integers and booleans print as Python prints them
        return [str(v) for v in values]
    if kind == "f":
        return [TO_HTML["na_rep"] if v != v else _fmt(v) for v in values]
    if _is_text(column) and all(isinstance(v, str) or v is None or v != v for v in values):
        return [_text_cell(v) for v in values]
    return None


def _text_cell(value: str | float | None) -> str:
    if isinstance(value, str):
        return _escape(value)
    return "None" if value is None else TO_HTML["na_rep"]  # pandas prints an object column's None


def _more_rows(n: int) -> str:
    return f"ほか {n} 行（CSVダウンロードに全件）"


def glue_table(rep: Report, name: str, *, max_rows: int | None = None, empty: str = "該当なし") -> None:
    """:func:`table` as one glued HTML output, ``table_<name>``, that the page places with ```` ```{glue} ````.

    A template that glues its tables and figures from one code cell instead of showing each in a cell of its
    own costs the kernel and the runner a fraction of the time (every executed cell is a round of messages).
    """
    df = rep.tables.get(name)
    if df is None or len(df) == 0:
        html = f"<p><em>{escape(empty)}</em></p>"
    else:
        html = _table_html(df, max_rows, indexed=name not in rep.item_tables)
        if max_rows is not None and len(df) > max_rows:
            html += f"<p><em>{escape(_more_rows(len(df) - max_rows))}</em></p>"
    glue(f"table_{name}", HTML(html), display=False)


def glue_figure(rep: Report, name: str) -> None:
    """:func:`figure` as a glued output, ``figure_<name>``; a report without that figure glues nothing visible
    (the page's ```` ```{glue} ```` still finds its key)."""
    data = rep.figures.get(name)
    glue(f"figure_{name}", Image(data=data, format="png") if data is not None else HTML(""), display=False)


def _fmt(x: float) -> str:
    return f"{x:,.1f}" if abs(x) < 1e6 else f"{x:,.0f}"


def html_table(df: pd.DataFrame, *, link_column: str | None = None, href: str = "{}") -> None:
    """A table whose ``link_column`` cells link to other pages (every text cell is escaped, the links' too)."""
    out = _one_line(df)
    for c in out.columns:
        if c != link_column and _is_text(out[c]):
            out[c] = out[c].map(lambda v: escape(str(v)))
    if link_column:
        out[link_column] = [
            f'<a href="{escape(href.format(c))}">{escape(str(n))}</a>'
            for c, n in zip(out.iloc[:, 0], out[link_column], strict=True)
        ]
    html = out.to_html(index=False, escape=False, border=0, classes="kofukin-table")
    display(HTML(f'<div class="kofukin-table-wrap">{html}</div>'))


def _is_text(column: pd.Series) -> bool:
    return column.dtype == object or pd.api.types.is_string_dtype(column.dtype)


def _one_line(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells on one line (:func:`kofukin.narrative.one_line`): ``to_html`` would print a line break as a
    literal ``\\n``."""
    out = df.copy()
    for c in out.columns:
        if _is_text(out[c]):
            out[c] = out[c].map(lambda v: one_line(v) if isinstance(v, str) else v)
    return out


def figure(rep: Report, name: str) -> None:
    data = rep.figures.get(name)
    if data is not None:
        display(Image(data=data, format="png"))
