"""S3 output against the emulator's S3 (moto, same endpoint): whole objects only, resume, errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.cli import (
    COLLECTOR,
    FAST_ENV,
    cli,
    killed_on_failure,
    one_line_error,
    principals_done,
    wait_for_stderr,
)
from tests.support.sweeping import assert_matches_truth

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

ACCOUNT = "314159265358"
BUCKET = "audit-exports"
SHOW_PROGRESS = {"COLLECTOR_PROGRESS": "true"}  # the status line on stderr, a pipe here


@pytest.fixture(scope="module")
def account() -> Iterator[Emulator]:
    faults = Faults(latency=0.2, rate_limits={"GenerateServiceLastAccessedDetails": 40})
    options = EmulatorOptions(principals=250, seed=17, faults=faults, account_id=ACCOUNT)
    with running_emulator(options) as emu:
        s3(emu).create_bucket(Bucket=BUCKET)
        yield emu


def s3(emu: Emulator) -> Any:
    return boto3.client(
        "s3", endpoint_url=emu.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def read_object(emu: Emulator, key: str) -> list[dict[str, Any]]:
    body = s3(emu).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def uploads(emu: Emulator) -> list[Any]:
    return list(s3(emu).list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def sweep_args(emu: Emulator, prefix: str, *extra: str, progress: bool = False) -> list[str]:
    """`collector sweep` to s3://BUCKET/PREFIX/, with no status line unless `progress`."""
    output = f"s3://{BUCKET}/{prefix}/{{account_id}}.jsonl.gz"
    quiet = [] if progress else ["--no-progress"]
    return ["sweep", "--endpoint-url", emu.endpoint, "--output", output, *quiet, *extra]


def start_showing_progress(emu: Emulator, prefix: str, cwd: Any) -> subprocess.Popen[str]:
    """A sweep to S3 in the background, its status line on stderr (a pipe) to wait on."""
    return subprocess.Popen(
        [COLLECTOR, *sweep_args(emu, prefix, progress=True)], cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env=os.environ | FAST_ENV | SHOW_PROGRESS,
    )  # fmt: skip


def test_a_sweep_to_s3_publishes_one_whole_encrypted_object(
    account: Emulator, tmp_path: Any
) -> None:
    """The object read back equals the ground truth; encrypted; no upload or .part lingers."""
    proc = cli(*sweep_args(account, "plain"), cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    key = f"plain/{ACCOUNT}.jsonl.gz"
    assert_matches_truth(read_object(account, key), account.ground_truth())
    head = s3(account).head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    listed = [
        o["Key"] for o in s3(account).list_objects_v2(Bucket=BUCKET, Prefix="plain/")["Contents"]
    ]
    assert listed == [key]
    assert uploads(account) == []
    assert list(tmp_path.iterdir()) == []  # nothing on the local disk


def test_sigterm_then_resume_gives_the_same_object(account: Emulator, tmp_path: Any) -> None:
    """SIGTERM mid-sweep: KEY.part holds the complete principals, no upload is left open;
    --resume finishes the same object an uninterrupted sweep writes."""
    proc = start_showing_progress(account, "stopped", tmp_path)
    with killed_on_failure(proc):
        wait_for_stderr(proc, lambda seen: principals_done(seen) >= 40)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    key = f"stopped/{ACCOUNT}.jsonl.gz"
    part = read_object(account, key + ".part")
    assert part[-1]["record"] == "run" and part[-1]["status"] == "interrupted"
    assert 40 <= part[-1]["records"]["principal"] < 250
    assert uploads(account) == []
    names = {
        o["Key"] for o in s3(account).list_objects_v2(Bucket=BUCKET, Prefix="stopped/")["Contents"]
    }
    assert names == {key + ".part"}
    resumed = cli(*sweep_args(account, "stopped", "--resume"), cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = read_object(account, key)
    assert_matches_truth(lines, account.ground_truth())
    assert len({line["run_id"] for line in lines}) == 1
    names = {
        o["Key"] for o in s3(account).list_objects_v2(Bucket=BUCKET, Prefix="stopped/")["Contents"]
    }
    assert names == {key} and uploads(account) == []


def test_a_killed_upload_is_recovered_by_resume(account: Emulator, tmp_path: Any) -> None:
    """SIGKILL mid-sweep leaves a multipart upload open; the next --resume settles it (this
    sweep is far below one 8 MiB part, so there is no part to keep and it is aborted), writes
    the whole object, and leaves no upload behind."""
    proc = start_showing_progress(account, "killed", tmp_path)
    with killed_on_failure(proc):
        wait_for_stderr(proc, lambda seen: principals_done(seen) >= 40)  # mid-sweep
        assert uploads(account)
        proc.kill()
        proc.wait(timeout=30)
    assert uploads(account)  # what SIGKILL leaves: the next run deals with it
    resumed = cli(*sweep_args(account, "killed", "--resume"), cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_matches_truth(read_object(account, f"killed/{ACCOUNT}.jsonl.gz"), account.ground_truth())
    assert uploads(account) == []


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], ["NoSuchBucket"]),
        (["--s3-bucket-owner", "111122223333"], ["AccessDenied", "--s3-bucket-owner"]),
    ],
    ids=["missing-bucket", "wrong-owner"],
)
def test_s3_errors_are_exit_4_in_one_line(
    account: Emulator, tmp_path: Any, extra: list[str], words: list[str]
) -> None:
    """No such bucket, or a bucket owned by another account: one line, exit 4, no upload."""
    bucket = "no-such-bucket" if not extra else BUCKET
    proc = cli(
        "sweep", "--endpoint-url", account.endpoint, "--output",
        f"s3://{bucket}/x/{{account_id}}.jsonl.gz", "--no-progress", *extra, cwd=tmp_path,
    )  # fmt: skip
    one_line_error(proc, 4, f"s3://{bucket}/", *words)
    assert uploads(account) == []
