"""CPU per account of two checkouts' org sweeps, in turn against one emulated organisation."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# IAM's rates per account, as in the org-many scenario.
RATES = {
    "GenerateServiceLastAccessedDetails": 20,
    "GetServiceLastAccessedDetails": 20,
    "GetServiceLastAccessedDetailsWithEntities": 20,
    "ListUsers": 10,
    "ListGroups": 10,
    "ListRoles": 10,
    "ListPolicies": 10,
}
COLLECTOR_RATES = {"GENERATE": 20, "GET": 20, "GET_WITH_ENTITIES": 20, "LIST": 10}


def _sweep(checkout: Path, extra: list[str], endpoint: str, out: Path, env: dict[str, str]) -> str:
    """One org sweep by `checkout`'s collector: its exit, files, wall, CPU and peak RSS."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(checkout / ".venv/bin/collector"), "sweep", "--endpoint-url", endpoint,
         "--no-progress", "--org", "--role-name", "collector-audit", "--run-id", out.name,
         "--output", f"{out}/{{account_id}}.jsonl", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    cpu = usage.ru_utime + usage.ru_stime
    files = len(list(out.glob("*.jsonl")))
    return (
        f"exit {os.waitstatus_to_exitcode(status)}, {files} files, {wall:.1f} s, CPU {cpu:.1f} s"
        f" = {1000 * cpu / max(files, 1):.1f} ms per account, peak RSS {usage.ru_maxrss >> 10} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="checkout with a .venv")
    parser.add_argument("--before-args", default="", help="e.g. '--max-accounts-in-flight 32'")
    parser.add_argument("--after", type=Path, default=Path.cwd(), help="checkout with a .venv")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="org-cpu-"))
    rates = [f"--rate={name}={rate}" for name, rate in RATES.items()]
    emulator = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator_proc", "--port", "0", "--accounts",
         str(args.accounts), "--principals", "8", "--latency", "lognormal:2:0.5", *rates,
         "--ground-truth", str(work / "truth.jsonl"), "--stats", str(work / "stats.json")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert emulator.stdout is not None
    endpoint = emulator.stdout.readline().strip()
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (the emulator's dummy keys)
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(work / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "none"),
        **{f"COLLECTOR_RATES_{name}": str(rate) for name, rate in COLLECTOR_RATES.items()},
    )
    try:
        for round_ in range(args.rounds):
            for side, checkout, extra in (
                ("before", args.before, args.before_args.split()),
                ("after", args.after, []),
            ):
                result = _sweep(checkout, extra, endpoint, work / f"{side}-{round_}", env)
                print(f"{side}, round {round_}: {result}", flush=True)
    finally:
        emulator.terminate()
        emulator.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
