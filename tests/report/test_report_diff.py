"""`collector report diff`: two sweeps with a principal added, one removed and a policy changed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from collector.emulator import EmulatorOptions, running_emulator
from tests.support.reporting import Record, complete_services, is_unused, json_rows, report, sweep

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

ACCOUNT = "555555555555"
DAYS = 30


def _run_date(path: Path) -> date:
    last = json.loads(path.read_text().splitlines()[-1])
    return date.fromisoformat(last["started"][:10])


def _expected(
    old: list[Record], new: list[Record], old_day: date, new_day: date
) -> list[tuple[str, str, str, str | None]]:
    """The diff rows, from the two ground truths in plain Python."""
    seen_old = {r["principal_arn"]: r["principal_type"] for r in old if r["record"] != "run"}
    seen_new = {r["principal_arn"]: r["principal_type"] for r in new if r["record"] != "run"}
    done = {r["principal_arn"] for r in old if r["record"] == "principal"} & {
        r["principal_arn"] for r in new if r["record"] == "principal"
    }
    svc_old = {(r["principal_arn"], r["service_namespace"]): r for r in complete_services(old)}
    svc_new = {(r["principal_arn"], r["service_namespace"]): r for r in complete_services(new)}
    rows: list[tuple[str, str, str, str | None]]
    rows = [("principal_added", a, seen_new[a], None) for a in seen_new.keys() - seen_old.keys()]
    rows += [("principal_removed", a, seen_old[a], None) for a in seen_old.keys() - seen_new.keys()]
    for key in svc_old.keys() | svc_new.keys():
        arn, namespace = key
        if arn not in done:
            continue
        o, n = svc_old.get(key), svc_new.get(key)
        kind = seen_new[arn]
        if o is None:
            rows.append(("newly_granted", arn, kind, namespace))
        elif n is None:
            rows.append(("no_longer_granted", arn, kind, namespace))
        else:
            was = is_unused(o["last_authenticated"], old_day, DAYS)
            now = is_unused(n["last_authenticated"], new_day, DAYS)
            if was and not now:
                rows.append(("newly_used", arn, kind, namespace))
            elif now and not was:
                rows.append(("newly_unused", arn, kind, namespace))
    return sorted(rows, key=str)


def test_diff_of_two_sweeps(tmp_path: Path) -> None:
    """A new user, a deleted user and a changed policy show up exactly as the truths imply."""
    with running_emulator(EmulatorOptions(principals=30, seed=4, account_id=ACCOUNT)) as emu:
        iam = boto3.session.Session().client(
            "iam", endpoint_url=emu.endpoint, region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip
        iam.create_user(UserName="leaving.user")
        old_path = tmp_path / "old.jsonl"
        proc = sweep(emu.endpoint, old_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        old_truth = emu.ground_truth()

        iam.delete_user(UserName="leaving.user")
        iam.create_user(UserName="new.user")
        iam.put_user_policy(
            UserName="new.user",
            PolicyName="inline",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
                }
            ),
        )
        # An attached policy that does not grant textract yet: the new version grants it.
        granted = {
            (r["principal_arn"], r["service_namespace"]) for r in complete_services(old_truth)
        }
        policies = iam.list_policies(Scope="Local")["Policies"]
        changed = next(
            p
            for p in policies
            if p["AttachmentCount"] > 0 and (p["Arn"], "textract") not in granted
        )
        iam.create_policy_version(
            PolicyArn=changed["Arn"],
            SetAsDefault=True,
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["textract:AnalyzeDocument", "sqs:SendMessage"],
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
        new_path = tmp_path / "new.jsonl"
        proc = sweep(emu.endpoint, new_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        new_truth = emu.ground_truth()

    want = _expected(old_truth, new_truth, _run_date(old_path), _run_date(new_path))
    proc = report("diff", str(old_path), str(new_path), "--days", str(DAYS), "--format", "json")
    got = json_rows(proc)
    assert all(r["account_id"] == ACCOUNT for r in got)
    assert (
        sorted(
            (
                (r["change"], r["principal_arn"], r["principal_type"], r["service_namespace"])
                for r in got
            ),
            key=str,
        )
        == want
    )
    changes = {r["change"] for r in got}
    assert {"principal_added", "principal_removed", "newly_granted", "no_longer_granted"} <= changes
    added = [r for r in got if r["change"] == "principal_added"]
    assert [r["principal_arn"] for r in added] == [f"arn:aws:iam::{ACCOUNT}:user/new.user"]
    assert any(r["principal_arn"] == changed["Arn"] for r in got if r["change"] == "newly_granted")


def test_diff_of_an_account_on_one_side_only_says_so(tmp_path: Path) -> None:
    """A file of another account is never read as every principal removed, nor passed silently.

    No account on both sides: nothing to compare, so exit 2 and no output (an empty CSV would
    read as "no changes"); some accounts on one side only: a warning on stderr in every format.
    """
    with running_emulator(EmulatorOptions(principals=6, seed=2, account_id="666666666666")) as emu:
        a = tmp_path / "a.jsonl"
        assert sweep(emu.endpoint, a).returncode == 0
    with running_emulator(EmulatorOptions(principals=6, seed=2, account_id="777777777777")) as emu:
        b = tmp_path / "b.jsonl"
        assert sweep(emu.endpoint, b).returncode == 0
    for fmt in ("csv", "json", "markdown", "table"):
        proc = report("diff", str(a), str(b), "--format", fmt)
        assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("collector: error: OLD and NEW have no account in common")
        assert "666666666666" in proc.stderr and "777777777777" in proc.stderr
    out = tmp_path / "diff.csv"
    assert report("diff", str(a), str(b), "--output", str(out)).returncode == 2
    assert not out.exists()
    for fmt in ("csv", "markdown"):
        proc = report("diff", str(a), str(tmp_path / "*.jsonl"), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        warning = "collector: warning: account 777777777777 is only in NEW: not compared"
        assert warning in proc.stderr.splitlines()
    assert proc.stdout.count("account 777777777777 is only in NEW") == 1
