"""--policy-documents: one policy_document line per policy, paged, counted, resumed whole."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.cli import cli, one_line_error
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines, sweep


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """120 principals with short pages: GetAccountAuthorizationDetails takes many pages."""
    faults = Faults(latency=0.2, short_page_max=23)
    options = EmulatorOptions(principals=120, seed=21, faults=faults, account_id="210000000021")
    with running_emulator(options) as emu:
        yield emu


async def test_policy_documents_equal_ground_truth(emulator: Emulator, tmp_path: Path) -> None:
    """Every policy once (customer, attached AWS-managed, inline), paged; the run line counts them."""
    settings = fast_settings(emulator.endpoint, tmp_path / "out.jsonl", policy_documents=True)
    result = await sweep(settings)
    assert result.status == "complete" and result.path is not None
    lines = read_lines(result.path)
    assert_matches_truth(lines, emulator.ground_truth(policy_documents=True))
    documents = [r for r in lines if r["record"] == "policy_document"]
    run = lines[-1]
    assert run["records"]["policy_document"] == len(documents) > 0
    # One paging per account, many pages (short ones), each a call of its own.
    assert run["api_calls"]["GetAccountAuthorizationDetails"] > 5
    inline = [r for r in documents if r["policy_arn"] is None]
    assert inline and all(r["attached_to"] == [r["owner_arn"]] for r in inline)
    aws = [r for r in documents if ":iam::aws:policy/" in (r["policy_arn"] or "")]
    assert aws and all(r["attached_to"] for r in aws)  # only the attached ones
    assert all(isinstance(r["document"], dict) and r["document"]["Statement"] for r in documents)


async def test_without_the_flag_no_call_and_no_line(emulator: Emulator, tmp_path: Path) -> None:
    """The default sweep never calls GetAccountAuthorizationDetails; its run line is unchanged."""
    result = await sweep(fast_settings(emulator.endpoint, tmp_path / "out.jsonl"))
    assert result.path is not None
    lines = read_lines(result.path)
    assert not [r for r in lines if r["record"] == "policy_document"]
    assert "GetAccountAuthorizationDetails" not in lines[-1]["api_calls"]
    assert set(lines[-1]["records"]) == {"service", "entity", "principal", "error"}


@pytest.mark.e2e
def test_access_denied_names_the_permission(tmp_path: Path) -> None:
    """Without iam:GetAccountAuthorizationDetails: one line naming it, exit 3, nothing published."""
    faults = Faults(access_denied=frozenset({"GetAccountAuthorizationDetails"}))
    options = EmulatorOptions(principals=20, seed=3, faults=faults, account_id="210000000022")
    with running_emulator(options) as emu:
        proc = cli(
            "sweep", "--endpoint-url", emu.endpoint, "--output", "out.jsonl", "--no-progress",
            "--policy-documents", cwd=tmp_path,
        )  # fmt: skip
    one_line_error(
        proc, 3, "iam:GetAccountAuthorizationDetails was denied", "policy-documents-policy.json"
    )
    assert not (tmp_path / "out.jsonl").exists()


async def test_resume_writes_the_set_once_and_whole(emulator: Emulator, tmp_path: Path) -> None:
    """A .part cut in the middle of the documents: the resumed file has each policy once.

    The .part holds the complete principals of a real sweep and half of its policy_document
    lines, as a stop leaves them; the resumed sweep keeps the principals and writes the whole
    set of documents again.
    """
    first = await sweep(
        fast_settings(emulator.endpoint, tmp_path / "first.jsonl", policy_documents=True)
    )
    assert first.path is not None
    lines = read_lines(first.path)[:-1]  # no run line: the sweep was killed
    documents = [r for r in lines if r["record"] == "policy_document"]
    rows = [r for r in lines if r["record"] != "policy_document"]
    kept = rows[: len(rows) // 2] + documents[: len(documents) // 2]
    part = tmp_path / "out.jsonl.part"
    part.write_text("".join(json.dumps(r) + "\n" for r in kept))
    part.chmod(0o600)
    settings = fast_settings(
        emulator.endpoint, tmp_path / "out.jsonl", policy_documents=True, resume=True
    )
    result = await sweep(settings)
    assert result.status == "complete" and result.path == str(tmp_path / "out.jsonl")
    resumed = read_lines(result.path)
    assert_matches_truth(resumed, emulator.ground_truth(policy_documents=True))
    # Not swept again: the principals the .part completed (their lines are carried over).
    done = {r["principal_arn"] for r in kept if r["record"] == "principal"}
    assert done and resumed[-1]["api_calls"]["GenerateServiceLastAccessedDetails"] == (
        resumed[-1]["records"]["principal"] - len(done)
    )
    names = Counter((r["policy_arn"], r["owner_arn"], r["policy_name"]) for r in resumed
                    if r["record"] == "policy_document")  # fmt: skip
    assert set(names.values()) == {1}


async def test_documents_with_aws_managed_reports(emulator: Emulator, tmp_path: Path) -> None:
    """With --aws-managed-policies too, each attached AWS-managed policy has a line and a report."""
    settings = fast_settings(emulator.endpoint, tmp_path / "out.jsonl", policy_documents=True)
    settings = replace(settings, discovery=replace(settings.discovery, aws_managed_policies=True))
    result = await sweep(settings)
    assert result.path is not None
    lines = read_lines(result.path)
    assert_matches_truth(
        lines, emulator.ground_truth(aws_managed_policies=True, policy_documents=True)
    )
    reported = {r["principal_arn"] for r in lines if r["record"] == "principal"}
    aws = {r["policy_arn"] for r in lines if r["record"] == "policy_document"
           and ":iam::aws:policy/" in (r["policy_arn"] or "")}  # fmt: skip
    assert aws and aws <= reported
