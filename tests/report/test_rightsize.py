"""`collector report rightsize`: a small export checked by hand, and emulator sweeps checked
against the ground truth, with parliament on every proposal."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, Faults, running_emulator
from collector.emulator.permissions import document_grants
from collector.report.policydoc import MAX_POLICY_CHARS, size
from tests.support.policylint import SERIOUS, at_least
from tests.support.reporting import Record, complete_services, is_unused, report, sweep

pytestmark = pytest.mark.e2e  # every test runs `collector report`

ACCOUNT = "555555555555"
HAND = "111111111111"


def _by_hand() -> list[Record]:
    """An export written by hand: one run of account 111111111111, as of 2026-03-02.

    - policy/app-access, attached to role/deployer. Its own report: s3 used 2026-02-20 (10 days
      before), ec2 used 2026-02-01 (29 days; ACTION_LEVEL: RunInstances that day,
      TerminateInstances on 2025-06-01), dynamodb last used 2025-10-01 (152 days), kms never.
    - the inline policy `deploy` of role/deployer. The role's report: lambda used 2026-02-25,
      cloudformation never.
    - policy/broken: its report job FAILED (an error record, no principal line).
    - policy/steady: its one service, sqs, used yesterday.
    - policy/orphan: attached to nothing; its one service, sns, never used.
    - AWS-managed AmazonS3ReadOnlyAccess, attached to role/deployer, not reported (the sweep
      had no --aws-managed-policies).
    """
    role = f"arn:aws:iam::{HAND}:role/deployer"

    def policy(name: str) -> str:
        return f"arn:aws:iam::{HAND}:policy/{name}"

    base = {"schema": 1, "run_id": "r1", "account_id": HAND}
    lines: list[Record] = []

    def report_of(arn: str, kind: str, services: dict[str, tuple[str | None, Any]]) -> None:
        common = base | {"principal_arn": arn, "principal_type": kind, "job_id": "j-" + arn[-6:]}
        for namespace, (last, tracked) in services.items():
            lines.append(
                common
                | {"record": "service", "service_namespace": namespace, "service_name": namespace,
                   "last_authenticated": last, "last_authenticated_entity": None,
                   "last_authenticated_region": None, "total_authenticated_entities": None,
                   "tracked_actions": tracked}
            )  # fmt: skip
        lines.append(
            common
            | {"record": "principal", "principal_name": arn.rsplit("/", 1)[1],
               "principal_id": "ID", "principal_path": "/", "job_type": "ACTION_LEVEL",
               "job_created": "2026-03-01T00:00:00Z", "job_completed": "2026-03-01T00:00:01Z",
               "services": len(services), "services_accessed": 0, "entities": 0}
        )  # fmt: skip

    def document(
        arn: str | None, owner: str | None, name: str, statements: list[Any], to: list[str]
    ) -> None:
        lines.append(
            base
            | {"record": "policy_document", "policy_arn": arn, "owner_arn": owner,
               "policy_name": name, "version_id": "v1" if arn else None,
               "document": {"Version": "2012-10-17", "Statement": statements},
               "attached_to": to}
        )  # fmt: skip

    ec2_actions = [
        {"action_name": "RunInstances", "last_accessed_time": "2026-02-01T10:00:00Z",
         "last_accessed_entity": role, "last_accessed_region": "eu-west-1"},
        {"action_name": "TerminateInstances", "last_accessed_time": "2025-06-01T10:00:00Z",
         "last_accessed_entity": role, "last_accessed_region": "eu-west-1"},
    ]  # fmt: skip
    report_of(policy("app-access"), "policy", {
        "s3": ("2026-02-20T08:00:00Z", None), "ec2": ("2026-02-01T10:00:00Z", ec2_actions),
        "dynamodb": ("2025-10-01T00:00:00Z", None), "kms": (None, None),
    })  # fmt: skip
    report_of(role, "role", {"lambda": ("2026-02-25T00:00:00Z", None),
                             "cloudformation": (None, None), "s3": (None, None)})  # fmt: skip
    report_of(policy("steady"), "policy", {"sqs": ("2026-03-01T00:00:00Z", None)})
    report_of(policy("orphan"), "policy", {"sns": (None, None)})
    lines.append(
        base | {"record": "error", "principal_arn": policy("broken"), "principal_type": "policy",
                "job_id": "j-broken", "stage": "poll", "code": "ServiceFailure",
                "message": "failed", "service_namespace": None}
    )  # fmt: skip
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    document(policy("app-access"), None, "app-access", [
        {"Sid": "Data", "Effect": "Allow", "Action": ["s3:GetObject", "dynamodb:Query"],
         "Resource": "*"},
        {"Sid": "Ops", "Effect": "Allow", "Action": "*", "Resource": "*", "Condition": mfa},
        {"Sid": "Guard", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
    ], [role])  # fmt: skip
    document(None, role, "deploy", [
        {"Effect": "Allow", "Action": ["lambda:UpdateFunctionCode", "cloudformation:*"],
         "Resource": "*"},
    ], [role])  # fmt: skip
    document(policy("broken"), None, "broken", [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}], [role])  # fmt: skip
    document(policy("steady"), None, "steady", [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}], [role])  # fmt: skip
    document(policy("orphan"), None, "orphan", [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}], [])  # fmt: skip
    document("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", None, "AmazonS3ReadOnlyAccess",
             [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}], [role])  # fmt: skip
    lines.append(base | {"record": "run", "principal_arn": None, "principal_type": None,
                         "job_id": None, "started": "2026-03-01T00:00:00Z",
                         "finished": "2026-03-01T00:05:00Z", "status": "partial"})  # fmt: skip
    return lines


@pytest.fixture
def by_hand(tmp_path: Path) -> Path:
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in _by_hand()))
    return path


def test_small_export_checked_by_hand(by_hand: Path, tmp_path: Path) -> None:
    """What a reader works out from the export's docstring, with 90 days as of 2026-03-02.

    app-access loses dynamodb and kms (its own report: unused); `Data` keeps s3:GetObject only;
    `Ops` (`*` under MFA) becomes the used services it covers: ec2 as its one action used in the
    window (RunInstances; TerminateInstances is 9 months old) and s3:* (no ACTION_LEVEL rows),
    the condition kept; the Deny stays. The inline `deploy` loses cloudformation by its
    owner's report. steady keeps everything, orphan grants nothing used, broken and the
    AWS-managed policy have no usage data and say why.
    """
    out = tmp_path / "r.json"
    proc = report("rightsize", str(by_hand), "--days", "90", "--as-of", "2026-03-02",
                  "--format", "json", "--output", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "is partial" in proc.stderr  # the run line says partial: told, as by every report
    rows = {row["policy_name"]: row for row in json.loads(out.read_text())}
    app = rows["app-access"]
    assert (app["unused_services"], app["used_services"], app["removed_services"]) == (
        ["dynamodb", "kms"],
        ["ec2", "s3"],
        ["dynamodb", "kms"],
    )
    assert app["action"] == "trim" and app["attached_to"] == [f"arn:aws:iam::{HAND}:role/deployer"]
    assert app["proposed_document"] == {"Version": "2012-10-17", "Statement": [
        {"Sid": "Data", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Sid": "Ops", "Effect": "Allow", "Action": ["ec2:RunInstances", "s3:*"], "Resource": "*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
        {"Sid": "Guard", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
    ]}  # fmt: skip
    assert any("ec2: a wildcard became the 1 tracked action" in n for n in app["notes"])
    deploy = rows["deploy"]
    assert deploy["policy_arn"] is None and deploy["owner_arn"].endswith(":role/deployer")
    assert (deploy["unused_services"], deploy["used_services"]) == (["cloudformation"], ["lambda"])
    assert deploy["proposed_document"]["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:UpdateFunctionCode", "Resource": "*"}
    ]
    assert (rows["steady"]["action"], rows["steady"]["proposed_document"]) == ("keep", None)
    assert rows["orphan"]["action"] == "delete" and rows["orphan"]["removed_services"] == ["sns"]
    assert rows["orphan"]["notes"] == [
        "grants nothing used in 90 days and is attached to nothing: delete it"
    ]
    broken, aws = rows["broken"], rows["AmazonS3ReadOnlyAccess"]
    assert (broken["action"], broken["proposed_document"]) == ("no_usage_data", None)
    assert broken["notes"] == ["no usage data: its report failed (poll: ServiceFailure)"]
    assert aws["action"] == "no_usage_data" and "--aws-managed-policies" in aws["notes"][0]
    # Ordered by services removed: app-access (2) first.
    assert json.loads(out.read_text())[0]["policy_name"] == "app-access"
    assert at_least([app["proposed_document"], deploy["proposed_document"]], SERIOUS) == []


def test_markdown_and_html_show_each_policy_as_a_diff(by_hand: Path, tmp_path: Path) -> None:
    """A diff per trimmed policy, most removed first, principals named; HTML self-contained."""
    proc = report("rightsize", str(by_hand), "--as-of", "2026-03-02", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.index("## 1. app-access: removes 2 service(s)") < text.index("## 2. deploy")
    assert "- principals affected: role/deployer" in text
    assert '-        "dynamodb:Query"' in text and '+        "ec2:RunInstances",' in text
    assert "| arn:aws:iam::111111111111:policy/broken | no_usage_data |" in text
    page = tmp_path / "rightsize.html"
    proc = report("rightsize", str(by_hand), "--as-of", "2026-03-02", "--output", str(page))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    html = page.read_text()
    assert html.count('<pre class="diff">') == 2 and '<span class="del">' in html
    assert "<script" not in html and "<link" not in html and "http" not in html
    proc = report("rightsize", str(by_hand), "--as-of", "2026-03-02", "--format", "csv")
    assert proc.returncode == 0 and proc.stdout.startswith("account_id,policy_arn,owner_arn,")


def test_other_reports_read_exports_with_policy_documents(by_hand: Path, tmp_path: Path) -> None:
    """`report unused` and `summary` give the same answer with or without policy_document lines."""
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(json.dumps(r) + "\n" for r in _by_hand() if r["record"] != "policy_document")
    )
    for kind in ("unused", "summary"):
        with_docs = report(kind, str(by_hand), "--as-of", "2026-03-02", "--format", "json")
        without = report(kind, str(bare), "--as-of", "2026-03-02", "--format", "json")
        assert with_docs.returncode == 0, with_docs.stderr
        assert with_docs.stdout == without.stdout


def test_an_export_without_documents_is_one_clear_error(by_hand: Path, tmp_path: Path) -> None:
    """No policy_document line: exit 2, one line saying which sweep option makes them."""
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(json.dumps(r) + "\n" for r in _by_hand() if r["record"] != "policy_document")
    )
    proc = report("rightsize", str(bare), "--format", "json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "collector: error: no policy_document lines in the newest run of any account: sweep "
        "with --policy-documents (it needs iam:GetAccountAuthorizationDetails)"
    )


class Swept:
    """A CLI sweep with --policy-documents and what the emulator says it must hold."""

    def __init__(self, path: Path, truth: list[Record]) -> None:
        self.path = path
        self.truth = truth
        self.lines = [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """80 principals, ACTION_LEVEL, AWS-managed policies reported, policy documents."""
    out = tmp_path_factory.mktemp("rightsize") / "X.jsonl"
    with running_emulator(
        EmulatorOptions(principals=80, seed=8, account_id=ACCOUNT, faults=Faults(short_page_max=9))
    ) as emu:
        proc = sweep(emu.endpoint, out, "--policy-documents", "--granularity", "ACTION_LEVEL",
                     "--aws-managed-policies")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Swept(out, emu.ground_truth("ACTION_LEVEL", aws_managed_policies=True,
                                          policy_documents=True))  # fmt: skip


def _parts(document: Any) -> list[dict[str, Any]]:
    if document is None:
        return []
    return document if isinstance(document, list) else [document]


def _allowed(documents: list[dict[str, Any]]) -> set[str]:
    """The catalog services the documents allow, by the emulator's own reading of them."""
    return {ns for document in documents for ns in document_grants(json.dumps(document))}


def _rightsize_json(path: Path, out: Path) -> tuple[list[Record], date]:
    """The must-show command, with the UTC date it judged by (rerun if midnight passed)."""
    while True:
        as_of = datetime.now(UTC).date()
        proc = report("rightsize", str(path), "--days", "90", "--format", "json",
                      "--output", str(out))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        if datetime.now(UTC).date() == as_of:
            rows: list[Record] = json.loads(out.read_text())
            return rows, as_of


def test_rightsize_of_an_emulator_sweep_is_safe(swept: Swept, tmp_path: Path) -> None:
    """The must-show, end to end through the CLI, against the emulator's ground truth.

    `sweep --policy-documents` wrote the account's policy_document lines; `report rightsize
    X.jsonl --days 90 --format json --output R.json` wrote a JSON array in which every proposed
    document passes parliament without HIGH or CRITICAL findings and fits IAM's limit, still
    allows every service the policy's (an inline one: its owner's) report shows used in the
    last 90 days, lists as unused only services that report shows unused, and some proposals
    remove something.
    """
    stable = ("record", "account_id", "policy_arn", "owner_arn", "policy_name", "version_id",
              "document", "attached_to")  # fmt: skip

    def documents(records: list[Record]) -> Counter[str]:
        return Counter(
            json.dumps({k: r[k] for k in stable}, sort_keys=True)
            for r in records
            if r["record"] == "policy_document"
        )

    assert documents(swept.lines) == documents(swept.truth) and documents(swept.lines)
    rows, as_of = _rightsize_json(swept.path, tmp_path / "R.json")
    assert isinstance(rows, list) and len(rows) == sum(documents(swept.truth).values())
    reports: dict[str, dict[str, str | None]] = {}
    for record in complete_services(swept.truth):
        reports.setdefault(record["principal_arn"], {})[record["service_namespace"]] = record[
            "last_authenticated"
        ]
    proposals: list[dict[str, Any]] = []
    for row in rows:
        subject = row["policy_arn"] or row["owner_arn"]
        seen = reports[subject]  # every policy and owner has a complete report here
        shown_unused = {ns for ns, last in seen.items() if is_unused(last, as_of, 90)}
        granted = _allowed([row["current_document"]]) & set(seen)
        used = granted - shown_unused
        assert set(row["unused_services"]) <= shown_unused, row["policy_name"]
        assert set(row["used_services"]) == used, row["policy_name"]
        parts = _parts(row["proposed_document"])
        if row["action"] == "trim":
            assert parts and used <= _allowed(parts), row["policy_name"]
            assert granted - _allowed(parts) == set(row["removed_services"]) != set()
            assert all(size(part) <= MAX_POLICY_CHARS for part in parts)
            proposals += parts
        else:
            assert row["action"] in ("keep", "delete") and not parts
            assert not used if row["action"] == "delete" else not row["removed_services"]
    assert len(proposals) >= 5
    assert at_least(proposals, SERIOUS) == []
    actions = Counter(row["action"] for row in rows)
    assert actions["trim"] >= 5 and actions["keep"] >= 1
    aws = [row for row in rows if ":iam::aws:policy/" in (row["policy_arn"] or "")]
    assert any(
        "create the proposal as a customer-managed policy" in " ".join(row["notes"]) for row in aws
    )


def test_missing_and_failed_reports_get_no_proposal(tmp_path: Path) -> None:
    """A failed report (a FAILED job) and unreported AWS-managed policies: no proposal, a reason."""
    out = tmp_path / "X.jsonl"
    faults = Faults(failed_share=0.25)
    with running_emulator(
        EmulatorOptions(principals=30, seed=4, account_id="555555555556", faults=faults)
    ) as emu:
        proc = sweep(emu.endpoint, out, "--policy-documents")
        assert proc.returncode == 1, proc.stderr[-3000:]
        truth = emu.ground_truth()
    failed = {r["principal_arn"] for r in truth if r["record"] == "error"}
    proc = report("rightsize", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    for row in rows:
        subject = row["policy_arn"] or row["owner_arn"]
        if subject in failed:
            assert row["action"] == "no_usage_data" and row["proposed_document"] is None
            assert (
                row["notes"][0].startswith("no usage data: its")
                and "report failed (poll:" in row["notes"][0]
            )
        elif ":iam::aws:policy/" in subject:
            assert row["action"] == "no_usage_data" and "--aws-managed-policies" in row["notes"][0]
        else:
            assert row["action"] != "no_usage_data"
    assert any(row["action"] == "no_usage_data" and ":iam::aws:" not in (row["policy_arn"] or "")
               for row in rows)  # fmt: skip
