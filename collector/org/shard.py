"""Which shard this process is, which accounts it owns, and the run id all shards share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.errors import ConfigError

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")  # ASCII digits: int() also reads Unicode ones
MAX_SHARDS = 10_000  # AWS Batch arrays stop at 10,000 children; more is a typo


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0-based, as Kubernetes and AWS Batch number them)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard count {self.count} is not between 1 and {MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard index {self.index} is not between 0 and {self.count - 1} "
                f"(indexes are 0-based)"
            )

    def owns(self, account_id: str) -> bool:
        """True when this shard sweeps the account."""
        return shard_of(account_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _weight(account_id: str, index: int) -> int:
    # A stable hash (not Python's salted hash()): every process and every night agree.
    digest = hashlib.blake2b(f"{account_id}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(account_id: str, count: int) -> int:
    """Rendezvous (highest random weight) hashing: the shard whose weight for the id is highest.

    An account's shard depends on its id and the count alone, so listing order does not
    matter and adding an account moves no other; going from N to N+1 shards moves only the
    accounts the new shard wins (about 1/(N+1) of them).
    """
    return max(range(count), key=lambda index: (_weight(account_id, index), -index))


def parse_shard(text: str) -> Shard:
    """`INDEX/COUNT`, 0-based: `0/3`, `1/3`, `2/3`."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--shard {text!r} is not INDEX/COUNT (0-based, e.g. 0/3)")
    return Shard(int(match[1]), int(match[2]))


def _env_int(env: Mapping[str, str], name: str) -> int:
    value = env[name].strip()
    if not (value.isascii() and value.isdigit()):
        raise ConfigError(f"{name}={env[name]!r} is not a non-negative integer")
    return int(value)


def _env_pair(env: Mapping[str, str], index_name: str, count_name: str) -> Shard | None:
    present = [name for name in (index_name, count_name) if env.get(name, "").strip()]
    if not present:
        return None
    if len(present) == 1:
        missing = count_name if present[0] == index_name else index_name
        raise ConfigError(f"{present[0]} is set but {missing} is not; set both or neither")
    return Shard(_env_int(env, index_name), _env_int(env, count_name))


def resolve_shard(flag: str | None, env: Mapping[str, str]) -> Shard | None:
    """This process's shard from `--shard`, a Kubernetes Indexed Job or an AWS Batch array job.

    Kubernetes gives the index (JOB_COMPLETION_INDEX) but not the count, so the count comes
    from COLLECTOR_SHARD_COUNT; AWS Batch gives both. Sources that disagree are an error
    rather than a silent precedence: a wrong shard quietly skips or doubles accounts.
    """
    sources = {
        "--shard": parse_shard(flag) if flag is not None else None,
        "JOB_COMPLETION_INDEX/COLLECTOR_SHARD_COUNT": _env_pair(
            env, "JOB_COMPLETION_INDEX", "COLLECTOR_SHARD_COUNT"
        ),
        "AWS_BATCH_JOB_ARRAY_INDEX/AWS_BATCH_JOB_ARRAY_SIZE": _env_pair(
            env, "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"
        ),
    }
    given = {name: shard for name, shard in sources.items() if shard is not None}
    if len(set(given.values())) > 1:
        found = ", ".join(f"{name} says {shard}" for name, shard in given.items())
        raise ConfigError(f"conflicting shard settings: {found}")
    return next(iter(given.values()), None)


def resolve_run_id(explicit: str | None, env: Mapping[str, str], now: datetime) -> str:
    """The run id every shard of one run shares, without talking to the others.

    `--run-id` when given. Else, in an AWS Batch array child (job id `PARENT:INDEX`), the
    parent's job id: the same for every child and across retries. Else the UTC date of
    `now` (`YYYY-MM-DD`): shards of one nightly run agree as long as they all start on the
    same UTC day. A run whose shards start on both sides of 00:00 UTC gets two run ids and
    `manifest merge` refuses it (naming both); schedule away from midnight UTC or pass
    `--run-id` (e.g. the Kubernetes job name, via the downward API).
    """
    if explicit is not None:
        if RUN_ID.fullmatch(explicit) is None:
            raise ConfigError(
                f"--run-id {explicit!r} must be 1-128 letters, digits, '.', '_' or '-' "
                "(it goes into file names)"
            )
        return explicit
    batch_job = env.get("AWS_BATCH_JOB_ID", "")
    parent, colon, _ = batch_job.partition(":")
    if env.get("AWS_BATCH_JOB_ARRAY_INDEX") and colon and RUN_ID.fullmatch(parent):
        return f"batch-{parent}"
    return now.astimezone(UTC).strftime("%Y-%m-%d")
