"""An exclusive lock on one output for the length of a sweep, so two sweeps never share a file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from collector.errors import OutputError, OutputLockedError

LOCK_SUFFIX = ".lock"


class OutputLock:
    """`NAME.lock`, held with flock(LOCK_EX): the kernel drops it when the process dies.

    The file says who holds it (pid and run id), for the message a second sweep prints.
    """

    def __init__(
        self, output: Path, *, advice: str = "wait for it to finish or choose another --output"
    ) -> None:
        self.path = Path(str(output) + LOCK_SUFFIX)
        self._advice = advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_id: str) -> None:
        """Take the lock or raise OutputLockedError naming the sweep that holds it."""
        while True:
            try:
                fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
            except OSError as exc:
                hint = (
                    "raise the open-files limit (ulimit -n) or lower --max-accounts-in-flight"
                    if exc.errno in (errno.EMFILE, errno.ENFILE)
                    else "choose a writable --output or fix the directory's permissions"
                )
                raise OutputError(
                    f"cannot create {self.path}: {exc.strerror or exc}; {hint}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").split()
                os.close(fd)
                pid, run = [*holder, "?", "?"][:2]
                raise OutputLockedError(
                    f"another sweep (pid {pid}, run {run}) is writing {str(self.path)[:-5]}; "
                    f"{self._advice}"
                ) from None
            # The holder before us may have unlinked the file after we opened it: then our lock
            # is on a dead inode, and we try again on the file that is there now.
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {run_id}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file, then let go of it (in this order: see acquire)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
