"""Types that travel between pipeline stages, and the builders of JSONL schema-1 records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anyio import Event
    from types_aiobotocore_iam.type_defs import (
        GetServiceLastAccessedDetailsResponseTypeDef as JobPage,
    )

SCHEMA = 1

PrincipalType = Literal["user", "group", "role", "policy"]
Granularity = Literal["SERVICE_LEVEL", "ACTION_LEVEL"]
EntitiesMode = Literal["none", "accessed", "all"]
PRINCIPAL_TYPES: tuple[PrincipalType, ...] = ("user", "group", "role", "policy")
ErrorStage = Literal["generate", "poll", "services", "entities"]
Record = dict[str, Any]

_COMMON = ("record", "schema", "run_id", "account_id", "principal_arn", "principal_type", "job_id")
# The keys of each per-principal record kind, exactly: the schema-1 contract.
RECORD_FIELDS: dict[str, frozenset[str]] = {
    "service": frozenset(
        (*_COMMON, "service_namespace", "service_name", "last_authenticated",
         "last_authenticated_entity", "last_authenticated_region",
         "total_authenticated_entities", "tracked_actions")
    ),
    "entity": frozenset(
        (*_COMMON, "service_namespace", "entity_arn", "entity_name", "entity_type", "entity_id",
         "entity_path", "last_authenticated")
    ),
    "principal": frozenset(
        (*_COMMON, "principal_name", "principal_id", "principal_path", "job_type", "job_created",
         "job_completed", "services", "services_accessed", "entities")
    ),
    "error": frozenset((*_COMMON, "stage", "code", "message", "service_namespace")),
}  # fmt: skip
# A policy_document line (--policy-documents) describes a policy, not a report: no principal.
POLICY_DOCUMENT_FIELDS = frozenset(
    ("record", "schema", "run_id", "account_id", "policy_arn", "owner_arn", "policy_name",
     "version_id", "document", "attached_to")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every record of one sweep carries."""

    run_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class Principal:
    """A user, group, role or managed policy found by discovery."""

    arn: str
    type: PrincipalType
    name: str
    id: str
    path: str


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A report job that has been generated and is not finished yet."""

    principal: Principal
    job_id: str
    started: float  # monotonic clock reading when it was generated, for the deadline


@dataclass(frozen=True, slots=True)
class CompletedJob:
    """A COMPLETED job with the first page of services its last poll already returned."""

    principal: Principal
    job_id: str
    job_type: str
    job_created: datetime
    job_completed: datetime
    first_page: JobPage | None  # None once its rows are written: queued work stays small
    polls: int = 1
    regenerations: int = 0  # times the principal's job was lost and generated again before


@dataclass(slots=True)
class ReportProgress:
    """One report being read: its current job, the rows written, the namespaces still to read.

    Made by the services worker; once the service rows are written, shared by the namespace
    work items of the report, so entity workers read its namespaces side by side; the worker
    that finishes the last one writes the `principal` line. When the job becomes unreadable
    (NoSuchEntity: e.g. the credentials that made it were refreshed), the first worker to see
    it generates a new one (`renewing` set meanwhile) and every reader goes on from that one.
    """

    job: CompletedJob  # the job pages are read from now, without its first page
    services: int = 0  # service rows written
    accessed: int = 0  # of them, services someone used
    pending: int = 0  # namespaces whose entity pages are not read yet
    entities: int = 0  # entity rows written
    failed: bool = False  # a read kept failing: an error record, no `principal` line
    regenerations: int = 0  # this principal's jobs generated again so far
    renewing: Event | None = None  # set when the new job a worker is generating is known


@dataclass(frozen=True, slots=True)
class EntityWork:
    """One namespace of one report whose entities are still to read."""

    report: ReportProgress
    namespace: str


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`; milliseconds only when the source has them."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _common(kind: str, ctx: RunContext, principal: Principal, job_id: str | None) -> Record:
    return {
        "record": kind,
        "schema": SCHEMA,
        "run_id": ctx.run_id,
        "account_id": ctx.account_id,
        "principal_arn": principal.arn,
        "principal_type": principal.type,
        "job_id": job_id,
    }


def service_record(ctx: RunContext, job: CompletedJob, item: Mapping[str, Any]) -> Record:
    """One `ServicesLastAccessed` item as a `service` line."""
    tracked = item.get("TrackedActionsLastAccessed")
    return _common("service", ctx, job.principal, job.job_id) | {
        "service_namespace": item["ServiceNamespace"],
        "service_name": item.get("ServiceName"),
        "last_authenticated": iso(item.get("LastAuthenticated")),
        "last_authenticated_entity": item.get("LastAuthenticatedEntity"),
        "last_authenticated_region": item.get("LastAuthenticatedRegion"),
        "total_authenticated_entities": item.get("TotalAuthenticatedEntities"),
        "tracked_actions": None
        if tracked is None
        else [
            {
                "action_name": action.get("ActionName"),
                "last_accessed_time": iso(action.get("LastAccessedTime")),
                "last_accessed_entity": action.get("LastAccessedEntity"),
                "last_accessed_region": action.get("LastAccessedRegion"),
            }
            for action in tracked
        ],
    }


def entity_record(
    ctx: RunContext, job: CompletedJob, namespace: str, item: Mapping[str, Any]
) -> Record:
    """One `EntityDetailsList` item as an `entity` line."""
    info = item["EntityInfo"]
    return _common("entity", ctx, job.principal, job.job_id) | {
        "service_namespace": namespace,
        "entity_arn": info["Arn"],
        "entity_name": info.get("Name"),
        "entity_type": str(info.get("Type", "")).lower() or None,
        "entity_id": info.get("Id"),
        "entity_path": info.get("Path"),
        "last_authenticated": iso(item.get("LastAuthenticated")),
    }


def principal_record(
    ctx: RunContext, job: CompletedJob, services: int, services_accessed: int, entities: int
) -> Record:
    """The completion marker, written after all of a principal's service and entity lines."""
    principal = job.principal
    return _common("principal", ctx, principal, job.job_id) | {
        "principal_name": principal.name,
        "principal_id": principal.id,
        "principal_path": principal.path,
        "job_type": job.job_type,
        "job_created": iso(job.job_created),
        "job_completed": iso(job.job_completed),
        "services": services,
        "services_accessed": services_accessed,
        "entities": entities,
    }


def error_record(
    ctx: RunContext,
    principal: Principal,
    job_id: str | None,
    stage: ErrorStage,
    code: str,
    message: str,
    service_namespace: str | None = None,
) -> Record:
    """A principal that could not be reported completely."""
    return _common("error", ctx, principal, job_id) | {
        "stage": stage,
        "code": code,
        "message": message,
        "service_namespace": service_namespace,
    }


def policy_document_record(
    ctx: RunContext,
    *,
    policy_arn: str | None,
    owner_arn: str | None,
    policy_name: str,
    version_id: str | None,
    document: Mapping[str, Any],
    attached_to: list[str],
) -> Record:
    """One policy: a managed one (policy_arn) or an inline one (owner_arn), decoded."""
    return {
        "record": "policy_document",
        "schema": SCHEMA,
        "run_id": ctx.run_id,
        "account_id": ctx.account_id,
        "policy_arn": policy_arn,
        "owner_arn": owner_arn,
        "policy_name": policy_name,
        "version_id": version_id,
        "document": dict(document),
        "attached_to": attached_to,
    }


@dataclass
class Counters:
    """Live counts of one sweep, for the progress display and the run line."""

    principals_found: int = 0
    principals_done: int = 0
    jobs_in_flight: int = 0
    errors: int = 0


@dataclass
class CallStats:
    """Calls sent and throttled per operation, for the run line and the progress display."""

    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)


@dataclass
class OrgProgress:
    """Live counts of the whole run, for one progress line over every account.

    Only the accounts being swept keep counts of their own; when one ends, its counts are
    added to the run's totals once and dropped. So a progress snapshot costs O(accounts in
    flight) and nothing here grows with the number of accounts swept.
    """

    accounts: int = 0  # to sweep in this run
    done: int = 0
    in_flight: int = 0
    sweeping: dict[str, tuple[Counters, CallStats]] = field(default_factory=dict)
    swept: Counters = field(default_factory=Counters)  # of the accounts that ended
    swept_calls: int = 0
    swept_throttled: int = 0

    @property
    def queued(self) -> int:
        """Accounts not started yet."""
        return max(0, self.accounts - self.done - self.in_flight)

    def sweep_started(self, account_id: str) -> tuple[Counters, CallStats]:
        """The counts a new account's sweep keeps (shown while it runs)."""
        counts = self.sweeping[account_id] = (Counters(), CallStats())
        return counts

    def sweep_ended(self, account_id: str) -> None:
        """Fold an ended sweep's counts into the run's totals."""
        counters, stats = self.sweeping.pop(account_id)
        self.swept.principals_found += counters.principals_found
        self.swept.principals_done += counters.principals_done
        self.swept.errors += counters.errors
        self.swept_calls += sum(stats.calls.values())
        self.swept_throttled += sum(stats.throttled.values())
