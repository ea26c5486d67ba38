"""Job stages: generate a report job per principal, then poll each job until it is done."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from datetime import datetime

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.aws import AwsApi
from collector.config import Granularity, PollSettings
from collector.errors import AwsError, NoSuchEntityError
from collector.models import (
    CompletedJob,
    Counters,
    Job,
    Principal,
    Record,
    RunContext,
    error_record,
)

log = structlog.get_logger()

# Enough completed jobs to trust the observed latency over the configured first delay.
_MIN_SAMPLES = 20
FIRST_POLL_QUANTILE = 0.95


class PollSchedule:
    """When to poll a job, learned from the latencies of the jobs completed so far.

    The first poll aims at the 95th percentile of observed job latency (JobCompletionDate -
    JobCreationDate, the server's own clock), so 19 jobs in 20 need one Get; the rest are
    polled again after the gap to the 99.5th percentile, then with capped backoff. Polling
    later costs only latency, which the pipeline hides; every early poll costs a Get token
    that the next job's poll or a service page needed.
    """

    def __init__(self, settings: PollSettings, *, window: int = 256) -> None:
        self._settings = settings
        self._latencies: deque[float] = deque(maxlen=window)

    def observe(self, created: datetime, completed: datetime) -> None:
        self._latencies.append(max(0.0, (completed - created).total_seconds()))

    def _quantile(self, q: float) -> float:
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def first_delay(self) -> float:
        if len(self._latencies) < _MIN_SAMPLES:
            base = self._settings.first_delay
        else:
            base = self._quantile(FIRST_POLL_QUANTILE)
        return self._jitter(min(self._settings.max_delay, base))

    def next_delay(self, polls: int) -> float:
        """Delay before poll number `polls + 1` of a job that was still in progress."""
        if len(self._latencies) < _MIN_SAMPLES:
            gap = self._settings.first_delay / 2
        else:
            gap = max(0.25, self._quantile(0.995) - self._quantile(FIRST_POLL_QUANTILE))
        delay = gap * self._settings.backoff ** (polls - 1)
        return self._jitter(min(self._settings.max_delay, delay))

    def _jitter(self, delay: float) -> float:
        # Only ever later: an early poll wastes a token, a late one costs a fraction of a second.
        return delay * (1 + random.uniform(0, self._settings.jitter))


async def _generate(api: AwsApi, principal: Principal, granularity: Granularity) -> Job:
    response = await api.call(
        "GenerateServiceLastAccessedDetails", Arn=principal.arn, Granularity=granularity
    )
    return Job(principal=principal, job_id=response["JobId"], started=anyio.current_time())


async def generate(
    api: AwsApi,
    ctx: RunContext,
    granularity: Granularity,
    counters: Counters,
    receive: ObjectReceiveStream[Principal],
    send: ObjectSendStream[Job],
    records: ObjectSendStream[Record],
) -> None:
    """Start a report job for each principal; a principal that cannot get one is an error."""
    async with receive, send, records:
        async for principal in receive:
            try:
                job = await _generate(api, principal, granularity)
            except AwsError as error:
                counters.errors += 1
                await records.send(
                    error_record(ctx, principal, None, "generate", error.code, error.message)
                )
                continue
            counters.jobs_in_flight += 1
            await send.send(job)


async def poll(
    api: AwsApi,
    ctx: RunContext,
    granularity: Granularity,
    schedule: PollSchedule,
    deadline: float,
    counters: Counters,
    receive: ObjectReceiveStream[Job],
    send: ObjectSendStream[CompletedJob],
    records: ObjectSendStream[Record],
    clock: Callable[[], float] = anyio.current_time,
) -> None:
    """Poll one job at a time until COMPLETED, FAILED or past its deadline.

    The COMPLETED answer already carries the first page of services (MaxItems=1000), so it
    travels on to the fetch stage instead of being read again.
    """
    async with receive, send, records:
        async for job in receive:
            try:
                done = await _poll_job(api, ctx, granularity, schedule, deadline, job, clock)
            finally:
                counters.jobs_in_flight -= 1
            if isinstance(done, CompletedJob):
                await send.send(done)
            else:
                counters.errors += 1
                await records.send(done)


async def _poll_job(
    api: AwsApi,
    ctx: RunContext,
    granularity: Granularity,
    schedule: PollSchedule,
    deadline: float,
    job: Job,
    clock: Callable[[], float],
) -> CompletedJob | Record:
    """The finished job, or the error record that replaces it."""
    regenerated = False
    polls = 0
    delay = schedule.first_delay()
    while True:
        remaining = job.started + deadline - clock()
        if remaining <= 0:
            return error_record(
                ctx,
                job.principal,
                job.job_id,
                "poll",
                "JobTimeout",
                f"job still IN_PROGRESS after {deadline:g} s ({polls} polls)",
            )
        await anyio.sleep(min(delay, remaining))
        if clock() >= job.started + deadline:
            continue
        try:
            page = await api.call("GetServiceLastAccessedDetails", JobId=job.job_id, MaxItems=1000)
        except NoSuchEntityError as error:
            if regenerated:
                return error_record(
                    ctx, job.principal, job.job_id, "poll", error.code, error.message
                )
            # The JobId is unreadable (e.g. the session that made it was refreshed): once more.
            log.info("collector.poll.job_lost", principal_arn=job.principal.arn, job_id=job.job_id)
            regenerated = True
            try:
                job = await _generate(api, job.principal, granularity)
            except AwsError as lost:
                return error_record(ctx, job.principal, None, "generate", lost.code, lost.message)
            polls, delay = 0, schedule.first_delay()
            continue
        except AwsError as error:
            return error_record(ctx, job.principal, job.job_id, "poll", error.code, error.message)
        polls += 1
        status = page.get("JobStatus")
        if status == "COMPLETED":
            schedule.observe(page["JobCreationDate"], page["JobCompletionDate"])
            log.debug(
                "collector.poll.job_done",
                principal_arn=job.principal.arn,
                job_id=job.job_id,
                polls=polls,
            )
            return CompletedJob(
                principal=job.principal,
                job_id=job.job_id,
                job_type=page.get("JobType", granularity),
                job_created=page["JobCreationDate"],
                job_completed=page["JobCompletionDate"],
                first_page=page,
                polls=polls,
            )
        if status == "FAILED":
            reason = page.get("Error") or {}
            return error_record(
                ctx,
                job.principal,
                job.job_id,
                "poll",
                reason.get("Code", "JobFailed"),
                reason.get("Message", "the job FAILED"),
            )
        delay = schedule.next_delay(polls)
