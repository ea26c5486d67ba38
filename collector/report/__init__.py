"""`collector report`: answers from schema-1 exports, on DuckDB (the `report` extra)."""

from collector.report.command import add_report_parser, run_report

__all__ = ["add_report_parser", "run_report"]
