"""Run one tool as a child process: wall time, exit code and the child's own peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.emulator import REPO

POLL = 0.02  # seconds between checks of the child: adds at most this to a wall time
KILL_AFTER = 30.0  # seconds a timed-out child gets between SIGTERM and SIGKILL


@dataclass(frozen=True)
class Measured:
    """How one child process ran."""

    returncode: int
    started: float  # Unix time
    finished: float
    wall: float  # seconds, monotonic
    peak_rss: int  # bytes: the child's VmHWM, its own peak resident set since exec
    timed_out: bool


def tool_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a tool: dummy keys only, no AWS config, no proxies, nothing inherited."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONHASHSEED")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Files that do not exist: no profile, retry mode or endpoint of this machine leaks in.
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1",
        "PYTHONPATH": str(REPO),
    }
    return env | dict(extra or {})


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float,
) -> Measured:
    """Run `command` to its end (or kill it after `timeout` s) and measure it."""
    with stdout.open("w", encoding="utf-8") as out, stderr.open("w", encoding="utf-8") as err:
        started = time.time()
        clock = time.monotonic()
        process = subprocess.Popen(list(command), cwd=REPO, env=dict(env), stdout=out, stderr=err)
        timed_out = False
        peak = 0
        try:
            while process.poll() is None:
                peak = max(peak, _high_water_mark(process.pid))
                elapsed = time.monotonic() - clock
                if elapsed > timeout and not timed_out:
                    timed_out = True
                    process.send_signal(signal.SIGTERM)
                elif elapsed > timeout + KILL_AFTER:
                    process.kill()
                time.sleep(POLL)
        except BaseException:
            process.kill()
            process.wait()
            raise
        wall = time.monotonic() - clock
    return Measured(
        returncode=process.returncode,
        started=started,
        finished=time.time(),
        wall=wall,
        peak_rss=peak,
        timed_out=timed_out,
    )


def _high_water_mark(pid: int) -> int:
    """VmHWM of a live process, in bytes (0 once it has exited).

    Not ru_maxrss: Linux carries the parent's high-water mark over fork and exec into the
    child's, so a child of this (large) bench process would report the bench's size. VmHWM
    belongs to the address space exec created, and it only grows, so sampling it every
    POLL seconds misses at most the growth of the child's last few milliseconds.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError):
        pass
    return 0
