"""Wires the sweep: streams between stages, limiters, worker pools, shutdown, the run line."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal

import anyio
import structlog
from anyio import CancelScope
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from collector import __version__, discover, fetch, jobs
from collector.aws import AwsApi, CallStats, open_api
from collector.config import Settings
from collector.errors import AccessDeniedError, AwsError, ConfigError, CredentialsError
from collector.models import (
    SCHEMA,
    CompletedJob,
    Counters,
    EntityWork,
    Job,
    Principal,
    PrincipalType,
    Record,
    RunContext,
    iso,
)
from collector.sink import JsonlSink, find_resumable, render_output

log = structlog.get_logger()

Status = Literal["complete", "partial", "interrupted"]
ENTITY_BACKLOG = 4096  # reports queued for entity pages; each is a few hundred bytes


@dataclass(frozen=True)
class SweepResult:
    """What the CLI needs to report the sweep and pick the exit code."""

    status: Status
    path: Path | None  # the published file, or None for stdout or an interrupted sweep
    run: Record


class DiscoveryFailed(CredentialsError):
    """Listing principals was denied or kept failing: nothing complete can be produced."""


async def run_sweep(
    settings: Settings,
    *,
    stop: anyio.Event,
    counters: Counters,
    stats: CallStats,
    credentials: Mapping[str, str] | None = None,
) -> SweepResult:
    """Sweep one account into the configured output; `stop` asks for a graceful shutdown."""
    async with open_api(settings, stats=stats, credentials=credentials) as api:
        account_id = await api.account_id()
        resume_from = None
        if settings.resume:
            if settings.output == "-":
                raise ConfigError("--resume needs a file output, not stdout")
            resume_from = find_resumable(settings.output, account_id=account_id)
        sink = JsonlSink(
            str(resume_from.with_suffix(""))
            if resume_from is not None
            else render_output(
                settings.output,
                account_id=account_id,
                run_id=uuid.uuid4().hex,
                now=datetime.now(UTC),
            )
        )
        resumed = sink.open(resume_from)
        ctx = RunContext(run_id=resumed.run_id or uuid.uuid4().hex, account_id=account_id)
        started = resumed.started or iso(datetime.now(UTC))
        log.info(
            "collector.sweep.started",
            account_id=account_id,
            run_id=ctx.run_id,
            output=str(sink.path or "-"),
            resumed_principals=len(resumed.completed),
        )
        try:
            await _run_stages(settings, api, ctx, sink, resumed.completed, stop, counters)
        except BaseException:
            if not resumed.completed and not any(sink.counts.values()):
                sink.discard()  # nothing in it worth resuming: leave no stray file behind
            raise
        status: Status = (
            "interrupted"
            if stop.is_set()
            else ("partial" if sink.counts.get("error", 0) else "complete")
        )
        run = _run_record(settings, ctx, started, status, sink.counts, stats)
        # Shielded: a second signal must not cut the run line or the rename in half.
        with anyio.CancelScope(shield=True):
            path = await anyio.to_thread.run_sync(
                partial(sink.finish, run, publish=status != "interrupted")
            )
        return SweepResult(status=status, path=path, run=run)


async def _run_stages(
    settings: Settings,
    api: AwsApi,
    ctx: RunContext,
    sink: JsonlSink,
    skip: frozenset[str],
    stop: anyio.Event,
    counters: Counters,
) -> None:
    """All stages in one task group; returns when every record has reached the sink."""
    principals_send, principals_receive = anyio.create_memory_object_stream[Principal](256)
    jobs_send, jobs_receive = anyio.create_memory_object_stream[Job](0)
    completed_send, completed_receive = anyio.create_memory_object_stream[CompletedJob](
        settings.fetch_workers
    )
    # Reports waiting for entity pages are small (no pages held), so this queue can be long:
    # a run of group and policy reports then never stalls polling and generation behind it.
    work_send, work_receive = anyio.create_memory_object_stream[EntityWork](ENTITY_BACKLOG)
    records_send, records_receive = anyio.create_memory_object_stream[Record](1024)
    schedule = jobs.PollSchedule(settings.poll)
    granularity = settings.granularity

    stages = anyio.CancelScope()
    async with anyio.create_task_group() as outer:
        outer.start_soon(sink.run, records_receive)
        async with anyio.create_task_group() as watcher:
            watcher.start_soon(_grace_after_stop, stop, stages, settings.shutdown_grace)
            with stages:
                async with anyio.create_task_group() as tg, records_send:
                    # Intake (discover + generate) stops at once on a signal: no new work.
                    async with principals_send, principals_receive, jobs_send:
                        tg.start_soon(
                            _intake,
                            schedule,
                            settings,
                            api,
                            ctx,
                            skip,
                            counters,
                            principals_send.clone(),
                            principals_receive.clone(),
                            jobs_send.clone(),
                            records_send.clone(),
                            stop,
                        )
                    async with jobs_receive, completed_send:
                        for _ in range(settings.max_jobs_in_flight):
                            tg.start_soon(
                                jobs.poll,
                                api,
                                ctx,
                                granularity,
                                schedule,
                                settings.poll.job_deadline,
                                counters,
                                jobs_receive.clone(),
                                completed_send.clone(),
                                records_send.clone(),
                            )
                    async with completed_receive, work_send:
                        for _ in range(settings.fetch_workers):
                            tg.start_soon(
                                fetch.services,
                                api,
                                ctx,
                                settings.entities,
                                counters,
                                completed_receive.clone(),
                                work_send.clone(),
                                records_send.clone(),
                            )
                    async with work_receive:
                        for _ in range(settings.fetch_workers):
                            tg.start_soon(
                                fetch.entities,
                                api,
                                ctx,
                                counters,
                                work_receive.clone(),
                                records_send.clone(),
                            )
            watcher.cancel_scope.cancel()


async def _intake(
    schedule: jobs.PollSchedule,
    settings: Settings,
    api: AwsApi,
    ctx: RunContext,
    skip: frozenset[str],
    counters: Counters,
    principals_send: MemoryObjectSendStream[Principal],
    principals_receive: MemoryObjectReceiveStream[Principal],
    jobs_send: MemoryObjectSendStream[Job],
    records_send: MemoryObjectSendStream[Record],
    stop: anyio.Event,
) -> None:
    """Discovery tasks (one per kind) and the generate workers, cancelled together on stop."""
    async with anyio.create_task_group() as guard:
        guard.start_soon(_cancel_on, stop, guard.cancel_scope)
        async with anyio.create_task_group() as tg, records_send:
            async with principals_send:
                for kind in settings.discovery.kinds:
                    tg.start_soon(
                        _discover, api, kind, settings, skip, counters, principals_send.clone()
                    )
            async with principals_receive, jobs_send:
                for _ in range(settings.generate_workers):
                    tg.start_soon(
                        jobs.generate,
                        api,
                        ctx,
                        settings.granularity,
                        counters,
                        principals_receive.clone(),
                        jobs_send.clone(),
                        records_send.clone(),
                    )
        guard.cancel_scope.cancel()
    schedule.no_more_jobs()


async def _discover(
    api: AwsApi,
    kind: PrincipalType,
    settings: Settings,
    skip: frozenset[str],
    counters: Counters,
    send: MemoryObjectSendStream[Principal],
) -> None:
    try:
        await discover.run(api, kind, settings.discovery, skip, counters, send)
    except AccessDeniedError as error:
        raise DiscoveryFailed(
            f"iam:{error.operation} was denied ({error.message}); "
            "grant the IAM policy from the README to these credentials"
        ) from error
    except AwsError as error:
        raise DiscoveryFailed(
            f"listing principals failed: {error}; rerun later with --resume"
        ) from error


async def _cancel_on(stop: anyio.Event, scope: CancelScope) -> None:
    await stop.wait()
    scope.cancel()


async def _grace_after_stop(stop: anyio.Event, stages: CancelScope, grace: float) -> None:
    """On stop, in-flight jobs get `grace` seconds to finish before everything is cancelled."""
    await stop.wait()
    log.warning("collector.sweep.stopping", grace_seconds=grace)
    stages.deadline = anyio.current_time() + grace


def _run_record(
    settings: Settings,
    ctx: RunContext,
    started: str | None,
    status: Status,
    counts: Mapping[str, int],
    stats: CallStats,
) -> Record:
    return {
        "record": "run",
        "schema": SCHEMA,
        "run_id": ctx.run_id,
        "account_id": ctx.account_id,
        "principal_arn": None,
        "principal_type": None,
        "job_id": None,
        "started": started,
        "finished": iso(datetime.now(UTC)),
        "status": status,
        "records": {
            kind: counts.get(kind, 0) for kind in ("service", "entity", "principal", "error")
        },
        "api_calls": dict(sorted(stats.calls.items())),
        "throttled_calls": dict(sorted(stats.throttled.items())),
        "granularity": settings.granularity,
        "entities": settings.entities,
        "collector_version": __version__,
    }
