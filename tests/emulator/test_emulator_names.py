"""Names and paths with every character IAM allows, seeded and carried exactly into JSONL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import Emulator, Faults
from tests.support.emulator_clients import EmulatorFactory, of_kind

COLLECTOR = Path(sys.executable).with_name("collector")
SPECIAL = set("+=,.@_-")
NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
PATH = re.compile(r"/|/[\x21-\x7e]+/")
# Fields that differ between runs or are the collector's own wording.
VOLATILE = ("run_id", "job_id", "job_created", "job_completed", "message")


def _names_and_paths(truth: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    principals = of_kind(truth, "principal")
    entities = of_kind(truth, "entity")
    names = [r["principal_name"] for r in principals] + [r["entity_name"] for r in entities]
    paths = [r["principal_path"] for r in principals] + [r["entity_path"] for r in entities]
    return names, paths


def test_seeded_names_use_every_character_iam_allows(emulator_with: EmulatorFactory) -> None:
    """Every kind has decorated names; together they hold +=,.@_- and nested /a/b/c/ paths."""
    with emulator_with(principals=200) as emu:
        truth = emu.ground_truth(entities="all")
    names, paths = _names_and_paths(truth)
    assert {c for name in names for c in name} >= SPECIAL
    assert all(NAME.fullmatch(name) for name in names)
    assert all(PATH.fullmatch(path) for path in paths)
    assert any(path.count("/") >= 4 for path in paths)  # /org/<team>/<env>/
    decorated = Counter(
        r["principal_type"]
        for r in of_kind(truth, "principal")
        if {"+", "=", ",", "@", "_"} & set(r["principal_name"])
    )
    assert set(decorated) == {"user", "group", "role", "policy"}


def _sweep(emu: Emulator, output: Path) -> subprocess.CompletedProcess[str]:
    """`collector sweep` in a subprocess, as a user runs it, with dummy keys."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "COLLECTOR_"))
    }
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(output.parent / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(output.parent / "aws-credentials"),
    }
    return subprocess.run(
        [
            str(COLLECTOR),
            "sweep",
            "--endpoint-url",
            emu.endpoint,
            "--output",
            str(output),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _comparable(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
        for r in records
        if r["record"] != "run"
    )


@pytest.mark.e2e
def test_sweep_round_trips_names_and_paths_exactly(
    emulator_with: EmulatorFactory, tmp_path: Path
) -> None:
    """A CLI sweep writes every name and path byte for byte, discovering through IAM's pages."""
    # Discovery asks for MaxItems=1000; short pages make it follow Markers all the same.
    with emulator_with(principals=120, faults=Faults(short_page_max=40)) as emu:
        output = tmp_path / "out.jsonl"
        done = _sweep(emu, output)
        truth = emu.ground_truth()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert lines[-1]["record"] == "run" and lines[-1]["status"] == "complete"
    assert lines[-1]["api_calls"]["ListUsers"] >= 2
    got, want = _comparable(lines), _comparable(truth)
    assert got == want, f"missing {list(want - got)[:2]}, extra {list(got - want)[:2]}"
    names, paths = _names_and_paths(lines[:-1])
    assert {c for name in names for c in name} >= SPECIAL
    assert any(path.count("/") >= 4 for path in paths)
    raw = output.read_text(encoding="utf-8")
    assert all(f'"{name}"' in raw for name in _names_and_paths(truth)[0])  # unescaped
