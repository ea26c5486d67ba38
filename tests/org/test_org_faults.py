"""One bad account never takes an organisation down: its outcome in the manifest, exit 1."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.cli import COLLECTOR, FAST_ENV, cli, killed_on_failure
from tests.support.hostile import proxy
from tests.support.org import manifest_of, org_args
from tests.support.sweeping import assert_matches_truth, read_lines

pytestmark = pytest.mark.e2e  # every test runs the collector CLI

# Members 1..6 each fail in their own way; 7 and 8 are healthy.
FAULTS = (
    (1, "no-permissions"),
    (2, "iam-5xx"),
    (3, "assume-empty"),
    (4, "assume-html"),
    (5, "assume-bad-expiry"),
    (6, "assume-expired"),
)
QUICK_RETRIES = {"COLLECTOR_RETRY_MAX_ATTEMPTS": "3"}


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    """Nine accounts: the management account, six members that fail, two healthy ones."""
    options = OrgOptions(
        accounts=9, principals=8, seed=21, member_faults=FAULTS, faults=Faults(latency=0.05)
    )
    with running_organization(options) as organization:
        yield organization


def member(org: Organization, fault: str | None) -> str:
    return next(a.id for a in org.accounts if not a.management and a.fault == fault)


def healthy(org: Organization) -> list[str]:
    return [a.id for a in org.accounts if a.fault is None]


def accounts_args(org: Organization, ids: list[str], *extra: str) -> list[str]:
    args = org_args(org, *extra)
    args[args.index("--org")] = "--accounts"
    args.insert(args.index("--accounts") + 1, ",".join(ids))
    return args


def outcomes(cwd: Path) -> dict[str, tuple[str, str | None]]:
    return {
        e["account_id"]: (e["outcome"], e["error"] and e["error"]["code"])
        for e in manifest_of(cwd)["accounts"]
    }


def assert_exact(org: Organization, cwd: Path, account_ids: list[str]) -> None:
    for account_id in account_ids:
        lines = read_lines(cwd / "out" / f"{account_id}.jsonl")
        assert_matches_truth(lines, org.ground_truth(account_id))


def test_a_member_whose_iam_fails_is_failed_and_the_others_complete(
    org: Organization, tmp_path: Path
) -> None:
    """A member role without permissions (every IAM call denied) and a member whose IAM answers
    5xx: each `failed` with its reason in the manifest, every other account complete and exact,
    exit 1, no traceback. `--resume` retries each failed account once and ends the same way."""
    denied, failing = member(org, "no-permissions"), member(org, "iam-5xx")
    ids = [denied, failing, *healthy(org)]
    proc = cli(*accounts_args(org, ids), cwd=tmp_path, env=QUICK_RETRIES, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "collector: error" not in proc.stderr
    found = outcomes(tmp_path)
    assert found[denied] == ("failed", "AccessDenied"), found
    assert found[failing] in (("failed", "ServiceFailure"), ("failed", "ServiceUnavailable"))
    assert {found[a] for a in healthy(org)} == {("complete", None)}
    assert_exact(org, tmp_path, healthy(org))

    finished = {a: (tmp_path / "out" / f"{a}.jsonl").stat().st_mtime_ns for a in healthy(org)}
    before = {a: org.assume_role_calls(a) for a in (denied, failing)}
    resumed = cli(*accounts_args(org, ids, "--resume"), cwd=tmp_path, env=QUICK_RETRIES,
                  timeout=300)  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert {a: o[0] for a, o in outcomes(tmp_path).items()} == {a: o[0] for a, o in found.items()}
    for account_id, mtime in finished.items():
        assert (tmp_path / "out" / f"{account_id}.jsonl").stat().st_mtime_ns == mtime
    assert {a: org.assume_role_calls(a) - n for a, n in before.items()} == {denied: 1, failing: 1}


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("assume-empty", "MalformedResponse"),
        ("assume-html", "MalformedResponse"),
        ("assume-bad-expiry", "MalformedResponse"),
        ("assume-expired", "ExpiredCredentials"),
    ],
)
def test_a_bad_assume_role_answer_fails_only_its_account(
    org: Organization, tmp_path: Path, fault: str, code: str
) -> None:
    """AssumeRole answering 200 with an empty body, an HTML page, an unparsable expiry or one
    already past: that account `failed` with the reason, the others complete, a manifest,
    exit 1, no traceback."""
    bad = member(org, fault)
    proc = cli(*accounts_args(org, [bad, *healthy(org)]), cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    found = outcomes(tmp_path)
    assert found[bad] == ("failed", code), found
    assert {found[a] for a in healthy(org)} == {("complete", None)}
    assert_exact(org, tmp_path, healthy(org))


def test_a_refresh_that_keeps_failing_fails_its_account_without_a_storm(tmp_path: Path) -> None:
    """Credentials that last 10 s and a member whose AssumeRole works once, then is denied: its
    refreshes back off (a handful of AssumeRole calls, not one per API call), one log line says
    so, and the account ends `failed` when its credentials run out; the other account completes,
    exit 1, no traceback."""
    options = OrgOptions(
        accounts=2, principals=40, seed=22, member_faults=((1, "refresh-denied"),),
        session_seconds=10, faults=Faults(latency=12),
    )  # fmt: skip
    with running_organization(options) as org:
        management, bad = org.management_account_id, org.accounts[1].id
        proc = cli(*accounts_args(org, [management, bad]), cwd=tmp_path, timeout=300)
        calls = org.assume_role_calls(bad)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    found = outcomes(tmp_path)
    assert found == {management: ("complete", None), bad: ("failed", "AccessDenied")}
    refresh_lines = [line for line in proc.stderr.splitlines() if "refresh" in line.lower()]
    assert len(refresh_lines) == 1 and bad in refresh_lines[0], refresh_lines
    assert 2 <= calls <= 5, calls


def test_sigterm_while_an_assume_role_hangs_stops_within_the_grace(tmp_path: Path) -> None:
    """SIGTERM while one account's AssumeRole hangs and another account sweeps: the sweep stops
    within its grace (2 s) and the hung call is abandoned at once, instead of waiting for STS's
    timeouts and retries (a minute and more, past any container's stop timeout); exit 143."""
    options = OrgOptions(
        accounts=3, principals=40, seed=23, member_faults=((1, "assume-hang"),),
        faults=Faults(latency=1.0),
    )  # fmt: skip
    with running_organization(options) as org:
        hung, healthy = org.accounts[1].id, org.accounts[2].id
        args = accounts_args(org, [hung, healthy], "--max-accounts-in-flight", "2")
        proc = subprocess.Popen(
            [COLLECTOR, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=os.environ | FAST_ENV,
        )  # fmt: skip
        with killed_on_failure(proc):
            part = tmp_path / "out" / f"{healthy}.jsonl.part"
            deadline = time.monotonic() + 120
            while not (part.exists() and org.assume_role_calls(hung)):
                assert proc.poll() is None and time.monotonic() < deadline, "never got going"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            _, stderr = proc.communicate(timeout=60)
            stopped_after = time.monotonic() - signalled
    assert proc.returncode == 143, stderr[-3000:]
    assert stopped_after < 15, stopped_after  # grace 2 s + a margin; a loaded machine is slow
    assert "Traceback" not in stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def sweep_with_open_files(
    org: Organization, cwd: Path, ulimit: str
) -> subprocess.CompletedProcess[str]:
    """An org sweep of every account, 64 accounts in flight allowed, under `ulimit -n` flags."""
    args = org_args(org, "--max-accounts-in-flight", "64")
    return subprocess.run(
        ["/bin/sh", "-c", f'ulimit {ulimit} && exec "$0" "$@"', COLLECTOR, *args], cwd=cwd,
        capture_output=True, text=True, timeout=300, env=os.environ | FAST_ENV,
    )  # fmt: skip


def started_event(stderr: str) -> dict[str, object]:
    return next(
        json.loads(line) for line in stderr.splitlines() if '"collector.org.started"' in line
    )


@pytest.fixture(scope="module")
def busy_org() -> Iterator[Organization]:
    """Twelve accounts of 30 principals whose jobs take half a second: many calls at once."""
    options = OrgOptions(accounts=12, principals=30, seed=24, faults=Faults(latency=0.5))
    with running_organization(options) as organization:
        yield organization


def test_a_low_soft_open_files_limit_is_raised_to_the_hard_one(
    busy_org: Organization, tmp_path: Path
) -> None:
    """Started with a soft limit of 48 descriptors (the hard one higher), as containers often
    start: the sweep raises it to the hard limit first, so twelve accounts at once do not run
    out of descriptors (which failed accounts as unwritable or the endpoint as down)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    proc = sweep_with_open_files(busy_org, tmp_path, "-S -n 48")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert started_event(proc.stderr)["open_files"] == min(hard, 1 << 20)
    outcomes = {e["outcome"] for e in manifest_of(tmp_path)["accounts"]}
    assert outcomes == {"complete"}


def test_accounts_in_flight_fit_in_the_hard_open_files_limit(
    busy_org: Organization, tmp_path: Path
) -> None:
    """Soft and hard limit 300: the shared IAM and STS pools (64 connections each) and the
    process's own 64 set aside, each account needs 16 more (its files, its S3 upload), so six
    run at once whatever --max-accounts-in-flight asks; the log says so, and every account
    completes instead of some failing on EMFILE with a misleading hint."""
    proc = sweep_with_open_files(busy_org, tmp_path, "-n 300")
    assert proc.returncode == 0, proc.stderr[-3000:]
    started = started_event(proc.stderr)
    assert (started["open_files"], started["accounts_in_flight"]) == (300, 6)
    assert "collector.org.accounts_in_flight_limited" in proc.stderr
    finished = next(json.loads(line) for line in proc.stderr.splitlines()
                    if '"collector.org.finished"' in line)  # fmt: skip
    assert 1 <= finished["peak_accounts_in_flight"] <= 6
    assert {e["outcome"] for e in manifest_of(tmp_path)["accounts"]} == {"complete"}


def test_an_assume_role_that_cannot_connect_is_failed_not_denied(
    org: Organization, tmp_path: Path
) -> None:
    """AssumeRole whose connection is cut every time (as when the process is out of file
    descriptors or the network drops): the account is `failed` with the connection's error,
    never `assume_role_denied` (which says the role refused the caller)."""
    healthy_member = next(a.id for a in org.accounts if not a.management and a.fault is None)

    def cut_assume_role(operation: str, body: bytes) -> tuple[int, bytes, int] | None:
        return (200, b"<AssumeRoleResponse>", 4096) if operation == "AssumeRole" else None

    with proxy(org.endpoint, cut_assume_role) as url:
        args = accounts_args(org, [healthy_member])
        args[args.index(org.endpoint)] = url
        proc = cli(*args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    outcome, code = outcomes(tmp_path)[healthy_member]
    assert outcome == "failed" and code not in ("AccessDenied", None), (outcome, code)
