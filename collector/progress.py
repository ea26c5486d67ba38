"""A live one-line progress display for a sweep running on a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import anyio

from collector.models import CallStats, Counters, OrgProgress

_CLEAR = "\r\x1b[2K"  # carriage return, then erase the whole line


@dataclass(frozen=True)
class ProgressSnapshot:
    """The counters the status line shows, read at one moment."""

    principals_found: int
    principals_done: int
    jobs_in_flight: int
    calls_per_s: float
    throttled: int
    errors: int
    accounts: tuple[int, int, int] | None = None  # done, in flight, queued (organisation sweeps)


def render(snap: ProgressSnapshot) -> str:
    """The status line for one snapshot."""
    accounts = ""
    if snap.accounts is not None:
        done, in_flight, queued = snap.accounts
        accounts = f"accounts {done} done, {in_flight} in flight, {queued} queued | "
    return accounts + (
        f"principals {snap.principals_done}/{snap.principals_found}"
        f" | jobs in flight {snap.jobs_in_flight}"
        f" | {snap.calls_per_s:.1f} calls/s"
        f" | throttled {snap.throttled}"
        f" | errors {snap.errors}"
    )


async def show_progress(
    snapshot: Callable[[], ProgressSnapshot], stream: TextIO, interval: float = 0.5
) -> None:
    """Redraw the status line every `interval` seconds until cancelled, then erase it."""
    try:
        while True:
            stream.write(_CLEAR + render(snapshot()))
            stream.flush()
            await anyio.sleep(interval)
    finally:
        # Synchronous, with no checkpoint: cancellation cannot cut the erase short, so no
        # shield is needed around it.
        stream.write(_CLEAR)
        stream.flush()


def sweep_snapshot(counters: Counters, stats: CallStats) -> Callable[[], ProgressSnapshot]:
    """Snapshots of one account's sweep; calls/s over the time since the last one."""
    window: list[tuple[float, int]] = [(time.monotonic(), 0)]

    def snapshot() -> ProgressSnapshot:
        now, total = time.monotonic(), sum(stats.calls.values())
        then, before = window[0]
        window[0] = (now, total)
        return ProgressSnapshot(
            principals_found=counters.principals_found,
            principals_done=counters.principals_done,
            jobs_in_flight=counters.jobs_in_flight,
            calls_per_s=(total - before) / max(now - then, 1e-6),
            throttled=sum(stats.throttled.values()),
            errors=counters.errors,
        )

    return snapshot


def org_snapshot(org: OrgProgress) -> Callable[[], ProgressSnapshot]:
    """Snapshots of a whole organisation sweep: the ended accounts' totals plus the accounts in
    flight, so each costs O(accounts in flight) however many accounts the run has."""
    window: list[tuple[float, int]] = [(time.monotonic(), 0)]

    def snapshot() -> ProgressSnapshot:
        now = time.monotonic()
        sweeping = list(org.sweeping.values())
        swept = org.swept
        total = org.swept_calls + sum(sum(stats.calls.values()) for _, stats in sweeping)
        then, before = window[0]
        window[0] = (now, total)
        return ProgressSnapshot(
            principals_found=swept.principals_found + sum(c.principals_found for c, _ in sweeping),
            principals_done=swept.principals_done + sum(c.principals_done for c, _ in sweeping),
            jobs_in_flight=sum(c.jobs_in_flight for c, _ in sweeping),
            calls_per_s=(total - before) / max(now - then, 1e-6),
            throttled=org.swept_throttled + sum(sum(s.throttled.values()) for _, s in sweeping),
            errors=swept.errors + sum(c.errors for c, _ in sweeping),
            accounts=(org.done, org.in_flight, org.queued),
        )

    return snapshot
