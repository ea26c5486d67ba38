"""`collector sweep` through either path of the report calls gives the same rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, Faults, running_emulator
from tests.support.cli import cli
from tests.support.sweeping import assert_matches_truth, normalized, read_lines


def _started(stderr: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        json.loads(line) for line in stderr.splitlines() if line.startswith("{")
    ]
    (started,) = [event for event in events if event["event"] == "collector.sweep.started"]
    return started


@pytest.mark.e2e
def test_fast_report_calls_off_gives_the_same_service_and_entity_rows(tmp_path: Path) -> None:
    """COLLECTOR_FAST_REPORT_CALLS=false and the default: same service and entity rows (both
    the account's ground truth), each run's start-up line naming the path it took."""
    faults = Faults(latency=0.2, short_page_max=9, failed_share=0.05)
    options = EmulatorOptions(principals=60, seed=26, faults=faults, wide_share=0.05)
    rows: dict[str, list[dict[str, Any]]] = {}
    with running_emulator(options) as emu:
        for name, env in (("default", {}), ("off", {"COLLECTOR_FAST_REPORT_CALLS": "false"})):
            proc = cli(
                "sweep", "--endpoint-url", emu.endpoint, "--output", f"out/{name}.jsonl",
                "--granularity", "ACTION_LEVEL", "--no-progress", cwd=tmp_path, env=env,
            )  # fmt: skip
            assert proc.returncode == 1, proc.stderr[-3000:]  # failed_share: a partial run
            assert _started(proc.stderr)["report_calls"] == (
                "short" if name == "default" else "aiobotocore"
            )
            lines = read_lines(tmp_path / "out" / f"{name}.jsonl")
            assert_matches_truth(lines, emu.ground_truth("ACTION_LEVEL"))
            rows[name] = [line for line in lines if line["record"] in ("service", "entity")]
    assert normalized(rows["off"]) == normalized(rows["default"])
    kinds = {line["record"] for line in rows["default"]}
    assert kinds == {"service", "entity"} and len(rows["default"]) > 500
    assert any(line.get("tracked_actions") for line in rows["default"])
