"""Fetch stages: every service page of a completed job, then its entity pages, as records.

Two stages, so a burst of group and policy reports (many entity calls each) queues as small
`EntityWork` items instead of holding up polling and, through it, job generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.aws import AwsApi
from collector.errors import AwsError
from collector.models import (
    CompletedJob,
    Counters,
    EntitiesMode,
    EntityWork,
    Record,
    RunContext,
    entity_record,
    error_record,
    principal_record,
    service_record,
)

_ENTITY_REPORTS = frozenset({"group", "policy"})


def wants_entities(mode: EntitiesMode, job: CompletedJob, service: Mapping[str, Any]) -> bool:
    """Whether this service of this report is worth a GetServiceLastAccessedDetailsWithEntities."""
    if mode == "all":
        return True
    # A never-accessed namespace has no entity to report; a user/role report lists itself only.
    return (
        mode == "accessed"
        and job.principal.type in _ENTITY_REPORTS
        and service.get("LastAuthenticated") is not None
    )


async def services(
    api: AwsApi,
    ctx: RunContext,
    entities: EntitiesMode,
    counters: Counters,
    receive: ObjectReceiveStream[CompletedJob],
    work: ObjectSendStream[EntityWork],
    send: ObjectSendStream[Record],
) -> None:
    """Write each job's service rows; hand on what needs entity pages, or close the principal."""
    async with receive, work, send:
        async for job in receive:
            found = await _services(api, ctx, entities, job, send)
            if found is None:
                counters.errors += 1
            elif found.namespaces:
                await work.send(found)
            else:
                await send.send(principal_record(ctx, job, found.services, found.accessed, 0))
                counters.principals_done += 1


async def _services(
    api: AwsApi,
    ctx: RunContext,
    entities: EntitiesMode,
    job: CompletedJob,
    send: ObjectSendStream[Record],
) -> EntityWork | None:
    """Every service page as records; None (after an error record) if a page kept failing."""
    count = accessed = 0
    namespaces: list[str] = []  # one report's namespaces needing entities: bounded by ~400
    page: Mapping[str, Any] = job.first_page
    while True:
        for service in page.get("ServicesLastAccessed", []):
            count += 1
            accessed += service.get("LastAuthenticated") is not None
            if wants_entities(entities, job, service):
                namespaces.append(service["ServiceNamespace"])
            await send.send(service_record(ctx, job, service))
        if not page.get("IsTruncated"):
            break
        try:
            page = await api.call(
                "GetServiceLastAccessedDetails",
                JobId=job.job_id,
                MaxItems=1000,
                Marker=page["Marker"],
            )
        except AwsError as error:
            await send.send(
                error_record(ctx, job.principal, job.job_id, "services", error.code, error.message)
            )
            return None
    # The first page is written out: drop it, so queued work stays small.
    return EntityWork(replace(job, first_page={}), tuple(namespaces), count, accessed)


async def entities(
    api: AwsApi,
    ctx: RunContext,
    counters: Counters,
    receive: ObjectReceiveStream[EntityWork],
    send: ObjectSendStream[Record],
) -> None:
    """Stream each namespace's entity pages; the `principal` line goes last, if all arrived."""
    async with receive, send:
        async for work in receive:
            total = await _entities(api, ctx, work, send)
            if total is None:
                counters.errors += 1
                continue
            await send.send(principal_record(ctx, work.job, work.services, work.accessed, total))
            counters.principals_done += 1


async def _entities(
    api: AwsApi, ctx: RunContext, work: EntityWork, send: ObjectSendStream[Record]
) -> int | None:
    """Entity rows written for one report; None (after an error record) if a page kept failing."""
    job, total = work.job, 0
    for namespace in work.namespaces:
        marker: dict[str, Any] = {}
        while True:
            try:
                page = await api.call(
                    "GetServiceLastAccessedDetailsWithEntities",
                    JobId=job.job_id,
                    ServiceNamespace=namespace,
                    MaxItems=1000,
                    **marker,
                )
            except AwsError as error:
                await send.send(
                    error_record(
                        ctx,
                        job.principal,
                        job.job_id,
                        "entities",
                        error.code,
                        error.message,
                        namespace,
                    )
                )
                return None
            for entity in page.get("EntityDetailsList", []):
                total += 1
                await send.send(entity_record(ctx, job, namespace, entity))
            if not page.get("IsTruncated"):
                break
            marker = {"Marker": page["Marker"]}
    return total
