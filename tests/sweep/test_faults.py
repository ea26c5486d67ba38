"""Fault injection through the emulator's knobs: nothing lost, nothing duplicated, errors as data."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from collector.config.settings import PollSettings
from collector.emulator import EmulatorOptions, Faults, running_emulator
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines, sweep

DEADLINE = PollSettings(first_delay=0.3, backoff=1.5, max_delay=1.0, job_deadline=4.0)

SCENARIOS = {
    "throttled": Faults(
        latency=0.2,
        throttle_share=0.3,
        rate_limits={"GenerateServiceLastAccessedDetails": 60, "GetServiceLastAccessedDetails": 120,
                     "GetServiceLastAccessedDetailsWithEntities": 120, "ListRoles": 2},
    ),
    "transient": Faults(latency=0.2, transient_share=0.05),
    "failed": Faults(latency=0.2, failed_share=0.05),
    "stuck": Faults(latency=0.2, stuck_share=0.05),
    "deleted": Faults(latency=0.2, deleted_share=0.05),
    "lost_jobs": Faults(latency=0.2, lost_job_share=0.05),
    "everything": Faults(
        latency=0.2, short_page_max=23, throttle_share=0.3, transient_share=0.05,
        failed_share=0.05, stuck_share=0.05, deleted_share=0.05, lost_job_share=0.05,
        rate_limits={"GenerateServiceLastAccessedDetails": 80, "GetServiceLastAccessedDetails": 160},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_sweep_under_faults_equals_ground_truth(name: str, tmp_path: Path) -> None:
    """Each fault alone, and all at once: the output is exactly the ground truth."""
    faults = SCENARIOS[name]
    with running_emulator(EmulatorOptions(principals=300, seed=5, faults=faults)) as emulator:
        settings = replace(fast_settings(emulator.endpoint, tmp_path / "out.jsonl"), poll=DEADLINE)
        result = await sweep(settings)
        truth = emulator.ground_truth()
    assert result.path is not None
    lines = read_lines(result.path)
    assert_matches_truth(lines, truth)
    errors = Counter((r["stage"], r["code"]) for r in lines if r["record"] == "error")
    expected = Counter((r["stage"], r["code"]) for r in truth if r["record"] == "error")
    assert errors == expected
    assert result.status == ("partial" if expected else "complete") == lines[-1]["status"]
    if name in ("throttled", "everything"):
        assert sum(lines[-1]["throttled_calls"].values()) > 50
    if name in ("failed", "stuck", "deleted", "everything"):
        assert expected, "the knob should have produced failures to check"
    if name == "lost_jobs":
        calls = lines[-1]["api_calls"]
        assert calls["GenerateServiceLastAccessedDetails"] > lines[-1]["records"]["principal"]


async def test_soak_two_thousand_principals_with_throttling_and_failures(tmp_path: Path) -> None:
    """A bounded soak: 2,000 principals, throttled and failing, finish with exact output."""
    faults = Faults(
        latency=0.3, throttle_share=0.1, transient_share=0.02, failed_share=0.02,
        deleted_share=0.01, short_page_max=50,
        rate_limits={"GenerateServiceLastAccessedDetails": 300, "GetServiceLastAccessedDetails": 500},
    )  # fmt: skip
    with running_emulator(EmulatorOptions(principals=2000, seed=9, faults=faults)) as emulator:
        result = await sweep(fast_settings(emulator.endpoint, tmp_path / "soak.jsonl.gz"))
        truth = emulator.ground_truth()
    assert result.path is not None
    assert_matches_truth(read_lines(result.path), truth)
