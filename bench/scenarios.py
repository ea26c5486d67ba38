"""The bench's scenarios: which account the emulator serves, and how the collector is run on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bench.limit import ENTITIES, GENERATE, GET, LISTS

DEFAULT_RATES: Mapping[str, float] = MappingProxyType(
    {GENERATE: 20.0, GET: 20.0, ENTITIES: 20.0} | dict.fromkeys(LISTS.values(), 10.0)
)
DEFAULT_LATENCY = "lognormal:2:0.5"
# The collector's own ceilings when the emulator throttles nothing: far above what it reaches.
UNTHROTTLED_COLLECTOR_RATE = 5000.0
AUDIT_ROLE = "collector-audit"  # the role the org emulator creates in member accounts


@dataclass(frozen=True)
class Scenario:
    """An emulated account (or organisation) and the collector runs measured against it."""

    name: str
    title: str
    about: str  # one line: what is served
    rates: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RATES)
    latency: str = DEFAULT_LATENCY
    faults: tuple[str, ...] = ()  # more `collector emulate` flags
    accounts: int = 0  # > 0: an organisation of this many accounts, swept with --org
    shards: int = 0  # > 0: also the same org swept by this many shard processes at once
    peers: bool = False  # the peers' scripts run too (single account only)
    principals: int | None = None  # per account, whatever --principals/--org-principals say
    rounds: int = 1  # every tool this many times, in turn: the median round is kept
    plain_loop: bool = False  # the plain aiobotocore loop runs beside the collector

    @property
    def throttled(self) -> bool:
        return bool(self.rates)


SCENARIOS: Mapping[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "default",
            "default account: collector and its peers",
            "the seeded account, IAM's rates, lognormal job latency (median 2 s)",
            peers=True,
        ),
        Scenario(
            "wide",
            "wide reports",
            "the default account, with 2% of the customer-managed policies allowing `*` and "
            "attached to 20-200 principals (`--wide-share 0.02`)",
            faults=("--wide-share", "0.02"),
        ),
        Scenario(
            "faulty",
            "faulty account",
            "the default account with 8% random throttling beyond the buckets, pages of 1-40 "
            "items while truncated, job latency uniform 0-3 s",
            latency="uniform:0:3",
            faults=("--throttle-share", "0.08", "--short-page-max", "40"),
        ),
        Scenario(
            "cpu",
            "CPU per call, unthrottled",
            "the default account with no rate limits and no job latency; the collector's own "
            f"rate ceilings at {UNTHROTTLED_COLLECTOR_RATE:g}/s: it runs as fast as its CPU "
            "allows; a plain aiobotocore loop beside it (`bench/baselines/plain_loop.py`), "
            "the two in turn for 3 rounds, the median round of each kept",
            rates=MappingProxyType({}),
            latency="0",
            rounds=3,
            plain_loop=True,
        ),
        Scenario(
            "accounts",
            "an organisation: one process, then two shard processes",
            "an organisation (emulated) whose accounts each have the default account's rates; "
            "`collector sweep --org` with default settings, by one process, then by two "
            "shard processes at once (`--shard 0/2`, `--shard 1/2`, one `--run-id`)",
            accounts=20,
            shards=2,
        ),
        Scenario(
            "org-many",
            "a thousand small accounts in one process",
            "an organisation (emulated) of 1,000 accounts of 8 principals each, the default "
            "account's rates and job latency per account; `collector sweep --org` with default "
            "settings (accounts in flight chosen by the collector)",
            accounts=1000,
            principals=8,
        ),
    )
}
