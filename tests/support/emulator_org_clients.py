"""Real clients of an emulated organisation: the management caller and assumed-role sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, TypedDict

import boto3
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from collector.emulator import Organization
from tests.support.emulator_clients import REGION, Service

# What the `org_with` fixtures return: OrgOptions fields -> a running organisation.
OrgFactory = Callable[..., AbstractContextManager[Organization]]


class _Keys(TypedDict, total=False):
    """Assumed-role credentials as the clients' keyword arguments."""

    aws_access_key_id: str
    aws_secret_access_key: str
    aws_session_token: str


def client(org: Organization, service: Service, credentials: dict[str, str] | None = None) -> Any:
    """A boto3 client; the environment's dummy keys (the management account) unless given."""
    keys: _Keys = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    return boto3.session.Session(**keys).client(
        service,
        endpoint_url=org.endpoint,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}),
    )


def assume(org: Organization, account_id: str, **params: Any) -> dict[str, str]:
    """The audit role's credentials in a member account, from the management account."""
    params.setdefault("RoleSessionName", "collector-test")
    sts = client(org, "sts")
    answer = sts.assume_role(RoleArn=org.role_arn(account_id), **params)
    return answer["Credentials"]  # type: ignore[no-any-return]


@asynccontextmanager
async def aio_client(
    org: Organization, service: Service, credentials: dict[str, str] | None = None
) -> AsyncIterator[Any]:
    """An aiobotocore client, with assumed-role credentials when given."""
    keys: _Keys = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    async with get_session().create_client(
        service,
        endpoint_url=org.endpoint,
        region_name=REGION,
        config=AioConfig(retries={"total_max_attempts": 1}),
        **keys,
    ) as aio:
        yield aio
