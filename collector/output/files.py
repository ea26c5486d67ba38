"""The file writer: a private, locked `NAME.part`, flushed as it goes, renamed to publish."""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from collector.errors import ConfigError, OutputError
from collector.output.lock import OutputLock
from collector.output.sink import output_error
from collector.template import part_path

# The sink writes a batch of up to 1,024 lines at once (larger writes skip the buffer): the
# buffer only gathers small batches. Small, as an organisation sweep holds a file per account
# in flight (it was 1 MiB each).
_BUFFER = 64 << 10
# How often written lines are pushed from our buffers (and gzip's) into the file: a process
# killed with SIGKILL loses at most this many seconds of work, not the whole run.
CHECKPOINT_SECONDS = 5.0
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_target(path: Path) -> None:
    """Refuse, before any AWS call, an output that exists and is not a regular file."""
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode
    except OSError:
        return  # not there (or not reachable): creating it says what is wrong
    if stat.S_ISDIR(mode):
        raise ConfigError(f"output {path} is a directory; add a file name to --output")
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"output {path} exists and is not a regular file; choose another --output"
        )


def check_resumable(part: Path) -> None:
    """Resume only our own private regular file: never one planted by someone else."""
    info = os.stat(part, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(
            f"{part} is not a regular file owned by this user; it will not be resumed: "
            "move it away or choose another --output"
        )
    if stat.S_IMODE(info.st_mode) != 0o600:
        raise ConfigError(
            f"{part} has mode {stat.S_IMODE(info.st_mode):o}, not 600: it was not written by "
            "collector; it will not be resumed: move it away or choose another --output"
        )


class FileWriter:
    """Lines to `NAME.part` (mode 0600 from creation; gzip when NAME ends in .gz).

    The output is locked from `open` until `finish` or `abandon`. A stale `.part` is replaced,
    never truncated in place, and never followed if it is a symlink. `carry` holds lines kept
    from a resumed `.part`: they go into a fresh temporary file that replaces the old `.part`
    only once complete, so a crash while copying loses nothing.
    """

    def __init__(self, path: str, *, run_id: str, resume_from: Path | None = None) -> None:
        self.path = Path(path)
        self.part = part_path(path)
        self.destination = str(self.path)
        self._run_id = run_id
        self.resume_from = resume_from
        self._lock = OutputLock(self.path)
        self._raw: BinaryIO | None = None
        self._out: BinaryIO | gzip.GzipFile | None = None
        self._flushed = time.monotonic()

    def lock(self, *, create_dirs: bool = False) -> None:
        """Take the output's lock: before any AWS call where the name allows.

        Where the output's directory does not exist yet, no sweep can hold its lock: it is
        taken when `open` creates the directory, so a failed start leaves nothing behind.
        """
        check_target(self.path)
        if not create_dirs and not self.part.parent.is_dir():
            return
        try:
            self.part.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(
                f"cannot create {self.part}: {self.part.parent} exists and is not a directory; "
                "choose another --output"
            ) from None
        except OSError as exc:
            raise output_error(exc, action="create", path=self.part, started=False) from None
        self._lock.acquire(self._run_id)

    def _create(self, target: Path) -> None:
        """A new private file at `target`; whatever was there (ours: we hold the lock) goes."""
        with contextlib.suppress(FileNotFoundError):
            if target != self.resume_from:
                target.unlink()  # a symlink is removed, not followed
        fd = os.open(target, _CREATE, 0o600)
        self._raw = os.fdopen(fd, "wb", buffering=_BUFFER)
        self._out = self._raw
        if self.path.name.endswith(".gz"):
            self._out = gzip.GzipFile(
                filename=self.path.name, mode="wb", fileobj=self._raw, compresslevel=6
            )

    def open(self, carry: Iterable[bytes] = ()) -> None:
        """Create the `.part` and copy `carry` into it first. Blocking: run it in a thread."""
        if not self._lock.held:
            self.lock(create_dirs=True)
        target = (
            self.part if self.resume_from is None else self.part.with_name(self.part.name + ".tmp")
        )
        try:
            self._create(target)
        except OSError as exc:
            self.close()
            raise output_error(exc, action="create", path=target, started=False) from None
        if self.resume_from is None:
            return
        assert self._out is not None
        try:
            for line in carry:
                self._out.write(line)
        except OSError as exc:
            self.close()
            target.unlink(missing_ok=True)
            failed = Path(exc.filename) if exc.filename is not None else target
            action = "read" if failed == self.resume_from else "write"
            raise output_error(exc, action=action, path=failed, started=True) from None
        try:
            self._push(sync=True)
            # Only now does the old part go: a crash before this line leaves it untouched.
            os.replace(target, self.part)
            if self.resume_from != self.part:
                self.resume_from.unlink(missing_ok=True)  # its kept lines live on in the new part
        except OSError as exc:
            self.close()
            raise output_error(exc, action="write", path=self.part, started=True) from None

    def _push(self, *, sync: bool) -> None:
        """Our buffers (and a gzip sync flush: every line so far decodable) into the file."""
        if self._out is not None:
            self._out.flush()
        if self._raw is not None:
            self._raw.flush()
            if sync:
                os.fsync(self._raw.fileno())
        self._flushed = time.monotonic()

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self.write_now, data)

    async def finish(self, last: bytes, *, publish: bool) -> str | None:
        return await anyio.to_thread.run_sync(lambda: self.finish_now(last, publish=publish))

    async def abandon(self) -> None:
        self.close()

    def write_now(self, data: bytes) -> None:
        if self._out is None:
            raise OutputError(f"cannot write {self.part}: it was closed after an earlier error")
        try:
            self._out.write(data)
            if time.monotonic() - self._flushed >= CHECKPOINT_SECONDS:
                self._push(sync=False)
        except OSError as exc:
            self.close()
            raise output_error(exc, action="write", path=self.part, started=True) from None

    def finish_now(self, last: bytes, *, publish: bool) -> str | None:
        self.write_now(last)
        try:
            if isinstance(self._out, gzip.GzipFile):
                self._out.close()  # writes the gzip trailer; the raw file stays open
                self._out = self._raw
            self._push(sync=True)
            if self._raw is not None:
                self._raw.close()
            self._out = self._raw = None
            if publish:
                os.replace(self.part, self.path)
                _fsync_dir(self.path.parent)
        except OSError as exc:
            self.close()
            raise output_error(exc, action="write", path=self.part, started=True) from None
        finally:
            self._lock.release()
        return str(self.path) if publish else None

    def close(self) -> None:
        """Close after a failure; the `.part` stays for --resume."""
        for handle in (self._out, self._raw):
            if handle is not None:
                # The buffer cannot be flushed: the same failure is already being reported.
                with contextlib.suppress(OSError, ValueError):
                    handle.close()
        self._out = self._raw = None
        self._lock.release()

    def discard(self) -> None:
        """Close and delete the `.part` of a sweep that failed before writing anything."""
        self.part.unlink(missing_ok=True)
        self.close()


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
