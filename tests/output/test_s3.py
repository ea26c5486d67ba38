"""S3 output against the emulator's S3 (moto, same endpoint): whole objects only, resume, errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
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
# A short window, so a killed run's upload counts as dead seconds after its last heartbeat
# (S3's timestamps have whole seconds: the tests wait 1.5 s more).
ORPHAN_AFTER = 2.0
ORPHAN_ENV = {"COLLECTOR_S3_ORPHAN_AFTER": str(ORPHAN_AFTER)}
LIVE_BUCKET = "audit-exports-live"  # moto's bucket names are one namespace for every account


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


def read_object(emu: Emulator, key: str, bucket: str = BUCKET) -> list[dict[str, Any]]:
    body = s3(emu).get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def uploads(emu: Emulator, bucket: str = BUCKET) -> list[Any]:
    return list(s3(emu).list_multipart_uploads(Bucket=bucket).get("Uploads", []))


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
    time.sleep(ORPHAN_AFTER + 1.5)  # its heartbeats stopped: silent for longer than the window
    resumed = cli(
        *sweep_args(account, "killed", "--resume"), cwd=tmp_path, timeout=240, env=ORPHAN_ENV
    )
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


def _start(args: list[str], cwd: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COLLECTOR, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=os.environ | FAST_ENV | ORPHAN_ENV,
    )  # fmt: skip


def _wait_for_upload(
    emu: Emulator, proc: subprocess.Popen[str], prefix: str, bucket: str = BUCKET
) -> Any:
    deadline = time.monotonic() + 60
    while not (found := [u for u in uploads(emu, bucket) if u["Key"].startswith(prefix)]):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    return found[0]


def test_a_fresh_run_aborts_the_upload_a_killed_run_left(account: Emulator, tmp_path: Any) -> None:
    """`{run_id}` keys: the next run (not --resume) aborts the upload a SIGKILLed run left."""
    output = f"s3://{BUCKET}/runs/{{account_id}}/{{run_id}}.jsonl.gz"
    args = ["sweep", "--endpoint-url", account.endpoint, "--output", output, "--no-progress"]
    proc = _start(args, tmp_path)
    with killed_on_failure(proc):
        left = _wait_for_upload(account, proc, f"runs/{ACCOUNT}/")
        proc.kill()
        proc.wait(timeout=30)
    time.sleep(ORPHAN_AFTER + 1.5)  # its heartbeats stopped: silent for longer than the window
    fresh = cli(*args, cwd=tmp_path, timeout=240, env=ORPHAN_ENV)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert '"collector.s3.orphan_aborted"' in fresh.stderr and left["UploadId"] in fresh.stderr
    assert uploads(account) == []


def test_a_live_sweeps_upload_is_never_aborted(tmp_path: Any) -> None:
    """A second run of the template while a slow first one still writes: both publish whole."""
    faults = Faults(latency=0.2, rate_limits={"GenerateServiceLastAccessedDetails": 8})
    options = EmulatorOptions(principals=160, seed=23, faults=faults, account_id="271828182845")
    with running_emulator(options) as emu:
        s3(emu).create_bucket(Bucket=LIVE_BUCKET)
        truth = emu.ground_truth()
        output = f"s3://{LIVE_BUCKET}/live/{{account_id}}/{{run_id}}.jsonl.gz"
        args = ["sweep", "--endpoint-url", emu.endpoint, "--output", output, "--no-progress"]
        first = _start(args, tmp_path)
        with killed_on_failure(first):
            upload = _wait_for_upload(emu, first, "live/", LIVE_BUCKET)
            time.sleep(ORPHAN_AFTER + 1.5)  # older than the window: only heartbeats say "alive"
            # The second run sweeps one user, so it is done while the first still writes.
            user = next(r["principal_name"] for r in truth if r["principal_type"] == "user"
                        and r["record"] == "principal")  # fmt: skip
            one = ORPHAN_ENV | {"COLLECTOR_DISCOVERY_KINDS": "user",
                                "COLLECTOR_DISCOVERY_INCLUDE": user}  # fmt: skip
            second = cli(*args, cwd=tmp_path, timeout=240, env=one)
            assert first.poll() is None, "the first sweep must outlast the second for this test"
            _, first_err = first.communicate(timeout=240)
        assert second.returncode == 0, second.stderr[-2000:]
        assert '"collector.s3.upload_in_use"' in second.stderr
        assert upload["UploadId"] in second.stderr
        assert first.returncode == 0, first_err[-2000:]
        keys = [item["Key"] for item in s3(emu).list_objects_v2(Bucket=LIVE_BUCKET)["Contents"]]
        assert len(keys) == 2 and not any(key.endswith(".part") for key in keys)
        whole = [read_object(emu, key, LIVE_BUCKET) for key in keys]
        assert sorted(len(lines) for lines in whole)[0] < len(truth)  # the one-user sweep
        assert any(len(lines) == len(truth) + 1 for lines in whole)
        for lines in whole:
            if len(lines) == len(truth) + 1:
                assert_matches_truth(lines, truth)
        assert uploads(emu, LIVE_BUCKET) == []
