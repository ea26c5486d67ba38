"""`report org-unused`: per OU, services the SCPs allow that nobody there used in N days."""

# Input: org-access-{run_id}.jsonl files (`sweep --org --org-access-report`). The report of an
# OU (or the root) already spans every account below it, so a service is unused across the OU
# when its row there has no `last_authenticated`, or one at least N whole UTC days before the
# as-of date: an SCP could deny it without breaking anyone who used it in that window.
# The newest run in the inputs is used; an OU whose report failed is named in a note.

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from collector.report.inputs import expand
from collector.report.model import Report, ReportInputError, Table

if TYPE_CHECKING:
    import duckdb

COLUMNS = {
    "record": "VARCHAR", "schema": "JSON", "run_id": "VARCHAR", "account_id": "VARCHAR",
    "entity_path": "VARCHAR", "target_id": "VARCHAR", "target_type": "VARCHAR",
    "service_namespace": "VARCHAR", "service_name": "VARCHAR", "last_authenticated": "VARCHAR",
    "last_authenticated_entity_path": "VARCHAR", "total_authenticated_entities": "JSON",
    "code": "VARCHAR", "started": "VARCHAR", "status": "VARCHAR",
}  # fmt: skip
ISO = "'%Y-%m-%dT%H:%M:%SZ'"

# The question itself, over table `org_access` (the newest run's lines); $as_of, $days.
ORG_UNUSED_SQL = f"""
    SELECT entity_path, target_type, target_id, service_namespace, service_name,
           strftime(last_authenticated, {ISO}) AS last_authenticated,
           date_diff('day', last_authenticated::DATE, $as_of) AS days_since,
           last_authenticated_entity_path
    FROM org_access
    WHERE record = 'org_access' AND target_type IN ('root', 'ou')
      AND (last_authenticated IS NULL
           OR date_diff('day', last_authenticated::DATE, $as_of) >= $days)
    ORDER BY entity_path, service_namespace"""

PER_OU_SQL = """
    SELECT entity_path, target_type, target_id, count(*) AS allowed,
           count(*) FILTER (WHERE last_authenticated IS NULL
                            OR date_diff('day', last_authenticated::DATE, $as_of) >= $days)
               AS unused,
           round(unused / count(*), 4) AS unused_share
    FROM org_access
    WHERE record = 'org_access' AND target_type IN ('root', 'ou')
    GROUP BY ALL ORDER BY entity_path"""


def load_org_access(con: duckdb.DuckDBPyConnection, patterns: list[str]) -> list[str]:
    """The newest run's lines into table `org_access`; the notes to show with the report."""
    import duckdb

    files = expand(patterns)
    if not files:
        raise ReportInputError("no input files given")
    columns = "{" + ", ".join(f"'{key}': '{kind}'" for key, kind in COLUMNS.items()) + "}"
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    try:
        con.execute(
            f"""CREATE TABLE org_lines AS SELECT filename AS file, * REPLACE (
                    TRY_CAST(last_authenticated AS TIMESTAMP) AS last_authenticated)
                FROM read_json({file_list}, format = 'newline_delimited', columns = {columns},
                               filename = true)"""
        )
    except duckdb.Error as error:
        raise ReportInputError(f"cannot read the input: {str(error).splitlines()[0]}") from None
    bad = con.execute(
        """SELECT file, coalesce(record, 'null') FROM org_lines
           WHERE schema IS NULL OR schema::VARCHAR <> '1'
              OR record IS NULL OR record NOT IN ('org_access', 'error', 'run') LIMIT 1"""
    ).fetchone()
    if bad is not None:
        raise ReportInputError(
            f"{bad[0]}: not an org-access export (a {bad[1]!r} line); give the "
            "org-access-*.jsonl files of `collector sweep --org --org-access-report`"
        )
    runs = con.execute(
        """SELECT run_id, status FROM org_lines WHERE record = 'run'
           ORDER BY started DESC, run_id DESC"""
    ).fetchall()
    if not runs:
        raise ReportInputError("no finished org-access report in the inputs (no run line)")
    run_id, status = runs[0]
    con.execute(
        "CREATE TABLE org_access AS SELECT * FROM org_lines WHERE run_id = $r", {"r": run_id}
    )
    notes = [f"run {run_id} is {status}"] if status != "complete" else []
    if len(runs) > 1:
        notes.append(f"{len(runs) - 1} older run(s) ignored: the newest is used")
    failed = con.execute(
        """SELECT coalesce(entity_path, 'the whole report'), code FROM org_access
           WHERE record = 'error' AND coalesce(target_type, 'ou') IN ('root', 'ou')
           ORDER BY 1"""
    ).fetchall()
    notes += [f"{path}: the report failed ({code}); not judged" for path, code in failed]
    return notes


def org_unused_report(
    con: duckdb.DuckDBPyConnection, as_of: date, days: int, notes: list[str]
) -> Report:
    params = {"as_of": as_of, "days": days}
    detail = con.execute(ORG_UNUSED_SQL, params).fetchall()
    per_ou = con.execute(PER_OU_SQL, params).fetchall()
    return Report(
        title=f"Allowed by SCPs, unused across the OU: not used in {days} days as of "
        f"{as_of.isoformat()}, or never",
        tables=[
            Table(
                "org_unused",
                "Services allowed and unused, per OU",
                (
                    "entity_path",
                    "target_type",
                    "target_id",
                    "service_namespace",
                    "service_name",
                    "last_authenticated",
                    "days_since",
                    "last_authenticated_entity_path",
                ),
                detail,
                detail=True,
            ),
            Table(
                "per_ou",
                "Per OU",
                ("entity_path", "target_type", "target_id", "allowed", "unused", "unused_share"),
                per_ou,
            ),
        ],
        notes=notes,
        context={"as of": as_of.isoformat(), "days": str(days)},
        highlights=[
            ("OUs (and the root)", f"{len(per_ou):,}"),
            ("allowed (OU, service)", f"{sum(row[3] for row in per_ou):,}"),
            ("unused", f"{len(detail):,}"),
        ],
        con=con,
    )
