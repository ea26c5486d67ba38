"""Requests outside botocore's IAM model answer InvalidInput or ValidationError, as IAM does."""

from __future__ import annotations

from typing import Any

import pytest

from collector.emulator import Emulator
from collector.emulator.validation import violation
from tests.support.emulator_clients import boto3_client, raised

JOB = "00000000-0000-4000-8000-000000000000"  # 36 characters, as the model wants


@pytest.fixture
def iam(emulator: Emulator) -> Any:
    """A boto3 IAM client that sends even what botocore would refuse to send."""
    return boto3_client(emulator, parameter_validation=False)


@pytest.fixture
def job_id(iam: Any) -> str:
    """A completed job of the first user."""
    arn = iam.list_users()["Users"][0]["Arn"]
    return str(iam.generate_service_last_accessed_details(Arn=arn)["JobId"])


def _invalid(call: Any, **params: Any) -> str:
    status, error = raised(call, **params)
    assert (status, error["Code"], error["Type"]) == (400, "InvalidInput", "Sender")
    return str(error["Message"])


@pytest.mark.parametrize(
    ("namespace", "problem"),
    [
        ("a b", r"Member must satisfy regular expression pattern: [\w-]*"),
        ("s3!", r"Member must satisfy regular expression pattern: [\w-]*"),
        ("é", r"Member must satisfy regular expression pattern: [\w-]*"),
        ("", "Member must have length greater than or equal to 1"),
        ("x" * 65, "Member must have length less than or equal to 64"),
    ],
)
def test_service_namespace_outside_the_model_is_invalid_input(
    iam: Any, job_id: str, namespace: str, problem: str
) -> None:
    """A namespace outside [\\w-]{1,64} is InvalidInput 400, not an empty 200."""
    message = _invalid(
        iam.get_service_last_accessed_details_with_entities,
        JobId=job_id,
        ServiceNamespace=namespace,
    )
    assert message == (
        f"1 validation error detected: Value '{namespace}' at 'serviceNamespace' "
        f"failed to satisfy constraint: {problem}"
    )


@pytest.mark.parametrize("namespace", ["s3", "a-b", "not_a_service", "x" * 64])
def test_service_namespace_inside_the_model_is_served(
    iam: Any, job_id: str, namespace: str
) -> None:
    """Namespaces the model allows are answered 200, listing entities or none."""
    answer = iam.get_service_last_accessed_details_with_entities(
        JobId=job_id, ServiceNamespace=namespace
    )
    assert answer["JobStatus"] == "COMPLETED"


@pytest.mark.parametrize("job", [JOB[:-1], JOB + "0", "x"])
def test_job_id_of_the_wrong_length_is_invalid_input(iam: Any, job: str) -> None:
    """A JobId that is not 36 characters is InvalidInput, never NoSuchEntity (no regenerate loop)."""
    for call, params in (
        (iam.get_service_last_accessed_details, {}),
        (iam.get_service_last_accessed_details_with_entities, {"ServiceNamespace": "s3"}),
    ):
        message = _invalid(call, JobId=job, **params)
        assert f"Value '{job}' at 'jobId' failed to satisfy constraint" in message
    assert raised(iam.get_service_last_accessed_details, JobId=JOB)[1]["Code"] == "NoSuchEntity"


@pytest.mark.parametrize(
    ("arn", "problem"),
    [
        ("arn:aws:iam::1:u/x", "Member must have length greater than or equal to 20"),
        (
            "arn:aws:iam::123456789012:user/" + "x" * 2020,
            "Member must have length less than or equal to 2048",
        ),
    ],
)
def test_arn_outside_its_length_bounds_is_invalid_input(iam: Any, arn: str, problem: str) -> None:
    """Generate with an ARN shorter than 20 or longer than 2048 characters is InvalidInput."""
    message = _invalid(iam.generate_service_last_accessed_details, Arn=arn)
    assert message.endswith(f"at 'arn' failed to satisfy constraint: {problem}")


def test_missing_required_member_is_named() -> None:
    """A required member left out is 'Value null ... Member must not be null'."""
    problem = violation("GetServiceLastAccessedDetailsWithEntities", {"JobId": JOB})
    assert problem is not None and problem.code == "InvalidInput"
    assert problem.message == (
        "1 validation error detected: Value null at 'serviceNamespace' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_several_problems_are_counted() -> None:
    """Two bad members make one answer that counts and lists both."""
    problem = violation(
        "GetServiceLastAccessedDetails", {"JobId": "short", "MaxItems": "0", "Marker": "m"}
    )
    assert problem is not None
    assert problem.message.startswith("2 validation errors detected: Value 'short' at 'jobId'")
    assert "; Value '0' at 'maxItems' failed" in problem.message


def test_constraints_come_from_botocore_model() -> None:
    """The bounds are the model's: what it allows passes, operations it lacks pass unchecked."""
    assert violation("ListUsers", {"MaxItems": "1000", "PathPrefix": "/a/b/c/"}) is None
    assert violation("CreateUser", {"UserName": "a+b=c,d.e@f_g-h", "Path": "/a/b/c/"}) is None
    assert violation("NotAnOperation", {"Anything": "*"}) is None
    assert violation("CreateUser", {"UserName": "x" * 64}) is None
    too_long = violation("CreateUser", {"UserName": "x" * 65})
    assert too_long is not None and "less than or equal to 64" in too_long.message


@pytest.mark.parametrize(
    ("method", "params", "member"),
    [
        ("create_user", {"UserName": "x*y"}, "userName"),
        ("create_user", {"UserName": "space man"}, "userName"),
        ("create_user", {"UserName": "ok", "Path": "/no-trailing-slash"}, "path"),
        ("create_group", {"GroupName": "a/b"}, "groupName"),
        ("create_role", {"RoleName": "r" * 65, "AssumeRolePolicyDocument": "{}"}, "roleName"),
        ("create_policy", {"PolicyName": "p#1", "PolicyDocument": "{}"}, "policyName"),
        ("create_policy", {"PolicyName": "p", "PolicyDocument": "{}", "Path": "/a b/"}, "path"),
    ],
)
def test_names_iam_rejects_are_rejected(
    iam: Any, method: str, params: dict[str, Any], member: str
) -> None:
    """Names and paths outside IAM's patterns answer ValidationError 400, creating nothing."""
    status, error = raised(getattr(iam, method), **params)
    assert (status, error["Code"]) == (400, "ValidationError")
    assert f"at '{member}' failed to satisfy constraint" in error["Message"]
    names = {u["UserName"] for u in iam.list_users(MaxItems=1000)["Users"]}
    assert not {"x*y", "space man", "ok"} & names


def test_names_with_every_allowed_character_are_created(iam: Any) -> None:
    """A user named with every character IAM allows, on a nested path, round-trips exactly."""
    name = "a+b=c,d.e@f_g-h"
    created = iam.create_user(UserName=name, Path="/a/b/c/")["User"]
    listed = iam.list_users(PathPrefix="/a/b/")["Users"]
    assert created["Arn"].endswith(":user/a/b/c/a+b=c,d.e@f_g-h")
    assert [(u["UserName"], u["Path"]) for u in listed] == [(name, "/a/b/c/")]
    job = iam.generate_service_last_accessed_details(Arn=created["Arn"])["JobId"]
    assert iam.get_service_last_accessed_details(JobId=job)["JobStatus"] == "COMPLETED"
