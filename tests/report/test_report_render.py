"""Report rendering details: the terminal table's row limit, CSV and JSON of DuckDB-side tables."""

from __future__ import annotations

import io
import json

import duckdb

from collector.report.model import Report, Table
from collector.report.render import TERMINAL_ROWS, write_csv, write_json, write_table


def _report() -> Report:
    con = duckdb.connect()
    query = """SELECT 'arn:aws:iam::123456789012:user/u' || i AS principal_arn, i AS n,
                      CASE WHEN i = 0 THEN [{'entity_arn': 'e1', 'last_authenticated':
                           '2026-01-02T03:04:05Z'}] END AS used_by
               FROM range(600) t(i) ORDER BY i"""
    table = Table("t", "Rows", ("principal_arn", "n", "used_by"), [], detail=True, query=query)
    return Report("A report", [table], con=con)


def test_terminal_table_stops_at_the_limit_and_says_how_many_more() -> None:
    """On a terminal a long list stops at TERMINAL_ROWS with a note; off one it is whole."""
    report = _report()
    shown = io.StringIO()
    write_table(report, shown, terminal=True)
    assert "user/u499" in shown.getvalue() and "user/u500" not in shown.getvalue()
    assert f"{600 - TERMINAL_ROWS} more rows" in shown.getvalue()
    whole = io.StringIO()
    write_table(report, whole, terminal=False)
    assert "user/u599" in whole.getvalue() and "more rows" not in whole.getvalue()


def test_duckdb_side_tables_as_csv_and_json() -> None:
    """DuckDB writes them: CSV flattens entity lists, JSON Lines keeps them as objects."""
    report = _report()
    csv_out, json_out = io.StringIO(), io.StringIO()
    write_csv(report, csv_out)
    write_json(report, json_out)
    lines = csv_out.getvalue().splitlines()
    assert lines[0] == "principal_arn,n,used_by" and len(lines) == 601
    assert lines[1] == "arn:aws:iam::123456789012:user/u0,0,e1 2026-01-02T03:04:05Z"
    rows = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert rows[0]["used_by"] == [
        {"entity_arn": "e1", "last_authenticated": "2026-01-02T03:04:05Z"}
    ]
    assert rows[1] == {
        "principal_arn": "arn:aws:iam::123456789012:user/u1",
        "n": 1,
        "used_by": None,
    }
