"""Clients: one config for all of them, and the IAM, STS and S3 clients a sweep opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ProfileNotFound

from collector import __version__
from collector.aws.fastpath import REPORT_METHODS, install_short_path, use_fast_report_calls
from collector.aws.http import BoundedHttpSession
from collector.aws.iam import NO_CREDENTIALS
from collector.aws.shared import SharedIam
from collector.config.settings import Settings
from collector.errors import CredentialsError

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sts import STSClient
else:
    IAMClient = STSClient = S3Client = Any


@dataclass(frozen=True)
class Clients:
    """The open clients one account's sweep uses."""

    iam: IAMClient
    sts: STSClient
    report_calls: str = "aiobotocore"  # which path the three report calls take


@dataclass(frozen=True)
class AccountIam:
    """An IAM client acting in a known account, opened and closed by its owner (an
    organisation sweep's copy of its shared client): the account sweep neither closes it nor
    asks STS who it is."""

    iam: IAMClient
    account_id: str
    report_calls: str = "aiobotocore"  # which path the three report calls take


def client_config(**extra: Any) -> AioConfig:
    """One config for every client: no botocore retries (ours decide), bounded waits."""
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=64,
        user_agent_extra=f"collector/{__version__}",
        http_session_cls=BoundedHttpSession,
        **extra,
    )


@asynccontextmanager
async def s3_client(settings: Settings, session: AioSession | None) -> AsyncIterator[S3Client]:
    """An S3 client for output; path-style addressing at a custom endpoint (the emulator's).

    botocore's standard retries (3 attempts) stay on here: S3 output is not paced by us.
    """
    session = session or AioSession(profile=settings.profile)
    config = AioConfig(
        connect_timeout=10,
        read_timeout=120,
        user_agent_extra=f"collector/{__version__}",
        retries={"mode": "standard"},
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    async with session.create_client(
        "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    ) as client:
        yield client


async def caller_session(settings: Settings, *, need_credentials: bool = True) -> AioSession:
    """The caller's own session (profile or default chain); credential problems are exit 3."""
    try:
        session = AioSession(profile=settings.profile)
        if need_credentials and await session.get_credentials() is None:
            raise CredentialsError(NO_CREDENTIALS)
    except ProfileNotFound as error:
        profile = error.kwargs.get("profile") or settings.profile
        raise CredentialsError(
            f"AWS profile {profile!r} not found; check ~/.aws/config, AWS_PROFILE or --profile"
        ) from error
    except BotoCoreError as error:
        # A ~/.aws/config that does not parse, half a key pair, a failing credential_process...
        raise CredentialsError(f"cannot load AWS credentials: {error}") from error
    return session


@asynccontextmanager
async def open_clients(
    settings: Settings,
    *,
    session: AioSession | None = None,
    credentials: Mapping[str, str] | None = None,
) -> AsyncIterator[Clients]:
    """IAM and STS clients; `session` for an assumed role, `credentials` for explicit keys."""
    if session is None:
        session = await caller_session(settings, need_credentials=credentials is None)
    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.endpoint_url,
        "config": client_config(),
        **(credentials or {}),
    }
    async with AsyncExitStack() as stack:
        # The sweep builds every IAM call's parameters itself: botocore's check of them against
        # the model is CPU per call that can never fail.
        iam_options = options | {"config": client_config(parameter_validation=False)}
        iam = await stack.enter_async_context(session.create_client("iam", **iam_options))
        sts = await stack.enter_async_context(session.create_client("sts", **options))
        report_calls = await install_short_path(iam, enabled=settings.fast_report_calls)
        yield Clients(iam=iam, sts=sts, report_calls=report_calls)


@asynccontextmanager
async def shared_iam(settings: Settings, session: AioSession) -> AsyncIterator[SharedIam]:
    """The IAM client every account of an organisation sweep copies (see SharedIam), tuned
    once; closed, with the connection pool all copies use, when the sweep is over."""
    config = client_config(parameter_validation=False)
    async with session.create_client(
        "iam", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    ) as iam:
        report_calls = await install_short_path(iam, enabled=settings.fast_report_calls)
        for method in REPORT_METHODS.values():
            # The template makes no call: its short-path calls would sign with the caller's
            # keys, so no copy may inherit them (each copy builds its own, see account_iam).
            vars(iam).pop(method, None)
        yield SharedIam(iam, report_calls=report_calls)


async def account_iam(shared: SharedIam, credentials: Any, account_id: str) -> AccountIam:
    """A copy of the shared IAM client that signs with one account's credentials, its report
    calls on the short path when the template's are."""
    iam = shared.client(credentials)
    report_calls = "aiobotocore"
    if shared.report_calls != "aiobotocore":
        short = await use_fast_report_calls(iam)
        if len(short) == len(REPORT_METHODS):
            report_calls = "short"
        elif short:
            report_calls = "short: " + ", ".join(sorted(short))
    return AccountIam(iam=iam, account_id=account_id, report_calls=report_calls)
