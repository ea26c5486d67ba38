"""The one JSONL writer: file, gzip or stdout; `NAME.part` then rename; resume after a crash."""

from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import io
import json
import os
import string
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from collector.errors import ConfigError, OutputError
from collector.models import Record

STDOUT = "-"
PART_SUFFIX = ".part"
_PLACEHOLDERS = ("account_id", "date", "run_id")
_BUFFER = 1 << 20
_BATCH = 1024  # records taken off the stream per write; bounds one batch's memory
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
# Record kinds a resumed file keeps for completed principals; errors and the run line are redone.
_KEPT_KINDS = frozenset({"service", "entity", "principal"})


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs; rejects anything but the known placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"output: invalid template {template!r}: {exc}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (name not in _PLACEHOLDERS or spec or conversion):
            known = ", ".join("{" + p + "}" for p in _PLACEHOLDERS)
            raise ConfigError(
                f"output: unknown placeholder {{{name}}} in {template!r} (known: {known})"
            )
        parts.append((literal, name))
    return parts


def render_output(template: str, *, account_id: str, run_id: str, now: datetime) -> str:
    """The output path for one sweep; `-` (stdout) stays `-`. `now` should be timezone-aware."""
    if template == STDOUT:
        return STDOUT
    values = {
        "account_id": account_id,
        "date": now.astimezone(UTC).strftime("%Y-%m-%d"),
        "run_id": run_id,
    }
    return "".join(
        literal + ("" if name is None else values[name])
        for literal, name in _template_parts(template)
    )


def find_resumable(template: str, *, account_id: str) -> Path | None:
    """The newest `NAME.part` the template could have produced; `{date}`, `{run_id}` match any.

    So a nightly `{date}` template resumes the file an interrupted run left yesterday.
    """
    if template == STDOUT:
        return None
    wildcards = {"account_id": glob.escape(account_id), "date": _DATE_GLOB, "run_id": "*"}
    pattern = "".join(
        glob.escape(literal) + ("" if name is None else wildcards[name])
        for literal, name in _template_parts(template)
    )
    candidates = []
    for name in glob.glob(pattern + glob.escape(PART_SUFFIX)):
        try:
            candidates.append((os.stat(name).st_mtime_ns, name))
        except OSError:
            continue  # vanished between glob and stat
    return Path(max(candidates)[1]) if candidates else None


@dataclass(frozen=True)
class ResumeState:
    """What a resumed `.part` already holds: the principals not to sweep again."""

    completed: frozenset[str]  # principal ARNs that have their `principal` line
    run_id: str | None  # run id of the kept lines (else of any old line): continue that run
    started: str | None  # `started` of the interrupted run line, if it was written
    kept: dict[str, int]  # record kind -> lines kept


def _records(path: Path) -> Iterator[tuple[bytes, Record]]:
    """Complete, parseable lines of a plain or gzip file; stops quietly at a torn tail."""
    opener = gzip.open if path.name.removesuffix(PART_SUFFIX).endswith(".gz") else open
    with opener(path, "rb") as handle:
        try:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return  # torn last line: the writer died mid-line
                try:
                    record = json.loads(raw)
                except ValueError:  # also UnicodeDecodeError
                    continue
                if isinstance(record, dict):
                    yield raw, record
        except (EOFError, zlib.error, gzip.BadGzipFile):
            return  # a gzip stream cut off by SIGKILL or a full disk ends here


def _hint(exc: OSError, *, started: bool) -> str:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "free space and rerun with --resume" if started else "free space and rerun"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable --output or fix the directory's permissions"
    if exc.errno == errno.ENOTDIR:
        return "a parent of the output path is a file; choose another --output"
    return "fix the output path and rerun with --resume" if started else "fix the output path"


class JsonlSink:
    """Writes records as compact JSON lines to `NAME.part` (renamed on success) or stdout.

    The owner calls `open()`, runs `run()` as the single writer task, then `finish()`.
    """

    def __init__(self, target: str) -> None:
        self._stdout = target == STDOUT
        self.path: Path | None = None if self._stdout else Path(target)
        self.part: Path | None = None if self.path is None else Path(target + PART_SUFFIX)
        self._gzip = target.endswith(".gz")
        self._raw: BinaryIO | None = None
        self._out: BinaryIO | io.BufferedIOBase | None = None  # gzip layer, `_raw`, or stdout
        self._counts: Counter[str] = Counter()
        self._failed = False

    @property
    def counts(self) -> dict[str, int]:
        """Lines written per record kind, including lines kept from a resumed file."""
        return dict(self._counts)

    def _error(self, exc: OSError, *, action: str, path: Path | str, started: bool) -> OutputError:
        self._failed = True
        reason = exc.strerror or str(exc)
        return OutputError(f"cannot {action} {path}: {reason}; {_hint(exc, started=started)}")

    def open(self, resume_from: Path | None = None) -> ResumeState:
        """Create the `.part` (mode 0600), carrying over `resume_from`'s completed principals."""
        if self.part is None:
            sys.stdout.flush()  # text someone printed earlier goes first
            self._out = sys.stdout.buffer
            return ResumeState(frozenset(), None, None, {})
        target = self.part if resume_from is None else self.part.with_name(self.part.name + ".tmp")
        try:
            self.part.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            self._failed = True
            raise OutputError(
                f"cannot create {target}: {self.part.parent} exists and is not a directory; "
                "choose another --output"
            ) from None
        except OSError as exc:
            raise self._error(exc, action="create", path=target, started=False) from None
        try:
            # os.open with an explicit mode: the file maps who uses what, so never world-readable
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
            self._raw = os.fdopen(fd, "wb", buffering=_BUFFER)
            self._out = self._raw
            if self._gzip:
                self._out = gzip.GzipFile(
                    filename=self.path.name if self.path else "",
                    mode="wb",
                    fileobj=self._raw,
                    compresslevel=6,
                )
        except OSError as exc:
            self._abandon()
            raise self._error(exc, action="create", path=target, started=False) from None
        if resume_from is None:
            return ResumeState(frozenset(), None, None, {})
        return self._carry_over(resume_from, target)

    def _carry_over(self, resume_from: Path, tmp: Path) -> ResumeState:
        """Copy the completed principals' lines into `tmp`, then atomically make it the `.part`."""
        assert self.part is not None and self._out is not None
        completed: set[str] = set()
        started: str | None = None
        any_run_id: str | None = None  # keeps `{run_id}` in the name and lines alike
        kept_run_id: str | None = None
        try:
            # Two streaming passes: a principal line comes after its rows, so completion is
            # known only at the end; memory holds the ARNs, never the lines.
            for _, record in _records(resume_from):
                any_run_id = any_run_id or record.get("run_id")
                if record.get("record") == "principal":
                    completed.add(str(record.get("principal_arn")))
                elif record.get("record") == "run" and started is None:
                    started = record.get("started")
            for raw, record in _records(resume_from):
                kind = record.get("record")
                if kind in _KEPT_KINDS and record.get("principal_arn") in completed:
                    kept_run_id = kept_run_id or record.get("run_id")
                    self._out.write(raw)  # the line as it was: no re-serialization
                    self._counts[str(kind)] += 1
        except OSError as exc:
            self._abandon()
            if exc.filename is not None and Path(exc.filename) == resume_from:
                raise self._error(exc, action="read", path=resume_from, started=True) from None
            raise self._error(exc, action="write", path=tmp, started=True) from None
        try:
            self._flush(sync=True)
            # Only now does the old part go: a crash before this line leaves it untouched.
            os.replace(tmp, self.part)
            if resume_from != self.part:
                resume_from.unlink(missing_ok=True)  # its kept lines live on in the new part
        except OSError as exc:
            self._abandon()
            raise self._error(exc, action="write", path=self.part, started=True) from None
        run_id = kept_run_id or any_run_id
        return ResumeState(frozenset(completed), run_id, started, dict(self._counts))

    def _write_lines(self, records: list[Record]) -> None:
        """Serialize and write; the caller counts (on the event loop, where `counts` is read)."""
        assert self._out is not None
        data = "".join(
            json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
            for record in records
        ).encode("utf-8")
        self._out.write(data)

    def _flush(self, *, sync: bool) -> None:
        assert self._out is not None
        self._out.flush()
        if self._raw is not None:
            self._raw.flush()
            if sync:
                os.fsync(self._raw.fileno())

    def _write_batch(self, records: list[Record]) -> None:
        try:
            self._write_lines(records)
            if self._stdout:
                self._flush(sync=False)  # a reader on a pipe sees lines as they come
        except OSError as exc:
            self._abandon()
            raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> OutputError:
        if self._stdout:
            self._failed = True
            reason = exc.strerror or str(exc)
            return OutputError(f"cannot write to stdout: {reason}; keep the reading side open")
        assert self.part is not None
        return self._error(exc, action="write", path=self.part, started=True)

    def _abandon(self) -> None:
        """Close after a failed write; the `.part` stays behind for --resume."""
        self._failed = True
        for handle in (self._out, self._raw):
            if handle is not None and handle is not sys.stdout.buffer:
                # The buffer cannot be flushed: the same failure is already being reported.
                with contextlib.suppress(OSError, ValueError):
                    handle.close()
        self._out = self._raw = None

    def discard(self) -> None:
        """Close and delete the `.part` of a sweep that failed before writing anything."""
        self._abandon()
        if self.part is not None:
            self.part.unlink(missing_ok=True)

    async def run(self, receive: anyio.abc.ObjectReceiveStream[Record]) -> None:
        """The single writer task: one line per record until the stream ends."""
        async with receive:
            async for first in receive:
                batch = [first]
                while isinstance(receive, MemoryObjectReceiveStream) and len(batch) < _BATCH:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                # A thread keeps gzip and disk waits off the event loop; it is not abandoned
                # on cancellation, so a batch is never cut off mid-line.
                await anyio.to_thread.run_sync(self._write_batch, batch)
                self._counts.update(str(record.get("record")) for record in batch)

    def finish(self, run_record: Record, *, publish: bool) -> Path | None:
        """Write the run line and close; publish renames `.part` to the final name.

        Returns the published path; None for stdout, an unpublished `.part`, or a sink
        whose earlier write already failed (its `.part` stays for --resume).
        """
        if self._failed or self._out is None:
            return None
        try:
            self._write_lines([run_record])
            self._counts[str(run_record.get("record"))] += 1
            if self._stdout:
                self._flush(sync=False)
                return None
            assert self._raw is not None and self.part is not None and self.path is not None
            if self._out is not self._raw:
                self._out.close()  # writes the gzip trailer; the raw file stays open
                self._out = self._raw
            self._flush(sync=True)
            self._raw.close()
            self._out = self._raw = None
            if not publish:
                return None
            os.replace(self.part, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            self._abandon()
            raise self._write_error(exc) from None
        return self.path


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; a filesystem that cannot fsync a directory is no reason to fail."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
