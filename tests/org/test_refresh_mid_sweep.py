"""A member account's sweep outlives its assumed-role credentials: they are refreshed in the
middle, the short path signs with the new ones, and the old ones expire at the server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from aiobotocore.session import AioSession

from collector.config.settings import Rates
from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from collector.org.credentials import AssumeRoleSettings, account_session
from collector.sweep.account import sweep_account
from collector.sweep.pipeline import SweepResult
from collector.sweep.shutdown import Shutdown
from tests.support.org import ROLE
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Two accounts; Generate paced so a member's sweep takes a few seconds."""
    options = OrgOptions(
        accounts=2, principals=60, seed=31,
        faults=Faults(latency=0.2, rate_limits={"GenerateServiceLastAccessedDetails": 30}),
    )  # fmt: skip
    with running_organization(options) as organization:
        yield organization


class JumpingClock:
    """Wall-clock time plus a shift that jumps at given numbers of readings: the collector's
    refresh windows and the server's expiry both read it, so time moves for both at once."""

    def __init__(self, jumps: dict[int, float]) -> None:
        self.jumps = jumps
        self.readings = 0
        self.shift = 0.0
        self.jumped_at: list[int] = []
        self.lock = threading.Lock()  # the server reads it from its own threads

    def __call__(self) -> datetime:
        with self.lock:
            self.readings += 1
            if self.readings in self.jumps:
                self.shift = self.jumps[self.readings]
                self.jumped_at.append(self.readings)
            shift = self.shift
        return datetime.now(UTC) + timedelta(seconds=shift)


@dataclass
class RefreshedSweep:
    """A member account's sweep whose credentials were refreshed on the jumping clock."""

    member: str
    clock: JumpingClock
    result: SweepResult
    logs: list[MutableMapping[str, Any]]
    assumed: list[dict[str, Any]]  # the AssumeRole calls' parameters

    def lost(self, event: str) -> int:
        return sum(entry["event"] == event for entry in self.logs)


async def sweep_with_refresh(
    org: Organization, tmp_path: Path, jumps: dict[int, float], **settings: Any
) -> RefreshedSweep:
    """Sweep a member account with 900-second credentials on a clock that jumps at `jumps`."""
    member = next(a.id for a in org.accounts if not a.management and a.audit_role)
    clock = JumpingClock(jumps)
    assert org.app is not None
    org.app.clock = clock
    assumed: list[dict[str, Any]] = []
    base = AioSession()
    base.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: assumed.append(params)
    )
    config = fast_settings(org.endpoint, tmp_path / "member.jsonl", **settings)
    try:
        with anyio.fail_after(240), structlog.testing.capture_logs() as logs:
            session = await account_session(
                base, member, caller_account=org.management_account_id,
                settings=AssumeRoleSettings(role_name=ROLE, duration_seconds=900,
                                            endpoint_url=org.endpoint),
                run_id="refresh", clock=clock,
            )  # fmt: skip
            result = await sweep_account(
                config, run_id=uuid.uuid4().hex, shutdown=Shutdown(2.0), session=session
            )
    finally:
        org.app.clock = None
    return RefreshedSweep(member, clock, result, logs, assumed)


def assert_complete(org: Organization, swept: RefreshedSweep) -> None:
    """One refresh, nothing signed with expired keys, exactly the member's ground truth."""
    assert org.app is not None
    assert len(swept.assumed) == 2  # the first credentials and one refresh
    assert org.app.expired_refusals == 0  # nothing was signed with the expired keys
    lines = read_lines(swept.result.path or "")
    errors = [line for line in lines if line["record"] == "error"]
    assert swept.result.status == "complete", [
        (e["stage"], e["code"], e["message"]) for e in errors[:3]
    ]
    assert_matches_truth(lines, org.ground_truth(swept.member))


async def test_credentials_expire_and_refresh_mid_sweep_on_the_short_path(
    org: Organization, tmp_path: Path
) -> None:
    """900-second credentials; 800 s in (mandatory window) the collector assumes the role
    again; at 1,000 s the server refuses the first keys (ExpiredToken). The sweep goes on with
    the new keys on the short path, re-generates the jobs the old session made (a JobId is
    readable by its own session only) whether they were being polled or their pages read,
    and writes exactly the account's ground truth, entities included."""
    swept = await sweep_with_refresh(org, tmp_path, {60: 800.0, 150: 1000.0})
    assert swept.clock.jumped_at == [60, 150], "both jumps must fall inside the sweep"
    assert swept.clock.readings > 250  # the sweep went on well past the old keys' expiry
    (started,) = [entry for entry in swept.logs if entry["event"] == "collector.sweep.started"]
    assert started["report_calls"] == "short"
    assert_complete(org, swept)


async def test_a_refresh_while_entity_pages_wait_regenerates_those_jobs(
    org: Organization, tmp_path: Path
) -> None:
    """Entity pages paced at 10 a second, so completed jobs queue for them; the refresh comes
    once most jobs are done. Reading an old session's job then answers NoSuchEntity in the
    entity stage: each such report gets one new job, read from its start with the rows already
    written skipped, and the output is exactly the ground truth."""
    swept = await sweep_with_refresh(
        org, tmp_path, {300: 800.0, 400: 1000.0},
        rates=Rates(generate=400, get=800, get_with_entities=10, list=100),
    )  # fmt: skip
    assert swept.clock.jumped_at == [300, 400], "both jumps must fall inside the sweep"
    assert_complete(org, swept)
    assert swept.lost("collector.fetch.job_lost") > 0, "no job was lost between its pages"
