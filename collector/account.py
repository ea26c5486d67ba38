"""One account end to end: who it is, where its output goes, what a `.part` holds, the sweep."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.to_thread
import structlog
from aiobotocore.session import AioSession

from collector.aws import Caller, CallStats, caller_account, open_clients
from collector.filewriter import FileWriter, check_resumable
from collector.models import Counters, RunContext, iso
from collector.output import PART_SUFFIX, OutputTemplate
from collector.resume import ResumeState, kept_lines, scan
from collector.settings import Settings
from collector.sink import Sink, StdoutWriter
from collector.sweep import AccountSweep, Shutdown, SweepResult

log = structlog.get_logger()


def _locked_writer(
    template: OutputTemplate, account_id: str, run_id: str, resume: bool
) -> FileWriter:
    """The file writer for this sweep, its output locked: fresh, or the newest resumable `.part`.

    Blocking (globs, stat, flock): run it in a thread.
    """
    resume_from = template.resumable(account_id=account_id) if resume else None
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
    log.info(
        "collector.resume.kept",
        part=str(resume_from),
        principals=len(state.completed),
        dropped_lines=state.dropped,
    )
    return state


async def sweep_account(
    settings: Settings,
    *,
    run_id: str,
    shutdown: Shutdown,
    counters: Counters | None = None,
    stats: CallStats | None = None,
    session: AioSession | None = None,
    credentials: Mapping[str, str] | None = None,
) -> SweepResult:
    """Sweep the account the credentials belong to into the configured output."""
    stats = stats or CallStats()
    template = OutputTemplate.parse(settings.output)
    writer: FileWriter | StdoutWriter | None = None
    if template.is_stdout:
        writer = StdoutWriter()
    elif not template.needs_account:
        # The name is known without AWS: a second sweep on it stops before any call.
        writer = await anyio.to_thread.run_sync(
            _locked_writer, template, "", run_id, settings.resume
        )
    try:
        return await _sweep(
            settings, template, writer, run_id, shutdown, counters, stats, session, credentials
        )
    except BaseException:
        if isinstance(writer, FileWriter):
            writer.abandon()
        raise


async def _sweep(
    settings: Settings,
    template: OutputTemplate,
    writer: FileWriter | StdoutWriter | None,
    run_id: str,
    shutdown: Shutdown,
    counters: Counters | None,
    stats: CallStats,
    session: AioSession | None,
    credentials: Mapping[str, str] | None,
) -> SweepResult:
    async with open_clients(settings, session=session, credentials=credentials) as clients:
        account_id = await caller_account(clients.sts, Caller(settings.retry, stats))
        if writer is None:
            writer = await anyio.to_thread.run_sync(
                _locked_writer, template, account_id, run_id, settings.resume
            )
        try:
            return await _run(
                settings, clients.iam, writer, account_id, run_id, shutdown, counters, stats
            )
        except BaseException:
            if isinstance(writer, FileWriter):
                writer.abandon()
            raise


async def _run(
    settings: Settings,
    iam: Any,
    writer: FileWriter | StdoutWriter,
    account_id: str,
    run_id: str,
    shutdown: Shutdown,
    counters: Counters | None,
    stats: CallStats,
) -> SweepResult:
    """Open the output, then run the account's sweep into it."""
    state = ResumeState()
    if isinstance(writer, FileWriter):
        state = await _open_file(writer, account_id)
    run = RunContext(run_id=state.run_id or run_id, account_id=account_id)
    sweep = AccountSweep(
        settings,
        iam,
        run,
        Sink(writer, state.kept),
        started=state.started or iso(datetime.now(UTC)) or "",
        skip=state.completed,
        counters=counters,
        stats=stats,
    )
    log.info(
        "collector.sweep.started",
        account_id=account_id,
        run_id=run.run_id,
        output=writer.destination,
        resumed_principals=len(state.completed),
    )
    try:
        with shutdown.watching(sweep):
            return await sweep.run()
    except BaseException:
        wrote = state.completed or any(sweep.sink.counts.values())
        if isinstance(writer, FileWriter) and not wrote:
            writer.discard()  # nothing in it worth resuming: leave no stray file behind
        raise
