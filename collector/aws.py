"""The AWS boundary: clients, pacing, the one retry policy, botocore errors translated."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import xform_name
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from collector import __version__
from collector.config import Rates, RetrySettings, Settings
from collector.errors import (
    AccessDeniedError,
    AwsError,
    CredentialsError,
    NoSuchEntityError,
    RetriesExhaustedError,
)
from collector.ratelimit import TokenBucket

THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
CREDENTIAL_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException"}
)
LIST_OPERATIONS = ("ListUsers", "ListGroups", "ListRoles", "ListPolicies")
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class CallStats:
    """Calls sent and throttled per operation, for the run line and the progress display."""

    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)


def make_buckets(rates: Rates) -> dict[str, TokenBucket]:
    """One adaptive bucket per rate-limited IAM operation."""
    ceilings = {
        "GenerateServiceLastAccessedDetails": rates.generate,
        "GetServiceLastAccessedDetails": rates.get,
        "GetServiceLastAccessedDetailsWithEntities": rates.get_with_entities,
    } | dict.fromkeys(LIST_OPERATIONS, rates.list)
    # Each starts with one second's worth of calls: an account bucket left idle is full.
    return {
        op: TokenBucket(rate, minimum=rates.minimum, initial=int(rate))
        for op, rate in ceilings.items()
    }


def _backoff(attempt: int, retry: RetrySettings) -> float:
    """Capped exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(retry.max_delay, retry.base_delay * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _translate(operation: str, error: ClientError) -> AwsError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message", ""))
    if code == "NoSuchEntity":
        return NoSuchEntityError(operation, code, message)
    if code in ACCESS_CODES:
        return AccessDeniedError(operation, code, message)
    return AwsError(operation, code, message)


def _is_transient(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status) >= 500


class AwsApi:
    """IAM and STS calls, each paced by its operation's bucket and retried by one policy.

    botocore's own retries are switched off (total_max_attempts=1) so that throttling and
    transient errors are retried here only, where the bucket also learns from them.
    """

    def __init__(
        self,
        iam: Any,
        sts: Any,
        buckets: Mapping[str, TokenBucket],
        retry: RetrySettings,
        stats: CallStats,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._clients = {"iam": iam, "sts": sts}
        self._buckets = buckets
        self._retry = retry
        self.stats = stats
        self._sleep = sleep

    async def call(
        self, operation: str, *, service: str = "iam", attempts: int | None = None, **params: Any
    ) -> dict[str, Any]:
        """One API call with pacing and retries; raises the project's AwsError types."""
        return await self._with_retries(
            operation, self._sender(service, operation, params), attempts
        )

    async def call_if_idle(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """The call, but only if its bucket has a token free right now; else None, no call.

        For calls that are worth making early only when they cost no other call its turn.
        """
        bucket = self._buckets.get(operation)
        if bucket is not None and not bucket.try_take():
            return None
        send = self._sender("iam", operation, params)
        return await self._with_retries(operation, send, token_taken=True)

    def _sender(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        method = getattr(self._clients[service], xform_name(operation))

        async def send() -> dict[str, Any]:
            response: dict[str, Any] = await method(**params)
            return response

        return send

    async def pages(self, operation: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Every page of a List* operation, through botocore's paginator, one token per page.

        A page that fails is retried by a fresh paginator started at the last Marker handed
        out, so a throttled page is neither skipped nor read twice.
        """
        paginator = self._clients["iam"].get_paginator(xform_name(operation))
        marker: str | None = None
        iterator: Any = None

        async def next_page() -> dict[str, Any]:
            nonlocal iterator
            if iterator is None:
                start = {"Marker": marker} if marker else {}
                iterator = paginator.paginate(**params, **start).__aiter__()
            try:
                page: dict[str, Any] = await iterator.__anext__()
            except Exception:
                iterator = None  # a failed async generator cannot go on; restart from marker
                raise
            return page

        while True:
            try:
                page = await self._with_retries(operation, next_page)
            except StopAsyncIteration:
                return
            yield page
            marker = page.get("Marker") if page.get("IsTruncated") else None
            if marker is None:
                return

    async def account_id(self) -> str:
        """The caller's account (sts:GetCallerIdentity); failing here is a credentials problem."""
        try:
            # Few attempts: an unreachable endpoint or bad keys should fail fast, before any work.
            identity = await self.call("GetCallerIdentity", service="sts", attempts=3)
        except AwsError as error:
            raise CredentialsError(
                f"sts:GetCallerIdentity failed ({error.code}: {error.message}); "
                "check the AWS credentials, profile and endpoint"
            ) from error
        return str(identity["Account"])

    async def _with_retries(
        self,
        operation: str,
        send: Callable[[], Awaitable[dict[str, Any]]],
        attempts: int | None = None,
        *,
        token_taken: bool = False,
    ) -> dict[str, Any]:
        bucket = self._buckets.get(operation)
        max_failures = attempts or self._retry.max_attempts
        throttles = failures = 0
        while True:
            if bucket is not None and not token_taken:
                await bucket.acquire()
            token_taken = False  # a retry waits for its own token
            self.stats.calls[operation] += 1
            try:
                response = await send()
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in THROTTLE_CODES:
                    self.stats.throttled[operation] += 1
                    if bucket is not None:
                        bucket.on_throttle()
                    throttles += 1
                    if throttles >= self._retry.throttle_max_attempts:
                        raise RetriesExhaustedError(operation, code, "still throttled") from error
                    await self._sleep(_backoff(throttles, self._retry))
                elif _is_transient(error):
                    failures += 1
                    if failures >= max_failures:
                        raise RetriesExhaustedError(
                            operation, code, f"{failures} attempts failed"
                        ) from error
                    await self._sleep(_backoff(failures, self._retry))
                elif code in CREDENTIAL_CODES:
                    raise CredentialsError(f"AWS rejected the credentials: {code}") from error
                else:
                    raise _translate(operation, error) from error
                continue
            except (HTTPClientError, ConnectionError) as error:
                # Connection reset, read timeout, endpoint unreachable: transient by nature.
                failures += 1
                if failures >= max_failures:
                    raise RetriesExhaustedError(operation, "ConnectionError", str(error)) from error
                await self._sleep(_backoff(failures, self._retry))
                continue
            except (NoCredentialsError, PartialCredentialsError) as error:
                raise CredentialsError(
                    "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or run where a role is available"
                ) from error
            except BotoCoreError as error:
                raise AwsError(operation, type(error).__name__, str(error)) from error
            if bucket is not None:
                bucket.on_success()
            return response


@asynccontextmanager
async def open_api(
    settings: Settings,
    *,
    stats: CallStats | None = None,
    credentials: Mapping[str, str] | None = None,
) -> AsyncIterator[AwsApi]:
    """IAM and STS clients for the sweep; `credentials` are explicit keys (the demo's)."""
    try:
        session = AioSession(profile=settings.profile)
        if credentials is None and await session.get_credentials() is None:
            raise CredentialsError(
                "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run where a role is available"
            )
    except ProfileNotFound as error:
        raise CredentialsError(
            f"AWS profile {settings.profile!r} not found; check ~/.aws/config or --profile"
        ) from error
    config = AioConfig(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=64,
        user_agent_extra=f"collector/{__version__}",
    )
    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.endpoint_url,
        "config": config,
        **(credentials or {}),
    }
    async with AsyncExitStack() as stack:
        iam = await stack.enter_async_context(session.create_client("iam", **options))
        sts = await stack.enter_async_context(session.create_client("sts", **options))
        yield AwsApi(iam, sts, make_buckets(settings.rates), settings.retry, stats or CallStats())
