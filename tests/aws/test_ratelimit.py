"""The adaptive token bucket, driven by a fake clock: no real sleeping."""

from __future__ import annotations

import pytest

from collector.aws.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_paces_calls_at_the_rate() -> None:
    """At 10/s, back-to-back reservations are spaced 0.1 s apart."""
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    delays = [bucket.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_starts_with_its_initial_calls_then_paces_without_banking_idle_time() -> None:
    """The first `initial` calls go at once; after that, idle time never buys a burst."""
    clock = FakeClock()
    bucket = TokenBucket(10, initial=3, clock=clock)
    assert [bucket.reserve() for _ in range(5)] == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.1])
    clock.now += 60
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])


async def test_acquire_sleeps_for_the_reserved_delay() -> None:
    """acquire() waits exactly as long as the slot it claimed is in the future."""
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await bucket.acquire()
    assert clock.slept == pytest.approx([0.25, 0.25])


def test_throttle_lowers_rate_and_success_climbs_back_to_the_ceiling() -> None:
    """Multiplicative decrease on Throttling, additive increase on success, capped at the ceiling."""
    bucket = TokenBucket(20, minimum=1, clock=FakeClock())
    bucket.on_throttle()
    bucket.on_throttle()
    assert bucket.rate == pytest.approx(20 * 0.75 * 0.75)
    for _ in range(10):
        bucket.on_success()
    assert 11.25 < bucket.rate < 20
    for _ in range(1000):
        bucket.on_success()
    assert bucket.rate == 20


def test_rate_never_drops_below_the_minimum() -> None:
    """However often it is throttled, the bucket keeps making progress."""
    bucket = TokenBucket(20, minimum=2, clock=FakeClock())
    for _ in range(100):
        bucket.on_throttle()
    assert bucket.rate == 2


def test_a_lowered_rate_spaces_the_next_calls_wider() -> None:
    """After a throttle the pacing interval follows the new, lower rate."""
    clock = FakeClock()
    bucket = TokenBucket(10, decrease=0.5, clock=clock)
    bucket.reserve()
    bucket.on_throttle()
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.1 + 0.2)


def test_try_take_only_succeeds_when_a_token_is_free_now() -> None:
    """try_take never waits and never builds a backlog: it uses idle capacity only."""
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    assert bucket.try_take()
    assert not bucket.try_take()
    assert bucket.reserve() == pytest.approx(0.1)  # the taken token pushed the next slot
    clock.now += 0.25
    assert bucket.try_take()


def test_try_take_leaves_the_initial_burst_to_paced_calls() -> None:
    """The burst a full bucket starts with keeps until used, so it is never idle: calls that
    only use idle slots take paced slots, and the burst stays for the calls that must go."""
    clock = FakeClock()
    bucket = TokenBucket(10, initial=3, clock=clock)
    assert bucket.try_take()  # the paced slot free now
    assert not bucket.try_take() and bucket.free_in() == pytest.approx(0.1)
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.1)]
