"""The collector CLI as subprocesses: how tests start it, stop it, and read its one-line errors."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.emulator import Emulator

COLLECTOR = str(Path(sys.executable).parent / "collector")


# Fast polls and a short grace so signal tests stay quick; rates well above the emulator's.
FAST_ENV = {
    "COLLECTOR_POLL_FIRST_DELAY": "0.3",
    "COLLECTOR_RATES_GENERATE": "40",
    "COLLECTOR_SHUTDOWN_GRACE": "2",
    "COLLECTOR_RATES_GET": "200",
    "COLLECTOR_RATES_GET_WITH_ENTITIES": "200",
    "COLLECTOR_RETRY_BASE_DELAY": "0.05",
}


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COLLECTOR, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=os.environ | FAST_ENV | (env or {}),
    )  # fmt: skip


@contextmanager
def killed_on_failure(proc: subprocess.Popen[str]) -> Iterator[None]:
    """A failing assertion must not leave the sweep running, or its pipes open, after the test."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def start_sweep(emulator: Emulator, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COLLECTOR, "sweep", "--endpoint-url", emulator.endpoint, "--output", "out/{account_id}-{date}.jsonl", *extra],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | FAST_ENV,
    )  # fmt: skip


def wait_for_progress(part_dir: Path, proc: subprocess.Popen[str], principals: int = 40) -> Path:
    """Wait until the sweep has written some principals (the file is buffered, so poll size)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        parts = list(part_dir.glob("*.part"))
        if parts and parts[0].stat().st_size > principals * 1500:
            return parts[0]
        time.sleep(0.05)
    raise AssertionError("the sweep made no progress")


# The live status line (`COLLECTOR_PROGRESS=true` draws it on a pipe too): principals done so far.
PRINCIPALS_DONE = re.compile(r"principals (\d+)/")


def wait_for_stderr(
    proc: subprocess.Popen[str], until: Callable[[str], bool], timeout: float = 60
) -> str:
    """Read the process's stderr until `until(what it wrote so far)` holds; return that text.

    Reads the pipe itself (select, then os.read) so a line without a newline, as the status
    line is, still counts; what is read here is not in `communicate()`'s answer later.
    """
    assert proc.stderr is not None
    descriptor, seen = proc.stderr.fileno(), ""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([descriptor], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(descriptor, 1 << 16)
            assert chunk, f"the process closed stderr first (exit {proc.poll()}): {seen[-2000:]}"
            seen += chunk.decode(errors="replace")
            if until(seen):
                return seen
    raise AssertionError(f"not seen on stderr within {timeout} s: {seen[-2000:]}")


def principals_done(stderr: str) -> int:
    """The largest principals-done count the status lines in `stderr` showed."""
    return max((int(count) for count in PRINCIPALS_DONE.findall(stderr)), default=0)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("collector: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in errors[0]
