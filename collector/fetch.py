"""Fetch stage: every service page of a completed job, then its entity pages, as records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.aws import AwsApi
from collector.config import EntitiesMode
from collector.errors import AwsError
from collector.models import (
    CompletedJob,
    Counters,
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


async def run(
    api: AwsApi,
    ctx: RunContext,
    entities: EntitiesMode,
    counters: Counters,
    receive: ObjectReceiveStream[CompletedJob],
    send: ObjectSendStream[Record],
) -> None:
    """Stream each completed job's records; its `principal` line goes last, only if all arrived."""
    async with receive, send:
        async for job in receive:
            if await _report(api, ctx, entities, job, send):
                counters.principals_done += 1
            else:
                counters.errors += 1


async def _report(
    api: AwsApi,
    ctx: RunContext,
    entities: EntitiesMode,
    job: CompletedJob,
    send: ObjectSendStream[Record],
) -> bool:
    services = accessed = entity_count = 0
    namespaces: list[str] = []  # one report's namespaces needing entities: bounded by ~400
    page: Mapping[str, Any] = job.first_page
    while True:
        for service in page.get("ServicesLastAccessed", []):
            services += 1
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
            return False
    for namespace in namespaces:
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
                return False
            for entity in page.get("EntityDetailsList", []):
                entity_count += 1
                await send.send(entity_record(ctx, job, namespace, entity))
            if not page.get("IsTruncated"):
                break
            marker = {"Marker": page["Marker"]}
    await send.send(principal_record(ctx, job, services, accessed, entity_count))
    return True
