"""An answer truncated without a Marker is malformed: retried, then an error, never a short list."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from collector.aws.iam import Caller
from collector.config.settings import RetrySettings
from collector.emulator import EmulatorOptions, Faults, running_emulator
from collector.errors import RetriesExhaustedError
from collector.models import CallStats
from tests.support.cli import cli, one_line_error
from tests.support.sweeping import fast_settings, read_lines, sweep

GET = "GetServiceLastAccessedDetails"
GET_WITH_ENTITIES = "GetServiceLastAccessedDetailsWithEntities"


@pytest.mark.e2e
def test_a_listing_without_its_marker_is_never_published_complete(tmp_path: Path) -> None:
    """ListUsers truncated without a Marker: exit 3 in one line, nothing published."""
    faults = Faults(short_page_max=4, markerless=frozenset({"ListUsers"}))
    options = EmulatorOptions(principals=108, seed=3, faults=faults, account_id="252525252525")
    with running_emulator(options) as emu:
        proc = cli(
            "sweep", "--endpoint-url", emu.endpoint, "--output", "out.jsonl", "--no-progress",
            cwd=tmp_path, env={"COLLECTOR_RETRY_MAX_ATTEMPTS": "3"},
        )  # fmt: skip
    one_line_error(proc, 3, "ListUsers", "IsTruncated", "Marker")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("operation", [GET, GET_WITH_ENTITIES])
async def test_report_pages_without_their_marker_become_error_records(
    operation: str, tmp_path: Path
) -> None:
    """A report page truncated without a Marker: the principal is an error, never cut short."""
    faults = Faults(short_page_max=3, markerless=frozenset({operation}))
    options = EmulatorOptions(principals=60, seed=8, faults=faults, account_id="262626262626")
    with running_emulator(options) as emu:
        settings = fast_settings(emu.endpoint, tmp_path / "out.jsonl")
        # Every principal is let to fail on its own: the breaker is not what this pins.
        settings = replace(
            settings,
            retry=replace(settings.retry, max_attempts=3, breaker_failures=10_000),
            entities="all",
        )
        result = await sweep(settings)
        truth = emu.ground_truth(entities="all")
    assert result.path is not None
    lines = read_lines(result.path)
    assert result.status == "partial" == lines[-1]["status"]
    failed = {r["principal_arn"] for r in lines if r["record"] == "error"}
    assert failed
    assert {r["code"] for r in lines if r["record"] == "error"} == {"MalformedResponse"}
    # Whoever has a principal line has every row the truth has: no list cut short.
    rows = Counter((r["record"], r["principal_arn"]) for r in lines)
    for arn in {r["principal_arn"] for r in lines if r["record"] == "principal"}:
        for kind in ("service", "entity"):
            want = sum(1 for t in truth if t["record"] == kind and t["principal_arn"] == arn)
            assert rows[(kind, arn)] == want, (kind, arn)
    assert failed.isdisjoint(r["principal_arn"] for r in lines if r["record"] == "principal")


async def test_every_marker_paged_answer_is_checked_by_the_caller() -> None:
    """Any IAM answer truncated without a Marker (GetOrganizationsAccessReport too) is retried."""
    answers: list[dict[str, Any]] = [
        {"IsTruncated": True, "AccessDetails": []},
        {"IsTruncated": True, "Marker": "", "AccessDetails": []},
        {"IsTruncated": True, "Marker": "m1", "AccessDetails": []},
    ]

    async def send() -> dict[str, Any]:
        return answers.pop(0)

    async def no_sleep(seconds: float) -> None:
        pass

    caller = Caller(RetrySettings(max_attempts=3), CallStats(), sleep=no_sleep)
    with anyio.fail_after(10):
        assert (await caller.call("GetOrganizationsAccessReport", send))["Marker"] == "m1"
        answers[:] = [{"IsTruncated": True}] * 3
        with pytest.raises(RetriesExhaustedError, match=r"MalformedResponse.*Marker"):
            await caller.call("GetOrganizationsAccessReport", send)
    assert caller.stats.calls["GetOrganizationsAccessReport"] == 6
