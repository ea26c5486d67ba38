"""Input validation and unknown ids answer IAM's InvalidInput (400) and NoSuchEntity (404)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from collector.emulator import Emulator
from tests.support.emulator_clients import aio_client, boto3_client, raised

UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


def _error(call: Any, **params: Any) -> tuple[int, str, str]:
    status, error = raised(call, **params)
    return status, error["Code"], error.get("Type", "")


@pytest.fixture
def iam(emulator: Emulator) -> Any:
    """A boto3 IAM client that sends even what botocore would refuse to send."""
    return boto3_client(emulator, parameter_validation=False)


@pytest.fixture
def job_id(iam: Any) -> str:
    """A completed job of the first user."""
    arn = iam.list_users()["Users"][0]["Arn"]
    return str(iam.generate_service_last_accessed_details(Arn=arn)["JobId"])


def test_unknown_job_id_is_no_such_entity(iam: Any) -> None:
    """Both Get operations answer NoSuchEntity 404 for a JobId nobody generated."""
    assert _error(iam.get_service_last_accessed_details, JobId=UNKNOWN_JOB) == (
        404,
        "NoSuchEntity",
        "Sender",
    )
    assert _error(
        iam.get_service_last_accessed_details_with_entities,
        JobId=UNKNOWN_JOB,
        ServiceNamespace="s3",
    )[:2] == (404, "NoSuchEntity")


async def test_unknown_principal_is_no_such_entity(emulator: Emulator) -> None:
    """Generating for a well-formed ARN that names nothing answers NoSuchEntity (aiobotocore)."""
    async with aio_client(emulator) as iam:
        with pytest.raises(ClientError) as caught:
            await iam.generate_service_last_accessed_details(
                Arn=f"arn:aws:iam::{emulator.account_id}:user/nobody"
            )
    assert caught.value.response["Error"]["Code"] == "NoSuchEntity"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("max_items", [0, 1001, -5])
def test_max_items_out_of_range_is_invalid_input(iam: Any, job_id: str, max_items: int) -> None:
    """MaxItems outside 1..1000 answers InvalidInput 400 on both Get operations."""
    assert _error(iam.get_service_last_accessed_details, JobId=job_id, MaxItems=max_items) == (
        400,
        "InvalidInput",
        "Sender",
    )
    assert _error(
        iam.get_service_last_accessed_details_with_entities,
        JobId=job_id,
        ServiceNamespace="s3",
        MaxItems=max_items,
    )[:2] == (400, "InvalidInput")


def test_bad_granularity_is_invalid_input(iam: Any) -> None:
    """A Granularity other than SERVICE_LEVEL or ACTION_LEVEL answers InvalidInput."""
    arn = iam.list_users()["Users"][0]["Arn"]
    assert _error(
        iam.generate_service_last_accessed_details, Arn=arn, Granularity="RESOURCE_LEVEL"
    )[:2] == (400, "InvalidInput")


@pytest.mark.parametrize(
    "arn",
    [
        "not-an-arn-at-all-really",
        "arn:aws:s3:::some-bucket-name",
        "arn:aws:iam::123456789012:instance-profile/web",
        "arn:aws:iam::aws:user/root-of-aws",
    ],
)
def test_malformed_arn_is_invalid_input(iam: Any, arn: str) -> None:
    """An ARN that is not a user, group, role or managed policy answers InvalidInput."""
    assert _error(iam.generate_service_last_accessed_details, Arn=arn)[:2] == (
        400,
        "InvalidInput",
    )


def test_bad_marker_is_invalid_input(iam: Any, job_id: str) -> None:
    """A Marker the emulator never handed out answers InvalidInput."""
    assert _error(iam.get_service_last_accessed_details, JobId=job_id, Marker="garbage!")[:2] == (
        400,
        "InvalidInput",
    )


def test_unknown_namespace_lists_no_entities(iam: Any, job_id: str) -> None:
    """A namespace the report does not list has no entities."""
    answer = iam.get_service_last_accessed_details_with_entities(
        JobId=job_id, ServiceNamespace="not-a-service"
    )
    assert answer["JobStatus"] == "COMPLETED"
    assert answer["EntityDetailsList"] == []
    assert answer["IsTruncated"] is False
