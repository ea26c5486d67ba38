"""The emulator's capacity: calls/s it serves with throttling off, to a client in this process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from bench.limit import ENTITIES, GENERATE, GET

CALLERS = 32  # concurrent callers: far more than the calls a sweep has in flight at 20/s
SECONDS = 4.0  # per measured operation
WARMUP = 0.5


@dataclass(frozen=True)
class Capacity:
    """Served calls per second, per operation alone and for the sweep's mix."""

    callers: int
    seconds: float
    calls_per_second: Mapping[str, float]
    errors: int


async def _drive(call: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[float, int]:
    """Served calls/s and errors of CALLERS tasks calling `call(i)` back to back."""
    served = errors = 0
    stop = time.monotonic() + seconds

    async def caller(first: int) -> None:
        nonlocal served, errors
        index = first
        while time.monotonic() < stop:
            try:
                await call(index)
                served += 1
            except ClientError:
                errors += 1
            index += CALLERS

    started = time.monotonic()
    await asyncio.gather(*(caller(k) for k in range(CALLERS)))
    return served / (time.monotonic() - started), errors


async def _measure(endpoint: str, ground_truth: Sequence[Mapping[str, Any]]) -> Capacity:
    arns = sorted({record["principal_arn"] for record in ground_truth})
    accessed = [  # (group or policy ARN, accessed namespace): what a sweep reads entities of
        (record["principal_arn"], record["service_namespace"])
        for record in ground_truth
        if record["record"] == "service"
        and record["principal_type"] in ("group", "policy")
        and record["last_authenticated"]
    ]
    config = AioConfig(
        retries={"total_max_attempts": 1}, max_pool_connections=CALLERS, read_timeout=30
    )
    async with get_session().create_client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=config,
        # The emulator takes any key: dummy ones, so nothing of this machine's is read.
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - a dummy, not a secret
    ) as iam:
        jobs: dict[str, str] = {}

        async def generate(i: int) -> None:
            arn = arns[i % len(arns)]
            jobs[arn] = (await iam.generate_service_last_accessed_details(Arn=arn))["JobId"]

        async def get(i: int) -> None:
            await iam.get_service_last_accessed_details(
                JobId=jobs[arns[i % len(arns)]], MaxItems=1000
            )

        async def entities(i: int) -> None:
            arn, namespace = accessed[i % len(accessed)]
            await iam.get_service_last_accessed_details_with_entities(
                JobId=jobs[arn], ServiceNamespace=namespace, MaxItems=1000
            )

        async def list_roles(i: int) -> None:
            await iam.list_roles(MaxItems=1000)

        async def mix(i: int) -> None:
            # A sweep's share: one Generate, one Get and ~0.6 WithEntities per principal.
            await (generate, get, entities)[i % 3](i // 3)

        await _drive(generate, WARMUP)
        # Every principal gets a job (latency 0: complete at once) before Get is measured.
        for start in range(0, len(arns), CALLERS):
            await asyncio.gather(
                *(generate(i) for i in range(start, min(start + CALLERS, len(arns))))
            )
        rates: dict[str, float] = {}
        errors = 0
        for name, call in (
            (GENERATE, generate),
            (GET, get),
            (ENTITIES, entities),
            ("ListRoles", list_roles),
            ("mix", mix),
        ):
            if name == ENTITIES and not accessed:
                continue
            rates[name], failed = await _drive(call, SECONDS)
            errors += failed
    return Capacity(callers=CALLERS, seconds=SECONDS, calls_per_second=rates, errors=errors)


def measure(endpoint: str, ground_truth: Sequence[Mapping[str, Any]]) -> Capacity:
    """Measure an emulator that has no rate limits and no job latency."""
    return asyncio.run(_measure(endpoint, ground_truth))
