"""Fetch stages: every service page of a completed job, then its entity pages, as records.

Two stages, so a burst of group and policy reports (many entity calls each) queues as small
`EntityWork` items instead of holding up polling and, through it, job generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.environment import StageEnv
from collector.errors import AwsError
from collector.models import (
    CompletedJob,
    EntitiesMode,
    EntityWork,
    Record,
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
    env: StageEnv,
    receive: ObjectReceiveStream[CompletedJob],
    work: ObjectSendStream[EntityWork],
    records: ObjectSendStream[Record],
) -> None:
    """Write each job's service rows; hand on what needs entity pages, or close the principal."""
    async with receive, work, records:
        async for job in receive:
            found = await _services(env, job, records)
            if found is None:
                env.counters.errors += 1
            elif found.namespaces:
                await work.send(found)
            else:
                await records.send(
                    principal_record(env.run, job, found.services, found.accessed, 0)
                )
                env.counters.principals_done += 1


async def _services(
    env: StageEnv, job: CompletedJob, records: ObjectSendStream[Record]
) -> EntityWork | None:
    """Every service page as records; None (after an error record) if a page kept failing."""
    count = accessed = 0
    namespaces: list[str] = []  # one report's namespaces needing entities: bounded by ~400
    if job.first_page is None:
        raise ValueError("a completed job's first page was dropped before its rows were written")
    try:
        async for page in env.api.service_pages(job.job_id, job.first_page):
            for service in page.get("ServicesLastAccessed", []):
                count += 1
                accessed += service.get("LastAuthenticated") is not None
                if wants_entities(env.entities, job, service):
                    namespaces.append(service["ServiceNamespace"])
                await records.send(service_record(env.run, job, service))
    except AwsError as error:
        await records.send(
            error_record(env.run, job.principal, job.job_id, "services", error.code, error.message)
        )
        return None
    # The first page is written out: drop it, so queued work stays small.
    return EntityWork(replace(job, first_page=None), tuple(namespaces), count, accessed)


async def entities(
    env: StageEnv, receive: ObjectReceiveStream[EntityWork], records: ObjectSendStream[Record]
) -> None:
    """Stream each namespace's entity pages; the `principal` line goes last, if all arrived."""
    async with receive, records:
        async for work in receive:
            total = await _entities(env, work, records)
            if total is None:
                env.counters.errors += 1
                continue
            await records.send(
                principal_record(env.run, work.job, work.services, work.accessed, total)
            )
            env.counters.principals_done += 1


async def _entities(
    env: StageEnv, work: EntityWork, records: ObjectSendStream[Record]
) -> int | None:
    """Entity rows written for one report; None (after an error record) if a page kept failing."""
    job, total = work.job, 0
    for namespace in work.namespaces:
        try:
            async for page in env.api.entity_pages(job.job_id, namespace):
                for entity in page.get("EntityDetailsList", []):
                    total += 1
                    await records.send(entity_record(env.run, job, namespace, entity))
        except AwsError as error:
            await records.send(
                error_record(
                    env.run,
                    job.principal,
                    job.job_id,
                    "entities",
                    error.code,
                    error.message,
                    namespace,
                )
            )
            return None
    return total
