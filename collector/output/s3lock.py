"""A lease on an S3 key: one holder at a time by conditional writes, renewed while it is held."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypedDict

import structlog

from collector.errors import OutputError, OutputLockedError, S3Error
from collector.output.s3 import S3Target, s3_call, split

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

log = structlog.get_logger()

# A holder renews every RENEW_SECONDS; one that has not for LEASE_SECONDS (killed, its node
# gone) is taken over. Ages are measured on S3's clock (its Date header against the object's
# LastModified), so the hosts' clocks do not matter.
LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0
# What S3 answers when a conditional write loses: the condition failed, or a concurrent
# conditional write to the same key is in progress.
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class _Condition(TypedDict, total=False):
    IfMatch: str  # write only over this ETag
    IfNoneMatch: str  # "*": write only if there is no object


class LeaseLostError(OutputLockedError):
    """Our lease was taken over (we stopped renewing for longer than the lease)."""


class S3Lease:
    """`KEY` as a lock object: created only if absent (IfNoneMatch), renewed and released only
    while it is still ours (IfMatch on our ETag). Its body says who holds it."""

    def __init__(
        self,
        s3: S3Client,
        uri: str,
        target: S3Target,
        *,
        run_id: str,
        advice: str,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._s3 = s3
        self.uri = uri
        self._bucket, self._key = split(uri)
        self._target = target
        self._advice = advice
        self.lease_seconds = lease_seconds
        self._body = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id}
        ).encode()
        self._etag: str | None = None

    async def _put(self, condition: _Condition) -> str:
        owner = self._target.expected_owner
        answer = await s3_call(
            self.uri,
            lambda: self._s3.put_object(
                Bucket=self._bucket, Key=self._key, Body=self._body, ExpectedBucketOwner=owner,
                ContentType="application/json", **self._target.encryption(), **condition,
            ),
        )  # fmt: skip
        return answer["ETag"]

    async def acquire(self) -> None:
        """Take the lease, or OutputLockedError naming its live holder."""
        try:
            self._etag = await self._put({"IfNoneMatch": "*"})
            return
        except S3Error as error:
            if error.code not in _LOST_RACE:
                raise
        holder, etag, age = await self._holder()
        if etag is not None and age < self.lease_seconds:
            raise OutputLockedError(
                f"another org sweep ({holder}) holds {self.uri}, renewed {age:.0f} s ago; "
                f"{self._advice} (a lock not renewed for {self.lease_seconds:.0f} s is taken "
                "over)"
            )
        # Stale (its holder stopped renewing) or released meanwhile: take it, unless another
        # sweep does so first.
        try:
            self._etag = await self._put({"IfMatch": etag} if etag else {"IfNoneMatch": "*"})
        except S3Error as error:
            if error.code not in (*_LOST_RACE, "NoSuchKey"):
                raise
            raise OutputLockedError(
                f"another org sweep took over {self.uri} as this one started; {self._advice}"
            ) from None
        if etag is not None:
            log.warning("collector.lock.taken_over", lock=self.uri, holder=holder,
                        seconds_since_renewed=age)  # fmt: skip

    async def _holder(self) -> tuple[str, str | None, float]:
        """Who holds the lease, its ETag (None: gone) and its age on S3's clock (0 when S3 does
        not say what time it is: then the holder counts as alive)."""
        owner = self._target.expected_owner
        try:
            answer = await s3_call(
                self.uri,
                lambda: self._s3.get_object(
                    Bucket=self._bucket, Key=self._key, ExpectedBucketOwner=owner
                ),
            )
        except S3Error as error:
            if error.code == "NoSuchKey":
                return "none", None, 0.0
            raise
        async with answer["Body"] as stream:
            raw = await stream.read()
        try:
            holder = json.loads(raw)
            named = f"host {holder['host']}, pid {holder['pid']}, run {holder['run_id']}"
        except (ValueError, KeyError, TypeError):
            named = "unknown holder"
        now = _server_time(answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
        modified = answer.get("LastModified")
        age = 0.0 if now is None or modified is None else (now - modified).total_seconds()
        return named, answer.get("ETag"), max(0.0, age)

    async def renew(self) -> None:
        """Write the lease again while it is ours; LeaseLostError if it no longer is."""
        if self._etag is None:
            raise LeaseLostError(f"{self.uri} is not held")
        try:
            self._etag = await self._put({"IfMatch": self._etag})
        except S3Error as error:
            if error.code not in (*_LOST_RACE, "NoSuchKey"):
                raise
            self._etag = None
            raise LeaseLostError(
                f"{self.uri} was taken over by another org sweep while this one ran (it could "
                f"not renew the lock for {self.lease_seconds:.0f} s); this run publishes no "
                "manifest"
            ) from None

    async def release(self) -> None:
        """Delete the lease if it is still ours; a failure leaves it to expire by itself."""
        etag, self._etag = self._etag, None
        if etag is None:
            return
        owner = self._target.expected_owner
        try:
            await s3_call(
                self.uri,
                lambda: self._s3.delete_object(
                    Bucket=self._bucket, Key=self._key, IfMatch=etag, ExpectedBucketOwner=owner
                ),
            )
        except OutputError as error:
            log.warning("collector.lock.release_failed", lock=self.uri, error=str(error),
                        expires_in_seconds=self.lease_seconds)  # fmt: skip


def _server_time(headers: dict[str, str]) -> datetime | None:
    try:
        return parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return None
