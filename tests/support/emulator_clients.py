"""Real clients of a running emulator, and API items turned into ground-truth records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal, cast

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from collector.emulator import Emulator

REGION = "us-east-1"
# The services the tests talk to: the stubs type a client only for a literal service name.
Service = Literal["iam", "organizations", "s3", "sts"]

# What the `emulator_with` fixture returns: EmulatorOptions fields -> a running emulator.
EmulatorFactory = Callable[..., AbstractContextManager[Emulator]]


def boto3_client(emu: Emulator, service: Service = "iam", **config: Any) -> Any:
    """A boto3 client of the emulator; no retries, so faults surface as they are served."""
    config.setdefault("retries", {"total_max_attempts": 1})
    return boto3.session.Session().client(
        service, endpoint_url=emu.endpoint, region_name=REGION, config=Config(**config)
    )


@asynccontextmanager
async def aio_client(emu: Emulator, service: Service = "iam", **config: Any) -> AsyncIterator[Any]:
    """An aiobotocore client of the emulator; no retries unless asked for."""
    config.setdefault("retries", {"total_max_attempts": 1})
    session = get_session()
    async with session.create_client(
        service, endpoint_url=emu.endpoint, region_name=REGION, config=AioConfig(**config)
    ) as client:
        yield client


def iso(value: datetime | None) -> str | None:
    """A parsed timestamp back in the ground truth's format."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_record(account_id: str, arn: str, kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """One ServicesLastAccessed item as the ground truth's `service` record."""
    tracked = item.get("TrackedActionsLastAccessed")
    return {
        "record": "service",
        "schema": 1,
        "account_id": account_id,
        "principal_arn": arn,
        "principal_type": kind,
        "service_namespace": item["ServiceNamespace"],
        "service_name": item["ServiceName"],
        "last_authenticated": iso(item.get("LastAuthenticated")),
        "last_authenticated_entity": item.get("LastAuthenticatedEntity"),
        "last_authenticated_region": item.get("LastAuthenticatedRegion"),
        "total_authenticated_entities": item.get("TotalAuthenticatedEntities"),
        "tracked_actions": None
        if tracked is None
        else [
            {
                "action_name": action["ActionName"],
                "last_accessed_time": iso(action.get("LastAccessedTime")),
                "last_accessed_entity": action.get("LastAccessedEntity"),
                "last_accessed_region": action.get("LastAccessedRegion"),
            }
            for action in tracked
        ],
    }


def entity_record(
    account_id: str, arn: str, kind: str, namespace: str, item: Mapping[str, Any]
) -> dict[str, Any]:
    """One EntityDetailsList item as the ground truth's `entity` record."""
    info = item["EntityInfo"]
    return {
        "record": "entity",
        "schema": 1,
        "account_id": account_id,
        "principal_arn": arn,
        "principal_type": kind,
        "service_namespace": namespace,
        "entity_arn": info["Arn"],
        "entity_name": info["Name"],
        "entity_type": info["Type"].lower(),
        "entity_id": info["Id"],
        "entity_path": info.get("Path"),
        "last_authenticated": iso(item.get("LastAuthenticated")),
    }


def of_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The records of one kind."""
    return [record for record in records if record["record"] == kind]


def raised(call: Any, **params: Any) -> tuple[int, dict[str, str]]:
    """The HTTP status and `Error` of a call that must fail with a ClientError."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    # botocore types `Error` as a private partial TypedDict; its values are the server's strings.
    return response["ResponseMetadata"]["HTTPStatusCode"], cast(dict[str, str], response["Error"])
