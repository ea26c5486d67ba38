"""Helpers that run a sweep and compare its output with the emulator's ground truth."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from collector.config.settings import PollSettings, Rates, RetrySettings, Settings
from collector.sweep.account import sweep_account
from collector.sweep.pipeline import SweepResult
from collector.sweep.shutdown import Shutdown

# Fields that differ between runs (ids, job timing, our own error wording).
VOLATILE = ("run_id", "job_id", "job_created", "job_completed", "message")


def fast_settings(endpoint: str, output: Path | str, **changes: Any) -> Settings:
    """Settings for a fast sweep of the emulator: generous rates, quick polls and retries."""
    base = Settings(
        endpoint_url=endpoint,
        output=str(output),
        rates=Rates(generate=400, get=800, get_with_entities=800, list=100),
        poll=PollSettings(first_delay=0.3, backoff=1.5, max_delay=2.0, job_deadline=60),
        retry=RetrySettings(base_delay=0.05, max_delay=0.5),
        max_jobs_in_flight=60,
        progress=False,
        shutdown_grace=2.0,
    )
    return replace(base, **changes)


async def sweep(settings: Settings) -> SweepResult:
    with anyio.fail_after(240):
        return await sweep_account(
            settings, run_id=uuid.uuid4().hex, shutdown=Shutdown(settings.shutdown_grace)
        )


def read_lines(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def normalized(records: list[dict[str, Any]]) -> Counter[str]:
    """Per-principal records without the volatile fields, as a multiset of canonical JSON."""
    return Counter(
        json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
        for r in records
        if r["record"] != "run"
    )


def assert_matches_truth(lines: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """Exactly the expected records, once each; each principal line after its rows; run last."""
    got, want = normalized(lines), normalized(truth)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{sum(missing.values())} missing, e.g. {list(missing)[:2]}; "
        f"{sum(extra.values())} extra, e.g. {list(extra)[:2]}"
    )
    assert lines[-1]["record"] == "run" and [r["record"] for r in lines].count("run") == 1
    closed: set[str] = set()
    for line in lines[:-1]:
        if line["record"] == "policy_document":
            continue  # no principal: one line per policy, written as one set
        assert line["principal_arn"] not in closed, f"row after principal line: {line}"
        if line["record"] == "principal":
            closed.add(line["principal_arn"])
    kinds = Counter(r["record"] for r in lines[:-1])
    counted: tuple[str, ...] = ("service", "entity", "principal", "error")
    if "policy_document" in kinds:
        counted += ("policy_document",)
    assert lines[-1]["records"] == {k: kinds.get(k, 0) for k in counted}
