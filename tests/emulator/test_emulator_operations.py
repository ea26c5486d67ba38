"""The three Access Advisor operations over real HTTP with boto3 and aiobotocore."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import pytest

from collector.emulator import Emulator, Faults
from tests.support.emulator_clients import (
    EmulatorFactory,
    aio_client,
    boto3_client,
    entity_record,
    of_kind,
    service_record,
)


def _principal(
    truth: list[dict[str, Any]],
    kind: str,
    predicate: Callable[[dict[str, Any]], bool] = lambda record: True,
) -> dict[str, Any]:
    return next(
        r for r in of_kind(truth, "principal") if r["principal_type"] == kind and predicate(r)
    )


def _busy_admin(record: dict[str, Any]) -> bool:
    return bool(record["services"] >= 100 and record["services_accessed"] > 0)


def _wait_completed(iam: Any, job_id: str) -> dict[str, Any]:
    for _ in range(100):
        answer: dict[str, Any] = iam.get_service_last_accessed_details(JobId=job_id, MaxItems=1000)
        if answer["JobStatus"] != "IN_PROGRESS":
            return answer
        time.sleep(0.05)
    raise AssertionError("job never completed")


def test_service_level_fields_parse_with_boto3(emulator: Emulator) -> None:
    """A completed SERVICE_LEVEL report parses field by field and equals the ground truth."""
    truth = emulator.ground_truth()
    admin = _principal(truth, "role", _busy_admin)
    iam = boto3_client(emulator)
    job_id = iam.generate_service_last_accessed_details(Arn=admin["principal_arn"])["JobId"]
    assert len(job_id) == 36
    answer = _wait_completed(iam, job_id)
    assert answer["JobStatus"] == "COMPLETED"
    assert answer["JobType"] == "SERVICE_LEVEL"
    assert isinstance(answer["JobCreationDate"], datetime)
    assert answer["JobCompletionDate"] >= answer["JobCreationDate"]
    assert answer["IsTruncated"] is False
    assert "Marker" not in answer and "Error" not in answer
    items = answer["ServicesLastAccessed"]
    used = [item for item in items if "LastAuthenticated" in item]
    assert used and len(used) < len(items)
    assert all(
        {"LastAuthenticatedEntity", "LastAuthenticatedRegion"} <= item.keys() for item in used
    )
    assert {item["ServiceNamespace"] for item in items} >= {"s3", "ec2", "iam"}
    got = [service_record(emulator.account_id, admin["principal_arn"], "role", i) for i in items]
    want = [r for r in of_kind(truth, "service") if r["principal_arn"] == admin["principal_arn"]]
    assert got == want


def test_action_level_tracked_actions_parse_with_boto3(emulator: Emulator) -> None:
    """ACTION_LEVEL adds TrackedActionsLastAccessed (all four fields) for s3, ec2, iam, lambda."""
    truth = emulator.ground_truth(granularity="ACTION_LEVEL")
    admin = _principal(truth, "role", _busy_admin)
    iam = boto3_client(emulator)
    job_id = iam.generate_service_last_accessed_details(
        Arn=admin["principal_arn"], Granularity="ACTION_LEVEL"
    )["JobId"]
    answer = _wait_completed(iam, job_id)
    assert answer["JobType"] == "ACTION_LEVEL"
    by_namespace = {item["ServiceNamespace"]: item for item in answer["ServicesLastAccessed"]}
    for namespace in ("s3", "ec2", "iam", "lambda"):
        assert by_namespace[namespace]["TrackedActionsLastAccessed"]
    assert "TrackedActionsLastAccessed" not in by_namespace["sqs"]
    actions = [
        action
        for namespace in ("s3", "ec2", "iam", "lambda")
        for action in by_namespace[namespace]["TrackedActionsLastAccessed"]
    ]
    full = {"ActionName", "LastAccessedEntity", "LastAccessedTime", "LastAccessedRegion"}
    assert any(action.keys() == full for action in actions)
    assert any(action.keys() == {"ActionName"} for action in actions)
    got = [
        service_record(emulator.account_id, admin["principal_arn"], "role", item)
        for item in answer["ServicesLastAccessed"]
    ]
    want = [r for r in of_kind(truth, "service") if r["principal_arn"] == admin["principal_arn"]]
    assert got == want


async def test_entities_fields_parse_with_aiobotocore(emulator: Emulator) -> None:
    """WithEntities lists a policy's users, roles and groups with paths, most recent first."""
    truth = emulator.ground_truth(entities="all")
    entities = of_kind(truth, "entity")
    types_of: dict[str, set[str]] = {}
    for record in entities:
        if record["principal_type"] == "policy":
            types_of.setdefault(record["principal_arn"], set()).add(record["entity_type"])
    policy_arn = max(types_of, key=lambda arn: len(types_of[arn]))
    assert len(types_of[policy_arn]) >= 2
    namespace = next(
        r["service_namespace"]
        for r in of_kind(truth, "service")
        if r["principal_arn"] == policy_arn and r["last_authenticated"]
    )
    with anyio.fail_after(20):
        async with aio_client(emulator) as iam:
            job = await iam.generate_service_last_accessed_details(Arn=policy_arn)
            answer = await iam.get_service_last_accessed_details_with_entities(
                JobId=job["JobId"], ServiceNamespace=namespace
            )
    assert answer["JobStatus"] == "COMPLETED"
    assert answer["JobCompletionDate"] >= answer["JobCreationDate"]
    assert answer["IsTruncated"] is False
    items = answer["EntityDetailsList"]
    assert all(item["EntityInfo"].keys() == {"Arn", "Name", "Type", "Id", "Path"} for item in items)
    stamps = [item["LastAuthenticated"] for item in items if "LastAuthenticated" in item]
    assert stamps and stamps == sorted(stamps, reverse=True)
    assert "LastAuthenticated" not in items[-1] or len(stamps) == len(items)
    got = [entity_record(emulator.account_id, policy_arn, "policy", namespace, i) for i in items]
    want = [
        r
        for r in entities
        if r["principal_arn"] == policy_arn and r["service_namespace"] == namespace
    ]
    assert got == want


async def test_group_report_lists_members_and_user_report_itself(emulator: Emulator) -> None:
    """A group report's entities are its member users; a user report's entity is the user."""
    truth = emulator.ground_truth(entities="all")
    group = _principal(truth, "group", lambda r: r["entities"] > 0)
    user = _principal(truth, "user")
    namespaces = {r["principal_arn"]: r["service_namespace"] for r in of_kind(truth, "service")}
    with anyio.fail_after(20):
        async with aio_client(emulator) as iam:
            members = await iam.get_group(GroupName=group["principal_name"])
            answers = {}
            for record in (group, user):
                arn = record["principal_arn"]
                job = await iam.generate_service_last_accessed_details(Arn=arn)
                answers[arn] = await iam.get_service_last_accessed_details_with_entities(
                    JobId=job["JobId"], ServiceNamespace=namespaces[arn]
                )
    listed = {i["EntityInfo"]["Arn"] for i in answers[group["principal_arn"]]["EntityDetailsList"]}
    assert listed == {u["Arn"] for u in members["Users"]}
    own = answers[user["principal_arn"]]["EntityDetailsList"]
    assert [i["EntityInfo"]["Arn"] for i in own] == [user["principal_arn"]]
    assert own[0]["EntityInfo"]["Type"] == "USER"


def test_job_is_in_progress_then_completed(emulator_with: EmulatorFactory) -> None:
    """Until its latency has passed a job is IN_PROGRESS with no completion date or services."""
    with emulator_with(faults=Faults(latency=0.4)) as emu:
        iam = boto3_client(emu)
        arn = iam.list_users()["Users"][0]["Arn"]
        job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        running = iam.get_service_last_accessed_details(JobId=job_id)
        entities = iam.get_service_last_accessed_details_with_entities(
            JobId=job_id, ServiceNamespace="s3"
        )
        time.sleep(0.45)
        done = iam.get_service_last_accessed_details(JobId=job_id)
    assert running["JobStatus"] == "IN_PROGRESS"
    assert "JobCompletionDate" not in running
    assert running["ServicesLastAccessed"] == []
    assert entities["JobStatus"] == "IN_PROGRESS" and entities["EntityDetailsList"] == []
    assert done["JobStatus"] == "COMPLETED"
    assert done["JobCreationDate"] == running["JobCreationDate"]
    elapsed = (done["JobCompletionDate"] - done["JobCreationDate"]).total_seconds()
    assert elapsed == pytest.approx(0.4, abs=0.002)
    assert done["ServicesLastAccessed"]


def test_sts_and_moto_iam_work_on_the_same_endpoint(emulator: Emulator) -> None:
    """STS GetCallerIdentity and moto's own IAM operations pass through the middleware."""
    identity = boto3_client(emulator, "sts").get_caller_identity()
    iam = boto3_client(emulator)
    paginator = iam.get_paginator("list_policies")
    local = [p for page in paginator.paginate(Scope="Local") for p in page["Policies"]]
    aws = [
        p for page in paginator.paginate(Scope="AWS", OnlyAttached=True) for p in page["Policies"]
    ]
    assert identity["Account"] == emulator.account_id
    assert len(local) == emulator.layout.policies
    assert {"AdministratorAccess", "ReadOnlyAccess"} <= {p["PolicyName"] for p in aws}


def test_account_changes_over_iam_show_in_new_reports(emulator: Emulator) -> None:
    """A user created and given a policy over the IAM API gets a report of exactly that policy."""
    iam = boto3_client(emulator)
    arn = iam.create_user(UserName="newcomer", Path="/late/")["User"]["Arn"]
    iam.put_user_policy(
        UserName="newcomer",
        PolicyName="kinesis",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":["kinesis:Get*","firehose:PutRecord"],"Resource":"*"}]}',
    )
    job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
    answer = _wait_completed(iam, job_id)
    names = {i["ServiceNamespace"]: i["ServiceName"] for i in answer["ServicesLastAccessed"]}
    assert names == {"kinesis": "Amazon Kinesis", "firehose": "Amazon Kinesis Firehose"}
