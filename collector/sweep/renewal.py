"""A report's job generated again when it becomes unreadable mid-fetch: one new job per loss."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio
import structlog

from collector.models import CompletedJob, Principal, Record, ReportProgress

log = structlog.get_logger()

# New jobs per principal, polling's own included; a report whose jobs keep being lost after
# that is an error record. A refresh every hour costs one; a job lost at once, again and again,
# is not a refresh.
MAX_REGENERATIONS = 3

# A new job for the principal polled to its end (generating at most `spare` more if that one
# is lost while polling), or the error record that replaces it. The pipeline passes the poll
# stage's: the fetch stages never import it.
Regenerate = Callable[[Principal, int], Awaitable[CompletedJob | Record]]


async def renew(
    report: ReportProgress, lost: CompletedJob, regenerate: Regenerate, exhausted: Record
) -> CompletedJob | Record | None:
    """The job to read `report` from now that reading `lost` answered NoSuchEntity.

    A JobId is readable only by the session that generated it, so after a refresh every read
    of the old job fails: the first worker to see it generates and polls a new job; the others
    wait for that one instead of making their own. Returns the job to read from (with its
    first page when this call generated it); or the error record to write, handed to one
    caller only (`exhausted`, once the principal had MAX_REGENERATIONS new jobs, or the new
    job's own failure); or None when the report failed elsewhere and its error is written there.
    """
    while True:
        if report.failed:
            return None
        if report.job.job_id != lost.job_id:
            return report.job  # another worker has generated the new job already
        if report.renewing is None:
            break
        await report.renewing.wait()
    if report.regenerations >= MAX_REGENERATIONS:
        report.failed = True
        return exhausted | {
            "message": f"{exhausted['message']} (after {report.regenerations} new jobs)"
        }
    log.info(
        "collector.fetch.job_lost",
        principal_arn=lost.principal.arn,
        job_id=lost.job_id,
        regenerations=report.regenerations,
    )
    renewing = report.renewing = anyio.Event()
    try:
        found = await regenerate(lost.principal, MAX_REGENERATIONS - report.regenerations - 1)
        if isinstance(found, CompletedJob):
            report.regenerations += 1 + found.regenerations
            report.job = replace(found, first_page=None)  # shared: no page held
    finally:
        # Set before the waiters run again, so they find the new job (or a failed report).
        report.renewing = None
        renewing.set()
    if report.failed:
        return None  # another namespace's pages failed meanwhile: its error is written
    if isinstance(found, CompletedJob):
        return found
    report.failed = True
    return found
