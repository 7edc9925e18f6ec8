"""HTML building blocks for notebook displays: escaped text, tables, embedded PNG pictures.

Plain tables and inline styles only, so the output reads the same in JupyterLab, VS Code, the
classic notebook and nbconvert's HTML (none of which share a style sheet with us).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

FONT = "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px"
MUTED = "color: #5f6b7a"
CELL = "padding: 2px 10px; text-align: left; border-bottom: 1px solid #e3e6ea"


def esc(value: Any) -> str:
    return html.escape(str(value))


def png_bytes(picture: Any) -> bytes:
    """A PIL image as PNG bytes."""
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def img(picture: Any, alt: str, max_width: int | None = None) -> str:
    """An ``<img>`` with the picture embedded (shown at its own size, narrower if it must)."""
    data = base64.b64encode(png_bytes(picture)).decode("ascii")
    width = picture.width if max_width is None else min(picture.width, max_width)
    return (
        f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}" '
        f'style="width: {width}px; max-width: 100%; height: auto; image-rendering: auto">'
    )


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A compact table; columns listed in ``right`` are right-aligned (numbers)."""

    def cell(tag: str, i: int, value: Any) -> str:
        align = CELL.replace("text-align: left", "text-align: right") if i in right else CELL
        return f'<{tag} style="{align}">{esc(value)}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<table style="border-collapse: collapse; margin: 4px 0">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def block(title: str, *parts: str, note: str = "") -> str:
    """A titled block: a bold title, an optional muted note, then the parts."""
    head = f"<div><b>{esc(title)}</b></div>"
    if note:
        head += f'<div style="{MUTED}">{esc(note)}</div>'
    return f'<div style="{FONT}; margin: 4px 0">{head}{"".join(parts)}</div>'


def details(summary: str, body: str, open_: bool = False) -> str:
    """A collapsible section (long tables stay out of the way until asked for)."""
    attr = " open" if open_ else ""
    return f"<details{attr}><summary>{esc(summary)}</summary>{body}</details>"
