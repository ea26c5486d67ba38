"""Fetch stages: every service page of a completed job, then its entity pages, as records.

Two stages, so a burst of group and policy reports (many entity calls each) queues as small
`EntityWork` items instead of holding up polling and, through it, job generation. Each item
is one namespace of one report: the entity workers read a wide report's hundreds of
namespaces side by side, paced by the bucket, instead of one after another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from anyio import WouldBlock
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectSendStream

from collector.errors import AwsError, NoSuchEntityError
from collector.models import (
    CompletedJob,
    EntitiesMode,
    EntityWork,
    PrincipalType,
    Record,
    ReportProgress,
    entity_record,
    error_record,
    principal_record,
    service_record,
)
from collector.sweep.env import StageEnv
from collector.sweep.renewal import Regenerate, renew

if TYPE_CHECKING:
    from types_aiobotocore_iam.type_defs import (
        GetServiceLastAccessedDetailsResponseTypeDef as JobPage,
    )

ENTITY_REPORTS: frozenset[PrincipalType] = frozenset({"group", "policy"})  # with entity pages


def wants_entities(mode: EntitiesMode, job: CompletedJob, service: Mapping[str, Any]) -> bool:
    """Whether this service of this report is worth a GetServiceLastAccessedDetailsWithEntities."""
    if mode == "all":
        return True
    # A never-accessed namespace has no entity to report; a user/role report lists itself only.
    return (
        mode == "accessed"
        and job.principal.type in ENTITY_REPORTS
        and service.get("LastAuthenticated") is not None
    )


async def _send_page(records: ObjectSendStream[Record], page: list[Record]) -> None:
    """A page's records in order: straight into the buffer while it has room.

    `send` passes through the event loop once per record (tens of thousands per sweep); a page
    already costs one API call's wait, so skipping those passes loses no fairness.
    """
    memory = records if isinstance(records, MemoryObjectSendStream) else None
    for record in page:
        if memory is not None:
            try:
                memory.send_nowait(record)
                continue
            except WouldBlock:
                pass
        await records.send(record)


async def services(
    env: StageEnv,
    regenerate: Regenerate,
    receive: ObjectReceiveStream[CompletedJob],
    work: ObjectSendStream[EntityWork],
    records: ObjectSendStream[Record],
) -> None:
    """Write each job's service rows; hand on its namespaces, or close the principal."""
    async with receive, work, records:
        async for job in receive:
            found = await _services(env, regenerate, job, records)
            if found is None:
                env.counters.errors += 1
                continue
            report, namespaces = found
            if not namespaces:
                await records.send(
                    principal_record(env.run, report.job, report.services, report.accessed, 0)
                )
                env.counters.principals_done += 1
            report.pending = len(namespaces)
            for namespace in namespaces:
                await work.send(EntityWork(report, namespace))


async def _services(
    env: StageEnv, regenerate: Regenerate, job: CompletedJob, records: ObjectSendStream[Record]
) -> tuple[ReportProgress, list[str]] | None:
    """Every service page as records; None (after an error record) if a page kept failing.

    A job lost between pages is generated again and read from its first page; the services
    already written are skipped, so each is written once.
    """
    if job.first_page is None:
        raise ValueError("a completed job's first page was dropped before its rows were written")
    # The first page is about to be written out: the report holds none, so queued work stays small.
    report = ReportProgress(replace(job, first_page=None), regenerations=job.regenerations)
    namespaces: list[str] = []  # one report's namespaces needing entities: bounded by ~400
    written: set[str] = set()  # namespaces of the rows written, skipped in a new job's pages
    reading = job
    first: JobPage | None = job.first_page
    while True:
        try:
            async for page in env.api.service_pages(reading.job_id, first):
                rows = [
                    service
                    for service in page.get("ServicesLastAccessed", [])
                    if service["ServiceNamespace"] not in written
                ]
                for service in rows:
                    written.add(service["ServiceNamespace"])
                    report.services += 1
                    report.accessed += service.get("LastAuthenticated") is not None
                    if wants_entities(env.entities, job, service):
                        namespaces.append(service["ServiceNamespace"])
                await _send_page(records, [service_record(env.run, reading, row) for row in rows])
            return report, namespaces
        except NoSuchEntityError as error:
            exhausted = error_record(
                env.run, job.principal, reading.job_id, "services", error.code, error.message
            )
            renewed = await renew(report, reading, regenerate, exhausted)
            if isinstance(renewed, CompletedJob):
                reading, first = renewed, renewed.first_page
                continue
            if renewed is not None:
                await records.send(renewed)
            return None
        except AwsError as error:
            await records.send(
                error_record(
                    env.run, job.principal, reading.job_id, "services", error.code, error.message
                )
            )
            return None


async def entities(
    env: StageEnv,
    regenerate: Regenerate,
    receive: ObjectReceiveStream[EntityWork],
    records: ObjectSendStream[Record],
) -> None:
    """Stream one namespace's entity pages at a time; the report's last one closes it."""
    async with receive, records:
        async for work in receive:
            report = work.report
            if not report.failed:
                await _namespace(env, regenerate, work, records)
            report.pending -= 1
            if report.pending == 0 and not report.failed:
                # Every other namespace's rows were sent before its worker counted down. The
                # line names the report's last job: the one generated again if one was lost.
                await records.send(
                    principal_record(
                        env.run, report.job, report.services, report.accessed, report.entities
                    )
                )
                env.counters.principals_done += 1


async def _namespace(
    env: StageEnv, regenerate: Regenerate, work: EntityWork, records: ObjectSendStream[Record]
) -> None:
    """One namespace's entity rows; the report is marked failed (one error record) on failure.

    A job lost between pages is generated again (once, whichever worker sees it first) and
    this namespace read from its first page; the entities already written are skipped.
    """
    report, namespace = work.report, work.namespace
    reading = report.job
    # ARNs of this namespace's entity rows written: one namespace's entities, dropped after it.
    written: set[str] = set()
    while True:
        try:
            async for page in env.api.entity_pages(reading.job_id, namespace):
                rows = [
                    row
                    for row in page.get("EntityDetailsList", [])
                    if row["EntityInfo"]["Arn"] not in written
                ]
                written.update(row["EntityInfo"]["Arn"] for row in rows)
                report.entities += len(rows)
                await _send_page(
                    records, [entity_record(env.run, reading, namespace, row) for row in rows]
                )
            return
        except NoSuchEntityError as error:
            exhausted = error_record(
                env.run, reading.principal, reading.job_id, "entities", error.code,
                error.message, namespace,
            )  # fmt: skip
            renewed = await renew(report, reading, regenerate, exhausted)
            if isinstance(renewed, CompletedJob):
                reading = report.job  # the new job, without the first page it came with
                continue
            if renewed is not None:
                env.counters.errors += 1
                await records.send(renewed)
            return
        except AwsError as error:
            if report.failed:
                return
            report.failed = True
            env.counters.errors += 1
            await records.send(
                error_record(
                    env.run, reading.principal, reading.job_id, "entities", error.code,
                    error.message, namespace,
                )
            )  # fmt: skip
            return
