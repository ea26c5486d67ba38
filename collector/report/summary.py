"""`report summary`: per account and principal type, what was reported and how much is unused."""

# A principal is counted when its `principal` line is there; `errors` counts principals that
# ended in an `error` record, `incomplete` those with rows but neither (an unfinished sweep).
# Every account carries its run's status; anything but `complete` is flagged.

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from collector.report.accounts import AccountNames
from collector.report.inputs import Run
from collector.report.model import Report, Table
from collector.report.unused import age_chart, highlights, judge, share_chart

if TYPE_CHECKING:
    import duckdb


def summary_table(
    con: duckdb.DuckDBPyConnection, source: str, runs: str, names: AccountNames
) -> Table:
    rows = con.execute(
        f"""
        WITH judged_pp AS (
            SELECT account_id, run_id, principal_arn, count(*) AS granted,
                   sum(unused::INT) AS unused, count(last_authenticated) AS ever_used
            FROM judged GROUP BY ALL
        ), pp AS (
            SELECT account_id, run_id, principal_arn, any_value(principal_type) AS principal_type,
                   bool_or(record = 'principal') AS done, bool_or(record = 'error') AS failed
            FROM {source} WHERE record <> 'run' GROUP BY ALL
        )
        SELECT pp.account_id, pp.principal_type,
               count(*) FILTER (WHERE done) AS principals,
               coalesce(sum(granted) FILTER (WHERE done), 0) AS granted_services,
               coalesce(sum(unused) FILTER (WHERE done), 0) AS unused_services,
               round(sum(unused) FILTER (WHERE done) / sum(granted) FILTER (WHERE done), 4)
                   AS unused_share,
               count(*) FILTER (WHERE done AND granted > 0 AND ever_used = 0)
                   AS never_used_principals,
               count(*) FILTER (WHERE failed) AS errors,
               count(*) FILTER (WHERE NOT done AND NOT failed) AS incomplete,
               any_value(r.status) AS run_status
               {names.select("any_value(n.account_name) AS account_name")}
        FROM pp LEFT JOIN judged_pp j USING (account_id, run_id, principal_arn)
        JOIN {runs} r USING (account_id, run_id)
        LEFT JOIN account_names n ON n.account_id = pp.account_id
        GROUP BY pp.account_id, pp.principal_type
        ORDER BY pp.account_id,
            list_position(['user', 'group', 'role', 'policy'], pp.principal_type)"""
    ).fetchall()
    columns = (
        "account_id",
        "principal_type",
        "principals",
        "granted_services",
        "unused_services",
        "unused_share",
        "never_used_principals",
        "errors",
        "incomplete",
        "run_status",
        *names.column(),  # last: scripts read the columns before it by place, too
    )
    return Table("summary", "Per account and principal type", columns, rows)


def runs_table(runs: list[Run], names: AccountNames) -> Table:
    columns = (
        "account_id", "run_id", "started", "status", "errors", "in_report", "files",
        *names.column(),
    )  # fmt: skip
    rows = [
        (
            run.account_id,
            run.run_id,
            run.started,
            run.status,
            run.errors,
            "yes" if run.current else "no: a newer run of this account is given",
            run.files,
            *names.value(run.account_id),
        )
        for run in runs
    ]
    return Table("runs", "Input runs", columns, rows)


def summary_report(
    con: duckdb.DuckDBPyConnection,
    name: str,
    runs: list[Run],
    as_of: date,
    days: int,
    notes: list[str],
    names: AccountNames,
) -> Report:
    """Needs table `account_names` (accounts.install)."""
    judge(con, f"{name}_cur", as_of, days)
    return Report(
        title=f"Access Advisor summary as of {as_of.isoformat()} (unused: {days} days or never)",
        tables=[summary_table(con, f"{name}_cur", f"{name}_runs", names), runs_table(runs, names)],
        notes=notes,
        charts=[share_chart(con, days, names), age_chart(con)],
        context={"as of": as_of.isoformat(), "days": str(days), **names.context()},
        highlights=[
            *highlights(con),
            ("runs not complete", str(sum(1 for run in runs if run.current and run.flagged))),
        ],
    )
