"""--org-access-report against an emulated organisation: rows equal the truth, 409 waited out."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.session import AioSession

from collector.aws.clients import client_config
from collector.config.settings import PollSettings, RetrySettings
from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from collector.models import CallStats, Record
from collector.org.access import GENERATE_ORG, ORG_ACCESS_FIELDS, OrgAccessReport, org_targets
from collector.org.accessrun import write_org_access
from collector.org.manifest import Manifest, OrgAccessEntry, merge, read_manifest, write_manifest
from collector.org.shard import Shard
from collector.sweep.shutdown import Shutdown
from tests.support.cli import cli, one_line_error
from tests.support.emulator_org_clients import client
from tests.support.org import ROLE, manifest_of, org_args
from tests.support.reporting import json_rows, report
from tests.support.sweeping import fast_settings, read_lines

TYPES = {"ROOT": "root", "ORGANIZATIONAL_UNIT": "ou", "ACCOUNT": "account"}


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Five accounts over workloads/prod, workloads/dev, sandbox and the root; an SCP on
    sandbox denies s3; reports take 0.2 s, and a quarter of the entity paths' reports FAIL."""
    options = OrgOptions(
        accounts=5, principals=20, seed=1, scp_denied=("s3",),
        report_latency=0.2, report_failed_share=0.25, faults=Faults(latency=0.05),
    )  # fmt: skip
    with running_organization(options) as organization:
        yield organization


def expected_rows(org: Organization, path: str) -> list[dict[str, Any]]:
    """org_access records (without run and job ids) a correct sweep writes for one path."""
    truth = org.org_access_truth(path)
    return [
        {
            "record": "org_access",
            "schema": 1,
            "account_id": org.management_account_id,
            "entity_path": truth["entity_path"],
            "target_id": truth["target_id"],
            "target_type": TYPES[truth["target_type"]],
            "service_namespace": row["service_namespace"],
            "service_name": row["service_name"],
            "region": row["region"],
            "last_authenticated": row["last_authenticated_time"],
            "last_authenticated_entity_path": row["entity_path"],
            "total_authenticated_entities": row["total_authenticated_entities"],
        }
        for row in truth["access_details"]
    ]


def by_path(records: list[Record], kind: str) -> dict[str, list[Record]]:
    found: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record["record"] == kind:
            found[record["entity_path"]].append(
                {k: v for k, v in record.items() if k not in ("run_id", "job_id")}
            )
    return found


def assert_equals_truth(org: Organization, records: list[Record]) -> None:
    """One report per entity path of the org: its rows are the truth's, or its FAILED job is
    one error line with the emulator's code."""
    rows, errors = by_path(records, "org_access"), by_path(records, "error")
    failed = {p for p in org.layout.entity_paths() if org.org_access_truth(p)["status"] == "FAILED"}
    for path in org.layout.entity_paths():
        if path in failed:
            truth = org.org_access_truth(path)
            assert path not in rows
            assert [(e["stage"], e["code"], e["target_id"]) for e in errors[path]] == [
                ("org_access", truth["error_code"], truth["target_id"])
            ]
        else:
            assert rows[path] == expected_rows(org, path), path
            assert path not in errors
    assert set(rows) | set(errors) == set(org.layout.entity_paths())
    for record in records:
        if record["record"] != "run":
            assert set(record) == ORG_ACCESS_FIELDS[record["record"]]


@pytest.fixture(scope="module")
def swept(org: Organization, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """`collector sweep --org --org-access-report --run-id night-1` in a subprocess."""
    cwd = tmp_path_factory.mktemp("org-access")
    # Module scope: the autouse fixture's dummy keys are not set yet, so they are given here.
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = cli(*org_args(org, "--org-access-report", "--run-id", "night-1"), cwd=cwd,
               env=keys, timeout=300)  # fmt: skip
    return cwd, proc


@pytest.mark.e2e
def test_org_sweep_with_the_access_report_equals_truth(
    org: Organization, swept: tuple[Path, Any]
) -> None:
    """`collector sweep --org --org-access-report`: the org-level file beside the manifest has
    the truth's rows for the root, all four OUs and every account, FAILED reports as error
    lines; it is 0600, named in the manifest with its counts; exit 1 (the report is partial)."""
    tmp_path, proc = swept
    failed = [p for p in org.layout.entity_paths() if org.org_access_truth(p)["status"] == "FAILED"]
    kinds = {org.org_access_truth(p)["target_type"] for p in failed}
    assert kinds == {"ORGANIZATIONAL_UNIT", "ACCOUNT"}  # the fixture's seed fails one of each
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    manifest = manifest_of(tmp_path)
    assert {e["outcome"] for e in manifest["accounts"]} == {"complete"}
    entry = manifest["org_access"]
    assert entry["status"] == "partial" and entry["error"] is None
    path = tmp_path / entry["output"]
    assert path == tmp_path / "out" / "org-access-night-1.jsonl"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list((tmp_path / "out").glob("*.part"))
    records = read_lines(path)
    assert_equals_truth(org, records)
    run = records[-1]
    assert run["record"] == "run" and run["status"] == "partial"
    assert (
        run["records"]
        == entry["records"]
        == {
            "org_access": sum(len(expected_rows(org, p)) for p in org.layout.entity_paths()),
            "error": len(failed),
        }
    )
    assert run["targets"] == {"root": 1, "ou": 4, "account": 5}
    order = [r["entity_path"] for r in records[:-1]]
    assert order[0] == org.layout.root_path  # root, then OUs, then accounts by id
    assert {r["run_id"] for r in records} == {"night-1"}
    assert all(len(r["job_id"]) == 36 for r in records[:-1])  # a FAILED job's too


@pytest.mark.e2e
@pytest.mark.parametrize("days", [30, 180])
def test_report_org_unused_per_ou_equals_truth(
    org: Organization, swept: tuple[Path, Any], days: int
) -> None:
    """`collector report org-unused`: per OU (and the root), the services its SCPs allow whose
    last use across the OU is N or more days before the as-of date, or never; the OU whose
    report FAILED is named in a warning instead."""
    tmp_path, _ = swept
    as_of = datetime.now(UTC).date()  # the sweep just ran; its emulator's now is today
    proc = report("org-unused", "out/org-access-night-1.jsonl", "--days", str(days),
                  "--as-of", as_of.isoformat(), "--format", "json", cwd=tmp_path)  # fmt: skip
    rows = json_rows(proc)
    expected = []
    for unit in org.units:
        truth = org.org_access_truth(unit.path)
        if truth["status"] == "FAILED":
            assert f"{unit.path}: the report failed (ServiceFailure)" in proc.stderr
            continue
        for row in truth["access_details"]:
            stamp = row["last_authenticated_time"]
            age = None if stamp is None else (as_of - date.fromisoformat(stamp[:10])).days
            if age is None or age >= days:
                expected.append((unit.path, TYPES[truth["target_type"]], truth["target_id"],
                                 row["service_namespace"], stamp, age))  # fmt: skip
    got = [(r["entity_path"], r["target_type"], r["target_id"], r["service_namespace"],
            r["last_authenticated"], r["days_since"]) for r in rows]  # fmt: skip
    assert got == sorted(expected)
    assert any(age is None for *_, age in got) and any(age is not None for *_, age in got)


@pytest.mark.e2e
def test_the_flag_needs_org(tmp_path: Path) -> None:
    """--org-access-report with --accounts: one line naming --org, exit 2, no AWS call."""
    proc = cli("sweep", "--accounts", "111111111111", "--role-name", ROLE, "--endpoint-url",
               "http://127.0.0.1:9", "--output", "o/{account_id}.jsonl", "--org-access-report",
               cwd=tmp_path, env={"COLLECTOR_ORG_ACCESS_REPORT": "true"})  # fmt: skip
    one_line_error(proc, 2, "--org-access-report", "--org")


def settings_for(org: Organization, tmp_path: Path) -> Any:
    return fast_settings(
        org.endpoint,
        tmp_path / "{account_id}.jsonl",
        poll=PollSettings(first_delay=0.05, backoff=1.5, max_delay=0.3, job_deadline=60),
        retry=RetrySettings(base_delay=0.05, max_delay=0.2),
    )


async def test_a_report_in_progress_is_waited_out(tmp_path: Path) -> None:
    """Someone else's report job holds the account's one slot: Generate answers 409
    ReportGenerationLimitExceeded, the report waits (no error), and once the job completes
    every target's rows equal the truth."""
    options = OrgOptions(accounts=3, principals=10, seed=5, report_latency=0.05)
    with running_organization(options) as held:
        jobs = held.access_reports
        assert jobs is not None
        frozen = time.monotonic()
        jobs.clock = lambda: frozen  # the emulator's time stands still: no job completes
        other = client(held, "iam").generate_organizations_access_report(
            EntityPath=held.layout.root_path
        )
        settings = settings_for(held, tmp_path)
        records: list[Record] = []
        stats = CallStats()
        with anyio.fail_after(120):
            session = AioSession()
            where, config = held.endpoint, client_config()
            async with (
                session.create_client(
                    "iam", endpoint_url=where, region_name="us-east-1", config=config
                ) as iam,
                session.create_client(
                    "organizations", endpoint_url=where, region_name="us-east-1", config=config
                ) as organizations,
            ):
                ids = [account.id for account in held.accounts]
                targets = await org_targets(organizations, held.organization_id, ids)
                report = OrgAccessReport(settings, iam, run_id="r", stats=stats,
                                         account_id=held.management_account_id,
                                         shutdown=Shutdown(1.0))  # fmt: skip
                send, receive = anyio.create_memory_object_stream[Record](0)

                async def collect() -> None:
                    async with receive:
                        records.extend([record async for record in receive])

                async with anyio.create_task_group() as group:
                    group.start_soon(collect)
                    group.start_soon(report.run, targets, send)
                    # A counter has no event to wait on: look at it until two 409s were waited.
                    while report.limit_waits < 2:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                    assert records == []
                    jobs.clock = time.monotonic  # time runs again: the other job completes
        assert other["JobId"]
        assert [t.entity_path for t in targets] == [
            *(unit.path for unit in held.units),
            *sorted((a.path for a in held.accounts), key=lambda p: p.rsplit("/", 1)[1]),
        ]
        assert report.limit_waits >= 2
        assert stats.calls[GENERATE_ORG] == len(targets) + report.limit_waits
        assert not by_path(records, "error")
        assert_equals_truth(held, records)


async def test_access_denied_fails_the_report_not_the_run(tmp_path: Path) -> None:
    """Credentials that may not generate the report (not the management account): one error
    line, the entry `failed` with AWS's code, the file still published."""
    options = OrgOptions(
        accounts=2, principals=5, seed=2,
        faults=Faults(access_denied=frozenset({"GenerateOrganizationsAccessReport"})),
    )  # fmt: skip
    with running_organization(options) as denied:
        path = tmp_path / "org-access-r.jsonl"
        with anyio.fail_after(60):
            entry = await write_org_access(
                settings_for(denied, tmp_path), AioSession(),
                organization_id=denied.organization_id, account_id=denied.management_account_id,
                account_ids=[a.id for a in denied.accounts], location=str(path), run_id="r",
                shutdown=Shutdown(1.0),
            )  # fmt: skip
    assert entry.status == "failed" and entry.error is not None
    assert entry.error.code == "AccessDenied" and entry.output == str(path)
    lines = read_lines(path)
    assert [(r["record"], r.get("code")) for r in lines] == [
        ("error", "AccessDenied"),
        ("run", None),
    ]
    assert lines[-1]["status"] == "failed" and entry.records == {"org_access": 0, "error": 1}


def test_the_manifest_entry_survives_reading_and_merging(tmp_path: Path) -> None:
    """The org_access entry is written, read back, and carried from shard 0 into the merge."""
    entry = OrgAccessEntry("complete", "out/org-access-n.jsonl", {"org_access": 3, "error": 0})
    now = datetime(2026, 11, 23, tzinfo=UTC)
    paths = []
    for index in range(2):
        manifest = Manifest(
            run_id="n", organization_id="o-abcdefghij", started=now, finished=now, accounts=(),
            listed_accounts=(), shard=Shard(index, 2), org_access=entry if index == 0 else None,
        )  # fmt: skip
        paths.append(tmp_path / f"manifest-{index}.json")
        write_manifest(manifest, paths[-1])
    assert read_manifest(paths[0]).org_access == entry
    assert read_manifest(paths[1]).org_access is None
    merged = merge(paths, tmp_path / "manifest.json")
    assert merged.org_access == entry
    document = json.loads((tmp_path / "manifest.json").read_text())
    assert document["org_access"]["records"] == {"org_access": 3, "error": 0}
