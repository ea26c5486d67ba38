"""Worker pools: named tasks that each own a clone of their streams, so a stream ends with them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from collector.sweep.intake import PrincipalReceiver

Stream = MemoryObjectSendStream[Any] | MemoryObjectReceiveStream[Any] | PrincipalReceiver


def start_pool(
    group: TaskGroup,
    name: str,
    size: int,
    worker: Callable[..., Coroutine[Any, Any, None]],
    *streams: Stream,
) -> None:
    """`size` workers, each owning a clone of every stream; the originals close here, so each
    stream ends for its readers when the last worker holding it is done."""
    for index in range(size):
        group.start_soon(worker, *(stream.clone() for stream in streams), name=f"{name}-{index}")
    for stream in streams:
        stream.close()
