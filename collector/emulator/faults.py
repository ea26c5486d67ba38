"""Fault knobs (frozen settings) and the per-request fault injector that applies them."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from collector.emulator.activity import stable_uniform


@dataclass(frozen=True, slots=True)
class LogNormal:
    """A job latency distribution: lognormal with the given median (seconds) and sigma."""

    median: float
    sigma: float

    def __post_init__(self) -> None:
        if self.median < 0 or self.sigma < 0:
            raise ValueError("lognormal median and sigma must be >= 0")


@dataclass(frozen=True, slots=True)
class Uniform:
    """A job latency distribution: uniform between `low` and `high` seconds."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError("uniform latency needs 0 <= low <= high")


def _share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1, got {value}")


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong, and how often. The default is a well-behaved IAM."""

    # Operation name -> calls per second; a token bucket with 1 s worth of burst.
    rate_limits: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    throttle_share: float = 0.0  # random share of IAM calls answered Throttling
    transient_share: float = 0.0  # random share of IAM calls answered 500/503
    latency: float | LogNormal | Uniform = 0.0  # seconds a job stays IN_PROGRESS
    failed_share: float = 0.0  # principals whose jobs end FAILED
    stuck_share: float = 0.0  # principals whose jobs never complete
    deleted_share: float = 0.0  # principals listed but answering NoSuchEntity on Generate
    lost_job_share: float = 0.0  # principals whose first job is unknown when read
    short_page_max: int = 0  # >0: pages hold at most this many items (varying)
    # Operations answering AccessDenied: IAM ones, GetCallerIdentity, S3 ones (app.s3_denied),
    # and in an organisation its Organizations ones.
    access_denied: frozenset[str] = frozenset()
    # Operations whose truncated pages say IsTruncated=true and carry no Marker: an answer the
    # API contract forbids (a client can only stop there, a page short, or fail).
    markerless: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in (
            "throttle_share",
            "transient_share",
            "failed_share",
            "stuck_share",
            "deleted_share",
            "lost_job_share",
        ):
            _share(name, getattr(self, name))
        if self.deleted_share + self.failed_share + self.stuck_share > 1.0:
            raise ValueError("deleted_share + failed_share + stuck_share must be <= 1")
        if self.short_page_max < 0:
            raise ValueError("short_page_max must be >= 0")
        if isinstance(self.latency, int | float) and self.latency < 0:
            raise ValueError("latency must be >= 0")
        for operation, rate in self.rate_limits.items():
            if not rate > 0:
                raise ValueError(f"rate limit of {operation} must be > 0")
        # Freeze the mapping so the dataclass stays immutable in practice too.
        object.__setattr__(self, "rate_limits", MappingProxyType(dict(self.rate_limits)))


class Fate(Enum):
    """What happens to every job of one principal."""

    NORMAL = "normal"
    DELETED = "deleted"
    FAILED = "failed"
    STUCK = "stuck"


# The Error a FAILED job carries, chosen per principal.
FAILURES: tuple[tuple[str, str], ...] = (
    ("ServiceFailure", "The report job could not be completed because of an internal error."),
    ("LimitExceeded", "The report job exceeded the number of entities it can evaluate."),
)


def fate(faults: Faults, seed: int, arn: str) -> Fate:
    """A principal's fate: one draw against adjacent share intervals, so fates never overlap."""
    draw = stable_uniform(seed, "fate", arn)
    for outcome, share in (
        (Fate.DELETED, faults.deleted_share),
        (Fate.FAILED, faults.failed_share),
        (Fate.STUCK, faults.stuck_share),
    ):
        if draw < share:
            return outcome
        draw -= share
    return Fate.NORMAL


def failure(seed: int, arn: str) -> tuple[str, str]:
    """The Error (code, message) a FAILED principal's jobs carry."""
    return FAILURES[int(stable_uniform(seed, "failure", arn) * len(FAILURES))]


def loses_first_job(faults: Faults, seed: int, arn: str) -> bool:
    """Whether the principal's first job answers NoSuchEntity when read."""
    return stable_uniform(seed, "lost", arn) < faults.lost_job_share


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer a fault knob chose for one request."""

    status: int
    code: str
    message: str


class ThrottleBucket:
    """Refills `rate` tokens a second up to `rate` (1 s of burst); thread-safe."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Take one token if there is one; a refused call takes nothing."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


class FaultInjector:
    """Decides per request whether a fault answers instead of the emulator or moto."""

    def __init__(
        self, faults: Faults, seed: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.faults = faults
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.buckets = {
            operation: ThrottleBucket(rate, clock) for operation, rate in faults.rate_limits.items()
        }

    def _draw(self) -> float:
        with self.rng_lock:
            return self.rng.random()

    def refusal(self, operation: str, caller_arn: str) -> Refusal | None:
        """The fault answer for one call of `operation`, or None to serve it."""
        faults = self.faults
        if operation in faults.access_denied:
            return Refusal(
                403,
                "AccessDenied",
                f"User: {caller_arn} is not authorized to perform: iam:{operation} "
                "because no identity-based policy allows the iam:"
                f"{operation} action",
            )
        bucket = self.buckets.get(operation)
        if bucket is not None and not bucket.take():
            return Refusal(400, "Throttling", "Rate exceeded")
        if faults.throttle_share and self._draw() < faults.throttle_share:
            return Refusal(400, "Throttling", "Rate exceeded")
        if faults.transient_share and self._draw() < faults.transient_share:
            if self._draw() < 0.5:
                return Refusal(500, "ServiceFailure", "An internal error occurred.")
            return Refusal(503, "ServiceUnavailable", "Service is unavailable, try again later.")
        return None

    def latency(self) -> float:
        """Seconds the next job stays IN_PROGRESS."""
        latency = self.faults.latency
        if isinstance(latency, LogNormal):
            if latency.median == 0:
                return 0.0
            with self.rng_lock:
                return self.rng.lognormvariate(math.log(latency.median), latency.sigma)
        if isinstance(latency, Uniform):
            with self.rng_lock:
                return self.rng.uniform(latency.low, latency.high)
        return float(latency)

    def marker(self, operation: str, marker: str) -> str | None:
        """The Marker a truncated page of `operation` carries: none with the markerless knob."""
        return None if operation in self.faults.markerless else marker

    def page_size(self, max_items: int) -> int:
        """How many items the next page holds: MaxItems, or fewer with the short-pages knob."""
        if not self.faults.short_page_max:
            return max_items
        with self.rng_lock:
            return min(max_items, self.rng.randint(1, self.faults.short_page_max))
