"""One self-contained HTML page: inline CSS, inline SVG charts, tables; nothing fetched."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import IO, Any

from collector import __version__
from collector.report.model import Report, Table
from collector.report.render import count, fetch, human
from collector.report.svg import bar_chart

MAX_HTML_ROWS = 2000  # a page a browser still opens quickly; the rest is one --format away

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
svg text { font: 12px system-ui, sans-serif; fill: #1f2933; }
svg text.value { fill: #52606d; }
table { border-collapse: collapse; margin: 4px 0 8px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f5f7fa; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #f9fafb; }
.more { color: #52606d; font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 4px; }
.card { border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
td.flag { background: #fdecea; color: #9b1c1c; font-weight: 600; }
.card b { display: block; font-size: 20px; }
.card span { color: #52606d; font-size: 12px; }
td.wrap { white-space: normal; max-width: 420px; }
td { white-space: nowrap; }
"""


def _cell(column: str, value: Any) -> str:
    """One cell: numbers right-aligned, ARNs shortened (full ARN on hover), entities one a line."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{escape(human(column, value))}</td>'
    if column == "principal_arn" and isinstance(value, str) and value.count(":") >= 5:
        short = value.split(":", 5)[5]
        return f'<td title="{escape(value)}">{escape(short)}</td>'
    if isinstance(value, list):
        lines = "<br>".join(escape(human(column, [item])) for item in value)
        return f'<td class="wrap">{lines}</td>'
    if column in ("run_status", "status") and value != "complete":
        return f'<td class="flag">{escape(human(column, value))}</td>'
    css = ' class="wrap"' if column in ("service_name", "files", "in_report") else ""
    return f"<td{css}>{escape(human(column, value))}</td>"


def _table(report: Report, table: Table) -> str:
    total = count(report, table)
    out = [f"<h2>{escape(table.title)} ({total:,})</h2>"]
    if not total:
        return out[0] + "<p>(none)</p>"
    out.append("<table><thead><tr>")
    out += [f"<th>{escape(column)}</th>" for column in table.columns]
    out.append("</tr></thead><tbody>")
    for row in fetch(report, table, MAX_HTML_ROWS):
        cells = (_cell(column, value) for column, value in zip(table.columns, row, strict=True))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if total > MAX_HTML_ROWS:
        out.append(
            f'<p class="more">First {MAX_HTML_ROWS:,} of {total:,} rows; '
            "--format csv or json gives them all.</p>"
        )
    return "".join(out)


def write_html(report: Report, out: IO[str]) -> None:
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
    parts += [_table(report, table) for table in report.tables if not table.detail]
    parts += [_table(report, table) for table in report.tables if table.detail]
    parts.append("</body></html>\n")
    out.write("\n".join(parts))
