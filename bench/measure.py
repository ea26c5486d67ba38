"""Run tools as child processes: wall time, exit code, the child's own CPU time and peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
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
    cpu: float  # seconds of CPU the child used, user + system (its own rusage)
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
    return run_side_by_side([command], env=env, outputs=[(stdout, stderr)], timeout=timeout)[0]


def run_side_by_side(
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str],
    outputs: Sequence[tuple[Path, Path]],
    timeout: float,
) -> list[Measured]:
    """Start every command at once, run each to its end (or kill it), measure each."""
    with ExitStack() as files:
        started = time.time()
        clock = time.monotonic()
        processes = []
        for command, (stdout, stderr) in zip(commands, outputs, strict=True):
            out = files.enter_context(stdout.open("w", encoding="utf-8"))
            err = files.enter_context(stderr.open("w", encoding="utf-8"))
            processes.append(
                subprocess.Popen(list(command), cwd=REPO, env=dict(env), stdout=out, stderr=err)
            )
        peaks = [0] * len(processes)
        ended: dict[int, tuple[float, float]] = {}  # index -> (wall, cpu)
        timed_out = False
        try:
            while len(ended) < len(processes):
                elapsed = time.monotonic() - clock
                for index, process in enumerate(processes):
                    if index in ended:
                        continue
                    # wait4, not poll(): the child's own rusage comes with its exit status.
                    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                    if pid:
                        process.returncode = os.waitstatus_to_exitcode(status)
                        ended[index] = (elapsed, usage.ru_utime + usage.ru_stime)
                        continue
                    peaks[index] = max(peaks[index], _high_water_mark(process.pid))
                    if elapsed > timeout + KILL_AFTER:
                        process.kill()
                    elif elapsed > timeout and not timed_out:
                        process.send_signal(signal.SIGTERM)
                if elapsed > timeout:
                    timed_out = True
                time.sleep(POLL)
        except BaseException:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    process.wait()
            raise
    finished = time.time()
    return [
        Measured(
            returncode=int(process.returncode),
            started=started,
            finished=finished,
            wall=ended[index][0],
            peak_rss=peaks[index],
            cpu=ended[index][1],
            timed_out=timed_out,
        )
        for index, process in enumerate(processes)
    ]


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
