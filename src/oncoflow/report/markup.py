"""HTML building blocks of the run report: escaped text, tables, inlined figures, metric cells.

Every other module of :mod:`oncoflow.report` writes its markup through these: text through
:func:`esc`, tables through :func:`table_html`, and figures through :func:`figure_html` (a PNG
inlined as a data URI with its caption, so the page needs no network).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any


def esc(text: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(text))


def figure_html(png: bytes, caption: str, alt: str) -> str:
    """A ``<figure>`` with the PNG inlined and its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def table_html(
    header: Sequence[str], rows: Sequence[Sequence[Any]], css: Sequence[str] = ()
) -> str:
    """A simple HTML table; ``css`` gives an optional class per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{css[i]}"' if i < len(css) and css[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def cell_text(cell: Mapping[str, Any] | None) -> str:
    """A metric cell as text: ``value [ci_low, ci_high]`` (3 decimals), or ``n/a``."""
    if not cell or cell.get("value") is None:
        return "n/a"
    if cell.get("ci_low") is None:
        return f"{cell['value']:.3f}"
    return f"{cell['value']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
