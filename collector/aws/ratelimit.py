"""Adaptive token buckets, one per IAM operation: pace calls, back off on Throttling."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Paces calls to `rate` per second, evenly, after `initial` calls allowed at once.

    The account's own bucket is full when a sweep starts, so the first second's worth of calls
    (`initial`) need not wait; after that calls are spaced 1/rate apart (GCRA without burst:
    an unused slot is not banked, so the sweep never bursts into a bucket it has drained).
    The rate adapts: multiplied by `decrease` on each throttle, raised by a small step on each
    success until it is back at `ceiling` (additive increase, multiplicative decrease). A token
    is taken right before one call and never held across a sleep between polls.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        minimum: float = 0.5,
        initial: int = 0,
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
        self._decrease = decrease
        # Each success adds ceiling/recovery_calls, so a halved rate is back within a few seconds.
        self._step = ceiling / recovery_calls
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next paced call
        self._initial = initial

    def reserve(self) -> float:
        """Claim the next slot; return how long the caller must wait before using it."""
        if self._initial > 0:
            self._initial -= 1
            return 0.0
        now = self._clock()
        tat = max(self._tat, now)
        self._tat = tat + 1.0 / self.rate
        return tat - now

    def free_in(self) -> float:
        """Seconds until `try_take` can succeed; 0 when it can now."""
        return max(0.0, self._tat - self._clock())

    def try_take(self) -> bool:
        """Take a paced slot only if it is free right now: for calls worth making only when idle.

        Never a token of the initial burst: that one keeps until used, so it is never idle.
        """
        now = self._clock()
        if self._tat > now:
            return False
        self._tat = now + 1.0 / self.rate
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
