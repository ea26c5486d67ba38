"""`manifest merge` with s3:// shard manifests and output: encryption, S3 errors as exit codes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from collector.org.manifest import AccountEntry, Manifest
from collector.org.shard import Shard
from tests.support.cli import COLLECTOR, cli, one_line_error
from tests.support.moto_org import MANAGEMENT, MotoOrg, moto_server

pytestmark = pytest.mark.e2e  # every test runs the collector CLI

IDS = ("100000000001", "100000000002", "100000000003")
KEY = "arn:aws:kms:us-east-1:123456789012:key/0b8f3c4e-1d2a-4c5b-9e8f-7a6b5c4d3e2f"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoOrg]:
    with moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def shards(moto: MotoOrg) -> list[str]:
    """Two shard manifests of one run in s3://shards/run-1/."""
    s3 = client(moto)
    s3.create_bucket(Bucket="shards")
    uris = []
    for index in range(2):
        shard = Shard(index, 2)
        manifest = Manifest(
            run_id="run-1", organization_id="o-abcdefghij",
            started=datetime(2026, 11, 23, 2, tzinfo=UTC), finished=datetime(2026, 11, 23, 3, tzinfo=UTC),
            accounts=tuple(AccountEntry(i, "complete") for i in IDS if shard.owns(i)),
            listed_accounts=IDS, shard=shard,
        )  # fmt: skip
        key = f"run-1/shard-{index}.json"
        s3.put_object(Bucket="shards", Key=key, Body=manifest.to_json().encode())
        uris.append(f"s3://shards/{key}")
    return uris


def client(moto: MotoOrg) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def merge(moto: MotoOrg, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("manifest", "merge", "--endpoint-url", moto.url, *args, cwd=cwd)


def test_the_merged_manifest_is_put_with_the_kms_key_given(
    moto: MotoOrg, shards: list[str], tmp_path: Path
) -> None:
    """`--sse-kms-key-id` reaches the put of the merged manifest (SSE-KMS with that key, as the
    sweep's own objects); without it the merged manifest is SSE-S3 (AES256)."""
    proc = merge(moto, tmp_path, *shards, "--output", "s3://shards/run-1/kms.json",
                 "--sse-kms-key-id", KEY)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    head = client(moto).head_object(Bucket="shards", Key="run-1/kms.json")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY)
    plain = merge(moto, tmp_path, *shards, "--output", "s3://shards/run-1/plain.json")
    assert plain.returncode == 0, plain.stderr
    head = client(moto).head_object(Bucket="shards", Key="run-1/plain.json")
    assert head["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in head


def test_an_s3_error_is_told_by_its_code_not_by_words_in_the_uri(
    moto: MotoOrg, shards: list[str], tmp_path: Path
) -> None:
    """A shard manifest in a bucket that does not exist is not a missing shard, even when its
    key says `NoSuchKey`: S3's error code decides (exit 4, naming the bucket's error)."""
    proc = merge(moto, tmp_path, shards[0], "s3://no-such-bucket/NoSuchKey.json",
                 "--output", str(tmp_path / "org.json"))  # fmt: skip
    one_line_error(proc, 4, "NoSuchBucket", "s3://no-such-bucket/NoSuchKey.json")
    assert not (tmp_path / "org.json").exists()


def test_merge_to_an_unwritable_s3_output_is_exit_4(
    moto: MotoOrg, shards: list[str], tmp_path: Path
) -> None:
    """The merged manifest cannot be put (no such bucket): one line naming it, exit 4."""
    proc = merge(moto, tmp_path, *shards, "--output", "s3://missing-bucket/org.json")
    one_line_error(proc, 4, "s3://missing-bucket/org.json", "NoSuchBucket")


def test_merge_without_credentials_or_endpoint_is_exit_3(
    moto: MotoOrg, shards: list[str], tmp_path: Path
) -> None:
    """No AWS credentials at all, or an endpoint nothing answers on: one line, exit 3 (an AWS
    problem, as for a sweep), never botocore's traceback."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS_KEY_ID")}
    bare = {k: v for k, v in bare.items() if k != "AWS_SECRET_ACCESS_KEY"}
    nokeys = subprocess.run(
        [COLLECTOR, "manifest", "merge", "--endpoint-url", moto.url, *shards,
         "--output", "s3://shards/run-1/org.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=bare,
    )  # fmt: skip
    one_line_error(nokeys, 3, "credentials")
    unreachable = cli("manifest", "merge", "--endpoint-url", "http://127.0.0.1:9", *shards,
                      "--output", "s3://shards/run-1/org.json", cwd=tmp_path)  # fmt: skip
    one_line_error(unreachable, 3, "127.0.0.1:9")
    owner_given = cli("manifest", "merge", "--endpoint-url", "http://127.0.0.1:9",
                      "--s3-bucket-owner", MANAGEMENT, *shards,
                      "--output", "s3://shards/run-1/org.json", cwd=tmp_path)  # fmt: skip
    one_line_error(owner_given, 3, "127.0.0.1:9")
