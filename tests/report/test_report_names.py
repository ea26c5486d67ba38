"""Account names in reports: from the org manifest found beside the inputs, or given with
--manifest; beside the id for people, an `account_name` column last for scripts."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import one_line_error
from tests.support.org import org_args
from tests.support.reporting import json_rows, org_sweep, report

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

# The columns `report unused` had before account names: scripts read them by name and place.
UNUSED_COLUMNS = [
    "principal_arn", "principal_type", "account_id", "service_namespace", "service_name",
    "last_authenticated", "days_since", "principal_granted", "principal_unused",
    "principal_unused_share", "used_by",
]  # fmt: skip


@dataclass(frozen=True)
class OrgRun:
    """An org sweep's files (in `cwd/out`) and the names Organizations gives its accounts."""

    cwd: Path
    names: dict[str, str]

    @property
    def files(self) -> str:
        return str(self.cwd / "out" / "*.jsonl")


@pytest.fixture(scope="module")
def organization() -> Iterator[Organization]:
    """Four accounts: the management account and three members, each with its own name."""
    options = OrgOptions(accounts=4, principals=30, seed=11, faults=Faults(latency=0.1))
    with running_organization(options) as org:
        yield org


@pytest.fixture(scope="module")
def org_run(organization: Organization, tmp_path_factory: pytest.TempPathFactory) -> OrgRun:
    """The organisation swept through the CLI, with policy documents (for `report rightsize`)."""
    cwd = tmp_path_factory.mktemp("org-names")
    proc = org_sweep(*org_args(organization, "--policy-documents"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (cwd / "out" / "manifest.json").exists()
    return OrgRun(cwd, {account.id: account.name for account in organization.accounts})


def _labels(names: dict[str, str]) -> list[str]:
    return [f"{name} ({account})" for account, name in names.items()]


def test_a_found_manifest_names_every_row_in_json_and_csv(org_run: OrgRun) -> None:
    """`out/manifest.json` of the run that wrote the inputs: every row carries its account's
    name in `account_name`, the last column; the columns before it are unchanged."""
    rows = json_rows(report("unused", org_run.files, "--format", "json"))
    assert {row["account_id"] for row in rows} == set(org_run.names)
    assert all(row["account_name"] == org_run.names[row["account_id"]] for row in rows)
    assert list(rows[0]) == [*UNUSED_COLUMNS, "account_name"]
    proc = report("unused", org_run.files, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    header, *lines = csv.reader(io.StringIO(proc.stdout))
    assert header == [*UNUSED_COLUMNS, "account_name"]
    assert {(line[2], line[-1]) for line in lines} == set(org_run.names.items())


@pytest.mark.parametrize("fmt", ["html", "markdown", "table"])
def test_people_see_the_name_beside_the_id(org_run: OrgRun, fmt: str, tmp_path: Path) -> None:
    """HTML, Markdown and the terminal table show `name (id)` for every account."""
    for kind in ("unused", "summary"):
        out = tmp_path / f"{kind}.{fmt}"
        proc = report(kind, org_run.files, "--format", fmt, "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        text = out.read_text()
        for label in _labels(org_run.names):
            assert label in text, f"{kind} {fmt}: {label}"
        if fmt == "html":
            assert str(org_run.cwd / "out" / "manifest.json") in text  # where the names came from


def test_summary_csv_carries_the_name_last(org_run: OrgRun) -> None:
    """`report summary` keeps its columns and adds `account_name` after them."""
    rows = json_rows(report("summary", org_run.files, "--format", "json"))
    columns = list(rows[0])
    assert columns[0] == "account_id" and columns[-2:] == ["run_status", "account_name"]
    assert {(row["account_id"], row["account_name"]) for row in rows} == set(org_run.names.items())


def test_diff_names_changed_rows_and_one_sided_accounts(org_run: OrgRun, tmp_path: Path) -> None:
    """`report diff` of the run and a copy missing one account and one service line: the
    change and the account found on one side only are named (the copy's manifest came along)."""
    copy = tmp_path / "out"
    shutil.copytree(org_run.cwd / "out", copy)
    accounts = sorted(org_run.names)
    (copy / f"{accounts[0]}.jsonl").unlink()
    changed = copy / f"{accounts[1]}.jsonl"
    lines = [json.loads(line) for line in changed.read_text().splitlines()]
    done = {r["principal_arn"] for r in lines if r["record"] == "principal"}
    dropped = next(r for r in lines if r["record"] == "service" and r["principal_arn"] in done)
    changed.write_text("".join(json.dumps(r) + "\n" for r in lines if r is not dropped))
    proc = report("diff", org_run.files, str(copy / "*.jsonl"), "--format", "json")
    rows = json_rows(proc)
    assert [(r["change"], r["account_id"], r["account_name"]) for r in rows] == [
        ("no_longer_granted", accounts[1], org_run.names[accounts[1]])
    ]
    one_sided = f"account {org_run.names[accounts[0]]} ({accounts[0]}) is only in OLD"
    assert one_sided in proc.stderr


def test_rightsize_names_each_policys_account(org_run: OrgRun, tmp_path: Path) -> None:
    """`report rightsize`: `account_name` in its JSON and CSV, `name (id)` in its Markdown."""
    proposals = json.loads(report("rightsize", org_run.files, "--format", "json").stdout)
    assert proposals and all(p["account_name"] == org_run.names[p["account_id"]] for p in proposals)
    header = report("rightsize", org_run.files, "--format", "csv").stdout.splitlines()[0]
    assert header.startswith("account_id,") and header.endswith(",account_name")
    markdown = report("rightsize", org_run.files, "--format", "markdown").stdout
    trimmed = next(p for p in proposals if p["action"] == "trim")
    assert f"- account: {_labels({trimmed['account_id']: trimmed['account_name']})[0]}" in markdown


def test_moved_files_need_the_manifest_given(org_run: OrgRun, tmp_path: Path) -> None:
    """Files copied away from their manifest have no names, and the report is exactly what it
    was before names (no account_name column, bare ids); --manifest gives them back."""
    for path in (org_run.cwd / "out").glob("*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    moved = str(tmp_path / "*.jsonl")
    rows = json_rows(report("unused", moved, "--format", "json"))
    assert list(rows[0]) == UNUSED_COLUMNS
    header = report("unused", moved, "--format", "csv").stdout.splitlines()[0]
    assert header == ",".join(UNUSED_COLUMNS)
    summary = report("summary", moved, "--format", "markdown").stdout
    assert "account_name" not in summary and "account names" not in summary
    assert not any(label in summary for label in _labels(org_run.names))
    proposals = json.loads(report("rightsize", moved, "--format", "json").stdout)
    assert proposals and all("account_name" not in p for p in proposals)
    manifest = str(org_run.cwd / "out" / "manifest.json")
    rows = json_rows(report("unused", moved, "--format", "json", "--manifest", manifest))
    assert all(row["account_name"] == org_run.names[row["account_id"]] for row in rows)


def test_a_manifest_that_does_not_list_the_inputs_is_not_used(
    org_run: OrgRun, tmp_path: Path
) -> None:
    """A manifest beside the inputs names accounts only if it lists those very files: the
    manifest of a run that wrote other files, or a manifest.json that is not ours, is ignored."""
    source = org_run.cwd / "out"
    other = json.loads((source / "manifest.json").read_text())
    for entry in other["accounts"]:
        entry["output"] = f"elsewhere/{entry['account_id']}-other.jsonl"
    for path in source.glob("*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "manifest.json").write_text(json.dumps(other))
    (tmp_path / "manifest-0.json").write_text('{"name": "a web app manifest", "icons": []}')
    rows = json_rows(report("unused", str(tmp_path / "*.jsonl"), "--format", "json"))
    assert list(rows[0]) == UNUSED_COLUMNS


def test_shard_manifests_are_found(organization: Organization, tmp_path: Path) -> None:
    """Two shards of one run write manifest-0.json and manifest-1.json beside the files: each
    names the accounts of its shard."""
    for index in (0, 1):
        extra = ("--shard", f"{index}/2", "--run-id", "sharded")
        proc = org_sweep(*org_args(organization, *extra), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in (tmp_path / "out").glob("manifest*")} == {
        "manifest-0.json",
        "manifest-1.json",
    }
    rows = json_rows(report("summary", str(tmp_path / "out" / "*.jsonl"), "--format", "json"))
    names = {account.id: account.name for account in organization.accounts}
    assert {(row["account_id"], row["account_name"]) for row in rows} == set(names.items())


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read"),
        ("{not json", "not JSON"),
        ('{"manifest": 1, "accounts": "no"}', "not a collector manifest"),
        ("s3://bucket/out/manifest.json", "s3:// is not supported yet"),
    ],
    ids=["missing", "not-json", "not-a-manifest", "s3"],
)
def test_a_bad_manifest_given_is_one_line_exit_2(
    org_run: OrgRun, tmp_path: Path, content: str | None, words: str
) -> None:
    """--manifest that cannot be used: one `collector: error:` line naming it, exit 2."""
    manifest = str(tmp_path / "manifest.json")
    if content is not None and content.startswith("s3://"):
        manifest = content
    elif content is not None:
        Path(manifest).write_text(content)
    proc = report("unused", org_run.files, "--manifest", manifest, "--format", "csv")
    one_line_error(proc, 2, manifest, words)
    assert proc.stdout == ""
