"""Credentials per account: the caller's own, or an assumed role's that refresh themselves."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import anyio
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioCredentialResolver,
    AioRefreshableCredentials,
)
from aiobotocore.session import AioSession, ClientCreatorContext
from botocore.credentials import CredentialProvider
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, UnknownRegionError

from collector import __version__
from collector.aws.clients import client_config as call_config
from collector.aws.http import BoundedHttpSession
from collector.aws.iam import MALFORMED, Caller, caller_account
from collector.config.settings import Settings
from collector.errors import AssumeRoleError, ConfigError, CredentialRefreshError, CredentialsError
from collector.models import CallStats

if TYPE_CHECKING:
    from types_aiobotocore_sts import STSClient

ROLE_NAME = re.compile(r"(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")  # an optional IAM path, then the name
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_NOT_IN_SESSION_NAME = re.compile(r"[^\w+=,.@-]")
DEFAULT_LIFETIME = 3600  # what AWS grants when DurationSeconds is not sent
MALFORMED_RESPONSE = "MalformedResponse"  # an answer that is not AssumeRole's (HTML, empty...)
EXPIRED_CREDENTIALS = "ExpiredCredentials"  # an answer whose credentials had already expired
MALFORMED_ATTEMPTS = 3  # an unusable answer is asked again this often before the account fails
# After a failed refresh, the next AssumeRole waits this long (doubled per failure, capped):
# the calls in between keep the current credentials instead of each asking STS again.
REFRESH_BACKOFF = 2.0
REFRESH_BACKOFF_MAX = 60.0
Clock = Callable[[], datetime]
log = structlog.get_logger()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AssumeRoleSettings:
    """How to get into a member account: `arn:<partition>:iam::<account>:role/<role_name>`."""

    role_name: str
    external_id: str | None = None
    session_name: str = "collector-{run_id}"  # `{run_id}` is filled in
    duration_seconds: int | None = None  # 900..43200; None: AWS's default of one hour
    region: str = "us-east-1"
    endpoint_url: str | None = None  # the emulator's; applies to STS too

    def __post_init__(self) -> None:
        if ROLE_NAME.fullmatch(self.role_name) is None:
            raise ConfigError(f"--role-name {self.role_name!r} is not an IAM role name")
        if self.external_id is not None and EXTERNAL_ID.fullmatch(self.external_id) is None:
            raise ConfigError("--external-id must be 2-1224 of letters, digits and +=,.@:/-")
        if self.duration_seconds is not None and not 900 <= self.duration_seconds <= 43200:
            raise ConfigError(
                f"--role-duration {self.duration_seconds} is not between 900 and 43200 seconds"
            )
        session_name(self.session_name, "run")  # fails now, not at the first account

    def role_arn(self, account_id: str, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{account_id}:role/{self.role_name}"


def session_name(template: str, run_id: str) -> str:
    """RoleSessionName for a run: the template with `{run_id}`, made to fit AWS's rules.

    The run id part is sanitised (characters outside `[\\w+=,.@-]` become `-`) and the
    result cut to 64 characters; a fixed name the user typed must already be valid.
    """
    if "{run_id}" in template:
        name = template.replace("{run_id}", _NOT_IN_SESSION_NAME.sub("-", run_id))[:64]
        if SESSION_NAME.fullmatch(name) is not None:
            return name
    elif SESSION_NAME.fullmatch(template) is not None:
        return template
    raise ConfigError(f"--role-session-name {template!r} must give 2-64 letters, digits or +=,.@-")


def _refresh_windows(lifetime: float) -> tuple[int, int]:
    """botocore's advisory (15 min) and mandatory (10 min) refresh windows, scaled down for
    short sessions: with 900 s credentials its defaults would call AssumeRole on every request.
    `lifetime` is what AWS granted (a chained role gets at most an hour, whatever was asked).
    """
    seconds = int(lifetime)
    return min(15 * 60, seconds // 4), min(10 * 60, seconds // 6)


class _NoCache(dict[str, Any]):
    """The fetcher's response cache, switched off: the refreshable credentials decide when to
    call AssumeRole (on our clock), so a cache checked against the wall clock must not answer.
    """

    def __contains__(self, key: object) -> bool:
        return False


class _Provider(CredentialProvider):
    """Hands one session its credentials object (the resolver asks every provider in turn)."""

    METHOD = "assume-role"
    CANONICAL_NAME = "collector-assume-role"

    def __init__(self, credentials: AioRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> AioRefreshableCredentials:
        return self._credentials


class _Lent:
    """An open client handed to code that wants to `async with` a new one: the lender closes it."""

    def __init__(self, client: STSClient) -> None:
        self._client = client

    async def __aenter__(self) -> STSClient:
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def client_config() -> AioConfig:
    """STS client settings: botocore's standard retries (throttling, 5xx), short timeouts."""
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra=f"collector/{__version__}",
        # One per account an organisation sweep assumes a role in: its TLS context is shared.
        http_session_cls=BoundedHttpSession,
    )


def sts_client(
    base: AioSession, settings: AssumeRoleSettings, **keys: Any
) -> ClientCreatorContext[STSClient]:
    """An STS client of the caller's session.

    No endpoint_url means the regional endpoint of `settings.region` (botocore's default,
    `sts_regional_endpoints=regional`): it keeps working when the global endpoint is
    unreachable, and regional STS is what AWS recommends. A custom endpoint_url (the emulator)
    is used for STS as for every other service.
    """
    return base.create_client(
        "sts",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=client_config(),
        **keys,
    )


def _partition(base: AioSession, region: str) -> str:
    """aws, aws-cn, aws-us-gov... of the region; a name botocore does not know (an emulator's
    made-up region) is taken as the commercial partition."""
    try:
        return str(base.get_partition_for_region(region))
    except UnknownRegionError:
        return "aws"


def _assume_role_error(account_id: str, role_arn: str, error: Exception) -> Exception:
    if isinstance(error, NoCredentialsError):
        return CredentialsError("no AWS credentials found to call sts:AssumeRole with")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, message = str(details.get("Code", "Unknown")), str(details.get("Message", ""))
    else:
        code, message = type(error).__name__, str(error)
    return AssumeRoleError(account_id, role_arn, code, " ".join(message.split())[:300])


def _usable(account_id: str, role_arn: str, metadata: Mapping[str, Any], now: datetime) -> datetime:
    """The expiry of credentials the fetcher made of AssumeRole's answer; AssumeRoleError when
    they are not credentials, or expired already."""
    for key in ("access_key", "secret_key", "token"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            missing = key.replace("_", " ")
            raise AssumeRoleError(
                account_id, role_arn, MALFORMED_RESPONSE, f"the answer has no {missing}"
            )
    try:
        expiry = datetime.fromisoformat(str(metadata.get("expiry_time")))
    except ValueError:
        raise AssumeRoleError(
            account_id, role_arn, MALFORMED_RESPONSE,
            f"the answer's expiry {str(metadata.get('expiry_time'))[:40]!r} is not a time",
        ) from None  # fmt: skip
    expiry = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
    if expiry <= now:
        raise AssumeRoleError(
            account_id, role_arn, EXPIRED_CREDENTIALS,
            f"the answer's credentials expired at {expiry.isoformat()}, before they came "
            f"(check the clocks of this host and of the STS endpoint)",
        )  # fmt: skip
    return expiry


class _Refresh:
    """What aiobotocore calls to renew an account's credentials (`refresh_using`).

    aiobotocore asks on every API call once the credentials are in their refresh window. After
    a failed AssumeRole this waits a backoff (REFRESH_BACKOFF, doubled per failure, capped)
    before asking STS again, and meanwhile hands back the current credentials while they are
    valid for a margin more. So a failing refresh costs one AssumeRole per backoff, not one per
    call, and logs one line per account, not one per attempt. Once the credentials are that
    close to expiring and none came, CredentialRefreshError stops the account's sweep.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[dict[str, Any], datetime]]],
        first: dict[str, Any],
        expiry: datetime,
        *,
        account_id: str,
        clock: Clock,
    ) -> None:
        self._fetch = fetch
        self._current, self._expiry = first, expiry
        self._margin = timedelta(seconds=min(60.0, (expiry - clock()).total_seconds() / 10))
        self._account_id = account_id
        self._clock = clock
        self._failures = 0
        self._retry_at: datetime | None = None
        self._error: AssumeRoleError | None = None

    async def __call__(self) -> dict[str, Any]:
        now = self._clock()
        if self._retry_at is None or now >= self._retry_at:
            try:
                fresh, expiry = await self._fetch()
            except AssumeRoleError as error:
                self._failed(error, now)
            else:
                if self._failures:
                    log.info("collector.credentials.refreshed", account_id=self._account_id,
                             failed_attempts=self._failures)  # fmt: skip
                self._failures, self._retry_at, self._error = 0, None, None
                self._current, self._expiry = fresh, expiry
                return fresh
        if self._expiry - now > self._margin:
            return self._current  # still good: aiobotocore keeps them, and asks again later
        assert self._error is not None  # the last attempt failed, or we would have returned
        raise CredentialRefreshError(self._account_id, self._error.code, self._error.message)

    def _failed(self, error: AssumeRoleError, now: datetime) -> None:
        self._failures += 1
        self._error = error
        ceiling = min(REFRESH_BACKOFF_MAX, REFRESH_BACKOFF * 2.0 ** (self._failures - 1))
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)
        self._retry_at = now + timedelta(seconds=wait)
        if self._failures == 1:  # one line per failing streak; the account's outcome says the rest
            log.warning(
                "collector.credentials.refresh_failed", account_id=self._account_id,
                code=error.code, message=error.message, expires=self._expiry.isoformat(),
                retry_seconds=round(wait, 1),
            )  # fmt: skip


async def assumed_credentials(
    base: AioSession,
    account_id: str,
    settings: AssumeRoleSettings,
    run_id: str,
    *,
    clock: Clock = utc_now,
    sts: STSClient | None = None,
) -> AioRefreshableCredentials:
    """The role's credentials, fetched now (so a denial shows before any work) and refreshed
    by aiobotocore itself before they expire: in the advisory window and then the mandatory one,
    a failed refresh keeps the current credentials while they last (see _Refresh). An answer
    that is not credentials (HTML, empty, an expiry that is no time or already past) is asked
    again, then AssumeRoleError. `clock` is the time the windows are measured on (tests move it).
    `sts`: an open STS client of `base` to call AssumeRole with, now and at every refresh (an
    organisation sweep's one client and connection pool); without it, each call opens its own.
    """
    source = await base.get_credentials()
    if source is None:
        raise CredentialsError("no AWS credentials found to call sts:AssumeRole with")
    role_arn = settings.role_arn(account_id, _partition(base, settings.region))
    extra: dict[str, Any] = {"RoleSessionName": session_name(settings.session_name, run_id)}
    if settings.external_id is not None:
        extra["ExternalId"] = settings.external_id
    if settings.duration_seconds is not None:
        extra["DurationSeconds"] = settings.duration_seconds

    def create_sts(service: str, **keys: Any) -> ClientCreatorContext[STSClient] | _Lent:
        if sts is not None:
            return _Lent(sts)  # signs with `base`'s credentials, the fetcher's source too
        return sts_client(base, settings, **keys)  # the fetcher passes the source keys

    fetcher = AioAssumeRoleCredentialFetcher(
        client_creator=cast(Any, create_sts),  # stubs expect a sync client
        source_credentials=source,
        role_arn=role_arn,
        extra_args=extra,
        cache=_NoCache(),
    )

    async def fetch() -> tuple[dict[str, Any], datetime]:
        """Credentials and their expiry; AssumeRoleError when there are none to be had."""
        for attempt in range(1, MALFORMED_ATTEMPTS + 1):
            try:
                metadata: dict[str, Any] = await fetcher.fetch_credentials()
                return metadata, _usable(account_id, role_arn, metadata, clock())
            except (ClientError, BotoCoreError) as error:
                raise _assume_role_error(account_id, role_arn, error) from error
            except (*MALFORMED, ValueError, TypeError) as error:
                # botocore could not parse it (HTML, empty, a timestamp that is none).
                unusable = AssumeRoleError(
                    account_id, role_arn, MALFORMED_RESPONSE,
                    " ".join(f"not an AssumeRole answer: {type(error).__name__}: {error}"
                             .split())[:300],
                )  # fmt: skip
            except AssumeRoleError as error:
                unusable = error
            if attempt < MALFORMED_ATTEMPTS:
                await anyio.sleep(0.5 * attempt)
        raise unusable

    first, expiry = await fetch()
    advisory, mandatory = _refresh_windows((expiry - clock()).total_seconds())
    return AioRefreshableCredentials(
        access_key=first["access_key"],
        secret_key=first["secret_key"],
        token=first["token"],
        expiry_time=expiry,
        refresh_using=_Refresh(fetch, first, expiry, account_id=account_id, clock=clock),
        method="assume-role",
        time_fetcher=clock,
        advisory_timeout=advisory,
        mandatory_timeout=mandatory,
        account_id=first.get("account_id"),
    )


async def account_credentials(
    base: AioSession,
    account_id: str,
    *,
    caller_account: str,
    settings: AssumeRoleSettings,
    run_id: str,
    sts: STSClient | None = None,
    clock: Clock = utc_now,
) -> Any:
    """The credentials that act in `account_id`: `base`'s own for the caller's account, else
    the assumed role's (refreshing themselves; AssumeRole through `sts` when given).

    Raises AssumeRoleError (AWS's code and message) when the role cannot be assumed.
    """
    if account_id == caller_account:
        return await base.get_credentials()
    return await assumed_credentials(base, account_id, settings, run_id, clock=clock, sts=sts)


async def account_session(
    base: AioSession,
    account_id: str,
    *,
    caller_account: str,
    settings: AssumeRoleSettings,
    run_id: str,
    clock: Clock = utc_now,
) -> AioSession:
    """A session whose clients act in `account_id`: `base` itself for the caller's account,
    else a new session on the assumed role's refreshable credentials.

    Raises AssumeRoleError (AWS's code and message) when the role cannot be assumed.
    """
    if account_id == caller_account:
        return base
    credentials = await assumed_credentials(base, account_id, settings, run_id, clock=clock)
    session = AioSession()
    # The parsed service models are read-only: sharing base's loader saves ~100 ms of CPU
    # per account (measured: a fresh session's first IAM client 112 ms, shared loader 17 ms).
    session.register_component("data_loader", base.get_component("data_loader"))
    session.register_component(
        "credential_provider", AioCredentialResolver([_Provider(credentials)])
    )
    return session


async def session_account(base: AioSession, settings: Settings) -> str:
    """The account the caller's own credentials belong to: sts:GetCallerIdentity through the
    one retry policy (aws.iam.caller_account: CredentialsError, exit 3, when it cannot be had)."""
    async with base.create_client(
        "sts",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=call_config(),  # no botocore retries: the Caller's policy decides
    ) as sts:
        return await caller_account(sts, Caller(settings.retry, CallStats()))
