"""Shard manifests in S3: fetched for `manifest merge`, and the org manifest put back there."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from aiobotocore.session import AioSession

from collector.aws.clients import s3_client
from collector.config.settings import Settings
from collector.errors import S3Error
from collector.org.credentials import session_account
from collector.org.manifest import Manifest, merge
from collector.output.s3 import S3Target, s3_call, split

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any


async def _fetch(s3: S3Client, uri: str, local: Path, owner: str) -> bool:
    """Download one manifest; False when there is none (a shard that never finished)."""
    bucket, key = split(uri)
    try:
        answer = await s3_call(
            uri,
            lambda: s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner),
        )
    except S3Error as error:
        if error.code == "NoSuchKey":
            return False
        raise
    async with answer["Body"] as body:
        await anyio.Path(local).write_bytes(await body.read())
    return True


async def _merge(args: argparse.Namespace) -> Manifest:
    settings = Settings(endpoint_url=args.endpoint_url)
    session = AioSession()
    # The bucket owner to expect: given, or the caller's own account (the one retry policy;
    # no credentials or no endpoint is one line, exit 3).
    owner = args.s3_bucket_owner or await session_account(session, settings)
    target = S3Target(owner, args.sse_kms_key_id)
    async with s3_client(settings, session) as s3:
        with tempfile.TemporaryDirectory() as scratch:
            paths = []
            for index, name in enumerate(args.shard_manifests):
                if not name.startswith("s3://"):
                    paths.append(Path(name))
                elif await _fetch(s3, name, Path(scratch) / f"{index}.json", owner):
                    paths.append(Path(scratch) / f"{index}.json")
            output = (
                Path(scratch) / "org.json" if args.output.startswith("s3://") else Path(args.output)
            )
            merged = await anyio.to_thread.run_sync(merge, paths, output, args.expect_shards)
            if args.output.startswith("s3://"):
                bucket, key = split(args.output)
                body = await anyio.Path(output).read_bytes()
                await s3_call(
                    args.output,
                    lambda: s3.put_object(
                        Bucket=bucket, Key=key, Body=body, ExpectedBucketOwner=owner,
                        ContentType="application/json", **target.encryption(),
                    ),
                )  # fmt: skip
    return merged


def merge_via_s3(args: argparse.Namespace) -> Manifest:
    """`manifest merge` where some paths are s3:// URIs; a missing shard object is a missing
    shard (exit 1, named), not an unreadable file."""
    return anyio.run(_merge, args)
