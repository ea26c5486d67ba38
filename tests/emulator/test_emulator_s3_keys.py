"""The emulator's S3 keeps object keys exactly as sent: no second decoding, no cut at `?` or `#`."""

from __future__ import annotations

from typing import Any

import anyio

from collector.emulator import Emulator
from tests.support.emulator_clients import aio_client, boto3_client

BUCKET = "odd-keys"
# Each a key S3 itself stores as given: a space, a literal `%20`, `%` alone, `?`, `#`, `+`,
# an encoded slash written out, non-ASCII, and all of them in one path.
KEYS = (
    "a b.jsonl",
    "p%20q.jsonl",
    "100%.jsonl",
    "what?x=1",
    "frag#ment",
    "one+two",
    "a%2Fb",
    "zoë/ünï/☃.jsonl.gz",
    "all of it/%41 ? # + ü/{x}.jsonl.gz.part",
)


def _round_trip_boto3(s3: Any) -> None:
    for key in KEYS:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(listed) == sorted(KEYS)
    for key in KEYS:
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == key.encode(), key
        copy = key + " copy"
        s3.copy_object(Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": key})
        assert s3.head_object(Bucket=BUCKET, Key=copy)["ContentLength"] == len(key.encode())
        s3.delete_object(Bucket=BUCKET, Key=copy)
        s3.delete_object(Bucket=BUCKET, Key=key)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_keys_round_trip_exactly_with_boto3(emulator: Emulator) -> None:
    """Put, list, get, copy (source and target) and delete keep every key byte for byte."""
    s3 = boto3_client(emulator, "s3")
    s3.create_bucket(Bucket=BUCKET)
    _round_trip_boto3(s3)


async def test_multipart_keys_round_trip_exactly_with_aiobotocore(emulator: Emulator) -> None:
    """The calls the S3 writer makes (multipart, list uploads and parts, copy) keep odd keys."""
    with anyio.fail_after(60):
        async with aio_client(emulator, "s3") as s3:
            await s3.create_bucket(Bucket=BUCKET)
            for key in KEYS:
                upload = await s3.create_multipart_upload(Bucket=BUCKET, Key=key)
                upload_id = upload["UploadId"]
                listed = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key)
                assert [u["Key"] for u in listed["Uploads"]] == [key]
                part = await s3.upload_part(
                    Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=key.encode()
                )
                parts = await s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
                assert [p["PartNumber"] for p in parts["Parts"]] == [1]
                await s3.complete_multipart_upload(
                    Bucket=BUCKET, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
                )  # fmt: skip
                await s3.copy_object(
                    Bucket=BUCKET, Key=key + ".out", CopySource={"Bucket": BUCKET, "Key": key}
                )
                got = await s3.get_object(Bucket=BUCKET, Key=key + ".out")
                async with got["Body"] as body:
                    assert await body.read() == key.encode(), key
            page = await s3.list_objects_v2(Bucket=BUCKET)
            names = sorted(item["Key"] for item in page["Contents"])
            assert names == sorted([*KEYS, *(key + ".out" for key in KEYS)])
            assert "Uploads" not in await s3.list_multipart_uploads(Bucket=BUCKET)
