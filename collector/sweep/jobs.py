"""Job stages: generate a report job per principal, then poll each job until it is done."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.aws.idletokens import IdleTokens
from collector.config.settings import PollSettings
from collector.errors import AwsError, NoSuchEntityError
from collector.models import CompletedJob, PendingJob, Principal, Record, error_record
from collector.sweep.env import StageEnv

log = structlog.get_logger()

# Enough completed jobs to trust the observed latency over the configured first delay.
_MIN_SAMPLES = 20
FIRST_POLL_QUANTILE = 0.98
IDLE_CHECK = 0.5  # a job still running is polled again no earlier than this


class JobLatencies:
    """The latencies of recently completed jobs (JobCompletionDate - JobCreationDate).

    One per process, shared by every account it sweeps: IAM's job latency is the service's,
    not an account's, and a small account never completes enough jobs to learn it alone.
    """

    def __init__(self, window: int = 256) -> None:
        self._seen: deque[float] = deque(maxlen=window)
        self._ordered: list[float] | None = None  # `_seen` sorted, until the next observation

    def observe(self, created: datetime, completed: datetime) -> None:
        self._seen.append(max(0.0, (completed - created).total_seconds()))
        self._ordered = None

    @property
    def learned(self) -> bool:
        """Enough jobs seen to trust them over the configured first delay."""
        return len(self._seen) >= _MIN_SAMPLES

    def quantile(self, q: float) -> float:
        # Two or four quantiles per poll, a few polls per observation: sort once per observation.
        if self._ordered is None:
            self._ordered = sorted(self._seen)
        ordered = self._ordered
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class PollSchedule:
    """When to poll a job, learned from the latencies of the jobs completed so far.

    Each poll has a window. At its end, the poll is due: the first one at the 98th percentile
    of observed job latency (JobCompletionDate - JobCreationDate, the server's own clock), so
    about one job in fifty needs a second Get; later ones after the gap to the 99.5th
    percentile, with capped backoff. Get is limited like Generate, so every early poll would
    take a token the next job needed. From the window's start (the median latency, once it
    is learned) a poll goes out earlier only on a Get slot that no due poll reserved (`idle`),
    soonest-due job first: that slot was lost otherwise, and the sweep's tail is shorter.
    """

    def __init__(
        self,
        settings: PollSettings,
        latencies: JobLatencies | None = None,
        idle: IdleTokens | None = None,
    ) -> None:
        self._settings = settings
        self.latencies = latencies or JobLatencies()
        self.idle = idle

    def observe(self, created: datetime, completed: datetime) -> None:
        self.latencies.observe(created, completed)

    def first_window(self) -> tuple[float, float]:
        """(earliest, due) seconds after generation for a job's first poll."""
        latencies = self.latencies
        if not latencies.learned:
            # Before the latency is known, a poll at half the first delay would mostly be
            # wasted on a job still running: none goes before it is due.
            due = self._jitter(self._settings.first_delay)
            return due, due
        due = min(self._settings.max_delay, latencies.quantile(FIRST_POLL_QUANTILE))
        return latencies.quantile(0.5), self._jitter(due)

    def next_window(self, polls: int) -> tuple[float, float]:
        """(earliest, due) seconds from now for poll `polls + 1` of a job still in progress."""
        latencies = self.latencies
        if latencies.learned:
            gap = max(0.25, latencies.quantile(0.995) - latencies.quantile(FIRST_POLL_QUANTILE))
        else:
            gap = self._settings.first_delay / 2
        due = min(self._settings.max_delay, gap * self._settings.backoff ** (polls - 1))
        return min(IDLE_CHECK, due), self._jitter(due)

    def _jitter(self, delay: float) -> float:
        # Only ever later: an early poll wastes a token, a late one costs a fraction of a second.
        return delay * (1 + random.uniform(0, self._settings.jitter))


async def _generate(env: StageEnv, principal: Principal) -> PendingJob:
    job_id = await env.api.generate(principal.arn, env.granularity)
    return PendingJob(principal=principal, job_id=job_id, started=anyio.current_time())


async def generate(
    env: StageEnv,
    receive: ObjectReceiveStream[Principal],
    send: ObjectSendStream[PendingJob],
    records: ObjectSendStream[Record],
) -> None:
    """Start a report job for each principal; a principal that cannot get one is an error."""
    async with receive, send, records:
        async for principal in receive:
            try:
                job = await _generate(env, principal)
            except AwsError as error:
                env.counters.errors += 1
                await records.send(
                    error_record(env.run, principal, None, "generate", error.code, error.message)
                )
                continue
            env.counters.jobs_in_flight += 1
            await send.send(job)


async def poll(
    env: StageEnv,
    schedule: PollSchedule,
    receive: ObjectReceiveStream[PendingJob],
    send: ObjectSendStream[CompletedJob],
    records: ObjectSendStream[Record],
    *,
    clock: Callable[[], float] = anyio.current_time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> None:
    """Poll one job at a time until COMPLETED, FAILED or past its deadline.

    The COMPLETED answer already carries the first page of services (MaxItems=1000), so it
    travels on to the fetch stage instead of being read again.
    """
    async with receive, send, records:
        async for job in receive:
            try:
                done = await _poll_job(env, schedule, job, clock, sleep)
            finally:
                env.counters.jobs_in_flight -= 1
            if isinstance(done, CompletedJob):
                await send.send(done)
            else:
                env.counters.errors += 1
                await records.send(done)


async def regenerate(
    env: StageEnv,
    schedule: PollSchedule,
    principal: Principal,
    spare: int,
    *,
    clock: Callable[[], float] = anyio.current_time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> CompletedJob | Record:
    """A new job for a principal whose job became unreadable after it completed, polled to its
    end like any other (`spare`: new jobs it may still make if this one is lost too); or the
    error record that replaces it. The fetch stages get it from the pipeline."""
    try:
        job = await _generate(env, principal)
    except AwsError as error:
        return error_record(env.run, principal, None, "generate", error.code, error.message)
    env.counters.jobs_in_flight += 1
    try:
        return await _poll_job(env, schedule, job, clock, sleep, spare=spare)
    finally:
        env.counters.jobs_in_flight -= 1


async def _poll_job(
    env: StageEnv,
    schedule: PollSchedule,
    job: PendingJob,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    *,
    spare: int = 1,
) -> CompletedJob | Record:
    """The finished job, or the error record that replaces it.

    `spare`: how many times a job that reads NoSuchEntity may be generated again (the poll
    stage's: once; a second loss at once is no refresh).
    """
    ctx, deadline = env.run, env.job_deadline
    regenerations = 0
    polls = 0
    early, due = (job.started + offset for offset in schedule.first_window())
    while True:
        now = clock()
        end = job.started + deadline
        if now >= end:
            return error_record(
                ctx,
                job.principal,
                job.job_id,
                "poll",
                "JobTimeout",
                f"job still IN_PROGRESS after {deadline:g} s ({polls} polls)",
            )
        if now < early:
            await sleep(min(early, end) - now)
            continue
        if now < due:
            if schedule.idle is None:
                await sleep(min(due, end) - now)
                continue
            if not await schedule.idle.claim(min(due, end)):
                continue  # due (or past the deadline) now
        try:
            page = await env.api.job_page(job.job_id, token_taken=now < due)
        except NoSuchEntityError as error:
            if regenerations >= spare:
                return error_record(
                    ctx, job.principal, job.job_id, "poll", error.code, error.message
                )
            # The JobId is unreadable (e.g. the session that made it was refreshed): once more.
            log.info("collector.poll.job_lost", principal_arn=job.principal.arn, job_id=job.job_id)
            regenerations += 1
            try:
                job = await _generate(env, job.principal)
            except AwsError as lost:
                return error_record(ctx, job.principal, None, "generate", lost.code, lost.message)
            polls = 0
            early, due = (job.started + offset for offset in schedule.first_window())
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
                job_type=page.get("JobType", env.granularity),
                job_created=page["JobCreationDate"],
                job_completed=page["JobCompletionDate"],
                first_page=page,
                polls=polls,
                regenerations=regenerations,
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
        now = clock()
        early, due = (now + offset for offset in schedule.next_window(polls))
