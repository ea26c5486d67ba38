"""Peer (d): a plain aiobotocore loop, what a competent engineer writes in an afternoon.

One aiobotocore client with botocore's standard retry mode; the List* paginators; then every
principal through a semaphore of 32: generate its job, poll it every 0.5 s until it is done
(MaxItems=1000), follow `Marker` through every page of services and, for groups and
policies, through every page of entities of each namespace someone accessed; the records,
built as the collector builds them, appended to the output as each principal completes.
It does the collector's work with none of its machinery (no token buckets, no adaptive
polling, no sink task): the baseline of the `cpu` scenario's CPU per call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.baselines.common import (
    LISTINGS,
    Record,
    entity_record,
    parse_args,
    principal_record,
    principal_type,
    read_arns,
    report,
    service_record,
    write_records,
)

POLL_SECONDS = 0.5
CONCURRENCY = 32
PAGE = 1000


class Loop:
    """The client, and what the bench wants counted."""

    def __init__(self, iam: Any) -> None:
        self.iam = iam
        self.jobs = 0
        self.polls = 0

    async def principals(self) -> list[str]:
        arns: list[str] = []
        for method, key, params in LISTINGS:
            async for page in self.iam.get_paginator(method).paginate(**params):
                arns.extend(item["Arn"] for item in page[key])
        return arns

    async def services(self, job_id: str) -> tuple[str, list[dict[str, Any]]]:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            page = await self.iam.get_service_last_accessed_details(JobId=job_id, MaxItems=PAGE)
            self.polls += 1
            if page["JobStatus"] != "IN_PROGRESS":
                break
        items = list(page.get("ServicesLastAccessed", []))
        while page.get("IsTruncated"):
            page = await self.iam.get_service_last_accessed_details(
                JobId=job_id, MaxItems=PAGE, Marker=page["Marker"]
            )
            items += page.get("ServicesLastAccessed", [])
        return page["JobStatus"], items

    async def entities(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"JobId": job_id, "ServiceNamespace": namespace, "MaxItems": PAGE}
        page = await self.iam.get_service_last_accessed_details_with_entities(**params)
        items = list(page["EntityDetailsList"])
        while page.get("IsTruncated"):
            page = await self.iam.get_service_last_accessed_details_with_entities(
                **params, Marker=page["Marker"]
            )
            items += page["EntityDetailsList"]
        return items

    async def one(self, arn: str, limit: asyncio.Semaphore, output: Any) -> None:
        async with limit:
            job = await self.iam.generate_service_last_accessed_details(Arn=arn)
            self.jobs += 1
            status, services = await self.services(job["JobId"])
            if status != "COMPLETED":
                return
            records: list[Record] = [service_record(arn, item) for item in services]
            if principal_type(arn) in ("group", "policy"):
                for item in services:
                    if item.get("LastAuthenticated") is None:
                        continue
                    namespace = item["ServiceNamespace"]
                    entities = await self.entities(job["JobId"], namespace)
                    records += [entity_record(arn, namespace, entity) for entity in entities]
            records.append(principal_record(arn))
            write_records(output, records)


async def sweep(endpoint: str, wanted: set[str] | None, output: Any) -> Loop:
    config = AioConfig(retries={"mode": "standard"})
    async with get_session().create_client(
        "iam", endpoint_url=endpoint, region_name="us-east-1", config=config
    ) as iam:
        loop = Loop(iam)
        arns = [arn for arn in await loop.principals() if wanted is None or arn in wanted]
        limit = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(loop.one(arn, limit, output) for arn in arns))
        return loop


def main() -> None:
    """Sweep every principal into the output; one JSON line of counts on stdout."""
    args = parse_args(__doc__ or "")
    loop = asyncio.run(sweep(args.endpoint_url, read_arns(args.arns), args.output))
    report(jobs=loop.jobs, polls=loop.polls)


if __name__ == "__main__":
    main()
