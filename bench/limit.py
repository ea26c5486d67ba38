"""The limit: the fewest calls a correct sweep needs, and the fastest time the rates allow."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

GENERATE = "GenerateServiceLastAccessedDetails"
GET = "GetServiceLastAccessedDetails"
ENTITIES = "GetServiceLastAccessedDetailsWithEntities"
LISTS = {"user": "ListUsers", "group": "ListGroups", "role": "ListRoles", "policy": "ListPolicies"}
OPERATIONS = (GENERATE, GET, ENTITIES, *LISTS.values())
WIDEST = "WithEntities of the widest report"  # a bound of T_min, not an operation
MAX_ITEMS = 1000  # the largest page IAM hands out, on every operation a sweep uses
BURST_SECONDS = 1.0  # the emulator's buckets hold one second of calls


@dataclass(frozen=True)
class Minimum:
    """The calls a correct sweep of an account cannot do without."""

    calls: Mapping[str, int]  # per operation
    principals: Mapping[str, int]  # per principal type
    jobs: int
    extra_service_pages: int  # Get calls beyond one per job: services past the first page
    entity_namespaces: int  # (group or policy report, accessed namespace) pairs
    widest_report: int  # WithEntities calls of the report that needs the most of them


@dataclass(frozen=True)
class Limit:
    """T_min and how it was reached."""

    seconds: Mapping[str, float]  # per operation: max(0, calls - burst) / rate
    binding: str  # the operation with the most seconds
    latency: float  # the last job's unavoidable latency (the median)
    t_min: float


def minimum_calls(ground_truth: Iterable[Mapping[str, Any]], page: int = MAX_ITEMS) -> Minimum:
    """Count the minimum calls from the ground truth, with pages of `page` items."""
    kinds: dict[str, str] = {}
    services: Counter[str] = Counter()
    entities: Counter[tuple[str, str]] = Counter()
    accessed: list[tuple[str, str]] = []
    generated = 0
    for record in ground_truth:
        arn = record["principal_arn"]
        kinds[arn] = record["principal_type"]
        kind = record["record"]
        if kind == "service":
            services[arn] += 1
            if record["principal_type"] in ("group", "policy") and record["last_authenticated"]:
                accessed.append((arn, record["service_namespace"]))
        elif kind == "entity":
            entities[(arn, record["service_namespace"])] += 1
        elif kind == "principal" or (kind == "error" and record["stage"] != "generate"):
            generated += 1  # a job was generated for it (even if the job then failed)
    per_type = Counter(kinds.values())
    extra = sum(max(0, math.ceil(count / page) - 1) for count in services.values())
    per_report: Counter[str] = Counter()
    for key in accessed:
        per_report[key[0]] += max(1, math.ceil(entities[key] / page))
    calls = {
        GENERATE: len(kinds),  # a deleted principal still costs its Generate
        GET: generated + extra,
        ENTITIES: sum(per_report.values()),
    }
    for kind, operation in LISTS.items():
        calls[operation] = max(1, math.ceil(per_type.get(kind, 0) / page))
    return Minimum(
        calls=calls,
        principals=dict(per_type),
        jobs=generated,
        extra_service_pages=extra,
        entity_namespaces=len(accessed),
        widest_report=max(per_report.values(), default=0),
    )


def fastest(minimum: Minimum, rates: Mapping[str, float], latency_median: float) -> Limit:
    """T_min = max over operations of max(0, calls - burst) / rate, plus the median latency.

    Each operation has its own bucket, so the operations run in parallel and the slowest one
    sets the pace; a bucket starts full (one second of calls). Whatever the order, the last
    Generate's job must still complete before its report can be read: at least its latency,
    taken as the median (the entity calls of the last reports can be ordered away). One
    report's entity calls are work of their own too: the widest report cannot be read faster
    than its WithEntities calls through that bucket, after its own job's latency.
    """
    seconds = {
        operation: max(0.0, calls - rates[operation] * BURST_SECONDS) / rates[operation]
        for operation, calls in minimum.calls.items()
    }
    seconds[WIDEST] = (
        max(0.0, minimum.widest_report - rates[ENTITIES] * BURST_SECONDS) / rates[ENTITIES]
    )
    binding = max(seconds, key=lambda operation: seconds[operation])
    return Limit(
        seconds=seconds,
        binding=binding,
        latency=latency_median,
        t_min=seconds[binding] + latency_median,
    )


def forced(minimum: Minimum, pages: Mapping[str, int], throttle_share: float) -> Minimum:
    """The minimum under a server that cuts pages short and refuses a share of calls at random.

    `pages`: per operation, the pages past the first that the server handed out (counted by
    the emulator): a server that sends fewer items than asked forces them on any sweep. A call
    refused at random has taken its bucket token first, so each needed call costs
    1 / (1 - share) tokens on average.
    """
    calls = dict(minimum.calls)
    if pages.get(GET, 0) > minimum.extra_service_pages:
        calls[GET] = minimum.jobs + pages[GET]
    calls[ENTITIES] = max(calls[ENTITIES], minimum.entity_namespaces + pages.get(ENTITIES, 0))
    scale = 1 / (1 - throttle_share)
    return replace(
        minimum,
        calls={op: math.ceil(n * scale) for op, n in calls.items()},
        extra_service_pages=max(minimum.extra_service_pages, pages.get(GET, 0)),
    )


def account_minima(ground_truth: Iterable[Mapping[str, Any]]) -> list[Minimum]:
    """Each account's minimum calls, from an organisation's ground truth."""
    accounts: dict[str, list[Mapping[str, Any]]] = {}
    for record in ground_truth:
        accounts.setdefault(record["account_id"], []).append(record)
    return [minimum_calls(records) for records in accounts.values()]


def org_limit(
    minima: Sequence[Minimum], rates: Mapping[str, float], latency_median: float
) -> tuple[Minimum, Limit]:
    """Every account's minimum calls added up, and the slowest account's limit.

    Each account has its own buckets, so accounts run side by side: the organisation's T_min
    is its slowest account's (with every account in flight at once).
    """
    limits = [fastest(minimum, rates, latency_median) for minimum in minima]
    calls: Counter[str] = Counter()
    principals: Counter[str] = Counter()
    for minimum in minima:
        calls.update(minimum.calls)
        principals.update(minimum.principals)
    total = Minimum(
        calls=dict(calls),
        principals=dict(principals),
        jobs=sum(m.jobs for m in minima),
        extra_service_pages=sum(m.extra_service_pages for m in minima),
        entity_namespaces=sum(m.entity_namespaces for m in minima),
        widest_report=max((m.widest_report for m in minima), default=0),
    )
    return total, max(limits, key=lambda limit: limit.t_min)


def ideal_schedule(
    accounts: Sequence[Minimum],
    rates: Mapping[str, float],
    median: float,
    sigma: float,
    runs: int = 200,
    seed: int = 0,
) -> float:
    """Mean finish time of a perfect scheduler that cannot foresee job latencies.

    Generate runs flat out; each job is read by exactly one Get the moment it completes (an
    oracle for completion, not for latency), within the Get bucket. An account finishes with
    its last Get, or T_min of its other operations if one of them is slower; accounts run side
    by side, each on its own buckets, and a run finishes with its slowest account. Context for
    T_min: the sweep waits for the slowest of the last jobs, not for the median one, and with
    many accounts for the slowest of every account's last jobs.
    """
    rng = random.Random(seed)
    finishes = []
    for _ in range(runs):
        finish = 0.0
        for minimum in accounts:
            started = _bucket_times([0.0] * minimum.jobs, rates[GENERATE])
            done = sorted(t + rng.lognormvariate(math.log(median), sigma) for t in started)
            reads = _bucket_times(done, rates[GET])
            finish = max(finish, reads[-1] if reads else 0.0)
        finishes.append(finish)
    rest = max(
        (
            seconds
            for minimum in accounts
            for operation, seconds in fastest(minimum, rates, median).seconds.items()
            if operation != GET
        ),
        default=0.0,
    )
    return max(sum(finishes) / len(finishes), rest + median)


def _bucket_times(wanted: list[float], rate: float) -> list[float]:
    """When calls wanted at sorted times go out through a full bucket of one second's calls."""
    capacity = rate * BURST_SECONDS
    tokens, stamp = capacity, 0.0
    times = []
    for want in wanted:
        now = max(want, stamp)
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens < 1.0:
            now += (1.0 - tokens) / rate
            tokens = 1.0
        tokens -= 1.0
        stamp = now
        times.append(now)
    return times
