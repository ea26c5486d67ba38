"""The two organizations access report operations: validation, jobs, pages, sorting, XML."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collector.emulator import wire
from collector.emulator.activity import stable_uniform
from collector.emulator.faults import FaultInjector
from collector.emulator.markers import encode_marker
from collector.emulator.operations import Answer, InvalidInput, marker_offset
from collector.emulator.orgreport import AccessRow, BadEntityPath, OrgReport, UnknownPolicy

ORG_OPERATIONS = frozenset({"GenerateOrganizationsAccessReport", "GetOrganizationsAccessReport"})
SORT_KEYS = (
    "SERVICE_NAMESPACE_ASCENDING",
    "SERVICE_NAMESPACE_DESCENDING",
    "LAST_AUTHENTICATED_TIME_ASCENDING",
    "LAST_AUTHENTICATED_TIME_DESCENDING",
)
# The constraints of botocore's iam model (organizationsEntityPathType, …).
_ENTITY_PATH = re.compile(r"^o-[0-9a-z]{10,32}\/r-[0-9a-z]{4,32}[0-9a-z-\/]*")
_POLICY_ID = re.compile(r"^p-[0-9a-zA-Z_]{8,128}$")
FAILURE = ("ServiceFailure", "The report job could not be completed because of an internal error.")

# Builds a report for (entity path, policy id or None); raises BadEntityPath/UnknownPolicy.
ReportBuilder = Callable[[str, str | None], OrgReport]


@dataclass(frozen=True, slots=True)
class OrgJob:
    """One organizations access report job."""

    job_id: str
    entity_path: str
    created: datetime
    ready_at: float
    latency: float
    report: OrgReport
    error: tuple[str, str] | None  # (code, message) of a FAILED job

    def status(self, now: float) -> str:
        """IN_PROGRESS until its latency has passed, then COMPLETED or FAILED."""
        if now < self.ready_at:
            return "IN_PROGRESS"
        return "FAILED" if self.error else "COMPLETED"


_MARKER_KIND = "org-offset"


class _ValidationError(InvalidInput):
    """A model constraint violation: IAM answers ValidationError, not InvalidInput."""


def _constraint(value: str | None, member: str, constraint: str) -> _ValidationError:
    shown = "null" if value is None else f"'{value}'"
    return _ValidationError(
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def fails(seed: int, share: float, entity_path: str) -> bool:
    """Whether every report job of this entity path ends FAILED (the failed-reports knob)."""
    return share > 0 and stable_uniform(seed, "org-report-failed", entity_path.rstrip("/")) < share


class OrgAccessReports:
    """Serves the two operations for the management account of one organisation."""

    def __init__(
        self,
        build: ReportBuilder,
        injector: FaultInjector,
        seed: int,
        latency: float,
        failed_share: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.build = build
        self.injector = injector
        self.seed = seed
        self.latency = latency
        self.failed_share = failed_share
        self.clock = clock
        self._jobs: dict[str, OrgJob] = {}
        self._lock = threading.Lock()

    def handle(self, operation: str, params: Mapping[str, str]) -> Answer:
        """Answer one of the two operations."""
        try:
            if operation == "GenerateOrganizationsAccessReport":
                return self.generate(params)
            return self.get(params)
        except _ValidationError as exc:
            return Answer(400, wire.error("ValidationError", str(exc), 400))
        except InvalidInput as exc:
            return Answer(400, wire.error("InvalidInput", str(exc), 400))

    def generate(self, params: Mapping[str, str]) -> Answer:
        """GenerateOrganizationsAccessReport: one job in progress at a time."""
        path = params.get("EntityPath")
        if not path:
            raise _constraint(None, "entityPath", "Member must not be null")
        if not 19 <= len(path) <= 427:
            raise _constraint(
                path,
                "entityPath",
                "Member must have length between 19 and 427",
            )
        if not _ENTITY_PATH.match(path):
            raise _constraint(
                path,
                "entityPath",
                "Member must satisfy regular expression pattern: "
                "^o-[0-9a-z]{10,32}\\/r-[0-9a-z]{4,32}[0-9a-z-\\/]*",
            )
        policy_id = params.get("OrganizationsPolicyId")
        if policy_id is not None and not _POLICY_ID.match(policy_id):
            raise _constraint(
                policy_id,
                "organizationsPolicyId",
                "Member must satisfy regular expression pattern: ^p-[0-9a-zA-Z_]{8,128}$",
            )
        try:
            report = self.build(path, policy_id)
        except BadEntityPath:
            raise InvalidInput(f"Invalid entity path: {path}.") from None
        except UnknownPolicy:
            raise InvalidInput(f"Invalid Organizations policy ID: {policy_id}.") from None
        now = self.clock()
        with self._lock:
            if any(job.status(now) == "IN_PROGRESS" for job in self._jobs.values()):
                return Answer(
                    409,
                    wire.error(
                        "ReportGenerationLimitExceeded",
                        "A report for this account is already in progress. "
                        "Wait for it to complete before generating another.",
                        409,
                    ),
                )
            error = FAILURE if fails(self.seed, self.failed_share, path) else None
            job = OrgJob(
                job_id=str(uuid.uuid4()),
                entity_path=report.entity_path,
                created=datetime.now(UTC),
                ready_at=now + self.latency,
                latency=self.latency,
                report=report,
                error=error,
            )
            self._jobs[job.job_id] = job
        return Answer(
            200,
            wire.response("GenerateOrganizationsAccessReport", [wire.element("JobId", job.job_id)]),
        )

    def get(self, params: Mapping[str, str]) -> Answer:
        """GetOrganizationsAccessReport: status, counts, and a sorted page of AccessDetails."""
        job_id = params.get("JobId")
        if not job_id:
            raise _constraint(None, "jobId", "Member must not be null")
        sort_key = params.get("SortKey", SORT_KEYS[0])
        if sort_key not in SORT_KEYS:
            raise _constraint(
                sort_key,
                "sortKey",
                f"Member must satisfy enum value set: [{', '.join(SORT_KEYS)}]",
            )
        max_items = _max_items(params)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return Answer(
                404, wire.error("NoSuchEntity", f"No report job found with the ID {job_id}.", 404)
            )
        status = job.status(self.clock())
        parts = [
            wire.element("JobStatus", status),
            wire.element("JobCreationDate", wire.timestamp(job.created, millis=True)),
        ]
        if status != "IN_PROGRESS":
            completed = job.created + timedelta(seconds=job.latency)
            parts.append(wire.element("JobCompletionDate", wire.timestamp(completed, millis=True)))
        if status == "COMPLETED":
            rows = sort_rows(job.report.rows, sort_key)
            offset = marker_offset(params, _MARKER_KIND, len(rows))
            end = offset + self.injector.page_size(max_items)
            more = end < len(rows)
            parts += [
                wire.element("NumberOfServicesAccessible", job.report.accessible),
                wire.element("NumberOfServicesNotAccessed", job.report.not_accessed),
                wire.members("AccessDetails", (_detail(row) for row in rows[offset:end])),
                wire.element("IsTruncated", more),
                wire.element("Marker", encode_marker(_MARKER_KIND, end)) if more else "",
            ]
        else:
            parts.append(wire.element("IsTruncated", False))
        if status == "FAILED" and job.error is not None:
            code, message = job.error
            parts.append(
                wire.structure(
                    "ErrorDetails",
                    [wire.element("Message", message), wire.element("Code", code)],
                )
            )
        return Answer(200, wire.response("GetOrganizationsAccessReport", parts))


def _max_items(params: Mapping[str, str]) -> int:
    raw = params.get("MaxItems")
    if raw is None:
        return 100
    try:
        value = int(raw)
    except ValueError:
        raise _constraint(raw, "maxItems", "Member must be an integer") from None
    if value < 1:
        raise _constraint(raw, "maxItems", "Member must have value greater than or equal to 1")
    if value > 1000:
        raise _constraint(raw, "maxItems", "Member must have value less than or equal to 1000")
    return value


def sort_rows(rows: tuple[AccessRow, ...], sort_key: str) -> list[AccessRow]:
    """Rows in the SortKey's order; never-used services sort as the oldest, ties by namespace."""
    if sort_key == "SERVICE_NAMESPACE_ASCENDING":
        return sorted(rows, key=lambda row: row.namespace)
    if sort_key == "SERVICE_NAMESPACE_DESCENDING":
        return sorted(rows, key=lambda row: row.namespace, reverse=True)

    def stamp(row: AccessRow) -> float:
        return row.last.time.timestamp() if row.last else float("-inf")

    if sort_key == "LAST_AUTHENTICATED_TIME_ASCENDING":
        return sorted(rows, key=lambda row: (stamp(row), row.namespace))
    return sorted(rows, key=lambda row: (-stamp(row), row.namespace))


def _detail(row: AccessRow) -> str:
    return "".join(
        (
            wire.element("ServiceName", row.name),
            wire.element("ServiceNamespace", row.namespace),
            wire.element("Region", row.last.region if row.last else None),
            wire.element("EntityPath", row.entity_path),
            wire.element("LastAuthenticatedTime", row.last.time if row.last else None),
            wire.element("TotalAuthenticatedEntities", row.total),
        )
    )
