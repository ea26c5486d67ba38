"""An org sweep's organizations access report: its clients, its file (local or S3), its entry."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog
from aiobotocore.session import AioSession
from anyio.streams.memory import MemoryObjectSendStream

from collector.aws.clients import client_config, s3_client
from collector.config.settings import Settings
from collector.errors import CollectorError, OutputError
from collector.models import CallStats, Record, iso
from collector.org.access import OrgAccessReport, org_targets
from collector.org.manifest import AccountError, OrgAccessEntry, OrgAccessStatus
from collector.output.files import FileWriter
from collector.output.runline import run_line, s3_run_line
from collector.output.s3 import S3Target, S3Writer
from collector.output.sink import Sink, Writer
from collector.sweep.shutdown import Shutdown

if TYPE_CHECKING:
    from types_aiobotocore_organizations import OrganizationsClient
    from types_aiobotocore_s3 import S3Client
else:
    OrganizationsClient = S3Client = Any

log = structlog.get_logger()


def output_location(manifest: str, run_id: str) -> str:
    """`org-access-{run_id}.jsonl` beside the manifest (a path, or an s3:// URI)."""
    directory, slash, _ = manifest.rpartition("/")
    return f"{directory}{slash}org-access-{run_id}.jsonl"


async def finished_report(
    location: str, run_id: str, s3: S3Client | None, target: S3Target | None
) -> OrgAccessEntry | None:
    """The entry of this run's published report, if it finished (for --resume): a local file,
    or an S3 object read with `s3` (and `target`'s bucket owner)."""
    if location.startswith("s3://"):
        if s3 is None or target is None:
            raise ValueError("an S3 report location needs an S3 client and target")
        record = await s3_run_line(s3, location, target, run_id)
    else:
        record = await anyio.to_thread.run_sync(run_line, Path(location), run_id)
    if record is None or record.get("status") not in ("complete", "partial"):
        return None
    log.info("collector.org_access.already_done", output=location)
    records = {str(k): int(v) for k, v in (record.get("records") or {}).items()}
    return OrgAccessEntry(record["status"], output=location, records=records)


async def _fill(
    report: OrgAccessReport,
    organizations: OrganizationsClient,
    organization_id: str,
    account_ids: Collection[str],
    send: MemoryObjectSendStream[Record],
) -> tuple[OrgAccessStatus, AccountError | None]:
    async with send:
        try:
            targets = await org_targets(organizations, organization_id, account_ids)
            log.info("collector.org_access.started", targets=len(targets))
            return await report.run(targets, send.clone()), report.denied
        except CollectorError as error:
            # Listing the OU tree failed, or the endpoint is down: one error line says so.
            failure = AccountError(getattr(error, "code", type(error).__name__), str(error))
            await send.send(report.error_record(None, failure.code, failure.message))
            return "failed", failure


async def _open_writer(
    stack: AsyncExitStack, settings: Settings, base: AioSession, location: str, run_id: str,
    owner: str,
) -> Writer:  # fmt: skip
    """A FileWriter (locked `.part`, 0600) or an S3Writer (multipart `KEY.part`), opened."""
    if location.startswith("s3://"):
        s3 = await stack.enter_async_context(s3_client(settings, base))
        target = S3Target(settings.s3_bucket_owner or owner, settings.sse_kms_key_id)
        s3_writer = S3Writer(s3, location, target)
        await s3_writer.open()
        return s3_writer
    writer = FileWriter(location, run_id=run_id)
    await anyio.to_thread.run_sync(writer.open)
    return writer


async def write_org_access(
    settings: Settings,
    base: AioSession,
    *,
    organization_id: str,
    account_id: str,
    account_ids: Collection[str],
    location: str,
    run_id: str,
    shutdown: Shutdown,
    stats: CallStats | None = None,
) -> OrgAccessEntry:
    """The whole report into `location` (`.part`, renamed unless interrupted), as the manifest's
    entry. Failures end up in the entry (and as an error line when possible), never raised."""
    started = iso(datetime.now(UTC)) or ""
    async with AsyncExitStack() as stack:
        try:
            writer = await _open_writer(stack, settings, base, location, run_id, account_id)
        except CollectorError as error:
            log.warning("collector.org_access.failed", error=str(error))
            return OrgAccessEntry("failed", error=AccountError(type(error).__name__, str(error)))
        sink = Sink(writer)
        options: dict[str, Any] = {
            "region_name": settings.region,
            "endpoint_url": settings.endpoint_url,
            "config": client_config(),
        }
        status: OrgAccessStatus = "failed"
        failure: AccountError | None = None
        iam = await stack.enter_async_context(base.create_client("iam", **options))
        organizations = await stack.enter_async_context(
            base.create_client("organizations", **options)
        )
        report = OrgAccessReport(settings, iam, run_id=run_id, account_id=account_id,
                                 shutdown=shutdown, stats=stats)  # fmt: skip
        send, receive = anyio.create_memory_object_stream[Record](256)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(sink.run, receive)
                status, failure = await _fill(
                    report, organizations, organization_id, account_ids, send
                )
        except* (OutputError, anyio.BrokenResourceError):
            pass  # the sink failed: sink.failed says so, below
        if sink.failed:
            await writer.abandon()
            lost = AccountError("OutputError", f"cannot write {writer.destination}")
            return OrgAccessEntry("failed", error=lost)
        run = report.run_record(started, status, sink.counts)
        published = await sink.finish(run, publish=status != "interrupted")
    log.info("collector.org_access.finished", status=status, records=run["records"],
             limit_waits=report.limit_waits, output=published)  # fmt: skip
    return OrgAccessEntry(
        status=status,
        output=published or f"{location}.part",
        records=run["records"],
        error=failure,
    )
