"""Accounts in flight: the limit follows the event loop's lag and the memory budget, capped."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from collector.org.inflight import (
    ACCOUNT_BYTES,
    DEFAULT_BUDGET,
    MIB,
    AccountsInFlight,
    InFlightPolicy,
    memory_budget,
)

LOW, HIGH = 0.0, 1.0  # a loop on time, and one a second late


async def saturated(limiter: AccountsInFlight, taken: list[object]) -> None:
    """Start accounts until the limit is reached (as the org sweep does while accounts wait)."""
    while limiter.in_flight < limiter.limit:
        account = object()
        taken.append(account)
        await limiter.acquire(account)


async def test_the_limit_grows_by_a_quarter_while_the_loop_keeps_time_never_past_the_bound() -> (
    None
):
    """With accounts waiting and every place taken, each on-time sample adds a quarter (at least
    one); the limit stops at --max-accounts-in-flight."""
    limiter = AccountsInFlight(
        InFlightPolicy(upper=20, memory_budget=1 << 40, start=4), rss=lambda: 0
    )
    limiter.queued = 100
    taken: list[object] = []
    limits = []
    for _ in range(12):
        await saturated(limiter, taken)
        limiter.observe(LOW)
        limits.append(limiter.limit)
    assert limits == [5, 6, 7, 8, 10, 12, 15, 18, 20, 20, 20, 20]
    assert limiter.in_flight <= 20


async def test_lag_keeps_the_limit_a_tenth_under_the_accounts_in_flight_down_to_one() -> None:
    """A lagging loop stops new accounts: the limit goes a tenth under those in flight, and
    late samples while they run do not push it further down (that would idle the process once
    they end); it follows them down as they finish, never below one, and grows again once the
    loop keeps time."""
    policy = InFlightPolicy(upper=64, memory_budget=1 << 40, start=20, smoothing=1.0)
    limiter = AccountsInFlight(policy, rss=lambda: 0)
    limiter.queued = 100
    taken: list[object] = []
    await saturated(limiter, taken)
    limiter.observe(HIGH)
    limiter.observe(HIGH)
    assert (limiter.in_flight, limiter.limit) == (20, 18)
    for account in taken[:10]:
        limiter.release(account)
    limiter.observe(HIGH)
    assert (limiter.in_flight, limiter.limit) == (10, 9)
    for account in taken[10:-1]:
        limiter.release(account)
    limiter.observe(HIGH)
    assert (limiter.in_flight, limiter.limit) == (1, 1)
    limiter.observe(LOW)
    assert limiter.limit == 2


async def test_no_account_is_added_past_the_memory_budget() -> None:
    """Growth stops where resident memory plus ACCOUNT_BYTES per added account would pass the
    budget, and at the budget there is none; the lag alone would have allowed more."""
    budget = 512 * MIB
    resident = [budget - 2 * ACCOUNT_BYTES]
    limiter = AccountsInFlight(
        InFlightPolicy(upper=256, memory_budget=budget, start=40), rss=lambda: resident[0]
    )
    limiter.queued = 100
    taken: list[object] = []
    await saturated(limiter, taken)
    limiter.observe(LOW)
    assert limiter.limit == 42
    resident[0] = budget + MIB
    await saturated(limiter, taken)
    limiter.observe(LOW)
    assert limiter.limit == 42


async def test_the_limit_grows_only_for_accounts_that_wait() -> None:
    """No growth while places are free, nor when no account is left to start."""
    limiter = AccountsInFlight(
        InFlightPolicy(upper=64, memory_budget=1 << 40, start=8), rss=lambda: 0
    )
    limiter.queued = 10
    limiter.observe(LOW)  # nothing taken: the limit is not what holds accounts back
    assert limiter.limit == 8
    taken: list[object] = []
    await saturated(limiter, taken)
    limiter.queued = 0
    limiter.observe(LOW)
    assert limiter.limit == 8


async def test_a_blocked_event_loop_is_measured_and_the_limit_shrinks() -> None:
    """The watcher's sleeps are timed on the real loop: a task that holds the loop for a second
    makes the watcher wake late, and the limit comes down."""
    limiter = AccountsInFlight(
        InFlightPolicy(upper=64, memory_budget=1 << 40, start=8, interval=0.05)
    )
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(limiter.watch)
            await anyio.sleep(0.2)  # the watcher has timed a few sleeps
            time.sleep(1.0)  # noqa: ASYNC251 - holding the loop is the point
            while limiter.limit == 8:  # noqa: ASYNC110 - the watcher wakes, measures, resizes
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()
    assert limiter.limit < 8
    assert limiter.lag > limiter.policy.lag_high


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("536870912\n", 256 * MIB),
        ("max\n", DEFAULT_BUDGET),
        ("8589934592\n", DEFAULT_BUDGET),
        (None, DEFAULT_BUDGET),
    ],
)
def test_the_default_budget_is_half_the_containers_limit_at_most_a_gib(
    tmp_path: Path, content: str | None, expected: int
) -> None:
    """Half of cgroup's memory.max (a 512 MiB container: 256 MiB), capped at 1 GiB; no limit
    ("max", or no cgroup file) gives the cap; a configured budget wins."""
    limit = tmp_path / "memory.max"
    if content is not None:
        limit.write_text(content)
    assert memory_budget(None, (str(limit),)) == expected
    assert memory_budget(300, (str(limit),)) == 300 * MIB
