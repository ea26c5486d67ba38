"""`report diff OLD NEW`: what changed between two sweeps of the same account(s)."""

# Each side is judged as of its own run's date (the UTC date the sweep started), so "newly
# unused" means: used within N days when OLD ran, not when NEW ran. Service changes are
# listed for principals reported completely on both sides; accounts on one side only are
# noted, not diffed (a missing account is not a removal of all its principals). With no
# account on both sides there is nothing to compare: that is an input error, not an empty
# diff (a header-only CSV would read as "no changes" to a script).

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.report.model import Bars, Report, ReportInputError, Table
from collector.report.unused import judged_services

if TYPE_CHECKING:
    import duckdb

CHANGES = (
    "principal_added",
    "principal_removed",
    "newly_granted",
    "no_longer_granted",
    "newly_used",
    "newly_unused",
)


def _side(con: duckdb.DuckDBPyConnection, name: str, days: int) -> None:
    con.execute(
        f"CREATE TEMP TABLE {name}_svc AS {judged_services(f'{name}_cur', 's.run_date', '$days')}",
        {"days": days},
    )
    con.execute(
        f"""CREATE TEMP TABLE {name}_seen AS
            SELECT account_id, principal_arn, any_value(principal_type) AS principal_type,
                   bool_or(record = 'principal') AS done
            FROM {name}_cur WHERE record <> 'run' GROUP BY ALL"""
    )


def compare(con: duckdb.DuckDBPyConnection, days: int) -> list[str]:
    """Judge both sides; the accounts on one side only, as notes.

    ReportInputError when no account is on both sides: such a diff would be empty, not "no
    changes".
    """
    _side(con, "old", days)
    _side(con, "new", days)
    one_sided = _one_sided(con)
    common = con.execute(
        "SELECT count(*) FROM (SELECT account_id FROM old_seen INTERSECT "
        "SELECT account_id FROM new_seen)"
    ).fetchone()
    if not common or not common[0]:
        sides = {
            side: ", ".join(account for where, account in one_sided if where == side) or "none"
            for side in ("OLD", "NEW")
        }
        raise ReportInputError(
            f"OLD and NEW have no account in common (OLD: {sides['OLD']}; NEW: {sides['NEW']}): "
            "nothing to compare; give two sweeps of the same account(s)"
        )
    return [f"account {account} is only in {side}: not compared" for side, account in one_sided]


def diff_table(con: duckdb.DuckDBPyConnection) -> Table:
    order = "[" + ", ".join(f"'{change}'" for change in CHANGES) + "]"
    rows = con.execute(
        f"""
        WITH accounts AS (
            SELECT account_id FROM old_seen INTERSECT SELECT account_id FROM new_seen
        ), both_done AS (
            SELECT account_id, principal_arn FROM old_seen o JOIN new_seen n
            USING (account_id, principal_arn) WHERE o.done AND n.done
        ), svc AS (
            SELECT coalesce(o.account_id, n.account_id) AS account_id,
                   coalesce(o.principal_arn, n.principal_arn) AS principal_arn,
                   coalesce(n.principal_type, o.principal_type) AS principal_type,
                   coalesce(o.service_namespace, n.service_namespace) AS service_namespace,
                   o.last_authenticated AS old_last, n.last_authenticated AS new_last,
                   CASE WHEN o.account_id IS NULL THEN 'newly_granted'
                        WHEN n.account_id IS NULL THEN 'no_longer_granted'
                        WHEN o.unused AND NOT n.unused THEN 'newly_used'
                        WHEN n.unused AND NOT o.unused THEN 'newly_unused' END AS change
            FROM old_svc o FULL JOIN new_svc n
                USING (account_id, principal_arn, service_namespace)
        ), changes AS (
            SELECT change, account_id, principal_type, principal_arn, service_namespace,
                   old_last, new_last
            FROM svc SEMI JOIN both_done USING (account_id, principal_arn)
            WHERE change IS NOT NULL
            UNION ALL
            SELECT 'principal_added', account_id, principal_type, principal_arn, NULL, NULL, NULL
            FROM new_seen n SEMI JOIN accounts USING (account_id)
            ANTI JOIN old_seen o USING (account_id, principal_arn)
            UNION ALL
            SELECT 'principal_removed', account_id, principal_type, principal_arn,
                   NULL, NULL, NULL
            FROM old_seen o SEMI JOIN accounts USING (account_id)
            ANTI JOIN new_seen n USING (account_id, principal_arn)
        )
        SELECT * FROM changes
        ORDER BY list_position({order}, change), account_id, principal_arn,
                 service_namespace NULLS FIRST"""
    ).fetchall()
    columns = (
        "change",
        "account_id",
        "principal_type",
        "principal_arn",
        "service_namespace",
        "old_last_authenticated",
        "new_last_authenticated",
    )
    return Table("diff", "Changes from OLD to NEW", columns, rows, detail=True)


def _one_sided(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(side, account) of each account on one side only."""
    rows: list[tuple[str, str]] = con.execute(
        """SELECT 'OLD', account_id FROM (SELECT account_id FROM old_seen
                EXCEPT SELECT account_id FROM new_seen)
           UNION ALL
           SELECT 'NEW', account_id FROM (SELECT account_id FROM new_seen
                EXCEPT SELECT account_id FROM old_seen)
           ORDER BY 1, 2"""
    ).fetchall()
    return rows


def diff_report(con: duckdb.DuckDBPyConnection, days: int, notes: list[str]) -> Report:
    """The diff of the sides `compare` judged; `notes` already hold its one-sided accounts."""
    table = diff_table(con)
    counts = {change: 0 for change in CHANGES}
    for row in table.rows:
        counts[row[0]] += 1
    totals = Table("counts", "Changes by kind", ("change", "count"), list(counts.items()))
    chart = Bars(
        "Changes by kind",
        list(counts),
        {"changes": [float(count) for count in counts.values()]},
        unit="rows",
    )
    return Report(
        title=f"Changes between two sweeps (unused: {days} days or never, as of each run)",
        tables=[table, totals],
        notes=notes,
        charts=[chart],
        context={"days": str(days)},
    )
