"""Growing worker pools: workers start as items wait for them, at most `size`; streams end right."""

from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from collector.sweep.pools import start_growing_pool


class Doubler:
    """A worker that doubles each item, counting the workers; with `hold`, no item is done before
    `hold` items are in hand at once."""

    def __init__(self, hold: int = 0) -> None:
        self.started = 0
        self.busy = 0
        self.most_busy = 0
        self.hold = hold
        self.gate = anyio.Event()

    async def __call__(
        self, receive: ObjectReceiveStream[int], send: ObjectSendStream[int]
    ) -> None:
        self.started += 1
        async with receive, send:
            async for item in receive:
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
                if self.busy >= self.hold:
                    self.gate.set()
                await self.gate.wait()
                self.busy -= 1
                await send.send(item * 2)


async def run(worker: Doubler, items: int, size: int, one_at_a_time: bool) -> list[int]:
    source = anyio.create_memory_object_stream[int](0)
    results = anyio.create_memory_object_stream[int](100)
    handoff = anyio.create_memory_object_stream[int](0)
    out: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            start_growing_pool(group, "double", size, worker, source[1], handoff, results[0])
            async with source[0]:
                for item in range(items):
                    await source[0].send(item)
                    if one_at_a_time:
                        out.append(await results[1].receive())  # done before the next comes
            async with results[1]:
                out += [item async for item in results[1]]  # ends once every worker is done
    return sorted(out)


async def test_one_worker_serves_items_that_come_one_at_a_time() -> None:
    """Items that arrive after the previous one is done need one worker, not `size`."""
    worker = Doubler()
    assert await run(worker, items=6, size=10, one_at_a_time=True) == [0, 2, 4, 6, 8, 10]
    assert worker.started == 1


async def test_workers_grow_with_the_items_waiting_up_to_the_size() -> None:
    """Items that all wait at once start a worker each, never more than `size`; the rest wait
    for a free worker; every item is done and the output ends after the last worker."""
    worker = Doubler(hold=10)
    assert await run(worker, items=15, size=10, one_at_a_time=False) == [2 * i for i in range(15)]
    assert worker.started == 10
    assert worker.most_busy == 10


async def test_the_output_ends_when_no_item_came() -> None:
    """An input that ends before any item starts no worker and still ends the output."""
    worker = Doubler()
    assert await run(worker, items=0, size=10, one_at_a_time=False) == []
    assert worker.started == 0
