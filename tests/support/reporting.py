"""Report test helpers: CLI sweeps of the emulator, `collector report` runs, expected rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

COLLECTOR = str(Path(sys.executable).parent / "collector")
Record = dict[str, Any]

# Dummy keys and fast settings; no AWS_* or COLLECTOR_* of the developer's leaks in.
_SWEEP_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "COLLECTOR_POLL_FIRST_DELAY": "0.2",
    "COLLECTOR_RATES_GENERATE": "200",
    "COLLECTOR_RATES_GET": "400",
    "COLLECTOR_RATES_GET_WITH_ENTITIES": "400",
    "COLLECTOR_RETRY_BASE_DELAY": "0.05",
}


def clean_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COLLECTOR_"))}
    return base | _SWEEP_ENV


def sweep(endpoint: str, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`collector sweep` of the emulator into OUTPUT, in a subprocess (`extra` options too)."""
    return subprocess.run(
        [COLLECTOR, "sweep", "--endpoint-url", endpoint, "--output", str(output), "--no-progress",
         *extra],
        capture_output=True, text=True, timeout=180, env=clean_env(),
    )  # fmt: skip


def report(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COLLECTOR, "report", *args], capture_output=True, text=True, timeout=120,
        env=clean_env(), cwd=cwd,
    )  # fmt: skip


def json_rows(proc: subprocess.CompletedProcess[str]) -> list[Record]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def days_since(stamp: str | None, as_of: date) -> int | None:
    return None if stamp is None else (as_of - date.fromisoformat(stamp[:10])).days


def is_unused(stamp: str | None, as_of: date, days: int) -> bool:
    since = days_since(stamp, as_of)
    return since is None or since >= days


def complete_services(truth: list[Record]) -> list[Record]:
    """Service records of principals that have a principal line (complete reports)."""
    done = {r["principal_arn"] for r in truth if r["record"] == "principal"}
    return [r for r in truth if r["record"] == "service" and r["principal_arn"] in done]


def expected_unused(truth: list[Record], as_of: date, days: int) -> list[Record]:
    """The `report unused` rows the ground truth implies, computed independently."""
    services = complete_services(truth)
    granted: dict[str, int] = {}
    unused: dict[str, int] = {}
    for r in services:
        arn = r["principal_arn"]
        granted[arn] = granted.get(arn, 0) + 1
        unused[arn] = unused.get(arn, 0) + is_unused(r["last_authenticated"], as_of, days)
    used_by: dict[tuple[str, str], list[Record]] = {}
    for r in truth:
        if r["record"] == "entity" and r["last_authenticated"] is not None:
            used_by.setdefault((r["principal_arn"], r["service_namespace"]), []).append(
                {"entity_arn": r["entity_arn"], "last_authenticated": r["last_authenticated"]}
            )
    rows = []
    for r in services:
        arn, namespace = r["principal_arn"], r["service_namespace"]
        if not is_unused(r["last_authenticated"], as_of, days):
            continue
        # Most recent first, ties by entity ARN (two stable sorts).
        who = sorted(used_by.get((arn, namespace), []), key=lambda e: e["entity_arn"])
        who.sort(key=lambda e: e["last_authenticated"], reverse=True)
        rows.append(
            {
                "principal_arn": arn,
                "principal_type": r["principal_type"],
                "account_id": r["account_id"],
                "service_namespace": namespace,
                "service_name": r["service_name"],
                "last_authenticated": r["last_authenticated"],
                "days_since": days_since(r["last_authenticated"], as_of),
                "principal_granted": granted[arn],
                "principal_unused": unused[arn],
                "principal_unused_share": round(unused[arn] / granted[arn], 4),
                "used_by": who if r["principal_type"] in ("group", "policy") else None,
            }
        )
    return sorted(
        rows,
        key=lambda x: (
            x["account_id"],
            x["principal_type"],
            x["principal_arn"],
            x["service_namespace"],
        ),
    )
