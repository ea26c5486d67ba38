"""The S3 writer in-process against the emulator's S3: a refused completion, the heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from collector.emulator import Emulator, EmulatorOptions, running_emulator
from collector.errors import OutputError
from collector.output import s3 as s3_output
from tests.support.emulator_clients import aio_client, boto3_client

ACCOUNT = "161803398874"
BUCKET = "writer-exports"


@pytest.fixture
def account() -> Iterator[Emulator]:
    """An emulator with nothing to sweep, its S3 bucket made (per test: the dummy keys are)."""
    with running_emulator(EmulatorOptions(principals=0, account_id=ACCOUNT)) as emu:
        boto3_client(emu, "s3").create_bucket(Bucket=BUCKET)
        yield emu


def uploads(emu: Emulator) -> list[Any]:
    return list(boto3_client(emu, "s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


async def test_a_failed_completion_aborts_its_upload(
    account: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CompleteMultipartUpload refused (EntityTooSmall): the error stands, no upload is open."""
    monkeypatch.setattr(s3_output, "PART_BYTES", 1024)  # parts S3 refuses to complete
    uri = f"s3://{BUCKET}/refused/{ACCOUNT}.jsonl"
    async with aio_client(account, "s3") as client:
        writer = s3_output.S3Writer(client, uri, s3_output.S3Target(ACCOUNT))
        await writer.open()
        await writer.write(b'{"line": 1}\n' * 200)  # one part of 2 KiB, then a last one
        with pytest.raises(OutputError, match="EntityTooSmall"):
            await writer.finish(b'{"line": 2}\n', publish=True)
    assert uploads(account) == []


async def test_kept_alive_passes_the_sweeps_own_error_on_unwrapped(account: Emulator) -> None:
    """The heartbeat's task group never turns the sweep's error into an ExceptionGroup."""
    async with aio_client(account, "s3") as client:
        writer = s3_output.S3Writer(
            client, f"s3://{BUCKET}/beat/{ACCOUNT}.jsonl", s3_output.S3Target(ACCOUNT, None, 1.0)
        )
        with pytest.raises(OutputError, match="disk on fire"):
            async with writer.kept_alive():
                await anyio.sleep(0.2)  # a few beats (nothing to keep alive: no upload yet)
                raise OutputError("disk on fire")
