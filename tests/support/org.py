"""Organisation sweeps through the CLI: the arguments every test gives, and the manifest it reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from collector.emulator.orgserver import Organization
from tests.support.cli import COLLECTOR, FAST_ENV, killed_on_failure

ROLE = "collector-audit"


def org_args(org: Organization, *extra: str) -> list[str]:
    return [
        "sweep", "--org", "--role-name", ROLE, "--endpoint-url", org.endpoint,
        "--output", "out/{account_id}.jsonl", "--no-progress", *extra,
    ]  # fmt: skip


def manifest_of(cwd: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((cwd / "out" / "manifest.json").read_text())
    return document


def stopped_mid_org_sweep(args: list[str], cwd: Path) -> tuple[int, str]:
    """`collector ARGS` in `cwd`, sent SIGTERM once an account is published and another is in
    its .part; its exit code and stderr."""
    out = cwd / "out"
    proc = subprocess.Popen(
        [COLLECTOR, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ | FAST_ENV,
    )  # fmt: skip
    with killed_on_failure(proc):
        deadline = time.monotonic() + 120
        while not (out.exists() and list(out.glob("*.jsonl")) and list(out.glob("*.part"))):
            assert proc.poll() is None and time.monotonic() < deadline, "no account finished"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr
