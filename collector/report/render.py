"""Render a report as a rich table, CSV, JSON Lines or Markdown."""

# csv and json carry the main (first) table only, with machine values (shares as fractions,
# timestamps ISO-8601 with Z, empty for null in CSV); table and markdown show every table and
# the notes, for people. A table with `account_name` (last, for scripts) shows people its
# account as `name (id)` in the account_id column instead.

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from collector.report.model import Report, Table

TERMINAL_ROWS = 500


def fetch(report: Report, table: Table, limit: int | None = None) -> list[tuple[Any, ...]]:
    """A table's rows: kept in Python, or read from DuckDB (at most `limit`)."""
    if table.query is None:
        return table.rows if limit is None else table.rows[:limit]
    suffix = "" if limit is None else f" LIMIT {int(limit)}"
    rows: list[tuple[Any, ...]] = report.con.execute(table.query + suffix).fetchall()
    return rows


def count(report: Report, table: Table) -> int:
    if table.query is None:
        return len(table.rows)
    found = report.con.execute(f"SELECT count(*) FROM ({table.query})").fetchone()
    return int(found[0]) if found else 0


def for_people(
    table: Table, rows: list[tuple[Any, ...]]
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The columns and rows people see: account_name folded into account_id as `name (id)`."""
    if "account_name" not in table.columns or "account_id" not in table.columns:
        return table.columns, rows
    where, name = table.columns.index("account_id"), table.columns.index("account_name")
    shown = []
    for row in rows:
        values = list(row)
        if values[name]:
            values[where] = f"{values[name]} ({values[where]})"
        del values[name]
        shown.append(tuple(values))
    return tuple(c for c in table.columns if c != "account_name"), shown


def _copy(report: Report, table: Table, fmt: str, out: IO[str]) -> None:
    """DuckDB writes csv or JSON Lines itself (a million rows in seconds, not minutes)."""
    assert table.query is not None
    described = report.con.execute(f"DESCRIBE {table.query}").fetchall()
    exprs = []
    for name, kind, *_ in described:
        if fmt == "csv" and str(kind).endswith("[]"):  # used_by: `arn time; arn time`
            exprs.append(
                f"array_to_string(list_transform({name}, lambda e: concat_ws(' ', e.entity_arn, "
                f"e.last_authenticated)), '; ') AS {name}"
            )
        else:
            exprs.append(name)
    options = "FORMAT csv, HEADER" if fmt == "csv" else "FORMAT json"
    with tempfile.TemporaryDirectory(prefix="collector-report-") as tmp:
        path = Path(tmp) / f"out.{fmt}"
        report.con.execute(
            f"COPY (SELECT {', '.join(exprs)} FROM ({table.query})) TO '{path}' ({options})"
        )
        binary = getattr(out, "buffer", None)
        if binary is None:  # a StringIO: copy as text
            with path.open(encoding="utf-8") as text:
                shutil.copyfileobj(text, out)
            return
        out.flush()  # what was written as text goes first
        with path.open("rb") as src:
            shutil.copyfileobj(src, binary)


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
    if isinstance(value, str) and len(value) == 20 and value[10] == "T" and value[-1] == "Z":
        return value[:16].replace("T", " ")  # an ISO timestamp from a DuckDB-side table
    if isinstance(value, list):
        return "; ".join(_entity(item) for item in value)
    return str(value)


def _entity(item: Any) -> str:
    if isinstance(item, dict) and "entity_arn" in item:
        when = item.get("last_authenticated")
        name = str(item["entity_arn"]).split(":", 5)[-1]
        if isinstance(when, datetime):
            return f"{name} ({when:%Y-%m-%d})"
        return f"{name} ({when[:10]})" if isinstance(when, str) else name
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


def write_csv(report: Report, out: IO[str], table: Table | None = None) -> None:
    """The main table (or `table`) as CSV with a header."""
    table = report.tables[0] if table is None else table
    if table.query is not None:
        _copy(report, table, "csv", out)
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([_csv_cell(value) for value in row] for row in table.rows)


def write_json(report: Report, out: IO[str]) -> None:
    """JSON Lines: one object per row of the main table, like the export itself."""
    table = report.tables[0]
    if table.query is not None:
        _copy(report, table, "json", out)
        return
    for row in table.rows:
        record = {col: machine(value) for col, value in zip(table.columns, row, strict=True)}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


def _md_cell(column: str, value: Any) -> str:
    return human(column, value).replace("|", "\\|").replace("\n", " ")


def _md_table(report: Report, table: Table) -> list[str]:
    lines = [f"## {table.title}", ""]
    columns, rows = for_people(table, fetch(report, table))
    if not rows:
        return [*lines, "(none)", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = (_md_cell(c, v) for c, v in zip(columns, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_markdown(report: Report, out: IO[str]) -> None:
    lines = [f"# {report.title}", ""]
    lines += [f"- {key}: {value}" for key, value in report.context.items()]
    lines += [f"- **warning**: {note}" for note in report.notes]
    lines.append("")
    for table in report.tables:
        lines += _md_table(report, table)
    out.write("\n".join(lines))


def _short(column: str, value: Any) -> str:
    """On a terminal, `user/name` for a principal ARN: the account has its own column."""
    if column == "principal_arn" and isinstance(value, str) and value.count(":") >= 5:
        return value.split(":", 5)[5]
    return human(column, value)


def write_table(report: Report, out: IO[str], *, terminal: bool) -> None:
    """rich tables; colour only on a terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    # A file or pipe has no width to fit: do not fold long ARNs into 80 columns there.
    width = None if terminal else 240
    console = Console(file=out, force_terminal=terminal, no_color=not terminal, width=width)
    console.print(f"[bold]{escape(report.title)}[/bold]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    for table in report.tables:
        # A terminal is for reading: a long per-service list stops at TERMINAL_ROWS, and says so.
        limit = TERMINAL_ROWS if terminal and table.detail else None
        columns, rows = for_people(table, fetch(report, table, limit))
        rich_table = RichTable(title=escape(table.title), title_justify="left", highlight=False)
        for index, column in enumerate(columns):
            numeric = rows and isinstance(rows[0][index], int | float)
            rich_table.add_column(column, justify="right" if numeric else "left", overflow="fold")
        for row in rows:
            # Values are text, not rich markup: an account named `[red]x` shows as written.
            cells = (escape(_short(c, v)) for c, v in zip(columns, row, strict=True))
            rich_table.add_row(*cells)
        console.print(rich_table)
        if limit is not None and (total := count(report, table)) > limit:
            console.print(
                f"[yellow]{total - limit:,} more rows[/yellow]: --format csv, json or html "
                "(or --output FILE) for all of them",
                highlight=False,
            )
