"""Organisation sweeps through the CLI against an emulated organisation: files, manifest, resume."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import COLLECTOR, FAST_ENV, cli, killed_on_failure, one_line_error
from tests.support.org import ROLE, manifest_of, org_args, stopped_mid_org_sweep
from tests.support.sweeping import assert_matches_truth, read_lines

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Six accounts: the management account, three to sweep, one without the role, one suspended."""
    options = OrgOptions(
        accounts=6, principals=40, seed=4, without_role=1, suspended=1,
        faults=Faults(latency=0.1, rate_limits={"GenerateServiceLastAccessedDetails": 40}),
    )  # fmt: skip
    with running_organization(options) as organization:
        yield organization


def expected_outcomes(org: Organization) -> dict[str, str]:
    outcomes = {}
    for account in org.accounts:
        if account.state == "SUSPENDED":
            outcomes[account.id] = "suspended"
        elif not account.audit_role and not account.management:
            outcomes[account.id] = "assume_role_denied"
        else:
            outcomes[account.id] = "complete"
    return outcomes


def assert_every_reachable_account_exact(org: Organization, cwd: Path) -> None:
    for account_id, outcome in expected_outcomes(org).items():
        path = cwd / "out" / f"{account_id}.jsonl"
        if outcome == "complete":
            assert_matches_truth(read_lines(path), org.ground_truth(account_id))
        else:
            assert not path.exists()


def test_an_org_sweep_writes_each_account_and_a_manifest(org: Organization, tmp_path: Path) -> None:
    """Every reachable account's file equals its ground truth; the manifest names every account
    with its outcome (denied and suspended ones included); exit 1, as not all could be swept."""
    proc = cli(*org_args(org), cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert_every_reachable_account_exact(org, tmp_path)
    manifest = manifest_of(tmp_path)
    assert manifest["organization_id"] == org.organization_id
    outcomes = {entry["account_id"]: entry["outcome"] for entry in manifest["accounts"]}
    assert outcomes == expected_outcomes(org)
    denied = next(e for e in manifest["accounts"] if e["outcome"] == "assume_role_denied")
    assert (
        denied["error"]["code"] == "AccessDenied" and "sts:AssumeRole" in denied["error"]["message"]
    )
    for entry in manifest["accounts"]:
        if entry["outcome"] == "complete":
            lines = read_lines(
                Path(entry["output"])
                if Path(entry["output"]).is_absolute()
                else tmp_path / entry["output"]
            )
            assert entry["records"] == lines[-1]["records"]


def test_sigterm_mid_org_sweep_then_resume_redoes_no_finished_account(
    org: Organization, tmp_path: Path
) -> None:
    """SIGTERM while accounts are in flight, then --resume: the same files as an uninterrupted
    run, and no account that had finished is swept again."""
    returncode, stderr = stopped_mid_org_sweep(
        org_args(org, "--max-accounts-in-flight", "1"), tmp_path
    )
    out = tmp_path / "out"
    assert returncode == 143, stderr[-2000:]
    assert not (out / "manifest.json").exists()  # the run is not over: no completion marker
    finished = {path.name: path.stat().st_mtime_ns for path in out.glob("*.jsonl")}
    resumed = cli(*org_args(org, "--resume"), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert_every_reachable_account_exact(org, tmp_path)
    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime, f"{name} was swept again"
    assert not list(out.glob("*.part"))
    outcomes = {e["account_id"]: e["outcome"] for e in manifest_of(tmp_path)["accounts"]}
    assert outcomes == expected_outcomes(org)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--output", "out/all.jsonl"], ["{account_id}"]),
        (["--accounts", "12345"], ["12345"]),
        (["--ou", "ou-nope"], ["ou-nope"]),
        (["--shard", "3/3"], ["shard"]),
    ],
)
def test_bad_org_input_is_exit_2_before_any_aws_call(
    tmp_path: Path, extra: list[str], words: list[str]
) -> None:
    """No {account_id}, a malformed account or OU id, a shard out of range: one line, exit 2."""
    base = ["sweep", "--role-name", ROLE, "--endpoint-url", "http://127.0.0.1:9"]
    if "--accounts" not in extra and "--ou" not in extra:
        base.append("--org")
    if "--output" not in extra:
        base += ["--output", "out/{account_id}.jsonl"]
    one_line_error(cli(*base, *extra, cwd=tmp_path), 2, *words)


def test_role_name_is_required(tmp_path: Path) -> None:
    """--org without --role-name: one line naming the flag, exit 2."""
    proc = cli(
        "sweep",
        "--org",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--output",
        "o/{account_id}.jsonl",
        cwd=tmp_path,
    )
    one_line_error(proc, 2, "--role-name")


def test_org_listing_denied_is_exit_3(tmp_path: Path) -> None:
    """Credentials without Organizations access: one line, exit 3."""
    options = OrgOptions(
        accounts=2,
        principals=5,
        seed=1,
        faults=Faults(access_denied=frozenset({"ListAccounts", "DescribeOrganization"})),
    )
    with running_organization(options) as denied:
        proc = cli(*org_args(denied), cwd=tmp_path, timeout=120)
    one_line_error(proc, 3, "organizations")


@pytest.fixture(scope="module")
def big_org() -> Iterator[Organization]:
    """Ten accounts, all reachable: enough for three shards to each get some."""
    options = OrgOptions(accounts=10, principals=15, seed=12, faults=Faults(latency=0.05))
    with running_organization(options) as organization:
        yield organization


def start_shard(org: Organization, cwd: Path, index: int, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | FAST_ENV | {"JOB_COMPLETION_INDEX": str(index), "COLLECTOR_SHARD_COUNT": "3"}
    return subprocess.Popen(
        [COLLECTOR, *org_args(org, "--run-id", "night-1", *extra)], cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_three_shards_cover_the_org_once_and_merge(big_org: Organization, tmp_path: Path) -> None:
    """Shards 0..2 (index from JOB_COMPLETION_INDEX) sweep disjoint account sets whose union is
    the org; their manifests merge into a complete one. A shard killed and rerun alone with
    --resume completes the org."""
    shards = [start_shard(big_org, tmp_path, index) for index in range(3)]
    for proc in shards:
        with killed_on_failure(proc):
            _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    out = tmp_path / "out"
    sets = []
    for index in range(3):
        manifest = json.loads((out / f"manifest-{index}.json").read_text())
        assert manifest["shard"] == {"index": index, "count": 3} and manifest["run_id"] == "night-1"
        sets.append({entry["account_id"] for entry in manifest["accounts"]})
    assert sum(len(s) for s in sets) == len(set().union(*sets)) == len(big_org.accounts)
    assert set().union(*sets) == {account.id for account in big_org.accounts}
    for account in big_org.accounts:
        assert_matches_truth(
            read_lines(out / f"{account.id}.jsonl"), big_org.ground_truth(account.id)
        )
    merged = cli("manifest", "merge", *(str(out / f"manifest-{i}.json") for i in range(3)),
                 "--output", str(out / "manifest.json"), "--expect-shards", "3", cwd=tmp_path)  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    org_manifest = json.loads((out / "manifest.json").read_text())
    assert {e["account_id"] for e in org_manifest["accounts"]} == sets[0] | sets[1] | sets[2]
    assert {e["outcome"] for e in org_manifest["accounts"]} == {"complete"}

    # Shard 1 dies (SIGKILL) on a later night: only it is rerun, with --resume.
    for path in [*out.glob("*.jsonl"), *out.glob("manifest*.json")]:
        path.unlink()
    killed = start_shard(big_org, tmp_path, 1, "--max-accounts-in-flight", "1")
    with killed_on_failure(killed):
        deadline = time.monotonic() + 120
        while not list(out.glob("*.part")):
            assert killed.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        killed.kill()
        killed.communicate(timeout=30)
    missing = cli("manifest", "merge", str(out / "manifest-0.json"), "--output",
                  str(out / "manifest.json"), cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2  # manifest-0 is gone too: unreadable input is a usage error
    for index in (0, 2):
        proc = start_shard(big_org, tmp_path, index)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    incomplete = cli("manifest", "merge", str(out / "manifest-0.json"), str(out / "manifest-2.json"),
                     "--output", str(out / "manifest.json"), "--expect-shards", "3", cwd=tmp_path)  # fmt: skip
    assert (
        incomplete.returncode == 1
        and "1" in incomplete.stderr
        and not (out / "manifest.json").exists()
    )
    rerun = start_shard(big_org, tmp_path, 1, "--resume")
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-2000:]
    merged = cli("manifest", "merge", *(str(out / f"manifest-{i}.json") for i in range(3)),
                 "--output", str(out / "manifest.json"), "--expect-shards", "3", cwd=tmp_path)  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    for account in big_org.accounts:
        assert_matches_truth(
            read_lines(out / f"{account.id}.jsonl"), big_org.ground_truth(account.id)
        )


def test_an_org_sweep_to_s3_writes_objects_and_the_manifest_there(
    org: Organization, tmp_path: Path
) -> None:
    """`s3://bucket/{account_id}.jsonl.gz`: one object per reachable account equal to its truth,
    and the manifest as s3://bucket/manifest.json, all written with the caller's credentials."""
    s3 = boto3.client("s3", endpoint_url=org.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="org-exports")
    args = org_args(org)
    args[args.index("out/{account_id}.jsonl")] = "s3://org-exports/aa/{account_id}.jsonl.gz"
    proc = cli(*args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    manifest = json.loads(
        s3.get_object(Bucket="org-exports", Key="aa/manifest.json")["Body"].read()
    )
    outcomes = {entry["account_id"]: entry["outcome"] for entry in manifest["accounts"]}
    assert outcomes == expected_outcomes(org)
    for account_id, outcome in outcomes.items():
        if outcome == "complete":
            body = s3.get_object(Bucket="org-exports", Key=f"aa/{account_id}.jsonl.gz")[
                "Body"
            ].read()
            lines = [json.loads(x) for x in gzip.decompress(body).splitlines()]
            assert_matches_truth(lines, org.ground_truth(account_id))
    assert s3.list_multipart_uploads(Bucket="org-exports").get("Uploads", []) == []
    assert not (tmp_path / "out").exists()


def test_shard_manifests_in_s3_merge_there(big_org: Organization, tmp_path: Path) -> None:
    """Two shards writing to S3 (objects and manifests); `manifest merge` reads the shard
    manifests from S3 and puts the org manifest there; a missing shard is exit 1, named."""
    s3 = boto3.client("s3", endpoint_url=big_org.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="sharded")
    procs = []
    for index in range(2):
        args = org_args(big_org, "--run-id", "n2", "--shard", f"{index}/2",
                        "--manifest", "s3://sharded/m/{run_id}/shard-{shard}.json")  # fmt: skip
        args[args.index("out/{account_id}.jsonl")] = "s3://sharded/o/{account_id}.jsonl.gz"
        procs.append(subprocess.Popen([COLLECTOR, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=os.environ | FAST_ENV))  # fmt: skip
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    shards = [f"s3://sharded/m/n2/shard-{i}.json" for i in range(2)]
    merge = ["manifest", "merge", "--endpoint-url", big_org.endpoint, "--expect-shards", "2"]
    merged = cli(*merge, "--output", "s3://sharded/m/n2/org.json", *shards, cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    org_manifest = json.loads(s3.get_object(Bucket="sharded", Key="m/n2/org.json")["Body"].read())
    assert {e["account_id"] for e in org_manifest["accounts"]} == {a.id for a in big_org.accounts}
    s3.delete_object(Bucket="sharded", Key="m/n2/shard-1.json")
    missing = cli(*merge, "--output", "s3://sharded/m/n2/again.json", *shards, cwd=tmp_path)
    one_line_error(missing, 1, "missing shards 1 of 2")


def test_accounts_from_a_file_sweep_exactly_those(org: Organization, tmp_path: Path) -> None:
    """`--accounts FILE` (ids, one per line, # comments): only those accounts, no listing."""
    members = [
        a.id for a in org.accounts if a.audit_role and not a.management and a.state == "ACTIVE"
    ]
    chosen = [org.management_account_id, members[0]]
    ids = tmp_path / "ids.txt"
    ids.write_text("# tonight\n" + "\n".join(chosen) + "\n")
    args = org_args(org)
    args[args.index("--org")] = "--accounts"
    args.insert(args.index("--accounts") + 1, str(ids))
    proc = cli(*args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = manifest_of(tmp_path)
    assert {e["account_id"]: e["outcome"] for e in manifest["accounts"]} == dict.fromkeys(
        chosen, "complete"
    )
    for account_id in chosen:
        assert_matches_truth(
            read_lines(tmp_path / "out" / f"{account_id}.jsonl"), org.ground_truth(account_id)
        )


def test_accounts_swept_later_poll_at_the_latency_earlier_ones_learned(tmp_path: Path) -> None:
    """Job latency is learned once per process: accounts of 12 principals each never see the
    20 jobs it takes alone, so without sharing every one would poll at the configured first
    delay (0.05 s against jobs of 0.5 s) several times per job."""
    options = OrgOptions(accounts=4, principals=12, seed=6, faults=Faults(latency=0.5))
    fast_first_poll = {"COLLECTOR_POLL_FIRST_DELAY": "0.05", "COLLECTOR_POLL_JITTER": "0"}
    with running_organization(options) as organization:
        proc = cli(
            *org_args(organization, "--max-accounts-in-flight", "1"),
            cwd=tmp_path, env=fast_first_poll, timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(
        (read_lines(path)[-1] for path in (tmp_path / "out").glob("*.jsonl")),
        key=lambda run: str(run["started"]),
    )
    assert len(runs) == 4
    polls_per_job = [
        run["api_calls"]["GetServiceLastAccessedDetails"]
        / run["api_calls"]["GenerateServiceLastAccessedDetails"]
        for run in runs
    ]
    assert polls_per_job[0] >= 2  # nothing learned yet: polled before jobs could be done
    assert polls_per_job[-1] == 1  # 36 jobs seen by then: each polled once, when done
