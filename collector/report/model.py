"""What a report is, independent of how it is rendered: titled tables, notes and chart data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ReportInputError(Exception):
    """An input the report cannot use: the CLI prints it as one line and exits 2."""


@dataclass(frozen=True, slots=True)
class Table:
    """A named result: column names and rows of plain Python values."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    detail: bool = False  # one row per (principal, service): the HTML page puts it last
    # Big tables stay in DuckDB: `query` yields the rows (machine values: ISO timestamps),
    # csv and json are written by DuckDB itself, the rest fetch through Report.con.
    query: str | None = None


@dataclass(frozen=True, slots=True)
class Bars:
    """Chart data: one bar per label, split into stacked parts (part name -> value)."""

    title: str
    labels: list[str]
    parts: dict[str, list[float]]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """The first table is the main one (the only one csv and json carry)."""

    title: str
    tables: list[Table]
    notes: list[str] = field(default_factory=list)
    charts: list[Bars] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)
    highlights: list[tuple[str, str]] = field(default_factory=list)  # headline figures
    con: Any = None  # the DuckDB connection that query tables read from
