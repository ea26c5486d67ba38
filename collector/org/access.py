"""The organizations access report: root, OUs and swept accounts, one job at a time, to JSONL."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from collector import __version__
from collector.aws.iam import Caller
from collector.aws.ratelimit import TokenBucket
from collector.config.settings import Settings
from collector.errors import (
    AccessDeniedError,
    AwsError,
    NoSuchEntityError,
)
from collector.models import SCHEMA, CallStats, Record, iso
from collector.org.listing import pages
from collector.org.manifest import AccountError, OrgAccessStatus
from collector.sweep.shutdown import Shutdown

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient
    from types_aiobotocore_iam.type_defs import (
        GetOrganizationsAccessReportResponseTypeDef as ReportPage,
    )
    from types_aiobotocore_organizations import OrganizationsClient
else:
    IAMClient = OrganizationsClient = Any
    ReportPage = dict

log = structlog.get_logger()

GENERATE_ORG = "GenerateOrganizationsAccessReport"
GET_ORG = "GetOrganizationsAccessReport"
LIMIT_EXCEEDED = "ReportGenerationLimitExceeded"  # 409: one report in progress per account
SORT_KEY: Final = "SERVICE_NAMESPACE_ASCENDING"  # a fixed order keeps Marker pages stable
PAGE_SIZE = 1000
PAUSE_STEP = 0.2  # seconds between looks at the shutdown flag while waiting
TargetType = Literal["root", "ou", "account"]
T = TypeVar("T")

_TARGET = ("record", "schema", "run_id", "account_id", "entity_path", "target_id", "target_type",
           "job_id")  # fmt: skip
# The keys of the org-level file's record kinds, exactly: the schema-1 contract.
ORG_ACCESS_FIELDS: dict[str, frozenset[str]] = {
    "org_access": frozenset(
        (*_TARGET, "service_namespace", "service_name", "region", "last_authenticated",
         "last_authenticated_entity_path", "total_authenticated_entities")
    ),
    # principal_* are null: the error kind keeps the keys it has in the account files.
    "error": frozenset(
        (*_TARGET, "principal_arn", "principal_type", "stage", "code", "message",
         "service_namespace")
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    """One entity a report is generated for."""

    entity_path: str  # o-…/r-…[/ou-…]…[/123456789012]
    target_id: str
    target_type: TargetType


class _Stopped(Exception):
    """A shutdown was requested while a report was being waited for."""


async def org_targets(
    client: OrganizationsClient, organization_id: str, account_ids: Collection[str]
) -> list[Target]:
    """The root, every OU (pre-order: a parent before its children, siblings as listed), then
    the given accounts by id, each with the entity path of the OUs it sits in.

    Accounts the walk does not find (moved or closed since they were listed) are left out, and
    logged.
    """
    wanted = set(account_ids)
    units: list[Target] = []
    accounts: dict[str, Target] = {}
    async for root in pages(client, "ListRoots", "Roots"):
        stack = [Target(f"{organization_id}/{root['Id']}", root["Id"], "root")]
        while stack:
            unit = stack.pop()
            units.append(unit)
            async for child in pages(
                client, "ListChildren", "Children", ParentId=unit.target_id, ChildType="ACCOUNT"
            ):
                if child["Id"] in wanted:
                    path = f"{unit.entity_path}/{child['Id']}"
                    accounts.setdefault(child["Id"], Target(path, child["Id"], "account"))
            children = [
                Target(f"{unit.entity_path}/{child['Id']}", child["Id"], "ou")
                async for child in pages(
                    client,
                    "ListChildren",
                    "Children",
                    ParentId=unit.target_id,
                    ChildType="ORGANIZATIONAL_UNIT",
                )
            ]
            stack += reversed(children)
    lost = sorted(wanted - accounts.keys())
    if lost:
        log.warning("collector.org_access.accounts_not_in_tree", accounts=lost)
    return units + [accounts[key] for key in sorted(accounts)]


class OrgAccessReport:
    """Generates and reads one report at a time (AWS allows one in progress per account).

    A 409 `ReportGenerationLimitExceeded` (someone else's report is running) is waited out
    with capped backoff, up to `poll.job_deadline`; each job is polled per `poll.*`. Both
    operations have their own token bucket and go through the one retry policy. A report
    that FAILED, timed out or kept failing becomes an `error` record; the others go on.
    """

    def __init__(
        self,
        settings: Settings,
        iam: IAMClient,
        *,
        run_id: str,
        account_id: str,
        shutdown: Shutdown,
        stats: CallStats | None = None,
    ) -> None:
        self.settings = settings
        self.iam = iam
        self.run_id = run_id
        self.account_id = account_id
        self.shutdown = shutdown
        self.stats = stats or CallStats()
        self.caller = Caller(settings.retry, self.stats)
        rates = settings.rates
        self.buckets = {
            GENERATE_ORG: TokenBucket(rates.generate, minimum=rates.minimum, initial=1),
            GET_ORG: TokenBucket(rates.get, minimum=rates.minimum, initial=1),
        }
        self.limit_waits = 0  # 409s waited out
        self.targets: Counter[str] = Counter()
        self.denied: AccountError | None = None
        self.job_id: str | None = None  # the current target's job, for its error line

    async def _call(self, operation: str, send: Callable[[], Awaitable[T]]) -> T:
        return await self.caller.call(operation, send, bucket=self.buckets[operation])

    async def _pause(self, seconds: float) -> None:
        """Sleep, but end at once (raising _Stopped) when a shutdown is requested."""
        end = anyio.current_time() + seconds
        while not self.shutdown.requested:
            left = end - anyio.current_time()
            if left <= 0:
                return
            await anyio.sleep(min(left, PAUSE_STEP))
        raise _Stopped

    def _delay(self, attempt: int) -> float:
        poll = self.settings.poll
        delay = min(poll.max_delay, poll.first_delay * poll.backoff**attempt)
        return delay * (1 + random.uniform(0, poll.jitter))

    async def _generate(self, target: Target) -> str:
        started = anyio.current_time()
        attempt = 0
        while True:
            try:
                response = await self._call(
                    GENERATE_ORG,
                    lambda: self.iam.generate_organizations_access_report(
                        EntityPath=target.entity_path
                    ),
                )
                return response["JobId"]
            except AwsError as error:
                if error.code != LIMIT_EXCEEDED:
                    raise
                if anyio.current_time() - started > self.settings.poll.job_deadline:
                    raise
            self.limit_waits += 1
            log.info("collector.org_access.limit_wait", entity_path=target.entity_path,
                     attempt=attempt)  # fmt: skip
            await self._pause(self._delay(attempt))
            attempt += 1

    def _get(self, job_id: str, marker: str | None) -> Awaitable[ReportPage]:
        if marker is None:
            send = lambda: self.iam.get_organizations_access_report(  # noqa: E731
                JobId=job_id, MaxItems=PAGE_SIZE, SortKey=SORT_KEY
            )
        else:
            send = lambda: self.iam.get_organizations_access_report(  # noqa: E731
                JobId=job_id, MaxItems=PAGE_SIZE, SortKey=SORT_KEY, Marker=marker
            )
        return self._call(GET_ORG, send)

    async def _completed(self, job_id: str) -> ReportPage:
        """The job's first page once it is no longer IN_PROGRESS; AwsError if it FAILED."""
        started = anyio.current_time()
        attempt = 0
        while True:
            await self._pause(self._delay(attempt))
            page = await self._get(job_id, None)
            status = page["JobStatus"]
            if status == "COMPLETED":
                return page
            if status == "FAILED":
                details = page.get("ErrorDetails") or {}
                raise AwsError(GET_ORG, str(details.get("Code", "Failed")),
                               str(details.get("Message", "the report job FAILED")))  # fmt: skip
            if anyio.current_time() - started > self.settings.poll.job_deadline:
                raise AwsError(GET_ORG, "JobTimeout", f"still {status} after "
                               f"{self.settings.poll.job_deadline:g} s")  # fmt: skip
            attempt += 1

    async def _rows(self, target: Target) -> list[Record]:
        """Every row of one target's report; a vanished JobId is generated again, once."""
        for last_try in (False, True):
            job_id = self.job_id = await self._generate(target)
            try:
                page = await self._completed(job_id)
                rows = []
                while True:
                    rows += [self._row(target, job_id, d) for d in page.get("AccessDetails", [])]
                    if not page.get("IsTruncated"):
                        return rows
                    page = await self._get(job_id, str(page["Marker"]))
            except NoSuchEntityError as error:
                if last_try:
                    raise AwsError(GET_ORG, error.code, error.message) from error
        raise AssertionError("unreachable")

    def _base(self, kind: str, target: Target | None, job_id: str | None) -> Record:
        return {
            "record": kind,
            "schema": SCHEMA,
            "run_id": self.run_id,
            "account_id": self.account_id,
            "entity_path": target.entity_path if target else None,
            "target_id": target.target_id if target else None,
            "target_type": target.target_type if target else None,
            "job_id": job_id,
        }

    def _row(self, target: Target, job_id: str, detail: Mapping[str, Any]) -> Record:
        last = detail.get("LastAuthenticatedTime")
        return self._base("org_access", target, job_id) | {
            "service_namespace": detail["ServiceNamespace"],
            "service_name": detail.get("ServiceName"),
            "region": detail.get("Region"),
            "last_authenticated": iso(last) if last else None,
            "last_authenticated_entity_path": detail.get("EntityPath"),
            "total_authenticated_entities": detail.get("TotalAuthenticatedEntities"),
        }

    def error_record(
        self, target: Target | None, code: str, message: str, job_id: str | None = None
    ) -> Record:
        """An `error` line of stage `org_access` (target null: the whole report failed)."""
        return self._base("error", target, job_id) | {
            "principal_arn": None,
            "principal_type": None,
            "stage": "org_access",
            "code": code,
            "message": " ".join(message.split())[:1000],
            "service_namespace": None,
        }

    async def run(
        self, targets: list[Target], send: MemoryObjectSendStream[Record]
    ) -> OrgAccessStatus:
        """Each target's rows (or its error) into `send`; the status: complete, partial,
        interrupted, or failed (access denied: no report can be made with these credentials)."""
        status: OrgAccessStatus = "complete"
        async with send:
            for target in targets:
                if self.shutdown.requested:
                    return "interrupted"
                self.targets[target.target_type] += 1
                self.job_id = None
                try:
                    rows = await self._rows(target)
                except _Stopped:
                    return "interrupted"
                except AccessDeniedError as error:
                    await send.send(self.error_record(target, error.code, error.message))
                    self.denied = AccountError(error.code, error.message)
                    return "failed"
                except AwsError as error:
                    log.warning("collector.org_access.target_failed",
                                entity_path=target.entity_path, code=error.code)  # fmt: skip
                    await send.send(
                        self.error_record(target, error.code, error.message, self.job_id)
                    )
                    status = "partial"
                    continue
                for row in rows:
                    await send.send(row)
        return status

    def run_record(
        self, started: str, status: OrgAccessStatus, counts: Mapping[str, int]
    ) -> Record:
        return self._base("run", None, None) | {
            "started": started,
            "finished": iso(datetime.now(UTC)),
            "status": status,
            "records": {kind: counts.get(kind, 0) for kind in ("org_access", "error")},
            "targets": {kind: self.targets[kind] for kind in ("root", "ou", "account")},
            "api_calls": dict(sorted(self.stats.calls.items())),
            "throttled_calls": dict(sorted(self.stats.throttled.items())),
            "limit_waits": self.limit_waits,
            "collector_version": __version__,
        }
