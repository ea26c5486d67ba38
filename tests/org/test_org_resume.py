"""Org `--resume`: finished accounts found where they were published (S3 too), only this run's."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import COLLECTOR, FAST_ENV, cli, killed_on_failure
from tests.support.org import manifest_of, org_args, stopped_mid_org_sweep
from tests.support.sweeping import read_lines

pytestmark = pytest.mark.e2e  # every test runs the collector CLI


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Four accounts, all reachable, jobs of a fifth of a second."""
    options = OrgOptions(accounts=4, principals=12, seed=41, faults=Faults(latency=0.2))
    with running_organization(options) as organization:
        yield organization


def s3_of(org: Organization) -> Any:
    return boto3.client("s3", endpoint_url=org.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def test_s3_resume_finds_the_accounts_already_published(org: Organization, tmp_path: Path) -> None:
    """An org run to S3 that finished, run again with --resume and the same run id: every
    account's object, and the organizations access report beside the manifest, is found with
    this run's run line (gzip read to its end; the plain report's tail), so none is made again
    (no object is written twice) and the manifest is published again, the same."""
    s3 = s3_of(org)
    s3.create_bucket(Bucket="resumed")
    args = org_args(org, "--run-id", "night-7", "--org-access-report")
    args[args.index("out/{account_id}.jsonl")] = "s3://resumed/o/{account_id}.jsonl.gz"
    first = cli(*args, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    written = {
        item["Key"]: item["LastModified"]
        for item in s3.list_objects_v2(Bucket="resumed", Prefix="o/")["Contents"]
    }
    assert len(written) == len(org.accounts) + 2  # the objects, the report and the manifest
    time.sleep(1.1)  # S3's LastModified has whole seconds: a rewrite must show
    again = cli(*args, "--resume", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("collector.org.account_already_done") == len(org.accounts)
    assert "collector.sweep.started" not in again.stderr
    assert "collector.org_access.already_done" in again.stderr
    now = {
        item["Key"]: item["LastModified"]
        for item in s3.list_objects_v2(Bucket="resumed", Prefix="o/")["Contents"]
    }
    manifest_key = "o/manifest.json"
    assert {k: v for k, v in now.items() if k != manifest_key} == {
        k: v for k, v in written.items() if k != manifest_key
    }
    manifest = json.loads(s3.get_object(Bucket="resumed", Key=manifest_key)["Body"].read())
    assert {e["outcome"] for e in manifest["accounts"]} == {"complete"}
    assert manifest["org_access"]["output"] == "s3://resumed/o/org-access-night-7.jsonl"
    for entry in manifest["accounts"]:
        key = entry["output"].removeprefix("s3://resumed/")
        body = gzip.decompress(s3.get_object(Bucket="resumed", Key=key)["Body"].read())
        assert json.loads(body.splitlines()[-1])["records"] == entry["records"]


def test_resume_of_another_run_adopts_none_of_its_parts(org: Organization, tmp_path: Path) -> None:
    """Run d1 stopped (SIGTERM) with an account finished and another in its .part; `--resume`
    of run d2 over the same output: every file its manifest names holds d2's lines only (d1's
    .part is not carried over, d1's published files are swept again)."""
    out = tmp_path / "out"
    args = org_args(org, "--run-id", "d1", "--max-accounts-in-flight", "1")
    returncode, stderr = stopped_mid_org_sweep(args, tmp_path)
    assert returncode == 143, stderr[-2000:]
    parts = [path.name for path in out.glob("*.part")]
    assert parts and read_lines(out / parts[0])[0]["run_id"] == "d1"
    resumed = cli(*org_args(org, "--run-id", "d2", "--resume"), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = manifest_of(tmp_path)
    assert manifest["run_id"] == "d2"
    assert {e["outcome"] for e in manifest["accounts"]} == {"complete"}
    for entry in manifest["accounts"]:
        runs = {line["run_id"] for line in read_lines(tmp_path / entry["output"])}
        assert runs == {"d2"}, (entry["output"], runs)
    assert "collector.resume.other_run" in resumed.stderr


def test_s3_resume_of_another_run_adopts_none_of_its_parts(
    org: Organization, tmp_path: Path
) -> None:
    """The same in S3: run d1 stopped with an account's `KEY.part` object left; `--resume` of
    run d2 starts that account afresh, and every object d2's manifest names holds d2's lines."""
    s3 = s3_of(org)
    s3.create_bucket(Bucket="other-run")
    args = org_args(org, "--run-id", "d1", "--max-accounts-in-flight", "1")
    args[args.index("out/{account_id}.jsonl")] = "s3://other-run/o/{account_id}.jsonl.gz"
    proc = subprocess.Popen(
        [COLLECTOR, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ | FAST_ENV,
    )  # fmt: skip

    def keys() -> list[str]:
        return [item["Key"] for item in s3.list_objects_v2(Bucket="other-run").get("Contents", [])]

    def sweeping() -> bool:  # an account published, the next one's upload open
        uploads = s3.list_multipart_uploads(Bucket="other-run").get("Uploads")
        return bool(uploads) and any(key.endswith(".jsonl.gz") for key in keys())

    with killed_on_failure(proc):
        deadline = time.monotonic() + 120
        while not sweeping():
            assert proc.poll() is None and time.monotonic() < deadline, "no account finished"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    parts = [key for key in keys() if key.endswith(".part")]
    assert parts, keys()  # the account in flight was stopped into its KEY.part
    args[args.index("d1")] = "d2"
    resumed = cli(*args, "--resume", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(s3.get_object(Bucket="other-run", Key="o/manifest.json")["Body"].read())
    assert manifest["run_id"] == "d2"
    for entry in manifest["accounts"]:
        key = entry["output"].removeprefix("s3://other-run/")
        body = gzip.decompress(s3.get_object(Bucket="other-run", Key=key)["Body"].read())
        assert {json.loads(line)["run_id"] for line in body.splitlines()} == {"d2"}, key
    assert "collector.resume.other_run" in resumed.stderr
