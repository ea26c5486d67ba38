"""An organisation sweep in one process: one client per service for every account, the bound on
accounts in flight, and nothing kept per finished account."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from aiobotocore.session import AioSession

from collector.config.settings import OrgSettings
from collector.emulator import Faults
from collector.emulator.faults import Uniform
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from collector.models import CallStats, Counters, OrgProgress
from collector.org.sweep import OrgResult, OrgSweep
from collector.sweep.shutdown import Shutdown
from tests.support.org import ROLE
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """The management account and five members, a few principals each."""
    options = OrgOptions(accounts=6, principals=6, seed=11, faults=Faults(latency=0.2))
    with running_organization(options) as organization:
        yield organization


class Recorded(OrgProgress):
    """The run's progress, noting how many accounts were in flight as each sweep started."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight_at_start: list[int] = []

    def sweep_started(self, account_id: str) -> tuple[Counters, CallStats]:
        self.in_flight_at_start.append(self.in_flight)
        return super().sweep_started(account_id)


async def sweep_org(
    org: Organization, out: Path | str, **changes: Any
) -> tuple[OrgResult, Recorded]:
    """Sweep the whole organisation in this process; `out` a directory or an s3:// prefix."""
    settings = fast_settings(
        org.endpoint,
        f"{out}/{{account_id}}.jsonl",
        org=OrgSettings(org=True, role_name=ROLE),
        **changes,
    )
    progress = Recorded()
    sweep = OrgSweep(
        settings, run_id="scale", shard=None, shutdown=Shutdown(2.0), progress=progress
    )
    with anyio.fail_after(240):
        return await sweep.run(), progress


def assert_complete_and_exact(org: Organization, result: OrgResult, out: Path) -> None:
    assert {entry.outcome for entry in result.manifest.accounts} == {"complete"}
    assert len(result.manifest.accounts) == len(org.accounts)
    for account in org.accounts:
        assert_matches_truth(read_lines(out / f"{account.id}.jsonl"), org.ground_truth(account.id))


async def test_every_account_uses_one_iam_client_and_one_sts_client(
    org: Organization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six accounts, and the process creates one IAM client (each account signs through a copy
    of it), one STS client for every AssumeRole plus the one asking who the caller is, and one
    Organizations client; every account's file is exact."""
    created: Counter[str] = Counter()
    create_client: Any = AioSession.create_client

    def counted(self: AioSession, service: str, *args: Any, **kwargs: Any) -> Any:
        created[service] += 1
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(AioSession, "create_client", counted)
    result, progress = await sweep_org(org, tmp_path)
    assert created == {"iam": 1, "sts": 2, "organizations": 1}
    assert_complete_and_exact(org, result, tmp_path)
    assert (progress.done, progress.in_flight, progress.queued) == (6, 0, 0)
    assert progress.sweeping == {}  # every account's counts folded into the totals


async def test_every_account_writes_s3_output_through_the_runs_one_s3_client(
    org: Organization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 output: the run opens one S3 client (resume, uploads, manifest) and every account's
    upload goes through it, instead of a client and connection pool per account; every
    account's object is exact."""
    s3 = boto3.client("s3", endpoint_url=org.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="scale-exports")
    created: Counter[str] = Counter()
    create_client: Any = AioSession.create_client

    def counted(self: AioSession, service: str, *args: Any, **kwargs: Any) -> Any:
        created[service] += 1
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(AioSession, "create_client", counted)
    result, _ = await sweep_org(org, "s3://scale-exports")
    assert created["s3"] == 1
    assert {entry.outcome for entry in result.manifest.accounts} == {"complete"}
    for account in org.accounts:
        body = s3.get_object(Bucket="scale-exports", Key=f"{account.id}.jsonl")["Body"].read()
        lines = [json.loads(line) for line in body.splitlines()]
        assert_matches_truth(lines, org.ground_truth(account.id))


async def test_accounts_in_flight_never_exceed_the_bound(org: Organization, tmp_path: Path) -> None:
    """--max-accounts-in-flight 2: no account starts while two are in flight; all complete."""
    result, progress = await sweep_org(org, tmp_path, max_accounts_in_flight=2)
    assert len(progress.in_flight_at_start) == 6
    assert max(progress.in_flight_at_start) <= 2
    assert_complete_and_exact(org, result, tmp_path)


async def test_an_orgs_accounts_poll_each_job_when_it_is_due(tmp_path: Path) -> None:
    """Accounts of an organisation poll no job early on an idle Get slot (which, for small
    accounts, is every slot): once the latency is learned, one Get per job. Jobs take 0.2-0.9 s;
    polled from the median on idle slots every 0.5 s, half of them would need two Gets."""
    options = OrgOptions(
        accounts=4, principals=12, seed=6, faults=Faults(latency=Uniform(0.2, 0.9))
    )
    with running_organization(options) as organization:
        await sweep_org(organization, tmp_path, max_accounts_in_flight=1)
        runs = sorted(
            (read_lines(path)[-1] for path in tmp_path.glob("*.jsonl")),
            key=lambda run: str(run["started"]),
        )
    calls = [run["api_calls"] for run in runs[2:]]  # the latency was learned before these
    gets = sum(call["GetServiceLastAccessedDetails"] for call in calls)
    jobs = sum(call["GenerateServiceLastAccessedDetails"] for call in calls)
    assert gets / jobs <= 1.2
