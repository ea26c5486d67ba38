"""The output bucket's checks: a probe object under the output prefix, written, read, uploaded
in parts (opened, listed, aborted) and deleted, as the sweep's writer does, with the same
ExpectedBucketOwner and encryption."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from collector.check.rows import Result, Row
from collector.output.s3 import S3Refusal, S3Target, attempt, split
from collector.template import PART_SUFFIX, OutputTemplate

BODY = b"collector check: this object is deleted right after it is written\n"


class BucketCheck:
    """The S3 calls of one sweep's output, each made once on a probe key of its own."""

    def __init__(self, s3: Any, template: OutputTemplate, target: S3Target, principal: str):
        self.s3 = s3
        self.bucket, key_template = split(template.text)
        self.prefix = key_template.split("{", 1)[0]  # what every output key starts with
        self.key = f"{self.prefix}.collector-check-{uuid.uuid4().hex}"
        self.part_key = self.key + PART_SUFFIX
        self.target = target
        self.owner = target.expected_owner
        self.principal = principal
        self.partition = principal.split(":")[1] if principal.count(":") >= 5 else "aws"
        self.where = f"s3://{self.bucket}/{self.prefix} of {self.owner}"
        self.rows: list[Row] = []

    def _encryption(self) -> dict[str, str]:
        if self.target.kms_key_id is None:
            return {"ServerSideEncryption": "AES256"}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.target.kms_key_id}

    def _fix(self, action: str, on_bucket: bool, kms: str | None) -> str:
        resource = f"arn:{self.partition}:s3:::{self.bucket}"
        if not on_bucket:
            resource += f"/{self.prefix}*"
        fix = f"add {action} on {resource} to {self.principal}"
        if kms is not None and self.target.kms_key_id is not None:
            fix += f", and {kms} on KMS key {self.target.kms_key_id}"
        return fix + f" (or the bucket is not {self.owner}'s: --s3-bucket-owner)"

    async def _call(
        self,
        action: str,
        called: str,
        send: Callable[[], Awaitable[Any]],
        *,
        on_bucket: bool = False,
        kms: str | None = None,
    ) -> Any:
        """The call's answer, or None; either way its row."""
        answer = await attempt(send)
        if not isinstance(answer, S3Refusal):
            self.rows.append(Row(action, called, self.where, "ok", f"probe key {self.key}"))
            return answer
        result: Result = "failed"
        fix = ""
        if answer.code in ("AccessDenied", "AllAccessDisabled"):
            result, fix = "denied", self._fix(action, on_bucket, kms)
        elif answer.code in ("Unreachable", "NoCredentials"):
            result = "unreachable" if answer.code == "Unreachable" else "failed"
        elif answer.code == "NoSuchBucket":
            fix = f"create bucket {self.bucket}, or fix --output"
        detail = f"{answer.code}: {' '.join(answer.message.split())}"
        self.rows.append(Row(action, called, self.where, result, detail, fix))
        return None

    def _skip(self, action: str, called: str, why: str) -> None:
        self.rows.append(Row(action, called, self.where, "skipped", why))

    async def run(self, *, resume: bool) -> list[Row]:
        s3, bucket, key, owner = self.s3, self.bucket, self.key, self.owner
        put = await self._call(
            "s3:PutObject", "PutObject",
            lambda: s3.put_object(Bucket=bucket, Key=key, Body=BODY, ExpectedBucketOwner=owner,
                                  **self._encryption()),
            kms="kms:GenerateDataKey",
        )  # fmt: skip
        if put is None:
            self._skip("s3:GetObject", "GetObject", "nothing was written to read")
        else:
            got = await self._call(
                "s3:GetObject", "GetObject",
                lambda: s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner),
                kms="kms:Decrypt",
            )  # fmt: skip
            if got is not None:
                async with got["Body"] as body:
                    await body.read()
        await self._multipart()
        if resume:  # --resume looks for the newest KEY.part under the prefix
            await self._call(
                "s3:ListBucket", "ListObjectsV2(MaxKeys=1)",
                lambda: s3.list_objects_v2(Bucket=bucket, Prefix=self.prefix, MaxKeys=1,
                                           ExpectedBucketOwner=owner),
                on_bucket=True,
            )  # fmt: skip
        # Deleting a key that is not there is allowed or denied like any other: always tried.
        deleted = await self._call(
            "s3:DeleteObject", "DeleteObject",
            lambda: s3.delete_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner),
        )  # fmt: skip
        if deleted is None and put is not None:
            self._note(f"; the probe object s3://{bucket}/{key} is still there: delete it")
        return self.rows

    def _note(self, text: str) -> None:
        """Add to the last row's fix what the check left behind."""
        last = self.rows[-1]
        self.rows[-1] = replace(last, fix=last.fix + text)

    async def _multipart(self) -> None:
        """Open an upload of the probe's `.part`, find it as the writer's stale-upload check
        does, list its parts as resume does, and abort it."""
        s3, bucket, part, owner = self.s3, self.bucket, self.part_key, self.owner
        created = await self._call(
            "s3:PutObject", "CreateMultipartUpload",
            lambda: s3.create_multipart_upload(Bucket=bucket, Key=part, ExpectedBucketOwner=owner,
                                               **self._encryption()),
            kms="kms:GenerateDataKey",
        )  # fmt: skip
        await self._call(
            "s3:ListBucketMultipartUploads", "ListMultipartUploads",
            lambda: s3.list_multipart_uploads(Bucket=bucket, Prefix=part,
                                              ExpectedBucketOwner=owner),
            on_bucket=True,
        )  # fmt: skip
        if created is None:
            self._skip("s3:ListMultipartUploadParts", "ListParts", "no upload was opened")
            self._skip("s3:AbortMultipartUpload", "AbortMultipartUpload", "no upload was opened")
            return
        upload = created["UploadId"]
        await self._call(
            "s3:ListMultipartUploadParts", "ListParts",
            lambda: s3.list_parts(Bucket=bucket, Key=part, UploadId=upload,
                                  ExpectedBucketOwner=owner),
        )  # fmt: skip
        aborted = await self._call(
            "s3:AbortMultipartUpload", "AbortMultipartUpload",
            lambda: s3.abort_multipart_upload(Bucket=bucket, Key=part, UploadId=upload,
                                              ExpectedBucketOwner=owner),
        )  # fmt: skip
        if aborted is None:
            self._note(f"; the probe's upload {upload} of s3://{bucket}/{part} is still open")
