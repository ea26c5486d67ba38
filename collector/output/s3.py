"""The S3 writer: a multipart upload to `KEY.part`, published to KEY by a server-side copy."""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import anyio
import structlog
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
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
# A live writer re-uploads this one-byte part now and then: its LastModified says the upload's
# sweep is alive. S3's last part number, never a data part (that would be 80 GB of output);
# a completed upload lists only its data parts, so S3 drops this one.
HEARTBEAT_PART = 10_000
HEARTBEATS_PER_WINDOW = 20  # beats in `orphan_after`: a few lost calls never look like death
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
    """Where and how objects are written: the bucket owner check and server-side encryption.

    `orphan_after`: seconds an open upload of ours may show no sign of life (its start, or a
    part uploaded, heartbeats included) before it is taken for a killed sweep's and aborted.
    """

    expected_owner: str
    kms_key_id: str | None = None  # None: SSE-S3 (AES256)
    orphan_after: float = 600.0

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
            "AccessDenied": "grant docs/policies/s3-output-policy.json's statements, and check "
            "the bucket owner (--s3-bucket-owner)",
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
            # A first sign of life at once: no reader has to trust ListMultipartUploads'
            # Initiated (moto's is a fixed date in 2010).
            await self._heartbeat()
            for line in carry:
                await self.write(line)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.abandon()
            raise

    def _create(self) -> Awaitable[CreateMultipartUploadOutputTypeDef]:
        return self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=self.part_key, ExpectedBucketOwner=self._owner,
            **self._target.encryption(),
        )  # fmt: skip

    def _copy(self) -> Awaitable[CopyObjectOutputTypeDef]:
        """KEY appears, whole, from the completed `KEY.part` (a server-side copy)."""
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self.part_key}
        return self._s3.copy_object(
            Bucket=self.bucket, Key=self.key, CopySource=source, ExpectedBucketOwner=self._owner,
            ExpectedSourceBucketOwner=self._owner, **self._target.encryption(),
        )  # fmt: skip

    async def abort_stale(self) -> None:
        """Abort an upload of `KEY.part` a killed sweep left; one still alive is left alone."""
        await abort_orphans(
            self._s3, self.bucket, self.part_key, lambda key: key == self.part_key, self._target
        )

    @asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        """While the body runs, a heartbeat part shows other runs this upload is alive."""
        every = self._target.orphan_after / HEARTBEATS_PER_WINDOW
        try:
            async with anyio.create_task_group() as beats:
                beats.start_soon(self._beat, every)
                try:
                    yield
                finally:
                    beats.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) != 1:
                raise
            # _beat keeps its S3 errors: the one error is the body's; pass it on unwrapped.
            raise group.exceptions[0]  # noqa: B904 - the error is the body's, not a new one

    async def _heartbeat(self) -> None:
        """Upload the heartbeat part again: its LastModified is the upload's latest sign of life."""
        if self._upload_id is None:
            return  # finished or abandoned: nothing to keep alive
        beat = partial(
            self._s3.upload_part, Bucket=self.bucket, Key=self.part_key, UploadId=self._upload_id,
            PartNumber=HEARTBEAT_PART, Body=b"\n", ExpectedBucketOwner=self._owner,
        )  # fmt: skip
        await s3_call(self._uri(self.part_key), beat)

    async def _beat(self, every: float) -> None:
        warned = False
        while True:
            await anyio.sleep(every)
            try:
                await self._heartbeat()
            except OutputError as error:
                # The data parts and the final completion say what matters; one line is enough.
                if not warned and self._upload_id is not None:
                    log.warning("collector.s3.heartbeat_failed", error=str(error))
                    warned = True

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
        try:
            await s3_call(
                self._uri(self.part_key),
                lambda: self._s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.part_key, UploadId=upload_id or "",
                    MultipartUpload={"Parts": parts}, ExpectedBucketOwner=self._owner,
                ),
            )  # fmt: skip
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.abandon()  # a failed completion leaves no upload open
            raise
        self._upload_id = None
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
    bucket, prefix, pattern = template_keys(template, account_id)
    owner = target.expected_owner
    async for upload in _uploads(s3, bucket, prefix, owner):
        if pattern.fullmatch(upload.get("Key", "")):
            await _recover(s3, bucket, upload, target)
    return await newest_object(s3, bucket, prefix, pattern, owner)


async def newest_object(
    s3: S3Client, bucket: str, prefix: str, pattern: re.Pattern[str], owner: str
) -> str | None:
    """The URI of the newest object under `prefix` whose whole key matches `pattern`, if any."""
    uri = f"s3://{bucket}/{prefix}"
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


def template_keys(template: OutputTemplate, account_id: str) -> tuple[str, str, re.Pattern[str]]:
    """(bucket, key prefix, pattern of `.part` keys) the template gives this account."""
    bucket, key_template = split(template.text)
    prefix = key_template.split("{", 1)[0]
    return bucket, prefix, _pattern(OutputTemplate.parse(key_template), account_id)


async def _uploads(s3: S3Client, bucket: str, prefix: str, owner: str) -> AsyncIterator[Any]:
    """Every open multipart upload under `prefix`, page after page."""
    key: str | None = None
    upload_id = ""
    while True:
        if key is None:
            read = partial(
                s3.list_multipart_uploads, Bucket=bucket, Prefix=prefix, ExpectedBucketOwner=owner
            )
        else:
            read = partial(
                s3.list_multipart_uploads, Bucket=bucket, Prefix=prefix,
                ExpectedBucketOwner=owner, KeyMarker=key, UploadIdMarker=upload_id,
            )  # fmt: skip
        page = await s3_call(f"s3://{bucket}/{prefix}", read)
        for upload in page.get("Uploads", []):
            yield upload
        key, upload_id = page.get("NextKeyMarker"), page.get("NextUploadIdMarker", "")
        if not page.get("IsTruncated") or not key:
            return


@dataclass(frozen=True)
class _Upload:
    """An open upload's data parts, and how long it has shown no sign of life."""

    parts: list[CompletedPartTypeDef]
    silent: float  # seconds since its start or its newest part (heartbeats included)


async def _inspect(s3: S3Client, bucket: str, upload: Any, owner: str) -> _Upload:
    key, upload_id = upload.get("Key", ""), upload.get("UploadId", "")
    listed = await s3_call(
        f"s3://{bucket}/{key}",
        lambda: s3.list_parts(
            Bucket=bucket, Key=key, UploadId=upload_id, ExpectedBucketOwner=owner
        ),
    )
    signs = [upload.get("Initiated")] + [
        part.get("LastModified") for part in listed.get("Parts", [])
    ]
    latest = max((sign for sign in signs if isinstance(sign, datetime)), default=None)
    # S3's own clock (the answer's Date), so a skewed local clock misjudges nothing.
    date = listed.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    now = parsedate_to_datetime(date) if date else datetime.now(UTC)
    parts: list[CompletedPartTypeDef] = [
        {"ETag": part.get("ETag", ""), "PartNumber": part.get("PartNumber", 0)}
        for part in listed.get("Parts", [])
        if part.get("PartNumber") != HEARTBEAT_PART
    ]
    silent = float("inf") if latest is None else (now - latest).total_seconds()
    return _Upload(parts, silent)


async def _orphan(s3: S3Client, bucket: str, upload: Any, target: S3Target) -> _Upload | None:
    """The upload's state if its sweep is dead (silent for `orphan_after`); None if alive."""
    found = await _inspect(s3, bucket, upload, target.expected_owner)
    if found.silent < target.orphan_after:
        log.info("collector.s3.upload_in_use", key=upload.get("Key"),
                 upload_id=upload.get("UploadId"),
                 silent_seconds=round(found.silent, 1))  # fmt: skip
        return None
    return found


async def abort_orphans(
    s3: S3Client, bucket: str, prefix: str, ours: Callable[[str], Any], target: S3Target
) -> None:
    """Abort every open upload under `prefix` that `ours` claims and whose sweep is dead.

    A killed sweep's upload is invisible and costs money until aborted; a live sweep's (another
    run of the same template, still writing) shows a heartbeat and is left alone.
    """
    async for upload in _uploads(s3, bucket, prefix, target.expected_owner):
        key = upload.get("Key", "")
        if not ours(key) or await _orphan(s3, bucket, upload, target) is None:
            continue
        abort = partial(
            s3.abort_multipart_upload, Bucket=bucket, Key=key,
            UploadId=upload.get("UploadId", ""), ExpectedBucketOwner=target.expected_owner,
        )  # fmt: skip
        await s3_call(f"s3://{bucket}/{key}", abort)
        log.info("collector.s3.orphan_aborted", key=key, upload_id=upload.get("UploadId"))


async def _recover(s3: S3Client, bucket: str, upload: Any, target: S3Target) -> None:
    """Complete an upload a killed sweep left (its parts are whole principals' lines), or abort
    it when it has no data part; a live sweep's upload is left alone."""
    found = await _orphan(s3, bucket, upload, target)
    if found is None:
        return
    key, upload_id, owner = upload.get("Key", ""), upload.get("UploadId", ""), target.expected_owner
    uri = f"s3://{bucket}/{key}"
    parts = found.parts
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


UNREACHABLE = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


@dataclass(frozen=True)
class S3Refusal:
    """What an S3 call answered instead of a result: AWS's error code (or `Unreachable`,
    `NoCredentials`) and its message."""

    code: str
    message: str


async def attempt(call: Callable[[], Awaitable[T]]) -> T | S3Refusal:
    """One S3 call whose failure is data (`collector check` reports it), not an exception."""
    try:
        return await call()
    except ClientError as error:
        details = error.response.get("Error", {})
        return S3Refusal(str(details.get("Code", "Unknown")), str(details.get("Message", "")))
    except NoCredentialsError as error:
        return S3Refusal("NoCredentials", str(error))
    except UNREACHABLE as error:
        return S3Refusal("Unreachable", str(error))
    except BotoCoreError as error:
        return S3Refusal(type(error).__name__, str(error))
