"""Report jobs: their lifecycle (IN_PROGRESS, COMPLETED, FAILED) and the thread-safe store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collector.emulator.faults import Fate
from collector.emulator.reports import Report


@dataclass(frozen=True, slots=True)
class ReportJob:
    """One generated report job; its report was computed when it was generated."""

    job_id: str
    arn: str
    granularity: str
    created: datetime
    ready_at: float  # monotonic reading from which the job has ended
    latency: float
    fate: Fate
    error: tuple[str, str] | None  # (code, message) of a FAILED job
    report: Report | None
    lost: bool  # answers NoSuchEntity once read `lost_job_after_reads` times, as after a refresh

    def status(self, now: float) -> str:
        """IN_PROGRESS until its latency has passed (forever when stuck), then its outcome."""
        if self.fate is Fate.STUCK or now < self.ready_at:
            return "IN_PROGRESS"
        return "FAILED" if self.fate is Fate.FAILED else "COMPLETED"

    @property
    def completed(self) -> datetime:
        """When the job ended (only meaningful once it has)."""
        return self.created + timedelta(seconds=self.latency)


class JobStore:
    """Jobs by id, plus how many jobs each principal has had (the lost-job knob needs it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._jobs: dict[str, ReportJob] = {}
        self._generated: dict[str, int] = {}
        self._reads: dict[str, int] = {}  # JobId of a lost job -> reads it was asked to answer
        self._lock = threading.Lock()

    def first_for(self, arn: str) -> bool:
        """Count one generation for the principal; True if it is its first."""
        with self._lock:
            count = self._generated.get(arn, 0)
            self._generated[arn] = count + 1
            return count == 0

    def add(
        self,
        arn: str,
        granularity: str,
        latency: float,
        fate: Fate,
        error: tuple[str, str] | None,
        report: Report | None,
        lost: bool,
    ) -> ReportJob:
        """Store a new job that starts now."""
        job = ReportJob(
            job_id=str(uuid.uuid4()),
            arn=arn,
            granularity=granularity,
            created=datetime.now(UTC),
            ready_at=self.clock() + latency,
            latency=latency,
            fate=fate,
            error=error,
            report=report,
            lost=lost,
        )
        with self._lock:
            self._jobs[job.job_id] = job
        return job

    def get(self, job_id: str) -> ReportJob | None:
        """The job with this id, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def count_read(self, job_id: str) -> int:
        """Count one read of a job; how many it has had, this one included."""
        with self._lock:
            reads = self._reads.get(job_id, 0) + 1
            self._reads[job_id] = reads
            return reads

    def now(self) -> float:
        """The clock jobs are timed by."""
        return self.clock()
