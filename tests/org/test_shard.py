"""Shards: parsing, engine environment variables, rendezvous assignment, the shared run id."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from collector.errors import ConfigError
from collector.org.shard import Shard, parse_shard, resolve_run_id, resolve_shard, shard_of

IDS = [f"{n:012d}" for n in random.Random(42).sample(range(10**12), 3000)]


def test_parse_shard_accepts_index_over_count() -> None:
    """`--shard 2/3` is index 2 of 3, 0-based."""
    assert parse_shard("2/3") == Shard(2, 3)
    assert parse_shard(" 0/1 ") == Shard(0, 1)
    assert str(Shard(1, 4)) == "1/4"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("3/3", "shard index 3 is not between 0 and 2"),
        ("0/0", "shard count 0"),
        ("1", "is not INDEX/COUNT"),
        ("-1/3", "is not INDEX/COUNT"),
        ("a/b", "is not INDEX/COUNT"),
        ("1/3/4", "is not INDEX/COUNT"),
        ("0/20000", "shard count 20000"),
    ],
)
def test_parse_shard_rejects_bad_values_in_one_line(text: str, fragment: str) -> None:
    """Each malformed --shard is a ConfigError whose single line names the problem."""
    with pytest.raises(ConfigError) as caught:
        parse_shard(text)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_source_means_no_shard() -> None:
    """Without a flag or an engine's variables the process sweeps everything."""
    assert resolve_shard(None, {}) is None


def test_kubernetes_indexed_job_gives_the_shard() -> None:
    """JOB_COMPLETION_INDEX with COLLECTOR_SHARD_COUNT is an Indexed Job's shard."""
    env = {"JOB_COMPLETION_INDEX": "2", "COLLECTOR_SHARD_COUNT": "5"}
    assert resolve_shard(None, env) == Shard(2, 5)


def test_aws_batch_array_job_gives_the_shard() -> None:
    """AWS_BATCH_JOB_ARRAY_INDEX/SIZE is an array child's shard."""
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}
    assert resolve_shard(None, env) == Shard(0, 3)


def test_sources_that_agree_are_accepted() -> None:
    """The flag repeating what the engine says is not a conflict."""
    env = {"JOB_COMPLETION_INDEX": "1", "COLLECTOR_SHARD_COUNT": "3"}
    assert resolve_shard("1/3", env) == Shard(1, 3)


@pytest.mark.parametrize(
    ("flag", "env", "fragment"),
    [
        (
            "0/3",
            {"JOB_COMPLETION_INDEX": "1", "COLLECTOR_SHARD_COUNT": "3"},
            "conflicting shard settings: --shard says 0/3, "
            "JOB_COMPLETION_INDEX/COLLECTOR_SHARD_COUNT says 1/3",
        ),
        (
            None,
            {
                "JOB_COMPLETION_INDEX": "1",
                "COLLECTOR_SHARD_COUNT": "3",
                "AWS_BATCH_JOB_ARRAY_INDEX": "1",
                "AWS_BATCH_JOB_ARRAY_SIZE": "4",
            },
            "conflicting shard settings",
        ),
        (None, {"JOB_COMPLETION_INDEX": "1"}, "COLLECTOR_SHARD_COUNT is not"),
        (None, {"COLLECTOR_SHARD_COUNT": "3"}, "JOB_COMPLETION_INDEX is not"),
        (None, {"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, "AWS_BATCH_JOB_ARRAY_SIZE is not"),
        (None, {"JOB_COMPLETION_INDEX": "x", "COLLECTOR_SHARD_COUNT": "3"}, "'x' is not"),
        (None, {"JOB_COMPLETION_INDEX": "3", "COLLECTOR_SHARD_COUNT": "3"}, "index 3"),
    ],
)
def test_bad_or_conflicting_sources_are_config_errors(
    flag: str | None, env: dict[str, str], fragment: str
) -> None:
    """A half-set engine pair, a non-number or two sources that disagree: one clear line."""
    with pytest.raises(ConfigError) as caught:
        resolve_shard(flag, env)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_partition_the_accounts_and_balance(count: int) -> None:
    """Every account belongs to exactly one shard; no shard is far from its fair share."""
    owners = {
        account: [i for i in range(count) if Shard(i, count).owns(account)] for account in IDS
    }
    assert all(len(found) == 1 for found in owners.values())
    sizes = Counter(found[0] for found in owners.values())
    fair = len(IDS) / count
    # 3000 ids: a binomial share's standard deviation is at most ~27; 20% is > 4 sigma here.
    assert set(sizes) == set(range(count))
    assert all(abs(size - fair) <= 0.2 * fair for size in sizes.values()), sizes


def test_assignment_ignores_listing_order() -> None:
    """The shard of an account depends on its id only, whatever order the listing has."""
    before = {account: shard_of(account, 5) for account in IDS}
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    assert {account: shard_of(account, 5) for account in shuffled} == before


def test_adding_accounts_moves_no_other_account() -> None:
    """An account that joins the org takes a shard; every existing account stays put."""
    old, new = IDS[:2000], IDS[2000:]
    before = {account: shard_of(account, 4) for account in old}
    after = {account: shard_of(account, 4) for account in old + new}
    assert {account: after[account] for account in old} == before


def test_growing_the_shard_count_only_moves_accounts_to_the_new_shard() -> None:
    """From N to N+1 shards, an account either stays or moves to shard N (rendezvous)."""
    moved = 0
    for account in IDS:
        old, new = shard_of(account, 4), shard_of(account, 5)
        assert new in (old, 4)
        moved += new != old
    assert 0.15 * len(IDS) <= moved <= 0.25 * len(IDS)  # about 1/5 of them


def test_assignment_is_pinned_across_versions() -> None:
    """The hash never changes: a resumed or merged run relies on yesterday's assignment."""
    ids = [f"{n:012d}" for n in (1, 2, 3, 111111111111, 999999999999, 123456789012)]
    assert [shard_of(account, 3) for account in ids] == [2, 1, 1, 1, 1, 2]
    assert [shard_of(account, 7) for account in ids] == [6, 4, 1, 6, 3, 4]


NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_run_id_is_the_explicit_one_when_given() -> None:
    """--run-id wins over every derived id."""
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ID": "abc:0"}
    assert resolve_run_id("nightly-42", env, NOON) == "nightly-42"


@pytest.mark.parametrize("bad", ["", "a b", "../x", "x" * 129, "-lead", "a/b"])
def test_run_id_must_be_safe_in_file_names(bad: str) -> None:
    """A run id goes into paths and role session names: anything else is a ConfigError."""
    with pytest.raises(ConfigError, match="--run-id"):
        resolve_run_id(bad, {}, NOON)


def test_run_id_defaults_to_the_utc_date() -> None:
    """Shards started the same UTC day agree; the local time zone does not matter."""
    late_in_tokyo = datetime(2026, 11, 24, 8, 30, tzinfo=timezone(timedelta(hours=9)))
    assert resolve_run_id(None, {}, NOON) == "2026-11-23"
    assert resolve_run_id(None, {}, late_in_tokyo) == "2026-11-23"


def test_run_id_crossing_midnight_differs_by_design() -> None:
    """Two shards on either side of 00:00 UTC get different ids (documented: pass --run-id)."""
    before = datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=2)
    assert resolve_run_id(None, {}, before) != resolve_run_id(None, {}, after)


def test_run_id_in_an_aws_batch_array_is_the_parent_job_id() -> None:
    """Every child of one array job (ids PARENT:INDEX) shares the parent's id, any time."""
    parent = "5f4f1e2a-0c8e-4d8e-9d3c-2b1a4a7f9e10"
    for index, moment in ((0, NOON), (7, NOON + timedelta(hours=13))):
        env = {"AWS_BATCH_JOB_ARRAY_INDEX": str(index), "AWS_BATCH_JOB_ID": f"{parent}:{index}"}
        assert resolve_run_id(None, env, moment) == f"batch-{parent}"
    # A plain (non-array) Batch job has no parent: the date applies.
    assert resolve_run_id(None, {"AWS_BATCH_JOB_ID": parent}, NOON) == "2026-11-23"
