"""The sweep as PID 1 of its own PID namespace, as in a container: SIGTERM still stops it gracefully."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.cli import COLLECTOR, FAST_ENV, killed_on_failure, wait_for_progress

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


def unshare_refusal() -> str | None:
    """Why a new PID namespace cannot be made here (not root, seccomp, no unshare), or None."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --pid is not permitted here: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def slow_account() -> Iterator[Emulator]:
    """Latency and a Generate rate limit keep a sweep running for several seconds."""
    faults = Faults(
        latency=0.3, short_page_max=40, rate_limits={"GenerateServiceLastAccessedDetails": 40}
    )
    options = EmulatorOptions(principals=300, seed=11, faults=faults, account_id="111122223333")
    with running_emulator(options) as emu:
        yield emu


def namespace_pid(host_pid: int) -> list[int]:
    """The PIDs of one process from the host's namespace down to its own (`NSpid:`)."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(pid) for pid in line.split()[1:]]
    raise AssertionError("no NSpid line: kernel without PID namespaces")


def pid1_of(launcher: subprocess.Popen[str]) -> psutil.Process:
    """The sweep process: the child that `unshare --fork` started, once it runs Python."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(launcher.pid).children()
        if children and "collector" in " ".join(children[0].cmdline()):
            return children[0]
        time.sleep(0.05)
    raise AssertionError("unshare never started the sweep")


def test_sigterm_to_pid1_stops_the_sweep_gracefully(slow_account: Emulator, tmp_path: Path) -> None:
    """SIGTERM from outside to PID 1: exit 143, the .part kept, its last line the `interrupted` run."""
    refusal = unshare_refusal()
    # CI runs as root with util-linux: a missing prerequisite fails here rather than skipping.
    if refusal is not None:
        pytest.fail(f"this test needs a new PID namespace (root, util-linux's unshare): {refusal}")
    command = [COLLECTOR, "sweep", "--endpoint-url", slow_account.endpoint, "--output", "out/{account_id}.jsonl"]  # fmt: skip
    launcher = subprocess.Popen(
        [*UNSHARE, *command], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ | FAST_ENV,
    )  # fmt: skip
    with killed_on_failure(launcher):  # every wait below has its own timeout
        sweep = pid1_of(launcher)
        assert namespace_pid(sweep.pid)[-1] == 1  # the kernel gives PID 1 no default handlers
        part = wait_for_progress(tmp_path / "out", launcher)
        # As a container runtime does: the signal comes from the parent namespace to PID 1.
        os.kill(sweep.pid, signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == 143, stderr[-2000:]  # unshare passes the child's status on
    assert "Traceback" not in stderr and "collector.sweep.signal" in stderr
    assert part.exists() and not (tmp_path / "out" / "111122223333.jsonl").exists()
    last = json.loads(part.read_text().splitlines()[-1])
    assert last["record"] == "run" and last["status"] == "interrupted"
    assert 0 < last["records"]["principal"] < 300
