"""`collector emulate` as a subprocess, driven by the system AWS CLI as a user would."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, LogNormal
from collector.emulator.command import add_arguments, options_from

COLLECTOR = Path(sys.executable).with_name("collector")
# The Makefile passes AWS_CLI: the system `aws`, or one it installs into .venv/awscli.
AWS = os.environ.get("AWS_CLI") or shutil.which("aws")


def _serve(*options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`collector emulate --port 0 OPTIONS` running; yields its endpoint (its first stdout line)."""
    process = subprocess.Popen(
        [str(COLLECTOR), "emulate", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=30)
    try:
        assert lines, "collector emulate printed no endpoint within 30 s"
        yield lines[0].rstrip("\n"), process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.fixture
def served() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A small account with the default job latency."""
    yield from _serve("--principals", "20", "--seed", "3")


@pytest.fixture
def served_big() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """120 principals (54 users, 12 groups), jobs instant."""
    yield from _serve("--principals", "120", "--seed", "3", "--latency", "0")


def _aws(endpoint: str, home: Path, *args: str) -> dict[str, Any]:
    assert AWS is not None
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [AWS, "--endpoint-url", endpoint, "--output", "json", "iam", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.e2e
def test_aws_cli_against_collector_emulate(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """generate, get and get-with-entities work from the AWS CLI, shaped like its docs' example."""
    endpoint, process = served
    assert endpoint.startswith("http://127.0.0.1:")
    groups = _aws(endpoint, tmp_path, "list-groups")["Groups"]
    arn = groups[0]["Arn"]
    job = _aws(endpoint, tmp_path, "generate-service-last-accessed-details", "--arn", arn)
    # Jobs take a lognormal moment by default: poll as a user would.
    for _ in range(120):
        details = _aws(
            endpoint, tmp_path, "get-service-last-accessed-details", "--job-id", job["JobId"]
        )
        if details["JobStatus"] != "IN_PROGRESS":
            break
        time.sleep(0.25)
    namespace = details["ServicesLastAccessed"][0]["ServiceNamespace"]
    entities = _aws(
        endpoint,
        tmp_path,
        "get-service-last-accessed-details-with-entities",
        "--job-id",
        job["JobId"],
        "--service-namespace",
        namespace,
    )
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)

    assert details["JobStatus"] == "COMPLETED" and details["JobType"] == "SERVICE_LEVEL"
    assert {"JobCreationDate", "JobCompletionDate", "IsTruncated"} <= details.keys()
    assert details["JobCreationDate"].endswith("Z")
    assert {"ServiceName", "ServiceNamespace"} <= details["ServicesLastAccessed"][0].keys()
    assert list(entities) == [
        "JobStatus",
        "JobCreationDate",
        "JobCompletionDate",
        "EntityDetailsList",
        "IsTruncated",
    ]
    first = entities["EntityDetailsList"][0]
    assert list(first["EntityInfo"]) == ["Arn", "Name", "Type", "Id", "Path"]
    assert first["EntityInfo"]["Type"] == "USER"
    assert process.returncode == 0
    assert "Traceback" not in stderr


@pytest.mark.e2e
def test_emulate_exits_zero_on_sigint(served: tuple[str, subprocess.Popen[str]]) -> None:
    """SIGINT stops the server cleanly: exit 0, no traceback, nothing more on stdout."""
    _, process = served
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert stdout == ""
    assert "Traceback" not in stderr


@pytest.mark.e2e
def test_emulate_help_lists_every_knob() -> None:
    """`collector emulate --help` documents the port, size, seed and every fault knob."""
    done = subprocess.run(
        [str(COLLECTOR), "emulate", "--help"], capture_output=True, text=True, check=True
    )
    for option in (
        "--port",
        "--principals",
        "--seed",
        "--rate",
        "--throttle-share",
        "--transient-share",
        "--latency",
        "--failed-share",
        "--stuck-share",
        "--deleted-share",
        "--lost-job-share",
        "--short-page-max",
        "--access-denied",
        "--markerless",
    ):
        assert option in done.stdout


@pytest.mark.e2e
@pytest.mark.parametrize(("command", "key"), [("list-users", "Users"), ("list-groups", "Groups")])
def test_aws_cli_pages_list_calls(
    served_big: tuple[str, subprocess.Popen[str]], tmp_path: Path, command: str, key: str
) -> None:
    """`--max-items 7 --no-paginate` gives 7 and a Marker; auto-pagination reassembles all."""
    endpoint, _ = served_big
    name = "UserName" if key == "Users" else "GroupName"
    page = _aws(endpoint, tmp_path, command, "--max-items", "7", "--no-paginate")
    after = _aws(
        endpoint, tmp_path, command, "--max-items", "7", "--no-paginate", "--marker", page["Marker"]
    )
    whole = _aws(endpoint, tmp_path, command, "--max-items", "1000", "--no-paginate")
    paged = _aws(endpoint, tmp_path, command, "--page-size", "5")

    names = [item[name] for item in whole[key]]
    assert len(page[key]) == 7 and page["IsTruncated"] is True and page["Marker"]
    assert [item[name] for item in page[key] + after[key]] == names[:14]
    assert whole["IsTruncated"] is False and "Marker" not in whole
    assert len(names) == {"Users": 54, "Groups": 12}[key]
    assert [item[name] for item in paged[key]] == names
    assert "NextToken" not in paged


def test_emulate_jobs_take_a_lognormal_moment_by_default() -> None:
    """`collector emulate` defaults to lognormal job latency; `--latency 0` keeps jobs instant."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = options_from(parser.parse_args([])).faults.latency
    instant = options_from(parser.parse_args(["--latency", "0"])).faults.latency
    fixed = options_from(parser.parse_args(["--latency", "lognormal:3:0.2"])).faults.latency
    assert isinstance(default, LogNormal) and default.median > 0 and default.sigma > 0
    assert instant == 0.0
    assert fixed == LogNormal(3.0, 0.2)
    assert EmulatorOptions().faults.latency == 0.0  # in-process default: instant, for tests
