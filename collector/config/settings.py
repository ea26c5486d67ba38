"""The settings: each key's type, default, bound and help side by side, as frozen objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, FiniteFloat

from collector.models import PRINCIPAL_TYPES, EntitiesMode, Granularity, PrincipalType
from collector.template import OutputTemplate

LogLevel = Literal["debug", "info", "warning", "error"]


def _bounded(low: float, high: float, noun: str) -> AfterValidator:
    """A bound check whose message names the bound that was crossed."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        if value < low:
            raise ValueError(f"expected {noun} of at least {low:g}, got {value!r}")
        if value > high:
            raise ValueError(f"expected {noun} of at most {high:g}, got {value!r}")
        return value

    return AfterValidator(check)


def _check(accept: Callable[[Any], bool], expected: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not accept(value):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return AfterValidator(check)


def _pick(value: Any, allowed: tuple[str, ...], aliases: Mapping[str, str]) -> str:
    """Case-insensitive choice among `allowed`, or one of their aliases."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    folded = value.strip().lower()
    for choice in allowed:
        if folded == choice.lower():
            return choice
    if folded in aliases:
        return aliases[folded]
    raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")


def _choice(allowed: tuple[str, ...], aliases: Mapping[str, str] | None = None) -> BeforeValidator:
    return BeforeValidator(lambda value: _pick(value, allowed, aliases or {}))


def _kinds(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        shown = f"{value!r}" if isinstance(value, str) else "a list of other things"
        raise ValueError(f"expected a list of strings, got {shown}")
    plurals = {f"{kind}s": kind for kind in PRINCIPAL_TYPES} | {"policies": "policy"}
    kinds = tuple(dict.fromkeys(_pick(item, PRINCIPAL_TYPES, plurals) for item in value))
    if not kinds:
        raise ValueError(f"expected at least one of {', '.join(PRINCIPAL_TYPES)}")
    return kinds


def check_glob(pattern: str) -> None:
    """Reject a glob fnmatch would silently read literally: a `[` that opens no set."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1  # fnmatch reads a `]` right after `[` or `[!` as a member
            close = pattern.find("]", j)
            if close == -1:
                raise ValueError(f"invalid glob {pattern!r}: '[' at position {i} is never closed")
            i = close
        i += 1


def _globs(value: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in value:
        if not pattern:
            raise ValueError("expected non-empty globs, got ''")
        check_glob(pattern)
    return value


_IAM_ARN = re.compile(
    r"arn:aws[-a-z]*:iam::(?P<account>[0-9]{12}|aws):(?P<kind>user|group|role|policy)/\S+"
)


def _arns(value: tuple[str, ...]) -> tuple[str, ...]:
    for arn in value:
        match = _IAM_ARN.fullmatch(arn)
        if match is None:
            raise ValueError(
                f"invalid IAM ARN {arn!r} (expected arn:aws:iam::<12-digit account>:"
                "user|group|role|policy/<path><name>)"
            )
        if match["account"] == "aws" and match["kind"] != "policy":
            raise ValueError(f"invalid IAM ARN {arn!r}: only policies live in account 'aws'")
    return tuple(dict.fromkeys(value))


def _path_prefix(value: str) -> str:
    if not (value.startswith("/") and value.endswith("/")):
        raise ValueError(f"expected a path that starts and ends with '/', got {value!r}")
    return value


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    expected = f"expected an http:// or https:// URL, got {value!r}"
    if any(c.isspace() for c in value):
        raise ValueError(expected)
    try:
        url = urlsplit(value)
        port = url.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{expected}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(expected)
    if port is None and url.netloc.endswith(":"):
        raise ValueError(f"{expected}: the port is missing after ':'")
    return value


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def _region(value: str) -> str:
    if not _REGION.fullmatch(value):
        raise ValueError(f"expected a region name such as us-east-1, got {value!r}")
    return value


def _output(value: str) -> str:
    OutputTemplate.parse(value)  # the one check, the same the sweep renders with
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _help(text: str) -> Any:
    return Field(description=text)


@dataclass(frozen=True)
class Flag:
    """A key's option on `collector sweep`: its name, and how its value is given.

    The option's help is the key's description; its value is parsed like the environment's.
    """

    name: str
    metavar: str | None = None
    switch: bool | None = None  # an option without a value that sets the key to this
    repeat: bool = False  # given once per item (`--ou A --ou B`), the key holds the list
    org: bool = False  # only means something in an organisation sweep
    help: str | None = None  # when the option says something other than the key (a negation)


Rate = Annotated[
    FiniteFloat, _check(lambda v: v > 0, "a number greater than 0"), _bounded(0, 10_000, "a number")
]
Seconds = Annotated[FiniteFloat, _bounded(0, 86_400, "a number")]
Globs = Annotated[tuple[str, ...], AfterValidator(_globs)]


@dataclass(frozen=True)
class Rates:
    """Calls per second per IAM operation: the ceiling each adaptive token bucket climbs back to."""

    generate: Annotated[
        Rate,
        _help(
            "GenerateServiceLastAccessedDetails calls per second "
            "(the ceiling of its adaptive bucket)"
        ),
    ] = 20.0
    get: Annotated[Rate, _help("GetServiceLastAccessedDetails calls per second")] = 20.0
    get_with_entities: Annotated[Rate, _help("...WithEntities calls per second")] = 20.0
    list: Annotated[Rate, _help("each List* operation's own bucket, per second")] = 10.0
    minimum: Annotated[Rate, _help("floor the buckets never go below when throttled")] = 0.5


@dataclass(frozen=True)
class DiscoverySettings:
    """Which principals the sweep reports on."""

    kinds: Annotated[
        tuple[PrincipalType, ...], BeforeValidator(_kinds), _help("principal kinds to report")
    ] = PRINCIPAL_TYPES
    path_prefix: Annotated[str, AfterValidator(_path_prefix), _help("IAM path prefix")] = "/"
    include: Annotated[Globs, _help("fnmatch globs on names; empty: every name")] = ()
    exclude: Annotated[Globs, _help("fnmatch globs on names to leave out")] = ()
    aws_managed_policies: Annotated[
        bool,
        _help("also report the AWS-managed policies attached in the account"),
        Flag("--aws-managed-policies", switch=True),
    ] = False
    arns: Annotated[
        tuple[str, ...], AfterValidator(_arns), _help("only these principals; empty: all")
    ] = ()


@dataclass(frozen=True)
class PollSettings:
    """When report jobs are polled, and when one is given up."""

    first_delay: Annotated[
        Seconds,
        _help(
            "seconds before a first poll, until 20 jobs have completed (then: the learned latency)"
        ),
    ] = 2.0
    backoff: Annotated[
        FiniteFloat, _bounded(1, 10, "a factor"), _help("growth of the gap between polls")
    ] = 1.5
    max_delay: Annotated[
        Seconds, _check(lambda v: v > 0, "a number greater than 0"), _help("longest gap")
    ] = 30.0
    jitter: Annotated[
        FiniteFloat,
        _check(lambda v: 0 <= v < 1, "a share from 0 up to (not including) 1"),
        _help("share of each delay added at random"),
    ] = 0.2
    job_deadline: Annotated[
        Seconds,
        _check(lambda v: v > 0, "a number greater than 0"),
        _help("seconds from generation until an unfinished job is a JobTimeout error"),
    ] = 900.0


@dataclass(frozen=True)
class RetrySettings:
    """The one retry policy at the AWS boundary."""

    max_attempts: Annotated[
        int, _bounded(1, 100, "an integer"), _help("attempts on 5xx, resets, timeouts")
    ] = 8
    throttle_max_attempts: Annotated[
        int, _bounded(1, 1000, "an integer"), _help("attempts on Throttling")
    ] = 50
    base_delay: Annotated[Seconds, _help("first backoff, doubled per attempt")] = 0.5
    max_delay: Annotated[
        Seconds, _check(lambda v: v > 0, "a number greater than 0"), _help("backoff cap")
    ] = 20.0
    call_timeout: Annotated[
        Seconds,
        _check(lambda v: v > 0, "a number greater than 0"),
        _help("seconds one call may take in all, however slowly the server answers"),
    ] = 120.0
    breaker_failures: Annotated[
        int,
        _bounded(1, 10_000, "an integer"),
        _help("transient failures in a row of one operation that stop the sweep"),
    ] = 24


def _ids(value: tuple[str, ...]) -> tuple[str, ...]:
    for account_id in value:
        if not re.fullmatch(r"[0-9]{12}", account_id):  # ASCII digits only, unlike `\d`
            raise ValueError(f"expected 12-digit account ids, got {account_id!r}")
    return tuple(dict.fromkeys(value))


AccountIds = Annotated[tuple[str, ...], AfterValidator(_ids)]


def _account_id(value: str | None) -> str | None:
    return None if value is None else _ids((value,))[0]


@dataclass(frozen=True)
class OrgSettings:
    """Which accounts of an organisation to sweep, and how to get into each."""

    org: Annotated[
        bool,
        _help("every account of the organisation (organizations:ListAccounts)"),
        Flag("--org", switch=True, org=True),
    ] = False
    ous: Annotated[
        tuple[str, ...],
        _help("accounts under these OUs (or roots), recursively"),
        Flag("--ou", metavar="OU_ID", repeat=True, org=True),
    ] = ()
    accounts: Annotated[
        AccountIds,
        _help("exactly these account ids (on the command line: or a file of them)"),
        Flag("--accounts", metavar="ID,ID|FILE", org=True),
    ] = ()
    accounts_file: Annotated[
        str | None,
        _help("a file of account ids, one per line"),
        Flag("--accounts-file", metavar="FILE", org=True),
    ] = None
    include_accounts: Annotated[
        AccountIds,
        _help("only these of the listed accounts"),
        Flag("--include-accounts", metavar="ID,ID", org=True),
    ] = ()
    exclude_accounts: Annotated[
        AccountIds,
        _help("never these accounts"),
        Flag("--exclude-accounts", metavar="ID,ID", org=True),
    ] = ()
    role_name: Annotated[
        str | None, _help("role to assume in member accounts"), Flag("--role-name", org=True)
    ] = None
    external_id: Annotated[
        str | None, _help("sts:ExternalId for the role"), Flag("--external-id", org=True)
    ] = None
    role_session_name: Annotated[
        str, _help("session name; {run_id} is filled in"), Flag("--role-session-name", org=True)
    ] = "collector-{run_id}"
    role_duration: Annotated[
        int | None,
        _bounded(900, 43_200, "an integer"),
        _help("seconds the assumed-role credentials last; null: AWS's hour"),
        Flag("--role-duration", metavar="SECONDS", org=True),
    ] = None

    @property
    def enabled(self) -> bool:
        return bool(self.org or self.ous or self.accounts or self.accounts_file)


@dataclass(frozen=True)
class Settings:
    """Everything one sweep needs; built once by the CLI and passed down in slices."""

    output: Annotated[
        str,
        AfterValidator(_output),
        _help(
            "path or s3://bucket/key template with {account_id}, {date}, {run_id}; "
            ".gz compresses; - is stdout"
        ),
        Flag("--output"),
    ] = "out/access-advisor-{account_id}-{date}.jsonl"
    endpoint_url: Annotated[
        str | None,
        AfterValidator(_endpoint),
        _help("endpoint of every AWS service called (e.g. the emulator's URL)"),
        Flag("--endpoint-url"),
    ] = None
    profile: Annotated[
        str | None, _help("AWS profile; null: the default credential chain"), Flag("--profile")
    ] = None
    region: Annotated[
        str, AfterValidator(_region), _help("region for signing and STS"), Flag("--region")
    ] = "us-east-1"
    granularity: Annotated[
        Granularity,
        _choice(
            ("SERVICE_LEVEL", "ACTION_LEVEL"),
            {"service": "SERVICE_LEVEL", "service_level": "SERVICE_LEVEL"}
            | {"action": "ACTION_LEVEL", "action_level": "ACTION_LEVEL"},
        ),
        _help(
            "SERVICE_LEVEL, or ACTION_LEVEL: also the tracked actions of the services AWS tracks"
        ),
        Flag("--granularity"),
    ] = "SERVICE_LEVEL"
    entities: Annotated[
        EntitiesMode,
        _choice(("none", "accessed", "all")),
        _help(
            "entity rows: none; accessed (group and policy reports, the namespaces someone "
            "used); all"
        ),
        Flag("--entities"),
    ] = "accessed"
    max_jobs_in_flight: Annotated[
        int,
        _bounded(1, 10_000, "an integer"),
        _help("report jobs generated and not yet read, at most"),
        Flag("--max-jobs-in-flight", metavar="N"),
    ] = 200
    generate_workers: Annotated[
        int, _bounded(1, 64, "an integer"), _help("tasks generating jobs")
    ] = 4
    fetch_workers: Annotated[
        int, _bounded(1, 256, "an integer"), _help("tasks reading result pages")
    ] = 8
    # Docker stops a container 10 s after SIGTERM: 6 s of grace leave 4 s for the final flush.
    shutdown_grace: Annotated[
        FiniteFloat,
        _bounded(0, 3600, "a number"),
        _help(
            "seconds calls in flight get after SIGTERM/SIGINT (inside Docker's 10 s, with "
            "time for the final flush)"
        ),
    ] = 6.0
    resume: Annotated[
        bool,
        _help("finish the newest interrupted NAME.part of this output template"),
        Flag("--resume", switch=True),
    ] = False
    log_level: Annotated[
        LogLevel,
        _choice(("debug", "info", "warning", "error"), {"warn": "warning"}),
        _help("least severe log event written"),
        Flag("--log-level"),
    ] = "info"
    progress: Annotated[
        bool | None,
        _help("live status line; null: when on a terminal"),
        Flag("--no-progress", switch=False, help="no live progress line on a terminal"),
    ] = None
    fast_report_calls: Annotated[
        bool,
        _help(
            "the three report calls on collector's short path, and the IAM client tuned for CPU "
            "(both read private botocore parts); false: aiobotocore's own path for every call"
        ),
        Flag(
            "--no-fast-report-calls",
            switch=False,
            help="aiobotocore's own path for every IAM call: no short path, no client tuning",
        ),
    ] = True
    s3_bucket_owner: Annotated[
        str | None, AfterValidator(_account_id),
        _help("ExpectedBucketOwner of s3:// output; null: the swept (or management) account"),
        Flag("--s3-bucket-owner", metavar="ACCOUNT_ID"),
    ] = None  # fmt: skip
    sse_kms_key_id: Annotated[
        str | None,
        _help("KMS key for s3:// output; null: SSE-S3 (AES256)"),
        Flag("--sse-kms-key-id", metavar="KEY"),
    ] = None
    # A live sweep shows its upload is live every 1/20 of this; a killed one stops showing it.
    s3_orphan_after: Annotated[
        FiniteFloat,
        _bounded(1, 7 * 86400, "a number"),
        _help("seconds without a sign of life after which an open upload of this output "
              "template is a dead sweep's, and aborted"),
    ] = 600.0  # fmt: skip
    max_accounts_in_flight: Annotated[
        int,
        _bounded(1, 4096, "an integer"),
        _help(
            "most accounts swept side by side; fewer while the process lacks CPU (event-loop "
            "lag) or memory (--memory-budget)"
        ),
        Flag("--max-accounts-in-flight", metavar="N", org=True),
    ] = 256
    memory_budget_mb: Annotated[
        int | None,
        _bounded(32, 1_048_576, "an integer"),
        _help(
            "resident MB above which an organisation sweep starts no more accounts; null: half "
            "the container's memory limit, at most 1024"
        ),
        Flag("--memory-budget", metavar="MB", org=True),
    ] = None
    manifest: Annotated[
        str | None,
        _help("manifest path template ({run_id}, {date}, {shard})"),
        Flag("--manifest", metavar="TEMPLATE", org=True),
    ] = None
    shard: Annotated[
        str | None,
        _help("INDEX/COUNT of a sharded run (0-based)"),
        Flag("--shard", metavar="INDEX/COUNT", org=True),
    ] = None
    run_id: Annotated[
        str | None, _help("run id shared by the shards of one run"), Flag("--run-id")
    ] = None
    org_access_report: Annotated[
        bool,
        _help("with --org: also the organizations access report (root, OUs, accounts)"),
        Flag("--org-access-report", switch=True, org=True),
    ] = False
    policy_documents: Annotated[
        bool,
        _help(
            "also write a policy_document line per policy (GetAccountAuthorizationDetails), "
            "the input of `collector report rightsize`"
        ),
        Flag("--policy-documents", switch=True),
    ] = False
    rates: Rates = field(default_factory=Rates)
    org: OrgSettings = field(default_factory=OrgSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)


SECTIONS: Mapping[str, type[Any]] = {
    "rates": Rates,
    "org": OrgSettings,
    "poll": PollSettings,
    "retry": RetrySettings,
    "discovery": DiscoverySettings,
}
