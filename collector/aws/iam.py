"""The AWS boundary: clients, named IAM calls, the one retry policy, botocore errors translated."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from collector.aws.http import ResponseTooLargeError
from collector.aws.ratelimit import TokenBucket
from collector.config.settings import RetrySettings
from collector.errors import (
    AccessDeniedError,
    AwsError,
    AwsUnavailableError,
    CredentialsError,
    NoSuchEntityError,
    RetriesExhaustedError,
)
from collector.models import CallStats, Granularity, Principal, PrincipalType

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient
    from types_aiobotocore_iam.type_defs import (
        GetServiceLastAccessedDetailsResponseTypeDef as JobPage,
    )
    from types_aiobotocore_iam.type_defs import (
        GetServiceLastAccessedDetailsWithEntitiesResponseTypeDef as EntityPage,
    )
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sts import STSClient
else:
    IAMClient = STSClient = S3Client = Any
    JobPage = EntityPage = dict

THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
CREDENTIAL_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException"}
)
GENERATE = "GenerateServiceLastAccessedDetails"
GET = "GetServiceLastAccessedDetails"
GET_WITH_ENTITIES = "GetServiceLastAccessedDetailsWithEntities"
AUTHORIZATION_DETAILS = "GetAccountAuthorizationDetails"
LIST_OPERATIONS: Mapping[PrincipalType, str] = {
    "user": "ListUsers",
    "group": "ListGroups",
    "role": "ListRoles",
    "policy": "ListPolicies",
}
PAGE_SIZE = 1000  # the API's maximum MaxItems
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run where a role is available"
)
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
Page = TypeVar("Page", bound=Mapping[str, Any])


@dataclass(frozen=True)
class PrincipalsPage:
    """One List* page as the principals it names, and the marker of the next page."""

    principals: list[Principal]
    marker: str | None


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


class MalformedAnswerError(Exception):
    """An answer the API contract forbids (truncated without a Marker): retried like a 5xx."""


def next_marker(page: Mapping[str, Any]) -> str | None:
    """The Marker of the page after this one; None on the last page.

    IsTruncated true without a Marker would leave a client only the choice to stop a page
    short, so it is malformed, never the end of the list.
    """
    if not page.get("IsTruncated"):
        return None
    marker = page.get("Marker")
    if not marker:
        raise MalformedAnswerError("IsTruncated is true but the answer has no Marker")
    return str(marker)


async def follow_marker(
    read: Callable[[str | None], Awaitable[Page]], first: Page | None = None
) -> AsyncIterator[Page]:
    """Every page of a Marker-paged call: IAM may send fewer items than asked while truncated."""
    page = first if first is not None else await read(None)
    while True:
        yield page
        marker = next_marker(page)  # every page came through Caller.call, which checked it
        if marker is None:
            return
        page = await read(marker)


# What a response that is not an AWS answer raises inside botocore (HTML, empty or cut-off XML,
# a body without the expected wrapper), or an answer the contract forbids: retried like a 5xx,
# as the AWS SDKs do, then an error.
MALFORMED = (ResponseParserError, ResponseTooLargeError, KeyError, MalformedAnswerError)


class Caller:
    """One call at a time through a bucket and the retry policy; raises the project's errors.

    botocore's own retries are off (total_max_attempts=1): throttling and transient errors are
    retried here; the bucket slows down when a retry is throttled again, not on a first refusal
    (IAM also refuses at random). Each call has a total deadline. When one operation fails
    transiently `breaker` times in a row, across all callers, with no success between, the
    endpoint is down: AwsUnavailableError stops the sweep, not minutes per principal for hours.
    """

    def __init__(self, retry: RetrySettings, stats: CallStats, sleep: Sleep = anyio.sleep) -> None:
        self._retry = retry
        self.stats = stats
        self._sleep = sleep
        self._failing: Counter[str] = Counter()  # operation -> transient failures in a row

    def _failed(self, operation: str, code: str, detail: str) -> None:
        self._failing[operation] += 1
        if self._failing[operation] >= self._retry.breaker_failures:
            raise AwsUnavailableError(
                f"{operation} failed {self._failing[operation]} times in a row (last: {code}: "
                f"{detail}); the endpoint is failing: rerun later with --resume"
            )

    async def call(
        self,
        operation: str,
        send: Callable[[], Awaitable[T]],
        *,
        bucket: TokenBucket | None = None,
        attempts: int | None = None,
        token_taken: bool = False,
    ) -> T:
        max_failures = attempts or self._retry.max_attempts
        throttles = failures = 0
        while True:
            if bucket is not None and not token_taken:
                await bucket.acquire()
            token_taken = False  # a retry waits for its own token
            self.stats.calls[operation] += 1
            try:
                with anyio.fail_after(self._retry.call_timeout):
                    response = await send()
                if isinstance(response, Mapping):
                    next_marker(response)  # every Marker-paged IAM answer, checked in one place
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in THROTTLE_CODES:
                    self.stats.throttled[operation] += 1
                    throttles += 1
                    if bucket is not None and throttles > 1:
                        bucket.on_throttle()
                    if throttles >= self._retry.throttle_max_attempts:
                        raise RetriesExhaustedError(operation, code, "still throttled") from error
                    await self._sleep(_backoff(throttles, self._retry))
                    continue
                if not _is_transient(error):
                    if code in CREDENTIAL_CODES:
                        raise CredentialsError(f"AWS rejected the credentials: {code}") from error
                    raise _translate(operation, error) from error
                reason = (code, str(error.response.get("Error", {}).get("Message", "")))
            except (HTTPClientError, ConnectionError) as error:
                # Connection reset, read timeout, endpoint unreachable: transient by nature.
                reason = ("ConnectionError", str(error))
            except TimeoutError:
                reason = ("Timeout", f"no complete answer within {self._retry.call_timeout:g} s")
            except MALFORMED as error:
                reason = ("MalformedResponse", f"{type(error).__name__}: {error}")
            except (NoCredentialsError, PartialCredentialsError) as error:
                raise CredentialsError(NO_CREDENTIALS) from error
            except BotoCoreError as error:
                raise AwsError(operation, type(error).__name__, str(error)) from error
            else:
                self._failing[operation] = 0
                if bucket is not None:
                    bucket.on_success()
                return response
            failures += 1
            self._failed(operation, *reason)
            if failures >= max_failures:
                raise RetriesExhaustedError(
                    operation, reason[0], f"{failures} attempts failed; last: {reason[1]}"
                )
            await self._sleep(_backoff(failures, self._retry))


class IamApi:
    """The IAM calls a sweep makes, each paced by its operation's bucket, typed end to end."""

    def __init__(self, iam: IAMClient, buckets: Mapping[str, TokenBucket], caller: Caller) -> None:
        self._iam = iam
        self._buckets = buckets
        self._caller = caller

    @property
    def stats(self) -> CallStats:
        return self._caller.stats

    async def _call(self, operation: str, send: Callable[[], Awaitable[T]]) -> T:
        return await self._caller.call(operation, send, bucket=self._buckets.get(operation))

    async def generate(self, arn: str, granularity: Granularity) -> str:
        """Start a report job for one principal; its JobId."""
        response = await self._call(
            GENERATE,
            lambda: self._iam.generate_service_last_accessed_details(
                Arn=arn, Granularity=granularity
            ),
        )
        return response["JobId"]

    async def job_page(
        self, job_id: str, marker: str | None = None, *, token_taken: bool = False
    ) -> JobPage:
        """A job's status and, once COMPLETED, one page of its services.

        `token_taken`: the caller already took this call's Get token (an idle one).
        """
        return await self._caller.call(
            GET,
            lambda: self._get(job_id, marker),
            bucket=self._buckets.get(GET),
            token_taken=token_taken,
        )

    def bucket(self, operation: str) -> TokenBucket | None:
        """The bucket pacing `operation`, if any."""
        return self._buckets.get(operation)

    def _get(self, job_id: str, marker: str | None) -> Awaitable[JobPage]:
        if marker is None:
            return self._iam.get_service_last_accessed_details(JobId=job_id, MaxItems=PAGE_SIZE)
        return self._iam.get_service_last_accessed_details(
            JobId=job_id, MaxItems=PAGE_SIZE, Marker=marker
        )

    def service_pages(self, job_id: str, first: JobPage) -> AsyncIterator[JobPage]:
        """Every page of a completed job's services, starting from the page the poll returned."""
        return follow_marker(lambda marker: self.job_page(job_id, marker), first)

    def entity_pages(self, job_id: str, namespace: str) -> AsyncIterator[EntityPage]:
        """Every page of the entities that used one namespace, per the job's report."""

        def read(marker: str | None) -> Awaitable[EntityPage]:
            if marker is None:
                send = lambda: self._iam.get_service_last_accessed_details_with_entities(  # noqa: E731
                    JobId=job_id, ServiceNamespace=namespace, MaxItems=PAGE_SIZE
                )
            else:
                send = lambda: self._iam.get_service_last_accessed_details_with_entities(  # noqa: E731
                    JobId=job_id, ServiceNamespace=namespace, MaxItems=PAGE_SIZE, Marker=marker
                )
            return self._call(GET_WITH_ENTITIES, send)

        return follow_marker(read)

    async def authorization_details(self) -> AsyncIterator[dict[str, Any]]:
        """Every page of GetAccountAuthorizationDetails, documents decoded; retried at its Marker.

        No Filter: users, groups, roles, and the managed policies IAM lists (customer-managed
        ones and the AWS-managed ones attached in the account).
        """
        marker: str | None = None
        while True:
            page = await self._call(AUTHORIZATION_DETAILS, partial(self._authorization, marker))
            yield page
            marker = next_marker(page)
            if marker is None:
                return

    async def _authorization(self, marker: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"MaxItems": PAGE_SIZE} | ({"Marker": marker} if marker else {})
        page = await self._iam.get_account_authorization_details(**args)
        if page.get("IsTruncated") and not page.get("Marker"):
            # A shorter set would pass for the whole account: malformed, retried like a 5xx.
            raise ResponseParserError("IsTruncated without a Marker")
        return _decoded(page)

    async def principals(
        self, kind: PrincipalType, params: Mapping[str, Any]
    ) -> AsyncIterator[list[Principal]]:
        """Every page of one List* call as principals; a failed page is retried at its Marker."""
        operation = LIST_OPERATIONS[kind]
        marker: str | None = None
        while True:
            page = await self._call(operation, partial(self._list, kind, params, marker))
            yield page.principals
            if page.marker is None:
                return
            marker = page.marker

    async def _list(
        self, kind: PrincipalType, params: Mapping[str, Any], marker: str | None
    ) -> PrincipalsPage:
        """One List* page; inside the call's `send`, so a page without its Marker is retried."""
        args: dict[str, Any] = dict(params) | ({"Marker": marker} if marker else {})
        if kind == "user":
            users = await self._iam.list_users(**args)
            found = [
                Principal(u["Arn"], kind, u["UserName"], u["UserId"], u.get("Path", "/"))
                for u in users.get("Users", [])
            ]
            return PrincipalsPage(found, next_marker(users))
        if kind == "group":
            groups = await self._iam.list_groups(**args)
            found = [
                Principal(g["Arn"], kind, g["GroupName"], g["GroupId"], g.get("Path", "/"))
                for g in groups.get("Groups", [])
            ]
            return PrincipalsPage(found, next_marker(groups))
        if kind == "role":
            roles = await self._iam.list_roles(**args)
            found = [
                Principal(r["Arn"], kind, r["RoleName"], r["RoleId"], r.get("Path", "/"))
                for r in roles.get("Roles", [])
            ]
            return PrincipalsPage(found, next_marker(roles))
        policies = await self._iam.list_policies(**args)
        found = [
            Principal(p["Arn"], kind, p["PolicyName"], p["PolicyId"], p.get("Path", "/"))
            for p in policies.get("Policies", [])
        ]
        return PrincipalsPage(found, next_marker(policies))


# Where GetAccountAuthorizationDetails carries policy documents: (list, inline list, key).
_DOCUMENTS = (
    ("UserDetailList", "UserPolicyList", "PolicyDocument"),
    ("GroupDetailList", "GroupPolicyList", "PolicyDocument"),
    ("RoleDetailList", "RolePolicyList", "PolicyDocument"),
    ("Policies", "PolicyVersionList", "Document"),
)


def decode_document(text: Any) -> dict[str, Any]:
    """A policy document as IAM sends it (URL-encoded JSON, RFC 3986) as a JSON object.

    The client does not decode it: tuning.py switches botocore's decoder off for the report calls.
    """
    if isinstance(text, dict):
        return text
    try:
        document = json.loads(unquote(str(text)))
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ResponseParserError(f"a policy document that is not a JSON object: {text!r:.80}")
    return document


def _decoded(page: Mapping[str, Any]) -> dict[str, Any]:
    """The page with every permission policy document decoded (trust policies are left out)."""
    out = dict(page)
    for listing, inner, key in _DOCUMENTS:
        items = []
        for item in page.get(listing, []):
            item = dict(item)
            item[inner] = [
                dict(entry) | {key: decode_document(entry.get(key))}
                for entry in item.get(inner, [])
            ]
            items.append(item)
        out[listing] = items
    return out


async def caller_account(sts: STSClient, caller: Caller) -> str:
    """The caller's account (sts:GetCallerIdentity); failing here is a credentials problem."""
    try:
        # Few attempts: an unreachable endpoint or bad keys should fail fast, before any work.
        identity = await caller.call("GetCallerIdentity", sts.get_caller_identity, attempts=3)
    except AwsError as error:
        raise CredentialsError(
            f"sts:GetCallerIdentity failed ({error.code}: {error.message}); "
            "check the AWS credentials, profile and endpoint"
        ) from error
    return str(identity["Account"])
