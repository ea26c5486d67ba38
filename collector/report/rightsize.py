"""`report rightsize`: per policy, the services nobody used through it in N days, and a
proposed document without them."""

# Input: exports of `collector sweep --policy-documents` (policy_document lines next to the
# reports). A managed policy is judged by its own policy report (the users and roles it is
# attached to, groups through their members); an inline policy by its owner's report. The
# window is the one of `report unused`: a service is unused when it was never used or last
# used N or more whole UTC days before the as-of date. Only services the report lists are
# judged; anything else in a document is left as it is. Safe by construction: a used service
# is never removed (checked again on every proposal), Deny statements, NotAction, conditions
# and resources are kept, and a policy whose report is missing or failed gets no proposal.

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from collector.report.inputs import Run, load
from collector.report.model import ReportInputError
from collector.report.policydoc import (
    MAX_POLICY_CHARS,
    Document,
    Usage,
    as_list,
    granted,
    rewrite,
    split,
    statements,
)

if TYPE_CHECKING:
    import duckdb

EXTRA_COLUMNS = (
    "tracked_actions", "stage", "code", "policy_arn", "owner_arn", "policy_name", "version_id",
    "document", "attached_to",
)  # fmt: skip
# What the report proposes for one policy.
TRIM, DELETE, KEEP, NO_DATA, TOO_LARGE = "trim", "delete", "keep", "no_usage_data", "cannot_split"


@dataclass(frozen=True)
class Proposal:
    """One policy: what its report shows, and what to do about it."""

    account_id: str
    policy_arn: str | None
    owner_arn: str | None
    policy_name: str
    attached_to: list[str]
    action: str  # TRIM, DELETE, KEEP, NO_DATA or TOO_LARGE
    unused_services: list[str]
    used_services: list[str]
    removed_services: list[str]
    current_document: Document
    # The new document (TRIM only): one policy, or a list of policies when one would pass
    # IAM's size limit.
    proposed_document: Document | list[Document] | None
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "policy_arn": self.policy_arn,
            "owner_arn": self.owner_arn,
            "policy_name": self.policy_name,
            "attached_to": self.attached_to,
            "unused_services": self.unused_services,
            "used_services": self.used_services,
            "current_document": self.current_document,
            "proposed_document": self.proposed_document,
            "action": self.action,
            "removed_services": self.removed_services,
            "notes": self.notes,
        }

    @property
    def label(self) -> str:
        """How people name the policy: its ARN, or `inline NAME of OWNER`."""
        if self.policy_arn:
            return self.policy_arn
        return f"inline policy {self.policy_name} of {self.owner_arn}"


@dataclass(frozen=True)
class Rightsize:
    """The whole report: proposals ordered by services removed, most first."""

    as_of: date
    days: int
    notes: list[str]
    proposals: list[Proposal]

    @property
    def title(self) -> str:
        return (
            f"Rightsized policies: without the services not used in {self.days} days "
            f"as of {self.as_of.isoformat()}"
        )


@dataclass(frozen=True)
class _Status:
    """What the export holds for a principal that has no complete report."""

    stage: str | None
    code: str | None
    rows: int


def _is_aws_managed(arn: str | None) -> bool:
    return arn is not None and ":iam::aws:policy/" in arn


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def _used_actions(tracked: Any, as_of: date, days: int) -> tuple[str, ...] | None:
    """The tracked actions used within the window; None without ACTION_LEVEL rows."""
    if tracked is None:
        return None
    items = json.loads(tracked) if isinstance(tracked, str) else tracked
    if items is None:
        return None
    used = []
    for item in items:
        day = _day(item.get("last_accessed_time"))
        if day is not None and (as_of - day).days < days and item.get("action_name"):
            used.append(str(item["action_name"]))
    return tuple(sorted(used))


def _reports(
    con: duckdb.DuckDBPyConnection, as_of: date, days: int
) -> dict[tuple[str, str], list[tuple[str, bool, Any]]]:
    """(account, principal) -> (namespace, unused, tracked_actions) of complete reports."""
    rows = con.execute(
        """SELECT s.account_id, s.principal_arn, s.service_namespace,
                  s.last_authenticated IS NULL
                      OR date_diff('day', s.last_authenticated::DATE, $as_of) >= $days,
                  s.tracked_actions
           FROM inputs_cur s
           SEMI JOIN (SELECT account_id, principal_arn FROM inputs_cur
                      WHERE record = 'principal') p USING (account_id, principal_arn)
           SEMI JOIN subjects d ON d.account_id = s.account_id AND d.subject = s.principal_arn
           WHERE s.record = 'service'""",
        {"as_of": as_of, "days": days},
    ).fetchall()
    reports: dict[tuple[str, str], list[tuple[str, bool, Any]]] = {}
    for account, arn, namespace, unused, tracked in rows:
        reports.setdefault((account, arn), []).append((namespace, bool(unused), tracked))
    return reports


def _statuses(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], _Status]:
    """Why a subject has no complete report: its error, or rows without a principal line."""
    rows = con.execute(
        """SELECT account_id, principal_arn,
                  min(stage) FILTER (WHERE record = 'error'),
                  min(code) FILTER (WHERE record = 'error'),
                  count(*) FILTER (WHERE record IN ('service', 'entity'))
           FROM inputs_cur
           SEMI JOIN subjects d ON d.account_id = inputs_cur.account_id
                               AND d.subject = inputs_cur.principal_arn
           GROUP BY ALL"""
    ).fetchall()
    return {(a, arn): _Status(stage, code, count) for a, arn, stage, code, count in rows}


def _no_data(why: str, status: _Status | None, aws_managed: bool, days: int) -> str:
    if status is not None and status.code:
        return f"no usage data: {why} report failed ({status.stage}: {status.code})"
    if status is not None and status.rows:
        return f"no usage data: {why} report is incomplete (the sweep stopped before it ended)"
    if aws_managed:
        return (
            "no usage data: an AWS-managed policy has its own report only in a sweep with "
            "--aws-managed-policies"
        )
    return f"no usage data: {why} report is not in the export (not swept, or made after it)"


def _usage(
    rows: list[tuple[str, bool, Any]], document: Mapping[str, Any], as_of: date, days: int
) -> Usage:
    """The report's rows for the services this document grants."""
    mine = granted(document, (namespace for namespace, _, _ in rows))
    used_actions = {}
    for namespace, unused, tracked in rows:
        if namespace in mine and not unused:
            actions = _used_actions(tracked, as_of, days)
            if actions is not None:
                used_actions[namespace] = actions
    return Usage(
        used=frozenset(ns for ns, unused, _ in rows if ns in mine and not unused),
        unused=frozenset(ns for ns, unused, _ in rows if ns in mine and unused),
        used_actions=used_actions,
    )


def _actions(document: Mapping[str, Any]) -> set[str]:
    """Every action string of the document's Allow statements."""
    return {
        action
        for statement in statements(document)
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action"))
        if isinstance(action, str)
    }


def propose(
    *,
    account_id: str,
    policy_arn: str | None,
    owner_arn: str | None,
    policy_name: str,
    attached_to: list[str],
    document: Document,
    rows: list[tuple[str, bool, Any]] | None,
    status: _Status | None,
    as_of: date,
    days: int,
) -> Proposal:
    """The proposal for one policy from its report's rows (None: no complete report)."""
    aws_managed = _is_aws_managed(policy_arn)
    base = Proposal(
        account_id=account_id,
        policy_arn=policy_arn,
        owner_arn=owner_arn,
        policy_name=policy_name,
        attached_to=attached_to,
        action=NO_DATA,
        unused_services=[],
        used_services=[],
        removed_services=[],
        current_document=document,
        proposed_document=None,
        notes=[],
    )
    if rows is None:
        why = "its" if policy_arn else "its owner's"
        return replace(base, notes=[_no_data(why, status, aws_managed, days)])
    usage = _usage(rows, document, as_of, days)
    listed = usage.listed
    proposed = rewrite(document, usage)
    removed = sorted(granted(document, listed) - granted(proposed, listed))
    judged = replace(
        base,
        unused_services=sorted(usage.unused),
        used_services=sorted(usage.used),
        removed_services=removed,
    )
    if not usage.used <= granted(proposed, usage.used) or set(removed) - usage.unused:
        # Cannot happen by construction; if it ever did, no proposal is better than a wrong one.
        return replace(
            judged, notes=["no proposal: it failed the check that every used service stays allowed"]
        )
    notes = []
    kept = sorted(usage.unused - set(removed))
    if kept:
        notes.append(
            f"still granted through NotAction statements, which are kept as they are: "
            f"{', '.join(kept)}"
        )
    if not removed:
        why = f"nothing unused in {days} days" if not usage.unused else "nothing removable"
        return replace(judged, action=KEEP, notes=[f"{why}: keep it as it is", *notes])
    affected = f"the {len(attached_to)} principal(s) it is attached to"
    if not statements(proposed):
        note = (
            f"grants nothing used in {days} days: detach it from {affected} and delete it"
            if attached_to
            else f"grants nothing used in {days} days and is attached to nothing: delete it"
        )
        return replace(judged, action=DELETE, notes=[note, *notes])
    if not any(s.get("Effect") == "Allow" for s in statements(proposed)):
        notes.append(
            "grants nothing any more; its Deny statements still restrict every other policy "
            "of the principals: keep it for them, or move them to another policy first"
        )
    parts = split(proposed)
    if parts is None:
        note = (
            f"no proposal: it is over IAM's {MAX_POLICY_CHARS:,}-character limit and a "
            "statement in it cannot be cut (NotAction, or a single action)"
        )
        return replace(judged, action=TOO_LARGE, notes=[note, *notes])
    if len(parts) > 1:
        notes.append(
            f"over IAM's {MAX_POLICY_CHARS:,}-character limit for a managed policy: split into "
            f"{len(parts)} policies; attach all of them in its place"
        )
    if aws_managed:
        notes.append(
            f"AWS-managed: create the proposal as a customer-managed policy and attach it to "
            f"{affected} in place of {policy_arn}"
        )
    before, after = _actions(document), _actions(proposed)
    notes += [
        f"{ns}: a wildcard became the {len(actions)} tracked action(s) used in the window; "
        "IAM does not track every action of a service (S3 data events, for one): add any "
        "untracked action still needed"
        for ns, actions in sorted(usage.used_actions.items())
        if any(f"{ns}:{a}" in after and f"{ns}:{a}" not in before for a in actions)
    ]
    return replace(
        judged,
        action=TRIM,
        proposed_document=parts[0] if len(parts) == 1 else parts,
        notes=notes,
    )


def rightsize_report(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    as_of: date,
    days: int,
    warnings: Callable[[list[Run], str], list[str]],
) -> Rightsize:
    """Load the exports; a proposal per policy of each account's newest run.

    `warnings` tells of runs that are not complete (on stderr) and returns them as notes.
    """
    notes = warnings(load(con, paths, "inputs", extra=EXTRA_COLUMNS), "")
    con.execute(
        """CREATE TEMP TABLE subjects AS
           SELECT d.account_id, d.policy_arn, d.owner_arn, d.policy_name, d.document,
                  d.attached_to, coalesce(d.policy_arn, d.owner_arn) AS subject
           FROM inputs_documents d JOIN inputs_runs r USING (account_id, run_id)
           WHERE r.current"""
    )
    found = con.execute("SELECT count(*) FROM subjects").fetchone()
    if not found or not found[0]:
        raise ReportInputError(
            "no policy_document lines in the newest run of any account: sweep with "
            "--policy-documents (it needs iam:GetAccountAuthorizationDetails)"
        )
    reports = _reports(con, as_of, days)
    statuses = _statuses(con)
    proposals = []
    for account, policy_arn, owner_arn, name, document, attached, subject in con.execute(
        "SELECT * FROM subjects ORDER BY account_id, subject, policy_name"
    ).fetchall():
        key = (account, subject)
        proposals.append(
            propose(
                account_id=account,
                policy_arn=policy_arn,
                owner_arn=owner_arn,
                policy_name=name,
                attached_to=list(json.loads(attached) or []),
                document=json.loads(document),
                rows=reports.get(key),
                status=statuses.get(key),
                as_of=as_of,
                days=days,
            )
        )
    proposals.sort(key=lambda p: (-len(p.removed_services), p.account_id, p.label))
    return Rightsize(as_of=as_of, days=days, notes=notes, proposals=proposals)
