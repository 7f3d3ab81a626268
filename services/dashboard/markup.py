"""HTML building blocks. Every value passes through :func:`esc`: log lines, branch names and
approver names are written by strangers, so nothing reaches the page unescaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from medic.services.dashboard.figures import parse_time

NONE = "—"


def esc(value: Any) -> str:
    """Escaped text for element content and double-quoted attributes; ``None`` is a dash."""
    return NONE if value is None else html.escape(str(value), quote=True)


def fmt_time(value: Any) -> str:
    """``MM-DD HH:MM:SS`` in UTC, the zone every stored time is in (as ``dashboard.js`` shows it)."""
    parsed = parse_time(value)
    return NONE if parsed is None else parsed.strftime("%m-%d %H:%M:%S")


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 90:
        return f"{value:.1f} s"
    if value < 5400:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def fmt_rate(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.0f} %"


def time_cell(value: Any) -> str:
    return f'<time datetime="{esc(value)}">{esc(fmt_time(value))}</time>' if value else NONE


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    body_id: str = "",
    empty: str = "Nothing yet.",
    row_attrs: Sequence[str] | None = None,
) -> str:
    """A table of already-escaped cells; ``row_attrs`` are already-escaped ``<tr>`` attributes."""
    rendered = []
    for i, cells in enumerate(rows):
        attrs = f" {row_attrs[i]}" if row_attrs and row_attrs[i] else ""
        rendered.append(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not rendered:
        rendered.append(f'<tr class="empty"><td colspan="{len(headers)}">{esc(empty)}</td></tr>')
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body_attr = f' id="{esc(body_id)}"' if body_id else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody{body_attr}>{''.join(rendered)}</tbody></table>"


def meter(value: int, high: int) -> str:
    """A bar without JavaScript or inline styles (the page's CSP allows neither)."""
    return f'<meter min="0" max="{max(high, 1)}" value="{value}">{value}</meter>'
