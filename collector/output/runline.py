"""The run line of a published output, its last line: how `--resume` knows what a run finished."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.errors import S3Error
from collector.models import Record
from collector.output.s3 import S3Target, newest_object, s3_call, split
from collector.template import OutputTemplate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

TAIL_BYTES = 1 << 16  # a run line is about a kilobyte: the tail of a plain object holds it
_GZIP = 31  # zlib wbits for a gzip stream (members concatenated are read one after another)


def _ours(last: bytes, run_id: str) -> Record | None:
    """The line as a run record of run `run_id`, else None."""
    try:
        record = json.loads(last)
    except ValueError:
        return None
    if (
        isinstance(record, dict)
        and record.get("record") == "run"
        and record.get("run_id") == run_id
    ):
        return record
    return None


def run_line(path: Path, run_id: str) -> Record | None:
    """The run line ending a local file (plain or gzip) when it is run `run_id`'s; None when
    the file is unreadable, cut off, or ends otherwise."""
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            last = b""
            for last in handle:  # noqa: B007 - the last line is the run line
                pass
    except (OSError, EOFError, zlib.error):
        return None
    return _ours(last, run_id)


def published_run(template: OutputTemplate, account_id: str, run_id: str) -> Record | None:
    """The run line (with `output`, the file) of run `run_id`'s published local file for the
    account, if one exists. Blocking: run it in a thread."""
    published = template.published(account_id=account_id)
    record = None if published is None else run_line(published, run_id)
    return None if record is None else record | {"output": str(published)}


async def _body(s3: S3Client, uri: str, target: S3Target, **extra: Any) -> Any:
    bucket, key = split(uri)
    owner = target.expected_owner
    answer = await s3_call(
        uri, lambda: s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner, **extra)
    )
    return answer["Body"]


async def s3_run_line(s3: S3Client, uri: str, target: S3Target, run_id: str) -> Record | None:
    """The run line ending an S3 object when it is run `run_id`'s: a plain object's last 64 KiB
    are read; a gzip object is read whole (gzip cannot be read from its end), a MiB at a time."""
    try:
        if not uri.endswith(".gz"):
            async with await _body(s3, uri, target, Range=f"bytes=-{TAIL_BYTES}") as stream:
                tail = await stream.read()
            return _ours(tail.rstrip(b"\n").rpartition(b"\n")[2], run_id)
        tail = b""  # the last line read so far (whole or not), and nothing before it
        inflate = zlib.decompressobj(_GZIP)
        async with await _body(s3, uri, target) as stream:
            while chunk := await stream.read(1 << 20):
                while chunk:
                    tail += inflate.decompress(chunk)
                    tail = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
                    chunk = inflate.unused_data  # the next gzip member, if any
                    if chunk:
                        inflate = zlib.decompressobj(_GZIP)
    except S3Error as error:
        if error.code in ("NoSuchKey", "InvalidRange"):
            return None
        raise
    except zlib.error:
        return None  # not gzip after all: not our published file
    return _ours(tail, run_id)


async def s3_published_run(
    s3: S3Client, template: OutputTemplate, account_id: str, run_id: str, target: S3Target
) -> Record | None:
    """The run line (with `output`, the URI) of run `run_id`'s published S3 object for the
    account: the newest object the template could have produced for it, if it ends so."""
    bucket, key_template = split(template.text)
    prefix = key_template.split("{", 1)[0]
    pattern = re.compile(OutputTemplate.parse(key_template).regex(account_id=account_id))
    newest = await newest_object(s3, bucket, prefix, pattern, target.expected_owner)
    if newest is None:
        return None
    record = await s3_run_line(s3, newest, target, run_id)
    return None if record is None else record | {"output": newest}
