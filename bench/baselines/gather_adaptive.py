"""Peer (c): the first thing an engineer writes: asyncio.gather over every principal.

One coroutine per principal, all started at once with `asyncio.gather`, on aiobotocore with
botocore's adaptive retry mode (`AioConfig(retries={"mode": "adaptive"})`, as the botocore
and boto3 retry guides describe it: client-side rate limiting learned from throttles, and
the mode's default of 3 attempts per call) and the client's default pool of 10 connections.
Each coroutine generates its job, sleeps 2 s between polls, takes the COMPLETED answer as the
report and, for groups and policies, reads the entities of each namespace someone accessed:
the same work as the collector, written the obvious way. Like most first versions it reads
one page per call (no MaxItems, no Marker: the API's default page of 100).
`return_exceptions=True`: without it the first call that runs out of retries ends the whole
sweep; with it, that principal is missing from the output and the rest carry on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

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

POLL_SECONDS = 2.0


class Sweep:
    """The script's state: its client and what the bench wants counted."""

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

    async def one(self, arn: str) -> list[Record]:
        generated = await self.iam.generate_service_last_accessed_details(Arn=arn)
        job_id = generated["JobId"]
        self.jobs += 1
        while True:
            await asyncio.sleep(POLL_SECONDS)
            details = await self.iam.get_service_last_accessed_details(JobId=job_id)
            self.polls += 1
            if details["JobStatus"] != "IN_PROGRESS":
                break
        services = details.get("ServicesLastAccessed", [])
        records = [service_record(arn, item) for item in services]
        if principal_type(arn) in ("group", "policy"):
            for item in services:
                if item.get("LastAuthenticated") is None:
                    continue
                namespace = item["ServiceNamespace"]
                entities = await self.iam.get_service_last_accessed_details_with_entities(
                    JobId=job_id, ServiceNamespace=namespace
                )
                records += [
                    entity_record(arn, namespace, entity)
                    for entity in entities["EntityDetailsList"]
                ]
        records.append(principal_record(arn))
        return records


async def sweep(endpoint: str, wanted: set[str] | None) -> tuple[Sweep, list[Any]]:
    config = AioConfig(retries={"mode": "adaptive"})
    async with get_session().create_client(
        "iam", endpoint_url=endpoint, region_name="us-east-1", config=config
    ) as iam:
        state = Sweep(iam)
        arns = [arn for arn in await state.principals() if wanted is None or arn in wanted]
        results = await asyncio.gather(*(state.one(arn) for arn in arns), return_exceptions=True)
        return state, results


def main() -> None:
    """Run the sweep, write every report that came back, count the ones that did not."""
    args = parse_args(__doc__ or "")
    state, results = asyncio.run(sweep(args.endpoint_url, read_arns(args.arns)))
    failures: Counter[str] = Counter()
    for result in results:
        if isinstance(result, ClientError):
            failures[str(result.response.get("Error", {}).get("Code", "ClientError"))] += 1
        elif isinstance(result, BaseException):
            failures[type(result).__name__] += 1
        else:
            write_records(args.output, result)
    report(jobs=state.jobs, polls=state.polls, failed_principals=dict(failures))


if __name__ == "__main__":
    main()
