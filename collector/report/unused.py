"""`report unused`: what each principal is granted and has not used in N days, or ever."""

# Age is counted in whole UTC calendar days: `days_since` = the as-of date minus the date of
# `last_authenticated`; a service is unused when it was never used or `days_since >= N`.
# Only principals with a `principal` line (complete reports) are judged.

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from collector.report.accounts import AccountNames
from collector.report.model import Bars, Report, Table

if TYPE_CHECKING:
    import duckdb

AGE_BUCKETS = (
    (0, 7, "0-7 days"),
    (8, 30, "8-30 days"),
    (31, 90, "31-90 days"),
    (91, 180, "91-180 days"),
    (181, 365, "181-365 days"),
    (366, None, "over 365 days"),
)
NEVER = "never used"
TYPES = ("user", "group", "role", "policy")


def judged_services(source: str, as_of: str, days: str) -> str:
    """Service rows of complete principals with `days_since` and `unused`; SQL text.

    `as_of` and `days` are SQL expressions (a parameter, or a column such as run_date).
    """
    return f"""
        SELECT s.account_id, s.run_id, s.principal_arn, s.principal_type, s.service_namespace,
               s.service_name, s.last_authenticated,
               date_diff('day', s.last_authenticated::DATE, {as_of}) AS days_since,
               s.last_authenticated IS NULL
                   OR date_diff('day', s.last_authenticated::DATE, {as_of}) >= {days} AS unused
        FROM {source} s
        SEMI JOIN (SELECT account_id, run_id, principal_arn FROM {source}
                   WHERE record = 'principal') p
            ON s.account_id = p.account_id AND s.run_id = p.run_id
           AND s.principal_arn = p.principal_arn
        WHERE s.record = 'service'"""


def judge(con: duckdb.DuckDBPyConnection, source: str, as_of: date, days: int) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE judged AS " + judged_services(source, "$as_of", "$days"),
        {"as_of": as_of, "days": days},
    )


ISO = "'%Y-%m-%dT%H:%M:%SZ'"


def unused_rows(source: str, names: AccountNames) -> Table:
    """One row per (principal, unused service), with per-principal counts and who used it."""
    query = f"""
        WITH counted AS (
            SELECT *, count(*) OVER w AS granted, sum(unused::INT) OVER w AS unused_count
            FROM judged WINDOW w AS (PARTITION BY account_id, run_id, principal_arn)
        ), used_by AS (
            SELECT account_id, run_id, principal_arn, service_namespace,
                   list({{'entity_arn': entity_arn,
                          'last_authenticated': strftime(last_authenticated, {ISO})}}
                        ORDER BY last_authenticated DESC, entity_arn) AS used_by
            FROM {source}
            WHERE record = 'entity' AND principal_type IN ('group', 'policy')
              AND last_authenticated IS NOT NULL
            GROUP BY ALL
        )
        SELECT c.principal_arn, c.principal_type, c.account_id, c.service_namespace,
               c.service_name, strftime(c.last_authenticated, {ISO}) AS last_authenticated,
               c.days_since, c.granted AS principal_granted,
               c.unused_count AS principal_unused,
               round(c.unused_count / c.granted, 4) AS principal_unused_share,
               CASE WHEN c.principal_type IN ('group', 'policy')
                    THEN coalesce(u.used_by, []) END AS used_by{names.select()}
        FROM counted c LEFT JOIN used_by u USING (account_id, run_id, principal_arn,
                                                  service_namespace)
        LEFT JOIN account_names n ON n.account_id = c.account_id
        WHERE c.unused
        ORDER BY c.account_id, c.principal_type, c.principal_arn, c.service_namespace"""
    columns = (
        "principal_arn",
        "principal_type",
        "account_id",
        "service_namespace",
        "service_name",
        "last_authenticated",
        "days_since",
        "principal_granted",
        "principal_unused",
        "principal_unused_share",
        "used_by",
        *names.column(),  # last: scripts read the columns before it by place, too
    )
    return Table("unused", "Granted and not used", columns, [], detail=True, query=query)


def per_principal(con: duckdb.DuckDBPyConnection, names: AccountNames) -> Table:
    rows = con.execute(
        f"""SELECT principal_arn, principal_type, account_id, count(*) AS granted,
                  sum(unused::INT) AS unused, round(sum(unused::INT) / count(*), 4) AS unused_share,
                  max(last_authenticated) AS last_used
                  {names.select("any_value(n.account_name)")}
           FROM judged LEFT JOIN account_names n USING (account_id)
           GROUP BY principal_arn, principal_type, account_id HAVING sum(unused::INT) > 0
           ORDER BY unused DESC, unused_share DESC, principal_arn"""
    ).fetchall()
    columns = (
        "principal_arn",
        "principal_type",
        "account_id",
        "granted",
        "unused",
        "unused_share",
        "last_used",
        *names.column(),
    )
    return Table("principals", "Principals with unused services", columns, rows)


def share_chart(con: duckdb.DuckDBPyConnection, days: int, names: AccountNames) -> Bars:
    """Unused share of granted services, per account (its name, when known) and principal type."""
    rows = con.execute(
        """SELECT account_id, principal_type, sum(unused::INT), count(*) FROM judged
           GROUP BY account_id, principal_type ORDER BY account_id,
               list_position(['user', 'group', 'role', 'policy'], principal_type)"""
    ).fetchall()
    labels = [f"{names.short(account)} {kind}" for account, kind, _, _ in rows]
    unused = [u / g if g else 0.0 for _, _, u, g in rows]
    return Bars(
        f"Unused share of granted services (not used in {days} days or never)",
        labels,
        {"unused": unused, "used": [1.0 - share for share in unused]},
        unit="share",
    )


def age_chart(con: duckdb.DuckDBPyConnection) -> Bars:
    """Used (principal, service) pairs by age of last access, stacked by principal type.

    Never-used pairs go in the title, not in a bar: they outnumber the rest in most accounts
    and would flatten the histogram of the ones that matter for trimming.
    """
    cases = " ".join(
        f"WHEN days_since <= {high} THEN '{label}'" if high is not None else f"ELSE '{label}'"
        for _, high, label in AGE_BUCKETS
    )
    rows: list[tuple[Any, ...]] = con.execute(
        f"""SELECT CASE WHEN last_authenticated IS NULL THEN '{NEVER}' {cases} END AS bucket,
                   principal_type, count(*)
            FROM judged GROUP BY ALL"""
    ).fetchall()
    labels = [label for _, _, label in AGE_BUCKETS]
    counts = {kind: [0.0] * len(labels) for kind in TYPES}
    never = 0
    for bucket, kind, count in rows:
        if bucket == NEVER:
            never += count
        else:
            counts.setdefault(kind, [0.0] * len(labels))[labels.index(bucket)] = float(count)
    total = never + sum(sum(values) for values in counts.values())
    share = f" ({never / total:.0%})" if total else ""
    title = f"Age of last access of granted services; {never:,}{share} never used"
    return Bars(title, labels, counts, unit="pairs")


def highlights(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Headline figures over the judged service rows."""
    row = con.execute(
        """WITH pp AS (SELECT principal_arn, bool_and(unused) AS all_unused,
                              count(last_authenticated) = 0 AS never
                       FROM judged GROUP BY account_id, run_id, principal_arn)
           SELECT (SELECT count(DISTINCT account_id) FROM judged), count(*),
                  (SELECT count(*) FROM judged), (SELECT sum(unused::INT) FROM judged),
                  count(*) FILTER (WHERE all_unused), count(*) FILTER (WHERE never)
           FROM pp"""
    ).fetchone()
    accounts, principals, granted, unused, all_unused, never = row or (0, 0, 0, 0, 0, 0)
    unused = unused or 0
    share = f"{unused / granted:.0%}" if granted else "n/a"
    return [
        ("accounts", f"{accounts:,}"),
        ("principals with services", f"{principals:,}"),
        ("granted (principal, service)", f"{granted:,}"),
        ("unused", f"{unused:,} ({share})"),
        ("principals with all of it unused", f"{all_unused:,}"),
        ("principals never used anything", f"{never:,}"),
    ]


def unused_report(
    con: duckdb.DuckDBPyConnection,
    source: str,
    as_of: date,
    days: int,
    notes: list[str],
    names: AccountNames,
) -> Report:
    """Needs table `account_names` (accounts.install)."""
    judge(con, source, as_of, days)
    return Report(
        title=f"Unused access: not used in {days} days as of {as_of.isoformat()}, or never",
        tables=[unused_rows(source, names), per_principal(con, names)],
        notes=notes,
        charts=[share_chart(con, days, names), age_chart(con)],
        context={"as of": as_of.isoformat(), "days": str(days), **names.context()},
        highlights=highlights(con),
        con=con,
    )
