"""The organisation's progress line: accounts done, in flight and queued; nothing kept per account."""

from __future__ import annotations

from collector.models import OrgProgress
from collector.progress import ProgressSnapshot, org_snapshot, render


def test_the_org_line_shows_accounts_done_in_flight_and_queued() -> None:
    """Three counts of accounts lead the line, then the principals' counts as for one account."""
    line = render(ProgressSnapshot(300, 120, 42, 18.25, 3, 1, accounts=(17, 8, 975)))
    assert line == (
        "accounts 17 done, 8 in flight, 975 queued | principals 120/300 | jobs in flight 42"
        " | 18.2 calls/s | throttled 3 | errors 1"
    )


def test_ended_accounts_are_counted_once_and_not_kept() -> None:
    """Each ended account's counts join the totals once and leave the live set: a snapshot sums
    the accounts in flight only, and the run keeps nothing per ended account."""
    org = OrgProgress(accounts=1000)
    snapshot = org_snapshot(org)
    for number in range(1000):
        account = f"{number:012d}"
        org.in_flight += 1
        counters, stats = org.sweep_started(account)
        counters.principals_found = counters.principals_done = 8
        counters.errors = number % 2
        stats.calls["GenerateServiceLastAccessedDetails"] += 8
        stats.throttled["GenerateServiceLastAccessedDetails"] += 1
        if number == 500:
            counters.jobs_in_flight = 3
            middle = snapshot()
            assert middle.accounts == (500, 1, 499)
            assert (middle.principals_found, middle.jobs_in_flight) == (501 * 8, 3)
            counters.jobs_in_flight = 0
        org.sweep_ended(account)
        org.in_flight -= 1
        org.done += 1
        assert len(org.sweeping) == org.in_flight == 0
    last = snapshot()
    assert last.accounts == (1000, 0, 0)
    assert (last.principals_found, last.principals_done) == (8000, 8000)
    assert (last.throttled, last.errors) == (1000, 500)
    assert org.swept_calls == 8000
