"""Idle tokens: a call slot nobody reserved goes to the waiter whose call is due soonest."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import anyio

from collector.aws.ratelimit import TokenBucket


@dataclass(order=True)
class _Waiter:
    due: float
    order: int
    woken: anyio.Event = field(default_factory=anyio.Event, compare=False)
    gone: bool = field(default=False, compare=False)


class IdleTokens:
    """Hands out the slots of a bucket that no paced caller reserved, earliest-due first.

    A job's poll is due at a high quantile of the job latency, so most jobs are polled once;
    but a Get slot that no due poll reserved is lost for good (the bucket banks nothing).
    Jobs past their early time wait here, and such a slot pulls the soonest-due poll forward:
    the job that would have been polled next anyway, and the likeliest to be done. The waiter
    at the head watches the bucket; the others sleep until they are the head or due.
    """

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    def _head(self) -> _Waiter | None:
        while self._waiting and self._waiting[0].gone:
            heapq.heappop(self._waiting)
        return self._waiting[0] if self._waiting else None

    async def claim(self, due: float) -> bool:
        """Wait until `due` (anyio's clock) for an idle slot; True when one was taken for us."""
        waiter = _Waiter(due, next(self._order))
        heapq.heappush(self._waiting, waiter)
        try:
            while (now := anyio.current_time()) < due:
                if self._head() is not waiter:
                    with anyio.move_on_after(due - now):
                        await waiter.woken.wait()
                    waiter.woken = anyio.Event()
                    continue
                free_in = self._bucket.free_in()
                if free_in == 0 and self._bucket.try_take():
                    return True
                # Until the slot after every reservation: if nobody reserved it by then, ours.
                await anyio.sleep(min(free_in, due - now))
            return False
        finally:
            waiter.gone = True
            head = self._head()
            if head is not None:
                head.woken.set()
