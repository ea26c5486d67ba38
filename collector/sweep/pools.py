"""Worker pools: named tasks that each own a clone of their streams, so a stream ends with them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from collector.sweep.intake import PrincipalReceiver

Stream = MemoryObjectSendStream[Any] | MemoryObjectReceiveStream[Any] | PrincipalReceiver
Worker = Callable[..., Coroutine[Any, Any, None]]


def start_pool(group: TaskGroup, name: str, size: int, worker: Worker, *streams: Stream) -> None:
    """`size` workers, each owning a clone of every stream; the originals close here, so each
    stream ends for its readers when the last worker holding it is done."""
    for index in range(size):
        group.start_soon(worker, *(stream.clone() for stream in streams), name=f"{name}-{index}")
    for stream in streams:
        stream.close()


def start_growing_pool(
    group: TaskGroup,
    name: str,
    size: int,
    worker: Worker,
    receive: MemoryObjectReceiveStream[Any],
    handoff: tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]],
    *streams: Stream,
) -> None:
    """Up to `size` workers, started one at a time as items arrive while every worker started
    so far is busy: as many as the stage ever has work for at once, not `size` up front.

    A feeder task takes the items from `receive` and hands each to a waiting worker through
    `handoff` (an unbuffered stream); the workers read `handoff` and own clones of `streams`.
    The feeder closes the originals when `receive` ends, after which no worker is started.
    """
    group.start_soon(
        _feed, group, name, size, worker, receive, handoff, streams, name=f"{name}-feed"
    )


async def _feed(
    group: TaskGroup,
    name: str,
    size: int,
    worker: Worker,
    receive: MemoryObjectReceiveStream[Any],
    handoff: tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]],
    streams: tuple[Stream, ...],
) -> None:
    give, take = handoff
    started = 0
    try:
        async with receive, give:
            async for item in receive:
                try:
                    give.send_nowait(item)  # a worker was waiting for it
                    continue
                except anyio.WouldBlock:
                    pass
                if started < size:
                    clones = (stream.clone() for stream in streams)
                    group.start_soon(worker, take.clone(), *clones, name=f"{name}-{started}")
                    started += 1
                await give.send(item)
    finally:
        take.close()
        for stream in streams:
            stream.close()
