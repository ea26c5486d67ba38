"""How many accounts run at once: more while the event loop keeps time and memory allows."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog

log = structlog.get_logger()

MIB = 1 << 20
# What one more account in flight may add to the process (its sweep's streams, tasks, buckets
# and sink; the clients are shared): the bound, measured below it (bench/results.md).
ACCOUNT_BYTES = 1 * MIB
DEFAULT_BUDGET = 1024 * MIB  # without a container limit: far above what 256 accounts need
# The container's memory limit: cgroup v2, then v1 (whose "no limit" is a huge number).
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


@dataclass(frozen=True)
class InFlightPolicy:
    """The limits and the thresholds the number of accounts in flight follows."""

    upper: int  # --max-accounts-in-flight: never more
    memory_budget: int  # bytes of resident memory above which no account is added
    start: int = 8  # accounts in flight before anything is measured
    interval: float = 0.25  # seconds between two looks at the loop's lag
    # The loop's lag (how late a sleep wakes up), smoothed: above `lag_high` the process has
    # no CPU to spare and starts fewer accounts; below `lag_low` it has, and starts more.
    lag_high: float = 0.05
    lag_low: float = 0.015
    smoothing: float = 0.3  # weight of the newest lag sample


def memory_budget(configured_mb: int | None, limits: tuple[str, ...] = CGROUP_LIMITS) -> int:
    """Bytes: the configured budget; else half the container's memory limit, at most
    DEFAULT_BUDGET (the other half is for the largest accounts' peaks and the interpreter)."""
    if configured_mb is not None:
        return configured_mb * MIB
    for path in limits:
        try:
            with open(path, encoding="ascii") as limit:
                return min(DEFAULT_BUDGET, int(limit.read().strip()) // 2)
        except (OSError, ValueError):  # no such file, or "max": no limit here
            continue
    return DEFAULT_BUDGET


def resident_bytes() -> int:
    """The process's resident memory now (Linux); elsewhere its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB here


class AccountsInFlight:
    """A limit on accounts in flight that grows and shrinks with the process's headroom.

    It starts at `policy.start` (at most `upper`). Every `interval` it measures how late the
    event loop woke up. While that lag stays low, accounts are waiting and the limit is
    reached, the limit grows by a quarter (at least one) up to `upper`, unless resident memory
    plus ACCOUNT_BYTES per added account would pass the budget. When the lag is high, the
    limit goes a tenth below the accounts in flight (at least one, so the sweep always moves):
    no new account starts until that many have finished, and it keeps falling while the lag
    stays high.
    """

    def __init__(
        self,
        policy: InFlightPolicy,
        *,
        rss: Callable[[], int] = resident_bytes,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.policy = policy
        self._rss = rss
        self._clock = clock
        self._sleep = sleep
        self._limiter = anyio.CapacityLimiter(max(1, min(policy.start, policy.upper)))
        self.lag = 0.0  # smoothed, seconds
        self.queued = 0  # accounts not started yet: the demand the limit grows for

    @property
    def limit(self) -> int:
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    async def acquire(self, account: object) -> None:
        """Wait until `account` may start (a place under the limit)."""
        await self._limiter.acquire_on_behalf_of(account)

    def release(self, account: object) -> None:
        self._limiter.release_on_behalf_of(account)

    async def watch(self) -> None:
        """Measure the loop's lag every `interval` and resize, until cancelled."""
        interval = self.policy.interval
        while True:
            before = self._clock()
            await self._sleep(interval)
            self.observe(max(0.0, self._clock() - before - interval))

    def observe(self, lag: float) -> None:
        """One lag sample (seconds late): smooth it and resize the limit."""
        weight = self.policy.smoothing
        self.lag = weight * lag + (1 - weight) * self.lag
        limit, policy = self.limit, self.policy
        if self.lag > policy.lag_high:
            # Below what runs now, not below the limit: the accounts in flight keep the loop
            # busy for a while whatever the limit says, so a limit cut again on each late
            # sample would fall far under them and leave the process idle once they end.
            wanted = max(1, min(limit, self.in_flight - max(1, self.in_flight // 10)))
        elif (
            self.lag < policy.lag_low
            and self.queued > 0
            and self.in_flight >= limit
            and limit < policy.upper
        ):
            wanted = min(policy.upper, limit + max(1, limit // 4))
            room = (policy.memory_budget - self._rss()) // ACCOUNT_BYTES
            wanted = min(wanted, limit + max(0, room))
        else:
            return
        if wanted != limit:
            self._limiter.total_tokens = wanted
            log.debug(
                "collector.org.in_flight_limit", limit=wanted, lag_ms=round(self.lag * 1000, 1)
            )
