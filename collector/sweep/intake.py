"""Discovered principals on their way to the generate workers: reports with entity work first."""

from __future__ import annotations

from collections import deque
from types import TracebackType

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.models import Principal, PrincipalType


class PrincipalQueue:
    """A bounded queue in two lanes: receivers take from the first lane while it holds anyone.

    Generating the reports that have entity pages first (a policy allowing `*` has hundreds)
    lets their WithEntities calls run alongside the rest of the sweep instead of after it. A
    single FIFO leaves that to whichever List* call answers first: in the wide benchmark, 250
    roles listed first held every entity call back by 15 s, and the sweep ended 15 s later.
    Each lane holds at most `capacity`, so a discovery task waits as it did on a memory stream,
    and one lane's backlog never holds back the other's. The two ends behave as a memory
    stream's do: a receiver ends once every sender is closed and both lanes are empty; a
    sender fails once every receiver is closed.
    """

    def __init__(self, capacity: int, first: frozenset[PrincipalType]) -> None:
        self._capacity = capacity
        self._first = first
        self._lanes: tuple[deque[Principal], deque[Principal]] = (deque(), deque())
        self._senders = 0
        self._receivers = 0
        self._changed = anyio.Event()

    def _notify(self) -> None:
        """Wake every waiter to recheck: a handful of tasks, so no finer wake-up is needed."""
        self._changed.set()
        self._changed = anyio.Event()

    def sender(self) -> PrincipalSender:
        """A send side for one discovery task."""
        self._senders += 1
        return PrincipalSender(self)

    def receiver(self) -> PrincipalReceiver:
        """A receive side; `clone()` it for each generate worker."""
        self._receivers += 1
        return PrincipalReceiver(self)

    def sender_closed(self) -> None:
        self._senders -= 1
        self._notify()

    def receiver_closed(self) -> None:
        self._receivers -= 1
        self._notify()

    async def put(self, principal: Principal) -> None:
        lane = self._lanes[0 if principal.type in self._first else 1]
        while self._receivers and len(lane) >= self._capacity:
            await self._changed.wait()
        if not self._receivers:
            raise anyio.BrokenResourceError
        lane.append(principal)
        self._notify()

    async def take(self) -> Principal:
        while True:
            for lane in self._lanes:
                if lane:
                    principal = lane.popleft()
                    self._notify()
                    return principal
            if not self._senders:
                raise anyio.EndOfStream
            await self._changed.wait()


class PrincipalSender(ObjectSendStream[Principal]):
    """One discovery task's end of a `PrincipalQueue`; closing it twice is harmless."""

    def __init__(self, queue: PrincipalQueue) -> None:
        self._queue: PrincipalQueue | None = queue

    async def send(self, item: Principal) -> None:
        if self._queue is None:
            raise anyio.ClosedResourceError
        await self._queue.put(item)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.sender_closed()
            self._queue = None

    async def aclose(self) -> None:
        self.close()


class PrincipalReceiver(ObjectReceiveStream[Principal]):
    """One generate worker's end of a `PrincipalQueue`; closing it twice is harmless."""

    def __init__(self, queue: PrincipalQueue) -> None:
        self._queue: PrincipalQueue | None = queue

    async def receive(self) -> Principal:
        if self._queue is None:
            raise anyio.ClosedResourceError
        return await self._queue.take()

    def clone(self) -> PrincipalReceiver:
        if self._queue is None:
            raise anyio.ClosedResourceError
        return self._queue.receiver()

    def close(self) -> None:
        if self._queue is not None:
            self._queue.receiver_closed()
            self._queue = None

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> PrincipalReceiver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
