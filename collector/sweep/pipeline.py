"""One account's sweep as an object: its streams, limiters, worker pools, stop, and run line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import anyio
import structlog
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectSendStream

from collector import __version__
from collector.aws.iam import (
    AUTHORIZATION_DETAILS,
    GENERATE,
    GET,
    GET_WITH_ENTITIES,
    LIST_OPERATIONS,
    Caller,
    IamApi,
)
from collector.aws.idletokens import IdleTokens
from collector.aws.ratelimit import TokenBucket
from collector.config.settings import Rates, Settings
from collector.errors import AccessDeniedError, AwsError, DiscoveryError
from collector.models import (
    SCHEMA,
    CallStats,
    CompletedJob,
    Counters,
    EntityWork,
    PendingJob,
    Principal,
    PrincipalType,
    Record,
    RunContext,
    iso,
)
from collector.output.sink import Sink
from collector.sweep import discover, documents, fetch, jobs
from collector.sweep.env import StageEnv
from collector.sweep.intake import PrincipalQueue
from collector.sweep.pools import start_growing_pool, start_pool

log = structlog.get_logger()

Status = Literal["complete", "partial", "interrupted"]
ENTITY_BACKLOG = 4096  # reports queued for entity pages; each is a few hundred bytes
PRINCIPAL_BACKLOG = 256  # listed principals waiting for a generate worker, per lane


@dataclass(frozen=True)
class SweepResult:
    """What the CLI (or an organisation sweep) needs to report one account and pick an exit code."""

    status: Status
    path: str | None  # the published output, or None for stdout or an interrupted sweep
    run: Record


def make_buckets(rates: Rates) -> dict[str, TokenBucket]:
    """One adaptive bucket per rate-limited IAM operation (IAM's rates are per account)."""
    ceilings = {
        GENERATE: rates.generate,
        GET: rates.get,
        GET_WITH_ENTITIES: rates.get_with_entities,
    }
    ceilings |= dict.fromkeys((*LIST_OPERATIONS.values(), AUTHORIZATION_DETAILS), rates.list)
    # Each starts with one second's worth of calls: an account bucket left idle is full.
    return {
        op: TokenBucket(rate, minimum=rates.minimum, initial=int(rate))
        for op, rate in ceilings.items()
    }


class AccountSweep:
    """discover -> generate -> poll -> services -> entities -> sink, for one account.

    The constructor builds every stream and limiter; `run()` starts the stages as named worker
    pools; `stop(grace)` ends intake at once and gives jobs in flight `grace` seconds.
    `early_polls=False` (an organisation's accounts): no job is polled before it is due.
    """

    def __init__(
        self,
        settings: Settings,
        iam: Any,
        run: RunContext,
        sink: Sink,
        *,
        started: str,
        skip: frozenset[str] = frozenset(),
        counters: Counters | None = None,
        stats: CallStats | None = None,
        latencies: jobs.JobLatencies | None = None,
        early_polls: bool = True,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.started = started
        self.api = IamApi(
            iam, make_buckets(settings.rates), Caller(settings.retry, stats or CallStats())
        )
        self.env = StageEnv(
            api=self.api,
            run=run,
            counters=counters or Counters(),
            granularity=settings.granularity,
            entities=settings.entities,
            discovery=settings.discovery,
            job_deadline=settings.poll.job_deadline,
        )
        self._skip = skip
        get_bucket = self.api.bucket(GET)
        # Early polls on idle Get slots shorten one account's tail at the cost of polls that
        # find the job still running (1.7 Gets per job for an account of eight principals). In
        # an organisation sweep the accounts in flight overlap each other's waits, and those
        # polls are CPU the process (and IAM calls the account) spend for nothing: polls wait
        # until due there (12% fewer calls and CPU per account, measured; bench/results.md).
        idle = IdleTokens(get_bucket) if early_polls and get_bucket is not None else None
        self._schedule = jobs.PollSchedule(settings.poll, latencies, idle)
        self._intake = anyio.CancelScope()  # discovery and generation: cancelled on stop
        self._stages = anyio.CancelScope()  # every stage: its deadline is set on stop
        self.stopped = False
        self._jobs = anyio.create_memory_object_stream[PendingJob](0)
        # Each stage's items reach its workers through these: workers start as the items need
        # them, so an account with a few principals (most of an organisation's) starts a few.
        self._polls = anyio.create_memory_object_stream[PendingJob](0)
        self._reads = anyio.create_memory_object_stream[CompletedJob](0)
        self._namespaces = anyio.create_memory_object_stream[EntityWork](0)
        self._completed = anyio.create_memory_object_stream[CompletedJob](settings.fetch_workers)
        # Reports waiting for entity pages are small (no pages held), so this queue can be long:
        # a run of group and policy reports then never stalls polling and generation behind it.
        self._work = anyio.create_memory_object_stream[EntityWork](ENTITY_BACKLOG)
        self._records = anyio.create_memory_object_stream[Record](1024)

    def stop(self, grace: float) -> None:
        """Start no new work; cancel whatever is still running `grace` seconds from now."""
        if self.stopped:
            return
        self.stopped = True
        log.warning(
            "collector.sweep.stopping", account_id=self.env.run.account_id, grace_seconds=grace
        )
        self._intake.cancel()
        self._stages.deadline = anyio.current_time() + grace

    async def run(self) -> SweepResult:
        """Every stage until each record has reached the sink; then the run line, and publish."""
        env, workers = self.env, self.settings
        records_send, records_receive = self._records
        async with anyio.create_task_group() as group:
            group.start_soon(self.sink.run, records_receive, name="sink")
            with self._stages:
                async with anyio.create_task_group() as stages:
                    stages.start_soon(self._run_intake, records_send.clone(), name="intake")
                    start_growing_pool(
                        stages,
                        "poll",
                        workers.max_jobs_in_flight,
                        partial(jobs.poll, env, self._schedule),
                        self._jobs[1],
                        self._polls,
                        self._completed[0],
                        records_send.clone(),
                    )
                    # A job lost mid-fetch is generated again and polled as the poll stage
                    # does; the fetch stages get that as a function, never the module.
                    regenerate = partial(jobs.regenerate, env, self._schedule)
                    start_growing_pool(
                        stages,
                        "services",
                        workers.fetch_workers,
                        partial(fetch.services, env, regenerate),
                        self._completed[1],
                        self._reads,
                        self._work[0],
                        records_send.clone(),
                    )
                    start_growing_pool(
                        stages,
                        "entities",
                        workers.fetch_workers,
                        partial(fetch.entities, env, regenerate),
                        self._work[1],
                        self._namespaces,
                        records_send,
                    )
        counts = self.sink.counts
        status: Status = (
            "interrupted" if self.stopped else ("partial" if counts.get("error", 0) else "complete")
        )
        run = self._run_record(status, counts)
        path = await self.sink.finish(run, publish=status != "interrupted")
        return SweepResult(status=status, path=path, run=run)

    async def _run_intake(self, records: MemoryObjectSendStream[Record]) -> None:
        """Discovery (a task per kind) and the generate workers; stop() cancels them together."""
        first = frozenset[PrincipalType]() if self.env.entities == "none" else fetch.ENTITY_REPORTS
        queue = PrincipalQueue(PRINCIPAL_BACKLOG, first)
        principals = queue.receiver()
        jobs_send = self._jobs[0]
        # Closed however intake ends, even cancelled before it began: polls then see the end.
        with principals, jobs_send, records, self._intake:
            async with anyio.create_task_group() as intake:
                for kind in self.settings.discovery.kinds:
                    intake.start_soon(self._discover, kind, queue.sender(), name=f"discover-{kind}")
                if self.settings.policy_documents:
                    intake.start_soon(self._documents, records.clone(), name="policy-documents")
                start_pool(
                    intake,
                    "generate",
                    self.settings.generate_workers,
                    partial(jobs.generate, self.env),
                    principals,
                    jobs_send,
                    records,
                )

    async def _discover(self, kind: PrincipalType, send: ObjectSendStream[Principal]) -> None:
        try:
            await discover.list_principals(self.env, kind, self._skip, send)
        except AccessDeniedError as error:
            raise DiscoveryError(
                f"iam:{error.operation} was denied ({error.message}); "
                "grant the IAM policy from the README to these credentials"
            ) from error
        except AwsError as error:
            raise DiscoveryError(
                f"listing principals failed: {error}; rerun later with --resume"
            ) from error

    async def _documents(self, records: MemoryObjectSendStream[Record]) -> None:
        try:
            await documents.policy_documents(self.env, records)
        except AccessDeniedError as error:
            raise DiscoveryError(
                f"iam:{error.operation} was denied ({error.message}); grant "
                "deploy/iam/policy-documents-policy.json to these credentials, or sweep "
                "without --policy-documents"
            ) from error
        except AwsError as error:
            raise DiscoveryError(
                f"reading the policy documents failed: {error}; rerun later with --resume"
            ) from error

    def _kinds(self) -> tuple[str, ...]:
        """The record kinds the run line counts: policy_document only when asked for."""
        kinds = ("service", "entity", "principal", "error")
        return (*kinds, "policy_document") if self.settings.policy_documents else kinds

    def _run_record(self, status: Status, counts: Mapping[str, int]) -> Record:
        stats, ctx = self.api.stats, self.env.run
        return {
            "record": "run",
            "schema": SCHEMA,
            "run_id": ctx.run_id,
            "account_id": ctx.account_id,
            "principal_arn": None,
            "principal_type": None,
            "job_id": None,
            "started": self.started,
            "finished": iso(datetime.now(UTC)),
            "status": status,
            "records": {kind: counts.get(kind, 0) for kind in self._kinds()},
            "api_calls": dict(sorted(stats.calls.items())),
            "throttled_calls": dict(sorted(stats.throttled.items())),
            "granularity": self.settings.granularity,
            "entities": self.settings.entities,
            "collector_version": __version__,
        }
