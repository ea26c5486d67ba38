"""`make bench-report`: time `collector report` on one million synthetic schema-1 service rows."""

# Writes 4 account files (2,500 principals x 100 services each, plus entity, principal and run
# lines) under out/bench-report/, once, then times each report command in a fresh process
# (wall time and peak RSS) and writes bench/report_results.md.

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

COLLECTOR = str(Path(sys.executable).parent / "collector")
OUT = Path("out/bench-report")
ACCOUNTS = 4
PRINCIPALS = 2_500  # per account
SERVICES = 100  # per principal: 4 x 2,500 x 100 = 1,000,000 service rows
KINDS = ("user", "user", "user", "user", "role", "role", "role", "role", "group", "policy")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lines(account: str, rng: random.Random, namespaces: list[str]) -> list[str]:
    run_id = f"bench{account}"
    out: list[str] = []
    counts = {"service": 0, "entity": 0, "principal": 0, "error": 0}
    for index in range(PRINCIPALS):
        kind = KINDS[index % len(KINDS)]
        arn = f"arn:aws:iam::{account}:{kind}/bench-{kind}-{index:05d}"
        common = {
            "schema": 1,
            "run_id": run_id,
            "account_id": account,
            "principal_arn": arn,
            "principal_type": kind,
            "job_id": f"job-{account}-{index}",
        }
        accessed = 0
        entities = 0
        for namespace in rng.sample(namespaces, SERVICES):
            used = rng.random() < 0.3
            last = NOW - timedelta(seconds=rng.randrange(400 * 86400)) if used else None
            entity = f"arn:aws:iam::{account}:user/member-{rng.randrange(500)}"
            out.append(
                json.dumps(
                    {"record": "service"}
                    | common
                    | {
                        "service_namespace": namespace,
                        "service_name": f"Service {namespace}",
                        "last_authenticated": _stamp(last) if last else None,
                        "last_authenticated_entity": entity if last else None,
                        "last_authenticated_region": "us-east-1" if last else None,
                        "total_authenticated_entities": 1 if last else 0,
                        "tracked_actions": None,
                    }
                )
            )
            accessed += used
            if used and kind in ("group", "policy"):
                out.append(
                    json.dumps(
                        {"record": "entity"}
                        | common
                        | {
                            "service_namespace": namespace,
                            "entity_arn": entity,
                            "entity_name": entity.rsplit("/", 1)[1],
                            "entity_type": "user",
                            "entity_id": "AIDABENCH",
                            "entity_path": "/",
                            "last_authenticated": _stamp(last) if last else None,
                        }
                    )
                )
                entities += 1
        counts["service"] += SERVICES
        counts["entity"] += entities
        counts["principal"] += 1
        out.append(
            json.dumps(
                {"record": "principal"}
                | common
                | {
                    "principal_name": arn.rsplit("/", 1)[1],
                    "principal_id": f"AIDA{index}",
                    "principal_path": "/",
                    "job_type": "SERVICE_LEVEL",
                    "job_created": _stamp(NOW),
                    "job_completed": _stamp(NOW),
                    "services": SERVICES,
                    "services_accessed": accessed,
                    "entities": entities,
                }
            )
        )
    out.append(
        json.dumps(
            {
                "record": "run",
                "schema": 1,
                "run_id": run_id,
                "account_id": account,
                "principal_arn": None,
                "principal_type": None,
                "job_id": None,
                "started": _stamp(NOW),
                "finished": _stamp(NOW + timedelta(hours=1)),
                "status": "complete",
                "records": counts,
                "api_calls": {},
                "throttled_calls": {},
                "granularity": "SERVICE_LEVEL",
                "entities": "accessed",
                "collector_version": "bench",
            }
        )
    )
    return out


def generate() -> list[Path]:
    """The input files, written once (reused when present)."""
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(15)
    namespaces = [f"svc{n:03d}" for n in range(300)]
    paths = []
    for number in range(ACCOUNTS):
        account = f"{900000000000 + number:012d}"
        path = OUT / f"{account}.jsonl"
        if not path.exists():
            path.write_text("\n".join(_lines(account, rng, namespaces)) + "\n")
        packed = path.with_suffix(".jsonl.gz")
        if not packed.exists():
            with path.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
        paths.append(path)
    return paths


def measure(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all threads) and peak RSS (MB) of one run."""
    started = time.perf_counter()
    proc = subprocess.Popen([COLLECTOR, "report", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"collector report {' '.join(args)} exited {proc.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    started = time.perf_counter()
    plain = [str(p) for p in generate()]
    packed = [p + ".gz" for p in plain]
    size = sum(os.path.getsize(p) for p in plain) / 1e6
    size_gz = sum(os.path.getsize(p) for p in packed) / 1e6
    ready = time.perf_counter() - started
    print(f"inputs ready in {ready:.1f} s: {size:.0f} MB ({size_gz:.0f} MB gz)")
    window = ["--days", "90", "--as-of", "2026-11-01"]
    cases = [
        ("unused, .jsonl, csv", ["unused", *plain, *window, "--format", "csv"]),
        ("unused, .jsonl.gz, csv", ["unused", *packed, *window, "--format", "csv"]),
        ("summary, .jsonl, table", ["summary", *plain, *window, "--format", "table"]),
        ("summary, .jsonl.gz, table", ["summary", *packed, *window, "--format", "table"]),
        ("unused, .jsonl, html", ["unused", *plain, *window, "--format", "html"]),
        ("parquet, .jsonl", ["parquet", *plain, "--to", str(OUT / "parquet")]),
    ]
    rows = []
    load = os.getloadavg()[0]
    for name, args in cases:
        runs = sorted(measure(args) for _ in range(options.repeat))
        wall, cpu, _ = runs[len(runs) // 2]
        peak = max(rss for _, _, rss in runs)
        rows.append((name, wall, runs[0][0], cpu, peak))
        best = runs[0][0]
        print(f"{name}: median {wall:.2f} s, CPU {cpu:.2f} s, best {best:.2f} s, {peak:.0f} MB")
    load = max(load, os.getloadavg()[0])
    lines = [
        "# `collector report` on one million service rows",
        "",
        f"{ACCOUNTS} account files, {ACCOUNTS * PRINCIPALS:,} principals, "
        f"{ACCOUNTS * PRINCIPALS * SERVICES:,} service rows (30% used in the last 400 days), "
        f"entity rows for groups and policies: {size:.0f} MB of JSONL, {size_gz:.0f} MB gzipped. "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}; median and best of {options.repeat} runs, each a fresh "
        "process (start-up included), output to /dev/null. CPU is user + system time of the "
        "median run (DuckDB uses every core). Load average during the runs: up to "
        f"{load:.1f}: wall times on a busy machine overstate what an idle one takes.",
        "",
        "| command | median wall | best wall | CPU (median run) | peak RSS |",
        "|---|--:|--:|--:|--:|",
        *(f"| {n} | {m:.2f} s | {b:.2f} s | {c:.2f} s | {r:.0f} MB |" for n, m, b, c, r in rows),
        "",
    ]
    Path("bench/report_results.md").write_text("\n".join(lines))
    print("wrote bench/report_results.md")


if __name__ == "__main__":
    main()
