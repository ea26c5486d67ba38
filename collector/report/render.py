"""Render a report as a rich table, CSV, JSON Lines or Markdown.

csv and json carry the main (first) table only, with machine values (shares as fractions,
timestamps ISO-8601 with Z, empty for null in CSV); table and markdown show every table and
the notes, for people.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from typing import IO, Any

from collector.report.model import Report, Table


def machine(value: Any) -> Any:
    """A value for CSV/JSON: timestamps as ISO-8601 UTC with Z, nested values kept."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [machine(item) for item in value]
    if isinstance(value, dict):
        return {key: machine(item) for key, item in value.items()}
    return value


def human(column: str, value: Any) -> str:
    """A value for people: shares as percentages, entity lists as `name (date)`."""
    if value is None:
        return ""
    if column.endswith("share") and isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return "; ".join(_entity(item) for item in value)
    return str(value)


def _entity(item: Any) -> str:
    if isinstance(item, dict) and "entity_arn" in item:
        when = item.get("last_authenticated")
        name = str(item["entity_arn"]).split(":", 5)[-1]
        return f"{name} ({when:%Y-%m-%d})" if isinstance(when, datetime) else name
    return str(item)


def _csv_cell(value: Any) -> Any:
    value = machine(value)
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(
            f"{item['entity_arn']} {item['last_authenticated'] or ''}".strip()
            if isinstance(item, dict)
            else str(item)
            for item in value
        )
    return value


def write_csv(report: Report, out: IO[str]) -> None:
    table = report.tables[0]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([_csv_cell(value) for value in row] for row in table.rows)


def write_json(report: Report, out: IO[str]) -> None:
    """JSON Lines: one object per row of the main table, like the export itself."""
    table = report.tables[0]
    for row in table.rows:
        record = {col: machine(value) for col, value in zip(table.columns, row, strict=True)}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


def _md_cell(column: str, value: Any) -> str:
    return human(column, value).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", ""]
    if not table.rows:
        return [*lines, "(none)", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        cells = (_md_cell(c, v) for c, v in zip(table.columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_markdown(report: Report, out: IO[str]) -> None:
    lines = [f"# {report.title}", ""]
    lines += [f"- {key}: {value}" for key, value in report.context.items()]
    lines += [f"- **warning**: {note}" for note in report.notes]
    lines.append("")
    for table in report.tables:
        lines += _md_table(table)
    out.write("\n".join(lines))


def _short(column: str, value: Any) -> str:
    """On a terminal, `user/name` for a principal ARN: the account has its own column."""
    if column == "principal_arn" and isinstance(value, str) and value.count(":") >= 5:
        return value.split(":", 5)[5]
    return human(column, value)


def write_table(report: Report, out: IO[str], *, terminal: bool) -> None:
    """rich tables; colour only on a terminal."""
    from rich.console import Console
    from rich.table import Table as RichTable

    # A file or pipe has no width to fit: do not fold long ARNs into 80 columns there.
    width = None if terminal else 240
    console = Console(file=out, force_terminal=terminal, no_color=not terminal, width=width)
    console.print(f"[bold]{report.title}[/bold]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    for table in report.tables:
        rich_table = RichTable(title=table.title, title_justify="left", highlight=False)
        for column in table.columns:
            numeric = table.rows and isinstance(table.rows[0][table.columns.index(column)], int)
            rich_table.add_column(column, justify="right" if numeric else "left", overflow="fold")
        for row in table.rows:
            rich_table.add_row(*(_short(c, v) for c, v in zip(table.columns, row, strict=True)))
        console.print(rich_table)
