"""A member account's sweep outlives its assumed-role credentials: they are refreshed in the
middle, the short path signs with the new ones, and the old ones expire at the server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from aiobotocore.session import AioSession

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from collector.org.credentials import AssumeRoleSettings, account_session
from collector.sweep.account import sweep_account
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


async def test_credentials_expire_and_refresh_mid_sweep_on_the_short_path(
    org: Organization, tmp_path: Path
) -> None:
    """900-second credentials; 800 s in (mandatory window) the collector assumes the role
    again; at 1,000 s the server refuses the first keys (ExpiredToken). The sweep goes on with
    the new keys on the short path, re-generates the jobs the old session made (a JobId is
    readable by its own session only), and writes exactly the account's ground truth.

    Entity pages are left out (`entities=none`): a refresh that falls between a job's
    completion and its entity pages makes those reads NoSuchEntity, and the fetch stage
    records an error instead of generating the job again (only polling does). That is a
    defect of the sweep, reported with this test's runs, not of the short path.
    """
    member = next(a.id for a in org.accounts if not a.management and a.audit_role)
    clock = JumpingClock({60: 800.0, 150: 1000.0})
    assert org.app is not None
    org.app.clock = clock
    assumed: list[dict[str, Any]] = []
    base = AioSession()
    base.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: assumed.append(params)
    )
    settings = fast_settings(org.endpoint, tmp_path / "member.jsonl", entities="none")
    try:
        with anyio.fail_after(240), structlog.testing.capture_logs() as logs:
            session = await account_session(
                base, member, caller_account=org.management_account_id,
                settings=AssumeRoleSettings(role_name=ROLE, duration_seconds=900,
                                            endpoint_url=org.endpoint),
                run_id="refresh", clock=clock,
            )  # fmt: skip
            result = await sweep_account(
                settings, run_id=uuid.uuid4().hex, shutdown=Shutdown(2.0), session=session
            )
    finally:
        org.app.clock = None
    assert clock.jumped_at == [60, 150], "both jumps must fall inside the sweep"
    assert clock.readings > 250  # the sweep went on well past the old keys' expiry
    (started,) = [entry for entry in logs if entry["event"] == "collector.sweep.started"]
    assert started["report_calls"] == "short"
    assert len(assumed) == 2  # the first credentials and one refresh
    assert org.app.expired_refusals == 0  # nothing was signed with the expired keys
    errors = [line for line in read_lines(result.path or "") if line["record"] == "error"]
    assert result.status == "complete", [(e["stage"], e["code"], e["message"]) for e in errors[:3]]
    assert_matches_truth(read_lines(result.path or ""), org.ground_truth(member, entities="none"))
