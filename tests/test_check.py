"""`collector check` against the emulator: every call a sweep needs, each refused in turn, an
organisation with a member account that lacks the role, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import COLLECTOR, cli
from tests.support.org import ROLE

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

BUCKET = "exports"
ACCOUNT = "444455556666"  # one emulator per account id in a process: the module's has the default
OUTPUT = f"s3://{BUCKET}/collector/{{account_id}}/{{date}}.jsonl.gz"
IAM_ACTIONS = [
    "iam:ListUsers",
    "iam:ListGroups",
    "iam:ListRoles",
    "iam:ListPolicies",
    "iam:GenerateServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetailsWithEntities",
]
S3_ACTIONS = [
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:ListBucket",
]
# Each operation the check makes, refused by the emulator, and the IAM action the check must
# name for it (CreateMultipartUpload is s3:PutObject; ListObjectsV2 is s3:ListBucket).
REFUSED = [
    ("GetCallerIdentity", "sts:GetCallerIdentity"),
    ("ListUsers", "iam:ListUsers"),
    ("ListGroups", "iam:ListGroups"),
    ("ListRoles", "iam:ListRoles"),
    ("ListPolicies", "iam:ListPolicies"),
    ("GenerateServiceLastAccessedDetails", "iam:GenerateServiceLastAccessedDetails"),
    ("GetServiceLastAccessedDetails", "iam:GetServiceLastAccessedDetails"),
    ("GetServiceLastAccessedDetailsWithEntities", "iam:GetServiceLastAccessedDetailsWithEntities"),
    ("PutObject", "s3:PutObject"),
    ("CreateMultipartUpload", "s3:PutObject"),
    ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("ListParts", "s3:ListMultipartUploadParts"),
    ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
    ("GetObject", "s3:GetObject"),
    ("DeleteObject", "s3:DeleteObject"),
    ("ListObjectsV2", "s3:ListBucket"),
]


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with running_emulator(EmulatorOptions(principals=12, seed=26)) as emulator:
        _s3(emulator.endpoint).create_bucket(Bucket=BUCKET)
        yield emulator


def _checks(stdout: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(stdout)["checks"]
    return rows


def test_check_passes_against_the_emulator(emu: Emulator, tmp_path: Path) -> None:
    """Every call of a sweep with S3 output, each once: exit 0, one ok row per action, and the
    probe leaves no object and no open upload behind."""
    proc = cli(
        "check", "--endpoint-url", emu.endpoint, "--output", OUTPUT, "--resume",
        "--format", "json", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    rows = _checks(proc.stdout)
    assert {row["result"] for row in rows} == {"ok"}
    assert {row["check"] for row in rows} == {"sts:GetCallerIdentity", *IAM_ACTIONS, *S3_ACTIONS}
    s3 = _s3(emu.endpoint)
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_must_show_a_denied_generate_is_exit_3_naming_the_action(tmp_path: Path) -> None:
    """`collector check --endpoint-url URL` exits 0 on a well-behaved emulator, and 3 on one
    that refuses GenerateServiceLastAccessedDetails, the table naming the action to add and
    the principal to add it to."""
    with running_emulator(EmulatorOptions(principals=6, seed=3, account_id=ACCOUNT)) as good:
        assert cli("check", "--endpoint-url", good.endpoint, cwd=tmp_path).returncode == 0
    denied = Faults(access_denied=frozenset({"GenerateServiceLastAccessedDetails"}))
    options = EmulatorOptions(principals=6, seed=3, faults=denied, account_id=ACCOUNT)
    with running_emulator(options) as emu:
        proc = cli("check", "--endpoint-url", emu.endpoint, cwd=tmp_path, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    (line,) = [row for row in proc.stdout.splitlines() if row.startswith("denied")]
    assert "iam:GenerateServiceLastAccessedDetails" in line
    assert f"add iam:GenerateServiceLastAccessedDetails to arn:aws:iam::{ACCOUNT}:user/" in line
    assert proc.stdout.splitlines()[-1] == "collector check: 8 checks, 1 failed"


@pytest.mark.parametrize(("operation", "action"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_refused_operation_is_exit_3_naming_its_action(
    tmp_path: Path, operation: str, action: str
) -> None:
    """--access-denied OP for each call the check makes: exit 3, one denied row whose action
    is the IAM action to add, with the principal (and for S3 the bucket or prefix) in its fix;
    every other row that could run passed."""
    bucket = f"refused-{uuid.uuid4().hex[:12]}"
    faults = Faults(access_denied=frozenset({operation}))
    options = EmulatorOptions(principals=6, seed=7, faults=faults, account_id=ACCOUNT)
    with running_emulator(options) as emu:
        _s3(emu.endpoint).create_bucket(Bucket=bucket)  # moto's S3 names are process-wide
        proc = cli(
            "check", "--endpoint-url", emu.endpoint, "--output", f"s3://{bucket}/collector/{{account_id}}.jsonl", "--resume",
            "--format", "json", cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    rows = _checks(proc.stdout)
    denied = [row for row in rows if row["result"] == "denied"]
    assert [row["check"] for row in denied] == [action]
    (row,) = denied
    assert operation in row["call"]
    assert {r["result"] for r in rows} <= {"ok", "denied", "skipped"}
    if action.startswith("iam:"):
        assert row["fix"] == f"add {action} to arn:aws:iam::{ACCOUNT}:user/collector"
    elif action.startswith("s3:"):
        on = f"arn:aws:s3:::{bucket}" + (
            "" if "List" in action and "Parts" not in action else "/collector/*"
        )
        assert row["fix"].startswith(f"add {action} on {on} to arn:aws:iam::{ACCOUNT}:user/")
    else:
        assert len(rows) == 1  # without an identity nothing else can be checked


def test_policy_documents_adds_get_account_authorization_details(tmp_path: Path) -> None:
    """--policy-documents: the check proves iam:GetAccountAuthorizationDetails too, and names
    it when refused."""
    faults = Faults(access_denied=frozenset({"GetAccountAuthorizationDetails"}))
    for refused in (Faults(), faults):
        options = EmulatorOptions(principals=4, seed=5, faults=refused, account_id=ACCOUNT)
        with running_emulator(options) as emu:
            proc = cli(
                "check", "--endpoint-url", emu.endpoint, "--policy-documents", "--format",
                "json", cwd=tmp_path, timeout=120,
            )  # fmt: skip
        (row,) = [
            r for r in _checks(proc.stdout) if r["check"] == "iam:GetAccountAuthorizationDetails"
        ]
        if refused is faults:
            assert proc.returncode == 3 and row["result"] == "denied"
            assert row["fix"].startswith("add iam:GetAccountAuthorizationDetails to ")
        else:
            assert proc.returncode == 0 and row["result"] == "ok", proc.stdout


def test_an_unreachable_endpoint_is_exit_3(tmp_path: Path) -> None:
    """Nobody listening: the identity row says unreachable, exit 3, no traceback."""
    proc = cli("check", "--endpoint-url", "http://127.0.0.1:9", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    (row,) = _checks(proc.stdout)
    assert (row["check"], row["result"]) == ("sts:GetCallerIdentity", "unreachable")
    assert "Traceback" not in proc.stderr


def test_no_credentials_is_exit_3(tmp_path: Path) -> None:
    """No credentials at all: one failed identity row that says how to give them, exit 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    proc = subprocess.run(
        [COLLECTOR, "check", "--endpoint-url", "http://127.0.0.1:9"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "failed" in proc.stdout and "AWS_PROFILE" in proc.stdout


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Five accounts: the management account, three members with the role, one without."""
    with running_organization(OrgOptions(accounts=5, principals=8, seed=9, without_role=1)) as o:
        yield o


def _org_check(org: Organization, cwd: Path, *extra: str) -> Any:
    return cli(
        "check", "--org", "--role-name", ROLE, "--endpoint-url", org.endpoint,
        "--output", "out/{account_id}.jsonl", "--format", "json", *extra, cwd=cwd, timeout=180,
    )  # fmt: skip


def test_org_check_names_the_member_account_without_the_role(
    org: Organization, tmp_path: Path
) -> None:
    """--org with --sample covering every member: the listing passes, AssumeRole into the
    account without the role is denied (its role ARN and the trust to fix named), every
    other member's IAM calls pass through its role; exit 3."""
    proc = _org_check(org, tmp_path, "--sample", "9")
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    members = sorted(a.id for a in org.accounts if not a.management)
    assert document["sampled_accounts"] == members and document["member_accounts"] == 4
    without = next(a.id for a in org.accounts if not a.management and not a.audit_role)
    denied = [row for row in document["checks"] if row["result"] != "ok"]
    assert [(row["check"], row["where"]) for row in denied] == [
        ("sts:AssumeRole", f"account {without}")
    ]
    role = f"arn:aws:iam::{without}:role/{ROLE}"
    assert f"allow sts:AssumeRole on {role}" in denied[0]["fix"]
    assert f"make sure {role} exists and trusts" in denied[0]["fix"]
    checks = document["checks"]
    assert [r["check"] for r in checks[:3]] == [
        "sts:GetCallerIdentity", "organizations:DescribeOrganization", "organizations:ListAccounts"
    ]  # fmt: skip
    for account in (m for m in members if m != without):
        seen = {r["check"] for r in checks if r["where"].startswith(f"account {account} as role")}
        assert seen == {"sts:GetCallerIdentity", *IAM_ACTIONS}, account


def test_org_check_samples_n_member_accounts(org: Organization, tmp_path: Path) -> None:
    """--sample 2: AssumeRole into the first two member accounts by id, and no other."""
    proc = _org_check(org, tmp_path, "--sample", "2")
    document = json.loads(proc.stdout)
    members = sorted(a.id for a in org.accounts if not a.management)
    assert document["sampled_accounts"] == members[:2]
    assumed = [r["where"] for r in document["checks"] if r["check"] == "sts:AssumeRole"]
    assert assumed == [f"account {account}" for account in members[:2]]
    role_less = next(a.id for a in org.accounts if not a.management and not a.audit_role)
    assert proc.returncode == (3 if role_less in members[:2] else 0), proc.stdout


ORG_REFUSED = [
    ("DescribeOrganization", []),
    ("ListAccounts", []),
    ("ListRoots", ["--org-access-report"]),
    ("ListAccountsForParent", ["--ou"]),
    ("ListChildren", ["--ou"]),
]


@pytest.mark.parametrize(("operation", "extra"), ORG_REFUSED, ids=[r[0] for r in ORG_REFUSED])
def test_org_listing_refused_is_exit_3_naming_the_action(
    tmp_path: Path, operation: str, extra: list[str]
) -> None:
    """Organizations refusing one listing call: the calls before it passed, it is denied with
    the action to add to the caller, the ones after it skipped; no member account is tried."""
    faults = Faults(access_denied=frozenset({operation}))
    with running_organization(OrgOptions(accounts=2, principals=4, seed=2, faults=faults)) as o:
        # --ou walks from the root: ListAccountsForParent and ListChildren instead of ListAccounts.
        argv = ["check", "--ou", o.root_id] if "--ou" in extra else ["check", "--org", *extra]
        proc = cli(
            *argv, "--role-name", ROLE, "--endpoint-url", o.endpoint, "--output",
            "out/{account_id}.jsonl", "--format", "json", cwd=tmp_path, timeout=180,
        )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    listing = [r for r in document["checks"] if r["check"].startswith("organizations:")]
    results = [r["result"] for r in listing]
    at = [r["check"] for r in listing].index(f"organizations:{operation}")
    assert results == ["ok"] * at + ["denied"] + ["skipped"] * (len(listing) - at - 1)
    assert listing[at]["fix"].startswith(f"add organizations:{operation} to ")
    assert document["sampled_accounts"] == [] and document["member_accounts"] is None


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--sample", "-1"], ["--sample"]),
        (["--sample", "many"], ["--sample"]),
        (["--format", "xml"], ["--format"]),
        (["--sample", "2"], ["--sample", "--org"]),
        (["--org-access-report"], ["--org-access-report", "--org"]),
        (["--org"], ["--role-name"]),
        (["--endpoint-url", "ftp://x"], ["endpoint"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], words: list[str]
) -> None:
    """Bad values, org-only options without an organisation, missing --role-name: exit 2
    before any call, one line."""
    proc = cli("check", "--endpoint-url", "http://127.0.0.1:9", *extra, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    (line,) = proc.stderr.splitlines()
    assert line.startswith(("collector: error: ", "collector check: error: "))
    assert all(word in line for word in words), line
    assert not proc.stdout


def test_org_access_report_adds_list_roots(org: Organization, tmp_path: Path) -> None:
    """With --org-access-report the check also proves organizations:ListRoots, which the
    report's walk starts from."""
    proc = _org_check(org, tmp_path, "--org-access-report", "--sample", "0")
    document = json.loads(proc.stdout)
    listing = [r for r in document["checks"] if r["check"].startswith("organizations:")]
    assert [(r["check"], r["result"]) for r in listing] == [
        ("organizations:DescribeOrganization", "ok"),
        ("organizations:ListAccounts", "ok"),
        ("organizations:ListRoots", "ok"),
    ]
    assert proc.returncode == 0 and document["sampled_accounts"] == []
