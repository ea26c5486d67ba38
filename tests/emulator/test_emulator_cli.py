"""`collector emulate` as a subprocess, driven by the system AWS CLI as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

COLLECTOR = Path(sys.executable).with_name("collector")
# The Makefile passes AWS_CLI: the system `aws`, or one it installs into .venv/awscli.
AWS = os.environ.get("AWS_CLI") or shutil.which("aws")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`collector emulate --port 0` running; yields its endpoint (its first stdout line)."""
    process = subprocess.Popen(
        [str(COLLECTOR), "emulate", "--port", "0", "--principals", "20", "--seed", "3"],
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


def _aws(endpoint: str, home: Path, *args: str) -> dict:
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


def test_aws_cli_against_collector_emulate(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """generate, get and get-with-entities work from the AWS CLI, shaped like its docs' example."""
    endpoint, process = served
    assert endpoint.startswith("http://127.0.0.1:")
    groups = _aws(endpoint, tmp_path, "list-groups")["Groups"]
    arn = groups[0]["Arn"]
    job = _aws(endpoint, tmp_path, "generate-service-last-accessed-details", "--arn", arn)
    details = _aws(
        endpoint, tmp_path, "get-service-last-accessed-details", "--job-id", job["JobId"]
    )
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


def test_emulate_exits_zero_on_sigint(served: tuple[str, subprocess.Popen[str]]) -> None:
    """SIGINT stops the server cleanly: exit 0, no traceback, nothing more on stdout."""
    _, process = served
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert stdout == ""
    assert "Traceback" not in stderr


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
    ):
        assert option in done.stdout
