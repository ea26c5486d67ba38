"""The emulator as a child process: start it, read its endpoint, ground truth and call counts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0  # seeding and the ground truth of 10,000 principals take a few seconds


@dataclass(frozen=True)
class EmulatorSpec:
    """What the emulator process serves."""

    principals: int
    seed: int
    rates: Mapping[str, float]  # operation -> calls/s; empty = no throttling
    latency: str  # `collector emulate --latency` syntax, e.g. lognormal:2:0.5
    extra: tuple[str, ...] = ()  # more `collector emulate` flags: faults, --wide-share, --accounts


@dataclass(frozen=True)
class CallCount:
    """Calls of one operation in one wall-clock second, by outcome."""

    second: int
    operation: str
    outcome: str
    calls: int


class EmulatorProcess:
    """A running emulator child: its endpoint and the files it keeps up to date."""

    def __init__(self, endpoint: str, workdir: Path, process: subprocess.Popen[str]) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.process = process

    def ground_truth(self) -> list[dict[str, Any]]:
        """The records a complete sweep of the served account writes."""
        path = self.workdir / "ground_truth.jsonl"
        with path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]

    def calls(self, since: float, until: float) -> list[CallCount]:
        """Counted calls within [since, until] (Unix seconds), once the counts caught up."""
        # The process rewrites its counts every 0.5 s; wait for a write after `until`.
        path = self.workdir / "stats.json"
        deadline = time.time() + 10.0
        while path.stat().st_mtime < until + 0.2 and time.time() < deadline:
            time.sleep(0.2)
        rows = json.loads(path.read_text(encoding="utf-8"))["calls"]
        first, last = int(since), int(until)
        return [CallCount(**row) for row in rows if first <= row["second"] <= last]


@contextmanager
def emulator_process(spec: EmulatorSpec, workdir: Path) -> Iterator[EmulatorProcess]:
    """Start `python -m bench.emulator_proc` on 127.0.0.1; always stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "bench.emulator_proc",
        "--port",
        "0",
        "--principals",
        str(spec.principals),
        "--seed",
        str(spec.seed),
        "--latency",
        spec.latency,
        "--ground-truth",
        str(workdir / "ground_truth.jsonl"),
        "--stats",
        str(workdir / "stats.json"),
    ]
    for operation, rate in spec.rates.items():
        command += ["--rate", f"{operation}={rate:g}"]
    command += spec.extra
    with (workdir / "emulator.log").open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            endpoint = _first_line(process, START_TIMEOUT)
            yield EmulatorProcess(endpoint, workdir, process)
        finally:
            _stop(process)


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0].startswith("http://127.0.0.1:"):
        raise RuntimeError(f"the emulator printed no endpoint within {timeout:g} s")
    return lines[0].strip()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    if process.stdout is not None:
        process.stdout.close()
