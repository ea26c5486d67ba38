"""`collector emulate --accounts N` as a subprocess, driven by the system AWS CLI."""

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
from typing import Any

import pytest

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

COLLECTOR = Path(sys.executable).with_name("collector")
# The Makefile passes AWS_CLI: the system `aws`, or one it installs into .venv/awscli.
AWS = os.environ.get("AWS_CLI") or shutil.which("aws")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An organisation of 4 accounts (one without the role) demanding an external id."""
    process = subprocess.Popen(
        [
            str(COLLECTOR),
            "emulate",
            "--accounts",
            "4",
            "--principals",
            "15",
            "--seed",
            "4",
            "--without-role",
            "1",
            "--external-id",
            "ext-1234",
            "--scp-deny",
            "s3",
        ],
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


def _run(
    endpoint: str, home: Path, *args: str, keys: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert AWS is not None, "no AWS CLI: the Makefile passes AWS_CLI"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **(keys or {}),
    }
    return subprocess.run(
        [AWS, "--endpoint-url", endpoint, "--output", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_aws_cli_lists_the_org_and_assumes_the_audit_role(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """list-accounts, assume-role (with and without the external id, into an account without
    the role), and the assumed credentials' get-caller-identity, all from the AWS CLI."""
    endpoint, process = served
    accounts = _json(_run(endpoint, tmp_path, "organizations", "list-accounts"))["Accounts"]
    assert len(accounts) == 4 and {a["State"] for a in accounts} == {"ACTIVE"}
    organization = _json(_run(endpoint, tmp_path, "organizations", "describe-organization"))
    management = organization["Organization"]["MasterAccountId"]
    members = [a["Id"] for a in accounts if a["Id"] != management]

    def assume(account_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return _run(
            endpoint,
            tmp_path,
            "sts",
            "assume-role",
            "--role-arn",
            f"arn:aws:iam::{account_id}:role/collector-audit",
            "--role-session-name",
            "cli-test",
            *extra,
        )

    granted = _json(assume(members[0], "--external-id", "ext-1234"))["Credentials"]
    without_id = assume(members[0])
    no_role = assume(members[-1], "--external-id", "ext-1234")
    for refused in (without_id, no_role):
        assert refused.returncode != 0
        assert "AccessDenied" in refused.stderr
        assert "is not authorized to perform: sts:AssumeRole on resource" in refused.stderr
    identity = _json(
        _run(
            endpoint,
            tmp_path,
            "sts",
            "get-caller-identity",
            keys={
                "AWS_ACCESS_KEY_ID": granted["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": granted["SecretAccessKey"],
                "AWS_SESSION_TOKEN": granted["SessionToken"],
            },
        )
    )
    assert identity["Account"] == members[0]
    assert identity["Arn"].endswith(":assumed-role/collector-audit/cli-test")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_aws_cli_calls_both_organizations_access_report_operations(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """generate-organizations-access-report and get-organizations-access-report from the CLI."""
    endpoint, _ = served
    roots = _json(_run(endpoint, tmp_path, "organizations", "list-roots"))["Roots"]
    organization = _json(_run(endpoint, tmp_path, "organizations", "describe-organization"))
    root_path = f"{organization['Organization']['Id']}/{roots[0]['Id']}"
    job = _json(
        _run(
            endpoint,
            tmp_path,
            "iam",
            "generate-organizations-access-report",
            "--entity-path",
            root_path,
        )
    )
    report = _json(
        _run(
            endpoint,
            tmp_path,
            "iam",
            "get-organizations-access-report",
            "--job-id",
            job["JobId"],
            "--sort-key",
            "LAST_AUTHENTICATED_TIME_DESCENDING",
        )
    )
    assert report["JobStatus"] == "COMPLETED"
    assert report["NumberOfServicesAccessible"] >= len(report["AccessDetails"]) > 0
    first = report["AccessDetails"][0]
    assert list(first) == [
        "ServiceName",
        "ServiceNamespace",
        "Region",
        "EntityPath",
        "LastAuthenticatedTime",
        "TotalAuthenticatedEntities",
    ]
    assert first["EntityPath"].startswith(root_path + "/")
    assert first["LastAuthenticatedTime"].endswith("Z")
    bad = _run(
        endpoint,
        tmp_path,
        "iam",
        "get-organizations-access-report",
        "--job-id",
        job["JobId"],
        "--sort-key",
        "NEWEST",
    )
    assert bad.returncode != 0 and "ValidationError" in bad.stderr


def test_org_knobs_without_accounts_are_a_usage_error() -> None:
    """An organisation knob without --accounts: one line on stderr, exit 2."""
    done = subprocess.run(
        [str(COLLECTOR), "emulate", "--suspended", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["collector emulate: --suspended needs --accounts N"]
    too_many = subprocess.run(
        [str(COLLECTOR), "emulate", "--accounts", "2", "--without-role", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert too_many.returncode == 2
    assert len(too_many.stderr.strip().splitlines()) == 1


def test_emulate_help_lists_the_organisation_knobs() -> None:
    """`collector emulate --help` documents every organisation option."""
    done = subprocess.run(
        [str(COLLECTOR), "emulate", "--help"], capture_output=True, text=True, check=True
    )
    for option in (
        "--accounts",
        "--audit-role",
        "--external-id",
        "--suspended",
        "--pending-closure",
        "--without-role",
        "--scp-deny",
        "--report-latency",
        "--report-failed-share",
    ):
        assert option in done.stdout
