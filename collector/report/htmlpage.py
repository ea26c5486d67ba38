"""One self-contained HTML page: inline CSS, inline SVG charts, tables; nothing fetched."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from collector import __version__
from collector.report.model import Report, Table
from collector.report.render import count, fetch, for_people, human
from collector.report.svg import bar_chart

MAX_HTML_ROWS = 2000  # a page a browser still opens quickly; the rest goes to a CSV beside it

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 24px 32px; color: #1f2933; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #52606d; margin: 0 0 16px; }
.meta span { margin-right: 18px; }
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 8px 12px;
        margin: 6px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px 40px; }
.chart h2 { margin-top: 12px; }
svg { max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2933; }
svg text.value { fill: #52606d; }
.scroll { overflow: auto; max-height: min(75vh, 42em); width: fit-content; max-width: 100%;
          margin: 4px 0 8px; border: 1px solid #e4e7eb; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f5f7fa; position: sticky; top: 0; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #f9fafb; }
.more { color: #52606d; font-style: italic; margin: 4px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 4px; }
.card { border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
td.flag { background: #fdecea; color: #9b1c1c; font-weight: 600; }
.card b { display: block; font-size: 20px; }
.card span { color: #52606d; font-size: 12px; }
td { white-space: nowrap; width: 1px; }
td.wrap { white-space: normal; overflow-wrap: anywhere; width: auto; }
td.account { white-space: normal; width: auto; }
@media print { .scroll { overflow: visible; max-height: none; border: 0; } }
"""


# Where a long value may break, so a wide table wraps to the window instead of running off it.
_BREAK_AFTER = re.compile(r"([/_])")
_WRAPPED = ("service_name", "files", "in_report", "used_by")


def _breakable(text: str) -> str:
    """Escaped text that may break after `/` and `_` (paths, ARNs, column names)."""
    return _BREAK_AFTER.sub(r"\1<wbr>", escape(text))


def _cell(column: str, value: Any) -> str:
    """One cell: numbers right-aligned, ARNs shortened (full ARN on hover), entities one a line."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{escape(human(column, value))}</td>'
    if column == "principal_arn" and isinstance(value, str) and value.count(":") >= 5:
        short = value.split(":", 5)[5]
        return f'<td class="wrap" title="{escape(value)}">{_breakable(short)}</td>'
    if isinstance(value, list):
        lines = "<br>".join(_breakable(human(column, [item])) for item in value)
        return f'<td class="wrap">{lines}</td>'
    if column in ("run_status", "status") and value != "complete":
        return f'<td class="flag">{escape(human(column, value))}</td>'
    if column in _WRAPPED:
        return f'<td class="wrap">{_breakable(human(column, value))}</td>'
    if column == "account_id":  # `name (id)`: may break before the id, never inside it
        return f'<td class="account">{escape(human(column, value))}</td>'
    return f"<td>{escape(human(column, value))}</td>"


def totals(report: Report) -> dict[str, int]:
    """Rows of each table; a table with more than MAX_HTML_ROWS is cut on the page."""
    return {table.name: count(report, table) for table in report.tables}


def csv_beside(page: Path, table: Table) -> Path:
    """Where the whole of a cut table goes: REPORT.TABLE.csv beside REPORT.html."""
    stem = (
        page.name.removesuffix(page.suffix)
        if page.suffix.lower() in (".html", ".htm")
        else page.name
    )
    return page.with_name(f"{stem}.{table.name}.csv")


def _cut_note(table: Table, total: int, link: str | None, main: bool) -> str:
    shown = f"Showing the first {MAX_HTML_ROWS:,} of {total:,} rows."
    if link is not None:
        rest = (
            f'All of them: <a href="{escape(quote(link))}">{escape(link)}</a>, '
            "the whole table as CSV beside this page."
        )
    else:  # on stdout: no file to link
        rest = f"All of them: --output REPORT.html also writes REPORT.{table.name}.csv beside it"
        rest += "; --format csv or json prints them." if main else "."
    return f'<p class="more">{escape(shown)} {escape(rest) if link is None else rest}</p>'


def _table(report: Report, table: Table, total: int, link: str | None) -> str:
    out = [f'<h2 id="{escape(table.name)}">{escape(table.title)} ({total:,})</h2>']
    if not total:
        return out[0] + "<p>(none)</p>"
    cut = total > MAX_HTML_ROWS
    if cut:
        out.append(_cut_note(table, total, link, table is report.tables[0]))
    columns, rows = for_people(table, fetch(report, table, MAX_HTML_ROWS))
    # Its own box: a table wider than the window scrolls there, not the page.
    out.append('<div class="scroll"><table><thead><tr>')
    out += [f"<th>{_breakable(column)}</th>" for column in columns]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = (_cell(column, value) for column, value in zip(columns, row, strict=True))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if cut:
        out.append(_cut_note(table, total, link, table is report.tables[0]))
    return "".join(out)


def write_html(
    report: Report,
    out: IO[str],
    rows: Mapping[str, int] | None = None,
    links: Mapping[str, str] | None = None,
) -> None:
    """The page; `rows`: each table's row count (counted here if not given); `links`: the file
    name of each cut table's CSV beside the page (none when the page goes to stdout)."""
    rows = totals(report) if rows is None else rows
    links = links or {}
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = [f"<span>{escape(k)}: <b>{escape(v)}</b></span>" for k, v in report.context.items()]
    meta.append(f"<span>generated {made} by collector {__version__}</span>")
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="meta">{"".join(meta)}</p>',
    ]
    parts += [f'<div class="warn">&#9888; {escape(note)}</div>' for note in report.notes]
    if report.highlights:
        cards = (
            f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
            for label, value in report.highlights
        )
        parts.append(f'<div class="cards">{"".join(cards)}</div>')
    if report.charts:
        parts.append('<div class="charts">')
        for chart in report.charts:
            parts.append(f'<div class="chart"><h2>{escape(chart.title)}</h2>')
            parts.append(bar_chart(chart) + "</div>")
        parts.append("</div>")
    # Overviews first, the long per-(principal, service) lists last.
    ordered = [t for t in report.tables if not t.detail] + [t for t in report.tables if t.detail]
    parts += [_table(report, t, rows[t.name], links.get(t.name)) for t in ordered]
    parts.append("</body></html>\n")
    out.write("\n".join(parts))
