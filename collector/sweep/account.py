"""One account end to end: who it is, where its output goes, what a `.part` holds, the sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import structlog
from aiobotocore.session import AioSession

from collector.aws.clients import AccountIam, open_clients, s3_client
from collector.aws.iam import Caller, caller_account
from collector.config.settings import Settings
from collector.models import CallStats, Counters, RunContext, iso
from collector.output.files import FileWriter, check_resumable
from collector.output.resume import ResumeState, kept_lines, part_run, scan
from collector.output.s3 import (
    S3Target,
    S3Writer,
    abort_orphans,
    download,
    find_resumable,
    template_keys,
)
from collector.output.sink import Sink, StdoutWriter, Writer
from collector.sweep.jobs import JobLatencies
from collector.sweep.pipeline import AccountSweep, SweepResult
from collector.sweep.shutdown import Shutdown
from collector.template import PART_SUFFIX, OutputTemplate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

log = structlog.get_logger()


def _other_run(part: str, found: str | None, resume_run: str | None) -> bool:
    """Whether a `.part` of run `found` must not be resumed by a sweep that resumes only
    `resume_run` (an org run: its manifest must not name files of another run)."""
    if resume_run is None or found in (None, resume_run):
        return False
    log.warning("collector.resume.other_run", part=part, part_run_id=found, run_id=resume_run)
    return True


def _locked_writer(
    template: OutputTemplate, account_id: str, run_id: str, resume: bool, resume_run: str | None
) -> FileWriter:
    """The file writer for this sweep, its output locked: fresh, or the newest resumable `.part`
    (only one of run `resume_run`, when given).

    Blocking (globs, stat, flock): run it in a thread.
    """
    resume_from = template.resumable(account_id=account_id) if resume else None
    if resume_from is not None and resume_run is not None:
        check_resumable(resume_from)
        if _other_run(str(resume_from), part_run(resume_from, account_id), resume_run):
            resume_from = None
    if resume_from is None:
        if resume:
            log.warning("collector.resume.nothing_to_resume", template=template.text)
        path = template.render(account_id=account_id, run_id=run_id, now=datetime.now(UTC))
        writer = FileWriter(path, run_id=run_id)
    else:
        check_resumable(resume_from)
        path = str(resume_from).removesuffix(PART_SUFFIX)
        writer = FileWriter(path, run_id=run_id, resume_from=resume_from)
    writer.lock()
    return writer


async def _open_file(writer: FileWriter, account_id: str) -> ResumeState:
    """Open the locked writer, carrying over what its resumed `.part` holds, if any."""
    resume_from = writer.resume_from
    if resume_from is None:
        await anyio.to_thread.run_sync(writer.open)
        return ResumeState()
    state = await anyio.to_thread.run_sync(partial(scan, resume_from, account_id=account_id))
    lines = (line for _, line in kept_lines(resume_from, state, account_id=account_id))
    await anyio.to_thread.run_sync(writer.open, lines)
    log.info("collector.resume.kept", part=str(resume_from), principals=len(state.completed),
             dropped_lines=state.dropped)  # fmt: skip
    return state


@asynccontextmanager
async def _aborted_on_failure(writer: S3Writer) -> AsyncIterator[None]:
    """Whatever stops the sweep before its own cleanup runs, the upload is not left open."""
    try:
        yield
    except BaseException:
        with anyio.CancelScope(shield=True):
            await writer.abandon()
        raise


@asynccontextmanager
async def _s3(
    settings: Settings, given: S3Client | None, session: AioSession | None
) -> AsyncIterator[S3Client]:
    """The S3 client given (left open: an organisation run's one for every account), or one
    opened here for the session."""
    if given is not None:
        yield given
        return
    async with s3_client(settings, session) as s3:
        yield s3


@asynccontextmanager
async def _s3_output(
    settings: Settings,
    session: AioSession | None,
    template: OutputTemplate,
    account_id: str,
    run_id: str,
    owner: str,
    resume_run: str | None,
    given: S3Client | None,
) -> AsyncIterator[tuple[S3Writer, ResumeState]]:
    """The S3 writer, its upload started: fresh, or carrying over the newest `KEY.part` (only
    one of run `resume_run`, when given).

    Uploads of this template and account that killed sweeps left are completed (resume) or
    aborted (a fresh run); a live sweep's, which keeps showing a heartbeat, is left alone.
    """
    target = S3Target(owner, settings.sse_kms_key_id, settings.s3_orphan_after)
    async with _s3(settings, given, session) as s3:
        part = None
        if settings.resume:
            part = await find_resumable(s3, template, account_id, target)
        else:
            bucket, prefix, pattern = template_keys(template, account_id)
            await abort_orphans(s3, bucket, prefix, pattern.fullmatch, target)
        local, state = None, ResumeState()
        if part is not None:
            local = await download(s3, part, target)
            try:
                state = await anyio.to_thread.run_sync(partial(scan, local, account_id=account_id))
            except BaseException:
                local.unlink(missing_ok=True)
                raise
            if _other_run(part, state.run_id, resume_run):
                local.unlink(missing_ok=True)
                part, local, state = None, None, ResumeState()
        if part is None or local is None:
            uri = template.render(account_id=account_id, run_id=run_id, now=datetime.now(UTC))
            writer = S3Writer(s3, uri, target)
            await writer.open()
            async with _aborted_on_failure(writer), writer.kept_alive():
                yield writer, state
            return
        try:
            writer = S3Writer(s3, part.removesuffix(PART_SUFFIX), target)
            await writer.open(line for _, line in kept_lines(local, state, account_id=account_id))
        finally:
            local.unlink(missing_ok=True)
        log.info("collector.resume.kept", part=part, principals=len(state.completed))
        async with _aborted_on_failure(writer), writer.kept_alive():
            yield writer, state


@asynccontextmanager
async def _iam_in_account(
    settings: Settings,
    given: AccountIam | None,
    session: AioSession | None,
    credentials: Mapping[str, str] | None,
    stats: CallStats,
) -> AsyncIterator[tuple[Any, str, str]]:
    """The IAM client, its account id and which path its report calls take: the client given
    (left open: its owner closes it), or clients opened here for the session or keys, and the
    account asked of STS."""
    if given is not None:
        yield given.iam, given.account_id, given.report_calls
        return
    async with open_clients(settings, session=session, credentials=credentials) as clients:
        account_id = await caller_account(clients.sts, Caller(settings.retry, stats))
        yield clients.iam, account_id, clients.report_calls


@dataclass(frozen=True, kw_only=True)
class _Account:
    """What one account's sweep runs with, whichever output it writes to."""

    settings: Settings
    iam: Any
    account_id: str
    run_id: str
    shutdown: Shutdown
    counters: Counters | None
    stats: CallStats
    latencies: JobLatencies | None
    early_polls: bool = True  # see AccountSweep
    report_calls: str = "aiobotocore"  # which path the three report calls take (start-up line)


async def sweep_account(
    settings: Settings,
    *,
    run_id: str,
    shutdown: Shutdown,
    counters: Counters | None = None,
    stats: CallStats | None = None,
    session: AioSession | None = None,
    output_session: AioSession | None = None,
    output_owner: str | None = None,
    credentials: Mapping[str, str] | None = None,
    latencies: JobLatencies | None = None,
    resume_run: str | None = None,
    account: AccountIam | None = None,
    early_polls: bool = True,
    output_s3: S3Client | None = None,
) -> SweepResult:
    """Sweep the account the credentials belong to into the configured output.

    An organisation sweep hands each account its copy of one shared IAM client (`account`),
    writes S3 output through its one S3 client (`output_s3`) or with `output_session`, the
    caller's own, not the role's, to a bucket
    expected to belong to `output_owner` (the caller's account), learns job latency across
    its accounts (`latencies`), polls no job before it is due (`early_polls`: see
    AccountSweep), and resumes only a `.part` of its own run (`resume_run`); a single sweep
    resumes the newest `.part`, whatever its run.
    """
    stats = stats or CallStats()
    template = OutputTemplate.parse(settings.output)
    early: FileWriter | StdoutWriter | None = None
    if template.is_stdout:
        early = StdoutWriter()
    elif not template.is_s3 and not template.needs_account:
        # The name is known without AWS: a second sweep on it stops before any call.
        early = await anyio.to_thread.run_sync(
            _locked_writer, template, "", run_id, settings.resume, resume_run
        )
    try:
        async with _iam_in_account(settings, account, session, credentials, stats) as (
            iam,
            account_id,
            report_calls,
        ):
            swept = _Account(
                settings=settings, iam=iam, account_id=account_id, run_id=run_id,
                shutdown=shutdown, counters=counters, stats=stats, latencies=latencies,
                early_polls=early_polls, report_calls=report_calls,
            )  # fmt: skip
            if template.is_s3:
                owner = settings.s3_bucket_owner or output_owner or account_id
                async with _s3_output(
                    settings, output_session or session, template, account_id, run_id, owner,
                    resume_run, output_s3,
                ) as (writer, state):  # fmt: skip
                    return await _run(swept, writer, state)
            if early is None:
                early = await anyio.to_thread.run_sync(
                    _locked_writer, template, account_id, run_id, settings.resume, resume_run
                )
            state = ResumeState()
            if isinstance(early, FileWriter):
                state = await _open_file(early, account_id)
            return await _run(swept, early, state)
    except BaseException:
        if isinstance(early, FileWriter):
            early.close()
        raise


async def _run(account: _Account, writer: Writer, state: ResumeState) -> SweepResult:
    """Run the account's sweep into the opened output."""
    run = RunContext(run_id=state.run_id or account.run_id, account_id=account.account_id)
    sweep = AccountSweep(
        account.settings,
        account.iam,
        run,
        Sink(writer, state.kept),
        started=state.started or iso(datetime.now(UTC)) or "",
        skip=state.completed,
        counters=account.counters,
        stats=account.stats,
        latencies=account.latencies,
        early_polls=account.early_polls,
    )
    log.info(
        "collector.sweep.started",
        account_id=account.account_id,
        run_id=run.run_id,
        output=writer.destination,
        resumed_principals=len(state.completed),
        report_calls=account.report_calls,
    )
    try:
        with account.shutdown.watching(sweep):
            return await sweep.run()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await writer.abandon()
        wrote = state.completed or any(sweep.sink.counts.values())
        if isinstance(writer, FileWriter) and not wrote:
            writer.discard()  # nothing in it worth resuming: leave no stray file behind
        raise
