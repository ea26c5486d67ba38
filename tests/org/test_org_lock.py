"""One org run per manifest at a time: a second one exits 5 at once, naming the first."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import COLLECTOR, FAST_ENV, cli, killed_on_failure, one_line_error
from tests.support.org import org_args

pytestmark = pytest.mark.e2e  # every test runs the collector CLI


@pytest.fixture(scope="module")
def slow_org() -> Iterator[Organization]:
    """Three accounts with jobs that never finish: a run lasts until it is stopped."""
    options = OrgOptions(accounts=3, principals=10, seed=51, faults=Faults(stuck_share=0.5))
    with running_organization(options) as organization:
        yield organization


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COLLECTOR, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | FAST_ENV,
    )  # fmt: skip


def wait_for(proc: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, "the first run never got going"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


def test_a_second_org_run_on_the_same_manifest_exits_5(
    slow_org: Organization, tmp_path: Path
) -> None:
    """While a run holds out/manifest.json's lock, a second run with the same output and
    manifest (a shard retry beside a pod still terminating) exits 5 within seconds with one
    line naming the first run's pid, before any AWS call; it publishes no manifest."""
    first = start(org_args(slow_org, "--run-id", "n1"), tmp_path)
    with killed_on_failure(first):
        wait_for(first, lambda: any((tmp_path / "out").glob("*.part")))  # sweeping, so locked
        second = cli(*org_args(slow_org, "--run-id", "n1", "--resume"), cwd=tmp_path, timeout=60)
        one_line_error(second, 5, f"pid {first.pid}", "run n1", "out/manifest.json")
        assert "collector.sweep.started" not in second.stderr
        assert not (tmp_path / "out" / "manifest.json").exists()
        stop(first)


def test_a_second_org_run_on_the_same_s3_manifest_exits_5(
    slow_org: Organization, tmp_path: Path
) -> None:
    """The same with the manifest in S3: the lock is an object beside it, created only if
    absent (a conditional put), renewed while the run lasts; the second run exits 5 naming the
    first's host, pid and run; the lock object is gone once the first run ends."""
    s3: Any = boto3.client("s3", endpoint_url=slow_org.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="locked")
    args = org_args(slow_org, "--run-id", "n2", "--manifest", "s3://locked/m/{run_id}.json")
    args[args.index("out/{account_id}.jsonl")] = "s3://locked/o/{account_id}.jsonl.gz"

    def held() -> bool:
        try:
            s3.head_object(Bucket="locked", Key="m/n2.json.lock")
        except ClientError:
            return False
        return True

    first = start(args, tmp_path)
    with killed_on_failure(first):
        # Sweeping (an upload is open), so locked.
        wait_for(first, lambda: bool(s3.list_multipart_uploads(Bucket="locked").get("Uploads")))
        assert held()
        second = cli(*args, cwd=tmp_path, timeout=60)
        one_line_error(second, 5, f"pid {first.pid}", "run n2", "s3://locked/m/n2.json.lock")
        assert "collector.sweep.started" not in second.stderr
        stop(first)
    assert first.returncode == 143
    assert not held()
    assert "Contents" not in s3.list_objects_v2(Bucket="locked", Prefix="m/")
