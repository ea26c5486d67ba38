"""Per-second call counts: what a benchmark reads to see calls per operation over time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from collector.emulator import Faults
from collector.emulator.stats import SERVED, ServedCalls, current, recording
from tests.support.emulator_clients import EmulatorFactory, boto3_client


def test_counts_by_second_operation_and_outcome() -> None:
    """Calls are counted per wall-clock second, operation and outcome, in second order."""
    now = [100.2]
    stats = ServedCalls(clock=lambda: now[0])
    stats.record("ListUsers", SERVED)
    stats.record("ListUsers", SERVED)
    now[0] = 101.7
    stats.record("ListUsers", "Throttling")
    assert stats.rows() == [
        {"second": 100, "operation": "ListUsers", "outcome": SERVED, "calls": 2},
        {"second": 101, "operation": "ListUsers", "outcome": "Throttling", "calls": 1},
    ]


def test_write_leaves_a_complete_json_file(tmp_path: Path) -> None:
    """write() replaces the file in one step and leaves no .part behind."""
    stats = ServedCalls(clock=lambda: 5.0)
    stats.record("ListRoles", SERVED)
    path = tmp_path / "stats.json"
    stats.write(path)
    stats.write(path)
    assert json.loads(path.read_text())["calls"][0]["calls"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_recording_is_scoped() -> None:
    """The recorder is only current inside its block."""
    stats = ServedCalls()
    assert current() is None
    with recording(stats):
        assert current() is stats
    assert current() is None


def test_emulator_counts_served_and_throttled_calls(emulator_with: EmulatorFactory) -> None:
    """An emulator started while recording counts every IAM call, throttled ones by code."""
    stats = ServedCalls()
    with (
        recording(stats),
        emulator_with(faults=Faults(rate_limits={"ListUsers": 1})) as emu,
    ):
        iam = boto3_client(emu)
        iam.list_users()
        with pytest.raises(ClientError):
            iam.list_users()
        iam.list_roles()
        sts = boto3_client(emu, "sts")
        sts.get_caller_identity()  # not IAM: never counted
    totals: dict[tuple[str, str], int] = {}
    for row in stats.rows():
        key = (row["operation"], row["outcome"])
        totals[key] = totals.get(key, 0) + row["calls"]
    assert totals == {
        ("ListUsers", SERVED): 1,
        ("ListUsers", "Throttling"): 1,
        ("ListRoles", SERVED): 1,
    }
