"""The S3 writer: a multipart upload to `KEY.part`, published to KEY by a server-side copy."""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import anyio
import structlog
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from collector.errors import OutputError, OutputUnreachableError, S3Error
from collector.template import PART_SUFFIX, OutputTemplate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.literals import ServerSideEncryptionType
    from types_aiobotocore_s3.type_defs import (
        CompletedPartTypeDef,
        CopyObjectOutputTypeDef,
        CopySourceTypeDef,
        CreateMultipartUploadOutputTypeDef,
        ListObjectsV2OutputTypeDef,
    )
else:
    S3Client = CompletedPartTypeDef = ListObjectsV2OutputTypeDef = ServerSideEncryptionType = Any
    CopyObjectOutputTypeDef = CopySourceTypeDef = CreateMultipartUploadOutputTypeDef = Any

log = structlog.get_logger()
T = TypeVar("T")

PART_BYTES = 8 << 20  # S3 wants parts of at least 5 MiB, the last excepted; 8 MiB of memory
_GZIP = 31  # zlib wbits for a gzip stream
# Codes S3 answers when the credentials themselves are wrong (not a permission on the bucket).
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
     "TokenRefreshRequired"}
)  # fmt: skip


class Encryption(TypedDict, total=False):
    """The server-side encryption arguments of a put, a copy or a multipart upload."""

    ServerSideEncryption: ServerSideEncryptionType
    SSEKMSKeyId: str


@dataclass(frozen=True)
class S3Target:
    """Where and how objects are written: the bucket owner check and server-side encryption."""

    expected_owner: str
    kms_key_id: str | None = None  # None: SSE-S3 (AES256)

    def encryption(self) -> Encryption:
        """SSE-KMS with the key when one is given, else SSE-S3: for every object we write."""
        if self.kms_key_id is None:
            return {"ServerSideEncryption": "AES256"}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}


def split(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` as (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


async def s3_call(uri: str, call: Callable[[], Awaitable[T]]) -> T:
    """One S3 call; any failure is one line naming the object: S3Error with S3's code (exit 4),
    or OutputUnreachableError when the endpoint or the credentials are the problem (exit 3)."""
    try:
        return await call()
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = str(details.get("Code", "Unknown")), details.get("Message", "")
        if code in CREDENTIAL_CODES:
            raise OutputUnreachableError(
                f"{uri}: {code}: {message}; check the AWS credentials and profile"
            ) from None
        hint = {
            "NoSuchBucket": "create the bucket or fix --output",
            "AccessDenied": "grant the S3 statements of the README's policy, and check the "
            "bucket owner (--s3-bucket-owner)",
        }.get(code, "check --output and the bucket")
        raise S3Error(f"{uri}: {code}: {message}; {hint}", code) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise OutputUnreachableError(
            f"{uri}: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where a role is available"
        ) from None
    except (HTTPClientError, ConnectionError) as error:
        # botocore retried already (standard mode): the endpoint is not there.
        raise OutputUnreachableError(
            f"{uri}: cannot reach S3: {error}; check --endpoint-url, the region and the network"
        ) from None
    except (BotoCoreError, ResponseParserError) as error:
        raise OutputError(f"{uri}: {error}; check --output and the endpoint") from None


class S3Writer:
    """Lines streamed to S3 as a multipart upload to `KEY.part` (gzip when KEY ends in .gz).

    A reader never sees a half-written KEY: it appears only by a copy from the completed
    `KEY.part`. Stopped gracefully, the upload is completed as `KEY.part` (resumable); failed, it
    is aborted. An upload left by a killed process is recovered (resume) or aborted at the
    next start, so none lingers unseen (they cost money).
    """

    def __init__(self, s3: S3Client, uri: str, target: S3Target) -> None:
        self._s3 = s3
        self.destination = uri
        self.bucket, self.key = split(uri)
        self.part_key = self.key + PART_SUFFIX
        self._target = target
        self._owner = target.expected_owner
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._buffer = bytearray()
        self._zip = zlib.compressobj(6, zlib.DEFLATED, _GZIP) if uri.endswith(".gz") else None

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    async def open(self, carry: Iterable[bytes] = ()) -> None:
        """Abort stale uploads of `KEY.part`, start a new one, write `carry` first."""
        await self.abort_stale()
        created = await s3_call(self._uri(self.part_key), self._create)
        self._upload_id = created["UploadId"]
        try:
            for line in carry:
                await self.write(line)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.abandon()
            raise

    def _create(self) -> Awaitable[CreateMultipartUploadOutputTypeDef]:
        if self._target.kms_key_id is None:
            return self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.part_key, ServerSideEncryption="AES256",
                ExpectedBucketOwner=self._owner,
            )  # fmt: skip
        return self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=self.part_key, ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._target.kms_key_id, ExpectedBucketOwner=self._owner,
        )  # fmt: skip

    def _copy(self) -> Awaitable[CopyObjectOutputTypeDef]:
        """KEY appears, whole, from the completed `KEY.part` (a server-side copy)."""
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self.part_key}
        if self._target.kms_key_id is None:
            return self._s3.copy_object(
                Bucket=self.bucket, Key=self.key, CopySource=source,
                ServerSideEncryption="AES256", ExpectedBucketOwner=self._owner,
                ExpectedSourceBucketOwner=self._owner,
            )  # fmt: skip
        return self._s3.copy_object(
            Bucket=self.bucket, Key=self.key, CopySource=source, ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._target.kms_key_id, ExpectedBucketOwner=self._owner,
            ExpectedSourceBucketOwner=self._owner,
        )  # fmt: skip

    async def abort_stale(self) -> None:
        uploads = await s3_call(
            self._uri(self.part_key),
            lambda: self._s3.list_multipart_uploads(
                Bucket=self.bucket, Prefix=self.part_key, ExpectedBucketOwner=self._owner
            ),
        )
        for upload in uploads.get("Uploads", []):
            if upload.get("Key") == self.part_key:
                await self._abort(upload["UploadId"])

    async def _abort(self, upload_id: str) -> None:
        await s3_call(
            self._uri(self.part_key),
            lambda: self._s3.abort_multipart_upload(
                Bucket=self.bucket,
                Key=self.part_key,
                UploadId=upload_id,
                ExpectedBucketOwner=self._owner,
            ),
        )

    async def write(self, data: bytes) -> None:
        self._buffer += self._zip.compress(data) if self._zip else data
        if len(self._buffer) >= PART_BYTES:
            if self._zip:  # a part boundary the resume reader can decode up to
                self._buffer += self._zip.flush(zlib.Z_SYNC_FLUSH)
            await self._upload_part()

    async def _upload_part(self) -> None:
        if self._upload_id is None:
            raise OutputError(f"{self.destination}: the upload was closed after an earlier error")
        body, number = bytes(self._buffer), len(self._parts) + 1
        upload_id = self._upload_id
        answer = await s3_call(
            self._uri(self.part_key),
            lambda: self._s3.upload_part(
                Bucket=self.bucket, Key=self.part_key, UploadId=upload_id, PartNumber=number,
                Body=body, ExpectedBucketOwner=self._owner,
            ),
        )  # fmt: skip
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._buffer.clear()

    async def finish(self, last: bytes, *, publish: bool) -> str | None:
        await self.write(last)
        if self._zip:
            self._buffer += self._zip.flush(zlib.Z_FINISH)
        await self._upload_part()
        upload_id, parts = self._upload_id, self._parts
        self._upload_id = None
        await s3_call(
            self._uri(self.part_key),
            lambda: self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.part_key, UploadId=upload_id or "",
                MultipartUpload={"Parts": parts}, ExpectedBucketOwner=self._owner,
            ),
        )  # fmt: skip
        if not publish:
            return None
        await s3_call(self.destination, self._copy)
        await s3_call(
            self._uri(self.part_key),
            lambda: self._s3.delete_object(
                Bucket=self.bucket, Key=self.part_key, ExpectedBucketOwner=self._owner
            ),
        )
        return self.destination

    async def abandon(self) -> None:
        """A failed sweep: abort its upload (the previous `KEY.part`, if any, stays)."""
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                await self._abort(upload_id)
            except OutputError as error:
                log.warning("collector.s3.abort_failed", error=str(error))


def _pattern(template: OutputTemplate, account_id: str) -> re.Pattern[str]:
    return re.compile(template.regex(account_id=account_id) + re.escape(PART_SUFFIX))


async def find_resumable(
    s3: S3Client, template: OutputTemplate, account_id: str, target: S3Target
) -> str | None:
    """The newest `KEY.part` object the template could have produced for the account, as a URI.

    An upload a killed process left unfinished is first completed, so its parts are kept.
    """
    bucket, key_template = split(template.text)
    prefix = key_template.split("{", 1)[0]
    pattern = _pattern(OutputTemplate.parse(key_template), account_id)
    owner = target.expected_owner
    uri = f"s3://{bucket}/{prefix}"
    uploads = await s3_call(
        uri,
        lambda: s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix, ExpectedBucketOwner=owner),
    )
    for upload in uploads.get("Uploads", []):
        if pattern.fullmatch(upload.get("Key", "")):
            await _recover(s3, bucket, upload.get("Key", ""), upload.get("UploadId", ""), owner)
    found: list[tuple[Any, str]] = []
    token: str | None = None
    while True:
        page = await s3_call(uri, partial(_list_page, s3, bucket, prefix, owner, token))
        found += [
            (item.get("LastModified"), item.get("Key", ""))
            for item in page.get("Contents", [])
            if pattern.fullmatch(item.get("Key", ""))
        ]
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if token is None:
            break
    return f"s3://{bucket}/{max(found)[1]}" if found else None


def _list_page(
    s3: S3Client, bucket: str, prefix: str, owner: str, token: str | None
) -> Awaitable[ListObjectsV2OutputTypeDef]:
    if token is None:
        return s3.list_objects_v2(Bucket=bucket, Prefix=prefix, ExpectedBucketOwner=owner)
    return s3.list_objects_v2(
        Bucket=bucket, Prefix=prefix, ExpectedBucketOwner=owner, ContinuationToken=token
    )


async def _recover(s3: S3Client, bucket: str, key: str, upload_id: str, owner: str) -> None:
    """Complete an upload a killed sweep left (its parts are whole principals' lines), or abort
    it when it has no part."""
    uri = f"s3://{bucket}/{key}"
    listed = await s3_call(
        uri,
        lambda: s3.list_parts(
            Bucket=bucket, Key=key, UploadId=upload_id, ExpectedBucketOwner=owner
        ),
    )
    parts: list[CompletedPartTypeDef] = [
        {"ETag": part.get("ETag", ""), "PartNumber": part.get("PartNumber", 0)}
        for part in listed.get("Parts", [])
    ]
    if parts:
        await s3_call(
            uri,
            lambda: s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
                ExpectedBucketOwner=owner,
            ),
        )  # fmt: skip
    else:
        await s3_call(
            uri,
            lambda: s3.abort_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, ExpectedBucketOwner=owner
            ),
        )


async def download(s3: S3Client, uri: str, target: S3Target) -> Path:
    """A private local copy of an S3 object (a `.part` to resume), streamed to a temp file."""
    bucket, key = split(uri)
    answer = await s3_call(
        uri,
        lambda: s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=target.expected_owner),
    )
    fd, name = tempfile.mkstemp(suffix="-" + os.path.basename(key))  # 0600, in TMPDIR
    with os.fdopen(fd, "wb") as handle:
        async with answer["Body"] as body:
            while chunk := await body.read(1 << 20):
                handle.write(chunk)
    return Path(name)
