"""A live one-line progress display for a sweep running on a terminal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import anyio

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
    accounts: tuple[int, int, int] | None = None  # done, in flight, total (organisation sweeps)


def render(snap: ProgressSnapshot) -> str:
    """The status line for one snapshot."""
    accounts = ""
    if snap.accounts is not None:
        done, in_flight, total = snap.accounts
        accounts = f"accounts {done}/{total} ({in_flight} in flight) | "
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
