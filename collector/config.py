"""Settings: parsed once from YAML, COLLECTOR_* environment variables and CLI flags into frozen objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.models import PRINCIPAL_TYPES, PrincipalType

Granularity = Literal["SERVICE_LEVEL", "ACTION_LEVEL"]
EntitiesMode = Literal["none", "accessed", "all"]


@dataclass(frozen=True)
class Rates:
    """Calls per second per IAM operation: the ceiling each adaptive token bucket climbs back to."""

    generate: float = 10.0
    get: float = 20.0
    get_with_entities: float = 20.0
    list: float = 5.0  # each List* operation has its own bucket at this rate
    minimum: float = 0.5  # floor the buckets never go below when throttled


@dataclass(frozen=True)
class DiscoverySettings:
    """Which principals the sweep reports on."""

    kinds: tuple[PrincipalType, ...] = PRINCIPAL_TYPES
    path_prefix: str = "/"
    include: tuple[str, ...] = ()  # fnmatch globs on the name; empty means every name
    exclude: tuple[str, ...] = ()
    aws_managed_policies: bool = False  # also AWS-managed policies attached in the account


@dataclass(frozen=True)
class PollSettings:
    """When report jobs are polled, and when one is given up."""

    first_delay: float = 2.0  # before any job latency has been observed
    backoff: float = 1.5
    max_delay: float = 30.0
    jitter: float = 0.2  # +/- share of each delay
    job_deadline: float = 900.0  # seconds from generation to JobTimeout


@dataclass(frozen=True)
class RetrySettings:
    """The one retry policy at the AWS boundary."""

    max_attempts: int = 8  # transient errors: 5xx, connection reset, read timeout
    throttle_max_attempts: int = 50  # Throttling: the bucket slows down; rows are not dropped
    base_delay: float = 0.5
    max_delay: float = 20.0


@dataclass(frozen=True)
class Settings:
    """Everything one sweep needs; built once by the CLI and passed down in slices."""

    output: str = "out/access-advisor-{account_id}-{date}.jsonl"
    endpoint_url: str | None = None
    profile: str | None = None
    region: str = "us-east-1"
    granularity: Granularity = "SERVICE_LEVEL"
    entities: EntitiesMode = "accessed"
    max_jobs_in_flight: int = 100
    generate_workers: int = 4
    fetch_workers: int = 8
    shutdown_grace: float = 10.0
    resume: bool = False
    log_level: str = "info"
    progress: bool | None = None  # None: on when stderr is a terminal
    rates: Rates = field(default_factory=Rates)
    poll: PollSettings = field(default_factory=PollSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
