"""Each fault knob, as a client sees it over HTTP."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from collector.emulator import Faults
from collector.emulator.faults import LogNormal, ThrottleBucket, Uniform
from tests.support.emulator_clients import (
    EmulatorFactory,
    aio_client,
    boto3_client,
    of_kind,
    raised,
)


def _code(call: Any, **params: Any) -> tuple[int, str, str]:
    status, error = raised(call, **params)
    return status, error["Code"], error["Message"]


def test_rate_limit_answers_throttling_beyond_the_burst(emulator_with: EmulatorFactory) -> None:
    """A bucket of one call per 5 s serves one call, then Throttling 400 "Rate exceeded"; other
    operations have their own bucket. (A slow rate: a loaded machine cannot refill it between
    two calls; the refill is test_token_bucket_refills_and_refusals_take_nothing's, on a fake clock.)"""
    with emulator_with(faults=Faults(rate_limits={"ListUsers": 0.2})) as emu:
        iam = boto3_client(emu)
        iam.list_users()
        assert _code(iam.list_users) == (400, "Throttling", "Rate exceeded")
        iam.list_roles()


async def test_throttle_share_answers_throttling(emulator_with: EmulatorFactory) -> None:
    """With throttle_share=1 every IAM call, ours or moto's, answers Throttling (aiobotocore)."""
    with emulator_with(faults=Faults(throttle_share=1.0)) as emu:
        async with aio_client(emu) as iam:
            for call, params in (
                (iam.list_groups, {}),
                (iam.generate_service_last_accessed_details, {"Arn": "arn:aws:iam::1:user/x"}),
            ):
                with pytest.raises(ClientError) as caught:
                    await call(**params)
                assert caught.value.response["Error"]["Code"] == "Throttling"
                assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        async with aio_client(emu, "sts") as sts:
            assert (await sts.get_caller_identity())["Account"] == emu.account_id


def test_transient_share_answers_5xx(emulator_with: EmulatorFactory) -> None:
    """With transient_share=1 IAM calls answer ServiceFailure 500 or ServiceUnavailable 503."""
    with emulator_with(faults=Faults(transient_share=1.0)) as emu:
        iam = boto3_client(emu)
        seen = {_code(iam.list_roles)[:2] for _ in range(30)}
    assert seen == {(500, "ServiceFailure"), (503, "ServiceUnavailable")}


async def test_transient_faults_are_retried_by_clients(emulator_with: EmulatorFactory) -> None:
    """A 30% share of 5xx is absorbed by botocore's own retries; the job still completes."""
    with emulator_with(faults=Faults(transient_share=0.3), seed=5) as emu:
        async with aio_client(emu, retries={"mode": "standard", "max_attempts": 10}) as iam:
            with anyio.fail_after(20):
                users = (await iam.list_users())["Users"]
                job = await iam.generate_service_last_accessed_details(Arn=users[0]["Arn"])
                answer = await iam.get_service_last_accessed_details(JobId=job["JobId"])
    assert answer["JobStatus"] == "COMPLETED"


def test_failed_job_carries_its_error(emulator_with: EmulatorFactory) -> None:
    """A FAILED job has a completion date, no services, and Error{Code, Message}."""
    with emulator_with(faults=Faults(failed_share=1.0, latency=0.2)) as emu:
        iam = boto3_client(emu)
        arn = iam.list_groups()["Groups"][0]["Arn"]
        job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        assert iam.get_service_last_accessed_details(JobId=job_id)["JobStatus"] == "IN_PROGRESS"
        time.sleep(0.25)
        answer = iam.get_service_last_accessed_details(JobId=job_id)
        entities = iam.get_service_last_accessed_details_with_entities(
            JobId=job_id, ServiceNamespace="s3"
        )
        truth = emu.ground_truth()
    assert answer["JobStatus"] == "FAILED"
    assert answer["ServicesLastAccessed"] == []
    assert "JobCompletionDate" in answer
    assert answer["Error"]["Code"] in {"ServiceFailure", "LimitExceeded"}
    assert answer["Error"]["Message"]
    assert entities["JobStatus"] == "FAILED" and entities["Error"] == answer["Error"]
    error = next(r for r in truth if r["principal_arn"] == arn)
    assert error == {
        "record": "error",
        "schema": 1,
        "account_id": emu.account_id,
        "principal_arn": arn,
        "principal_type": "group",
        "stage": "poll",
        "code": answer["Error"]["Code"],
        "service_namespace": None,
    }
    assert {r["record"] for r in truth} == {"error"}


def test_stuck_job_never_completes(emulator_with: EmulatorFactory) -> None:
    """A stuck principal's job stays IN_PROGRESS; the ground truth expects JobTimeout."""
    with emulator_with(faults=Faults(stuck_share=1.0)) as emu:
        iam = boto3_client(emu)
        arn = iam.list_roles()["Roles"][0]["Arn"]
        job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        time.sleep(0.1)
        answer = iam.get_service_last_accessed_details(JobId=job_id)
        truth = emu.ground_truth()
    assert answer["JobStatus"] == "IN_PROGRESS" and "JobCompletionDate" not in answer
    assert {(r["stage"], r["code"]) for r in truth} == {("poll", "JobTimeout")}


def test_deleted_principals_are_listed_but_not_found(emulator_with: EmulatorFactory) -> None:
    """A deleted principal still appears in ListUsers, but Generate answers NoSuchEntity."""
    with emulator_with(faults=Faults(deleted_share=1.0)) as emu:
        iam = boto3_client(emu)
        users = iam.list_users()["Users"]
        status, code, _ = _code(iam.generate_service_last_accessed_details, Arn=users[0]["Arn"])
        truth = emu.ground_truth()
    assert len(users) == emu.layout.users
    assert (status, code) == (404, "NoSuchEntity")
    assert {(r["stage"], r["code"]) for r in truth} == {("generate", "NoSuchEntity")}


def test_fault_shares_split_principals_deterministically(emulator_with: EmulatorFactory) -> None:
    """Deleted, failed and stuck principals are disjoint shares, the same on every run."""
    faults = Faults(deleted_share=0.1, failed_share=0.1, stuck_share=0.1)
    runs = []
    for _ in range(2):
        with emulator_with(principals=200, faults=faults) as emu:
            runs.append(
                sorted(
                    (r["principal_arn"], r["code"]) for r in of_kind(emu.ground_truth(), "error")
                )
            )
    assert runs[0] == runs[1]
    codes = [code for _, code in runs[0]]
    assert 30 <= len(codes) <= 90
    assert {"NoSuchEntity", "JobTimeout"} <= set(codes)
    assert len({arn for arn, _ in runs[0]}) == len(codes)


def test_lost_first_job_then_regeneration_works(emulator_with: EmulatorFactory) -> None:
    """A principal's first job answers NoSuchEntity when read; a second Generate works."""
    with emulator_with(faults=Faults(lost_job_share=1.0)) as emu:
        iam = boto3_client(emu)
        arn = iam.list_users()["Users"][0]["Arn"]
        first = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        lost = _code(iam.get_service_last_accessed_details, JobId=first)
        second = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        answer = iam.get_service_last_accessed_details(JobId=second)
        truth = emu.ground_truth()
    assert lost[:2] == (404, "NoSuchEntity")
    assert answer["JobStatus"] == "COMPLETED"
    assert not of_kind(truth, "error")


def test_access_denied_on_list_users(emulator_with: EmulatorFactory) -> None:
    """AccessDenied 403 answers only the named operations."""
    with emulator_with(faults=Faults(access_denied=frozenset({"ListUsers"}))) as emu:
        iam = boto3_client(emu)
        status, code, message = _code(iam.list_users)
        roles = iam.list_roles()["Roles"]
    assert (status, code) == (403, "AccessDenied")
    assert "iam:ListUsers" in message
    assert roles


def test_markerless_pages_are_truncated_without_a_marker(emulator_with: EmulatorFactory) -> None:
    """The markerless knob drops the Marker of the named operations' truncated pages only."""
    faults = Faults(
        short_page_max=3, markerless=frozenset({"ListUsers", "GetServiceLastAccessedDetails"})
    )
    with emulator_with(faults=faults) as emu:
        iam = boto3_client(emu)
        users = iam.list_users(MaxItems=1000)
        roles = iam.list_roles(MaxItems=1000)
        arn = of_kind(emu.ground_truth(), "principal")[0]["principal_arn"]
        job = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        services = iam.get_service_last_accessed_details(JobId=job, MaxItems=1000)
    assert users["IsTruncated"] and "Marker" not in users and 1 <= len(users["Users"]) <= 3
    assert roles["IsTruncated"] and roles["Marker"]
    assert services["IsTruncated"] and "Marker" not in services


S3_CALLS = [
    ("PutObject", "put_object", {"Key": "k", "Body": b"x"}),
    ("GetObject", "get_object", {"Key": "present"}),
    ("DeleteObject", "delete_object", {"Key": "present"}),
    ("CreateMultipartUpload", "create_multipart_upload", {"Key": "k.part"}),
    ("ListMultipartUploads", "list_multipart_uploads", {"Prefix": "k"}),
    ("ListParts", "list_parts", {"Key": "open.part", "UploadId": "UPLOAD"}),
    ("AbortMultipartUpload", "abort_multipart_upload", {"Key": "open.part", "UploadId": "UPLOAD"}),
    ("ListObjectsV2", "list_objects_v2", {"Prefix": "k"}),
    (
        "CopyObject",
        "copy_object",
        {"Key": "copy", "CopySource": {"Bucket": "bkt", "Key": "present"}},
    ),
]


@pytest.mark.parametrize(("operation", "method", "params"), S3_CALLS, ids=[c[0] for c in S3_CALLS])
def test_access_denied_on_an_s3_operation(
    emulator_with: EmulatorFactory, operation: str, method: str, params: dict[str, Any]
) -> None:
    """--access-denied names S3 operations too: that one answers S3's AccessDenied 403, the
    others of the same bucket keep working."""
    with emulator_with(principals=2, faults=Faults(access_denied=frozenset({operation}))) as emu:
        s3 = boto3_client(emu, "s3", s3={"addressing_style": "path"})
        s3.create_bucket(Bucket="bkt")
        if operation != "PutObject":
            s3.put_object(Bucket="bkt", Key="present", Body=b"x")
        if operation != "CreateMultipartUpload":
            upload = s3.create_multipart_upload(Bucket="bkt", Key="open.part")["UploadId"]
            params = {k: upload if v == "UPLOAD" else v for k, v in params.items()}
        status, error = raised(getattr(s3, method), Bucket="bkt", **params)
        assert (status, error["Code"]) == (403, "AccessDenied")
        if operation not in ("ListObjectsV2", "PutObject"):
            assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] >= 1  # other calls are served


def test_access_denied_on_get_caller_identity(emulator_with: EmulatorFactory) -> None:
    """sts:GetCallerIdentity can be refused too, naming the caller and the action."""
    with emulator_with(
        principals=2, faults=Faults(access_denied=frozenset({"GetCallerIdentity"}))
    ) as emu:
        status, error = raised(boto3_client(emu, "sts").get_caller_identity)
        assert (status, error["Code"]) == (403, "AccessDenied")
        assert "sts:GetCallerIdentity" in error["Message"]


def test_lognormal_latency_varies_per_job(emulator_with: EmulatorFactory) -> None:
    """Lognormal latency gives each job its own duration around the median."""
    with emulator_with(faults=Faults(latency=LogNormal(0.05, 0.5))) as emu:
        iam = boto3_client(emu)
        arn = iam.list_users()["Users"][0]["Arn"]
        jobs = [iam.generate_service_last_accessed_details(Arn=arn)["JobId"] for _ in range(8)]
        time.sleep(0.6)
        answers = [iam.get_service_last_accessed_details(JobId=job) for job in jobs]
    spans = {
        round((a["JobCompletionDate"] - a["JobCreationDate"]).total_seconds(), 3) for a in answers
    }
    assert len(spans) > 1
    assert all(0 < span < 0.6 for span in spans)


def test_token_bucket_refills_and_refusals_take_nothing() -> None:
    """The bucket allows a 1 s burst, refuses without consuming, and refills at its rate."""
    now = [0.0]
    bucket = ThrottleBucket(2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 0.25
    assert bucket.take() is False
    now[0] += 0.25
    assert bucket.take() is True
    now[0] += 10
    assert [bucket.take() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    "fields",
    [
        {"throttle_share": 1.5},
        {"failed_share": -0.1},
        {"deleted_share": 0.6, "failed_share": 0.6},
        {"short_page_max": -1},
        {"latency": -1.0},
        {"rate_limits": {"ListUsers": 0}},
    ],
)
def test_inconsistent_knobs_are_refused(fields: dict[str, Any]) -> None:
    """Faults refuses shares outside 0..1, overlapping fates, and negative sizes or rates."""
    with pytest.raises(ValueError):
        Faults(**fields)


def test_uniform_latency_stays_within_its_bounds(emulator_with: EmulatorFactory) -> None:
    """Uniform latency gives each job its own duration between low and high."""
    with emulator_with(faults=Faults(latency=Uniform(0.05, 0.3))) as emu:
        iam = boto3_client(emu)
        arn = iam.list_users()["Users"][0]["Arn"]
        jobs = [iam.generate_service_last_accessed_details(Arn=arn)["JobId"] for _ in range(8)]
        time.sleep(0.6)
        answers = [iam.get_service_last_accessed_details(JobId=job) for job in jobs]
    spans = [(a["JobCompletionDate"] - a["JobCreationDate"]).total_seconds() for a in answers]
    assert len({round(span, 3) for span in spans}) > 1
    assert all(0.04 <= span <= 0.31 for span in spans)
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(2.0, 1.0)
