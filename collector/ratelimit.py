"""Adaptive token buckets, one per IAM operation: pace calls, back off on Throttling."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Paces calls to `rate` per second with bursts of up to `burst` calls (GCRA).

    The rate adapts: multiplied by `decrease` on each throttle, raised by a small step on each
    success until it is back at `ceiling` (additive increase, multiplicative decrease). A token
    is taken right before one call and never held across a sleep between polls.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        minimum: float = 0.5,
        burst: float = 1.0,
        decrease: float = 0.75,
        recovery_calls: float = 50.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if ceiling <= 0 or minimum <= 0:
            raise ValueError("rates must be positive")
        self.ceiling = ceiling
        self.minimum = min(minimum, ceiling)
        self.rate = ceiling
        self._burst = max(burst, 1.0)
        self._decrease = decrease
        # Each success adds ceiling/recovery_calls, so a halved rate is back within a few seconds.
        self._step = ceiling / recovery_calls
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next call

    def reserve(self) -> float:
        """Claim the next slot; return how long the caller must wait before using it."""
        now = self._clock()
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        start = max(now, tat - (self._burst - 1.0) * interval)
        self._tat = tat + interval
        return start - now

    def try_take(self) -> bool:
        """Take a token only if one is free right now: for calls worth making only when idle."""
        now = self._clock()
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        if tat - (self._burst - 1.0) * interval > now:
            return False
        self._tat = tat + interval
        return True

    async def acquire(self) -> None:
        """Wait until the next call may go out."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    def on_success(self) -> None:
        self.rate = min(self.ceiling, self.rate + self._step)

    def on_throttle(self) -> None:
        self.rate = max(self.minimum, self.rate * self._decrease)
