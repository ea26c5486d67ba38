"""The JSONL sink: one writer task serializes records; a file or stdout writer puts them out."""

from __future__ import annotations

import errno
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio
import anyio.to_thread
import orjson
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream

from collector.errors import OutputError
from collector.models import Record

_BATCH = 1024  # records taken off the stream per write; bounds one batch's memory
# A small batch waits this long for more: records come a page at a time, and a write per
# page would be a thread hop per page (thousands per sweep) for a few lines each.
COALESCE_SECONDS = 0.05


class Writer(Protocol):
    """Where serialized lines go: a file, stdout or S3. Each publishes atomically."""

    @property
    def destination(self) -> str: ...

    async def write(self, data: bytes) -> None: ...

    async def finish(self, last: bytes, *, publish: bool) -> str | None:
        """Write the last line and close; publish makes the output visible under its name."""
        ...

    async def abandon(self) -> None:
        """Close after a failure; whatever is resumable stays, nothing half-done lingers."""
        ...


def serialize(records: Iterable[Record]) -> bytes:
    """Compact JSON lines, UTF-8, each `\\n`-terminated.

    The same bytes as `json.dumps(record, separators=(",", ":"), ensure_ascii=False)` plus a
    newline (tests/test_sink.py holds the two together), at a fifth of its CPU: every row of a
    sweep comes through here. Appended one by one: orjson's result of each record over-allocates,
    and a batch of them kept alive for a join costs as much as `json` did.
    """
    lines = bytearray()
    for record in records:
        lines += orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    return bytes(lines)


def _hint(exc: OSError, *, started: bool) -> str:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "free space and rerun with --resume" if started else "free space and rerun"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable --output or fix the directory's permissions"
    if exc.errno == errno.ENOTDIR:
        return "a parent of the output path is a file; choose another --output"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return "raise the open-files limit (ulimit -n) or lower --max-accounts-in-flight"
    return "fix the output path and rerun with --resume" if started else "fix the output path"


def output_error(exc: OSError, *, action: str, path: Path | str, started: bool) -> OutputError:
    """One line naming what failed where, and what to do."""
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot {action} {path}: {reason}; {_hint(exc, started=started)}")


class StdoutWriter:
    """Lines to standard output, flushed per batch so a reader on a pipe sees them as they come."""

    destination = "-"

    def __init__(self) -> None:
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise OutputError("cannot write to stdout: it is closed; give --output a file path")
        sys.stdout.flush()  # text someone printed earlier goes first
        self._out: BinaryIO = sys.stdout.buffer

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
            self._out.flush()
        except (OSError, ValueError) as exc:  # ValueError: stdout was closed
            raise OutputError(
                f"cannot write to stdout: {getattr(exc, 'strerror', None) or exc}; "
                "keep the reading side open"
            ) from None

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._write, data)  # a slow reader blocks a thread only

    async def finish(self, last: bytes, *, publish: bool) -> str | None:
        await self.write(last)
        return None

    async def abandon(self) -> None:
        pass


def _drain(receive: MemoryObjectReceiveStream[Record], batch: list[Record]) -> None:
    """Move what the stream holds now into the batch, up to its size."""
    while len(batch) < _BATCH:
        try:
            batch.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return


class Sink:
    """The single writer task of a sweep: records in, lines out, counted per record kind."""

    def __init__(self, writer: Writer, kept: dict[str, int] | None = None) -> None:
        self.writer = writer
        self._counts: Counter[str] = Counter(kept or {})
        self.failed = False

    @property
    def counts(self) -> dict[str, int]:
        """Lines written per record kind, including lines kept from a resumed file."""
        return dict(self._counts)

    async def run(self, receive: ObjectReceiveStream[Record]) -> None:
        """One line per record until the stream ends; batches keep thread hops few."""
        async with receive:
            async for first in receive:
                batch = [first]
                if isinstance(receive, MemoryObjectReceiveStream):
                    _drain(receive, batch)
                    if len(batch) < _BATCH:
                        await anyio.sleep(COALESCE_SECONDS)
                        _drain(receive, batch)
                # Writers keep gzip and disk waits off the event loop (a thread, which is not
                # abandoned on cancellation, so a batch is never cut off mid-line).
                try:
                    await self.writer.write(serialize(batch))
                except OutputError:
                    self.failed = True
                    raise
                self._counts.update(str(record.get("record")) for record in batch)

    async def finish(self, run_record: Record, *, publish: bool) -> str | None:
        """Write the run line and close (shielded: a signal must not cut it in half)."""
        if self.failed:
            return None
        self._counts[str(run_record.get("record"))] += 1
        with anyio.CancelScope(shield=True):
            path = await self.writer.finish(serialize([run_record]), publish=publish)
        return path
