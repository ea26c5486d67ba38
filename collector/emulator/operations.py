"""The three Access Advisor operations: input validation, jobs, pages, and their XML."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from moto.iam.models import IAMBackend

from collector.emulator import wire
from collector.emulator.activity import ActivityModel
from collector.emulator.directory import Directory, MalformedArn, UnknownPrincipal
from collector.emulator.faults import Fate, FaultInjector, Faults, failure, fate, loses_first_job
from collector.emulator.jobstore import JobStore, ReportJob
from collector.emulator.markers import decode_marker, encode_marker
from collector.emulator.reports import GRANULARITIES, EntityRow, ServiceRow, build_report

OPERATIONS = frozenset(
    {
        "GenerateServiceLastAccessedDetails",
        "GetServiceLastAccessedDetails",
        "GetServiceLastAccessedDetailsWithEntities",
    }
)
DEFAULT_MAX_ITEMS = 100
MAX_ITEMS = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP status and an XML body."""

    status: int
    body: bytes


_MARKER_KIND = "offset"


def marker_offset(params: Mapping[str, str], kind: str, total: int) -> int:
    """Where a page starts: 0, or the offset in the request's Marker of this `kind`."""
    marker = params.get("Marker")
    if marker is None:
        return 0
    offset = decode_marker(marker, kind, low=0, high=total)
    if offset is None:
        raise InvalidInput("Invalid Marker.")
    return offset


class InvalidInput(Exception):
    """A request parameter IAM would reject with InvalidInput."""


def _invalid(message: str) -> Answer:
    return Answer(400, wire.error("InvalidInput", message, 400))


def _no_such_entity(message: str) -> Answer:
    return Answer(404, wire.error("NoSuchEntity", message, 404))


def _max_items(params: Mapping[str, str]) -> int:
    raw = params.get("MaxItems")
    if raw is None:
        return DEFAULT_MAX_ITEMS
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"Invalid value for MaxItems: {raw}") from None
    if not 1 <= value <= MAX_ITEMS:
        raise InvalidInput(f"MaxItems must be between 1 and {MAX_ITEMS}, got {value}.")
    return value


class AccessAdvisor:
    """Serves the three operations over moto's IAM state for one account."""

    def __init__(
        self,
        backend: IAMBackend,
        activity: ActivityModel,
        faults: Faults,
        injector: FaultInjector,
        jobs: JobStore,
    ) -> None:
        self.backend = backend
        self.activity = activity
        self.faults = faults
        self.injector = injector
        self.jobs = jobs
        self._directory: Directory | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def directory(self) -> Directory:
        """The current snapshot of the account, rebuilt after any change."""
        with self._lock:
            if self._directory is not None:
                return self._directory
            generation = self._generation
        built = self._build()
        with self._lock:
            # Keep it only if no IAM write happened while it was being built.
            if generation == self._generation:
                self._directory = built
        return built

    def _build(self) -> Directory:
        # moto serves writes on other threads; a write in the middle of the scan
        # shows up as a dict changing size, and a fresh scan is the answer.
        for _ in range(10):
            try:
                return Directory(self.backend)
            except RuntimeError:
                continue
        return Directory(self.backend)

    def invalidate(self) -> None:
        """Forget the snapshot: an IAM call may have changed the account."""
        with self._lock:
            self._generation += 1
            self._directory = None

    def handle(self, operation: str, params: Mapping[str, str]) -> Answer:
        """Answer one of the three operations."""
        handlers: dict[str, Callable[[Mapping[str, str]], Answer]] = {
            "GenerateServiceLastAccessedDetails": self.generate,
            "GetServiceLastAccessedDetails": self.get_details,
            "GetServiceLastAccessedDetailsWithEntities": self.get_with_entities,
        }
        try:
            return handlers[operation](params)
        except InvalidInput as exc:
            return _invalid(str(exc))

    def generate(self, params: Mapping[str, str]) -> Answer:
        """GenerateServiceLastAccessedDetails: compute the report now, reveal it later."""
        arn = params.get("Arn")
        if not arn:
            raise InvalidInput("Arn is required.")
        granularity = params.get("Granularity", "SERVICE_LEVEL")
        if granularity not in GRANULARITIES:
            raise InvalidInput(
                f"Invalid Granularity: {granularity}. Valid values: {', '.join(GRANULARITIES)}."
            )
        directory = self.directory()
        try:
            directory.lookup(arn)
        except MalformedArn:
            raise InvalidInput(f"ARN {arn} is not valid.") from None
        except UnknownPrincipal:
            return _no_such_entity(f"The entity {arn} cannot be found.")
        seed = self.activity.seed
        outcome = fate(self.faults, seed, arn)
        if outcome is Fate.DELETED:
            return _no_such_entity(f"The entity {arn} cannot be found.")
        report = None
        if outcome is Fate.NORMAL:
            report = build_report(directory, self.activity, arn, granularity)
        first = self.jobs.first_for(arn)
        job = self.jobs.add(
            arn=arn,
            granularity=granularity,
            latency=self.injector.latency(),
            fate=outcome,
            error=failure(seed, arn) if outcome is Fate.FAILED else None,
            report=report,
            lost=first and loses_first_job(self.faults, seed, arn),
        )
        return Answer(
            200,
            wire.response(
                "GenerateServiceLastAccessedDetails", [wire.element("JobId", job.job_id)]
            ),
        )

    def _job(self, params: Mapping[str, str]) -> ReportJob | Answer:
        job_id = params.get("JobId")
        if not job_id:
            raise InvalidInput("JobId is required.")
        job = self.jobs.get(job_id)
        if job is None or job.lost:
            return _no_such_entity(f"No report job found with the ID {job_id}.")
        return job

    def _dates(self, job: ReportJob, status: str) -> list[str]:
        # No JobCompletionDate while the job runs: botocore would choke on an empty one.
        parts = [wire.element("JobCreationDate", wire.timestamp(job.created, millis=True))]
        if status != "IN_PROGRESS":
            completed = wire.timestamp(job.completed, millis=True)
            parts.append(wire.element("JobCompletionDate", completed))
        return parts

    def _error(self, job: ReportJob, status: str) -> str:
        if status != "FAILED" or job.error is None:
            return ""
        code, message = job.error
        return wire.structure(
            "Error", [wire.element("Message", message), wire.element("Code", code)]
        )

    def _page(
        self, operation: str, items: Sequence[T], params: Mapping[str, str]
    ) -> tuple[Sequence[T], str]:
        max_items = _max_items(params)
        offset = marker_offset(params, _MARKER_KIND, len(items))
        end = offset + self.injector.page_size(max_items)
        page = items[offset:end]
        more = end < len(items)
        marker = self.injector.marker(operation, encode_marker(_MARKER_KIND, end))
        tail = wire.element("IsTruncated", more) + (wire.element("Marker", marker) if more else "")
        return page, tail

    def get_details(self, params: Mapping[str, str]) -> Answer:
        """GetServiceLastAccessedDetails: status, and a page of services once completed."""
        found = self._job(params)
        if isinstance(found, Answer):
            return found
        job = found
        status = job.status(self.jobs.now())
        services: Sequence[ServiceRow] = ()
        if status == "COMPLETED" and job.report is not None:
            services = job.report.services
        page, tail = self._page("GetServiceLastAccessedDetails", services, params)
        parts = [
            wire.element("JobStatus", status),
            wire.element("JobType", job.granularity),
            *self._dates(job, status),
            wire.members("ServicesLastAccessed", (_service(row) for row in page)),
            tail,
            self._error(job, status),
        ]
        return Answer(200, wire.response("GetServiceLastAccessedDetails", parts))

    def get_with_entities(self, params: Mapping[str, str]) -> Answer:
        """GetServiceLastAccessedDetailsWithEntities: a page of entities of one namespace."""
        namespace = params.get("ServiceNamespace")
        if not namespace:
            raise InvalidInput("ServiceNamespace is required.")
        found = self._job(params)
        if isinstance(found, Answer):
            return found
        job = found
        status = job.status(self.jobs.now())
        rows: Sequence[EntityRow] = ()
        if status == "COMPLETED" and job.report is not None:
            rows = job.report.entities.get(namespace, ())
        page, tail = self._page("GetServiceLastAccessedDetailsWithEntities", rows, params)
        parts = [
            wire.element("JobStatus", status),
            *self._dates(job, status),
            wire.members("EntityDetailsList", (_entity(row) for row in page)),
            tail,
            self._error(job, status),
        ]
        return Answer(200, wire.response("GetServiceLastAccessedDetailsWithEntities", parts))


def _service(row: ServiceRow) -> str:
    parts = [
        wire.element("ServiceName", row.name),
        wire.element("LastAuthenticated", row.last.time if row.last else None),
        wire.element("ServiceNamespace", row.namespace),
        wire.element("LastAuthenticatedEntity", row.entity),
        wire.element("LastAuthenticatedRegion", row.last.region if row.last else None),
        wire.element("TotalAuthenticatedEntities", row.total),
    ]
    if row.tracked is not None:
        parts.append(
            wire.members(
                "TrackedActionsLastAccessed",
                (
                    "".join(
                        (
                            wire.element("ActionName", action.name),
                            wire.element("LastAccessedEntity", action.entity),
                            wire.element(
                                "LastAccessedTime", action.last.time if action.last else None
                            ),
                            wire.element(
                                "LastAccessedRegion", action.last.region if action.last else None
                            ),
                        )
                    )
                    for action in row.tracked
                ),
            )
        )
    return "".join(parts)


def _entity(row: EntityRow) -> str:
    info = row.entity
    return wire.structure(
        "EntityInfo",
        [
            wire.element("Arn", info.arn),
            wire.element("Name", info.name),
            wire.element("Type", info.type),
            wire.element("Id", info.id),
            wire.element("Path", info.path),
        ],
    ) + wire.element("LastAuthenticated", row.last_authenticated)
