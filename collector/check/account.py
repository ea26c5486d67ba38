"""One account's checks: who the credentials are, then each IAM call a sweep makes, made once
with nothing to lose (List* for one item, one report job, one page of it)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from botocore import xform_name

from collector.aws.iam import (
    AUTHORIZATION_DETAILS,
    GENERATE,
    GET,
    GET_WITH_ENTITIES,
    LIST_OPERATIONS,
    Caller,
)
from collector.check.rows import Result, Row
from collector.config.settings import Settings
from collector.errors import (
    AccessDeniedError,
    AwsError,
    CollectorError,
    RetriesExhaustedError,
)
from collector.models import CallStats

# What a List* call answers its principals in, by operation.
LIST_KEYS = {"ListUsers": "Users", "ListGroups": "Groups", "ListRoles": "Roles",
             "ListPolicies": "Policies"}  # fmt: skip
UNREACHABLE = frozenset({"ConnectionError", "Timeout"})
ATTEMPTS = 2  # a check answers in seconds: one retry of a transient failure, no more


def check_caller(settings: Settings) -> Caller:
    """The sweep's retry policy, with patience for a check: a few throttled retries at most."""
    retry = replace(
        settings.retry, throttle_max_attempts=min(settings.retry.throttle_max_attempts, 6)
    )
    return Caller(retry, CallStats())


@dataclass(frozen=True)
class Identity:
    """Who the credentials are (sts:GetCallerIdentity)."""

    account_id: str
    arn: str

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1] if self.arn.count(":") >= 5 else "aws"

    @property
    def principal(self) -> str:
        """The IAM principal a policy is attached to: an assumed-role session's role."""
        resource = self.arn.split(":", 5)[-1]
        if resource.startswith("assumed-role/"):
            role = resource.split("/")[1]
            return f"arn:{self.partition}:iam::{self.account_id}:role/{role}"
        return self.arn


@dataclass(frozen=True)
class Outcome:
    """What one probe call came to: its answer, or the result and why."""

    answer: Any
    result: Result
    detail: str


async def probe(
    caller: Caller,
    operation: str,
    send: Callable[[], Awaitable[Any]],
    *,
    allowed: frozenset[str] = frozenset(),
) -> Outcome:
    """One call through the sweep's retry policy. An error whose code is in `allowed` (say
    NoSuchEntity for a made-up JobId) still shows the call was allowed: IAM authorises first."""
    try:
        return Outcome(await caller.call(operation, send, attempts=ATTEMPTS), "ok", "")
    except AccessDeniedError as error:
        return Outcome(None, "denied", f"{error.code}: {error.message}")
    except RetriesExhaustedError as error:
        result: Result = "unreachable" if error.code in UNREACHABLE else "failed"
        return Outcome(None, result, f"{error.code}: {error.message}")
    except AwsError as error:
        if error.code in allowed:
            return Outcome(None, "ok", f"allowed (answered {error.code})")
        return Outcome(None, "failed", f"{error.code}: {error.message}")
    except CollectorError as error:  # credentials, an endpoint failing for every call
        return Outcome(None, "failed", str(error))


def _row(action: str, where: str, outcome: Outcome, principal: str, called: str) -> Row:
    fix = f"add {action} to {principal}" if outcome.result == "denied" else ""
    return Row(action, called, where, outcome.result, outcome.detail, fix)


ACTION = "sts:GetCallerIdentity"


async def identity(sts: Any, caller: Caller, where: str) -> tuple[Row, Identity | None]:
    """sts:GetCallerIdentity, which every sweep makes first (no policy can deny it: a failure
    is the credentials or the endpoint)."""
    outcome = await probe(caller, "GetCallerIdentity", sts.get_caller_identity)
    if outcome.answer is None:
        fix = "check the credentials (--profile, AWS_* variables) and --endpoint-url"
        row = Row(ACTION, "GetCallerIdentity", where, outcome.result, outcome.detail, fix)
        return row, None
    found = Identity(str(outcome.answer["Account"]), str(outcome.answer["Arn"]))
    return Row(ACTION, "GetCallerIdentity", where, "ok", found.arn), found


async def iam_rows(
    iam: Any, caller: Caller, settings: Settings, who: Identity, where: str
) -> list[Row]:
    """Each List* of the kinds swept (and GetAccountAuthorizationDetails with
    --policy-documents), then Generate on the first principal listed, then one page of the job
    and of its entities."""
    rows: list[Row] = []
    first: str | None = None
    principal = who.principal
    for kind in settings.discovery.kinds:
        operation = LIST_OPERATIONS[kind]
        params: dict[str, Any] = {"MaxItems": 1, "PathPrefix": settings.discovery.path_prefix}
        if kind == "policy":
            params["Scope"] = "Local"
        outcome = await probe(
            caller, operation, partial(getattr(iam, xform_name(operation)), **params)
        )
        rows.append(_row(f"iam:{operation}", where, outcome, principal, f"{operation}(MaxItems=1)"))
        if outcome.answer is not None and first is None:
            listed = outcome.answer.get(LIST_KEYS[operation], [])
            first = str(listed[0]["Arn"]) if listed else None
    if settings.policy_documents:  # --policy-documents reads every policy document once
        details = await probe(
            caller,
            AUTHORIZATION_DETAILS,
            lambda: iam.get_account_authorization_details(MaxItems=1),
        )
        called = f"{AUTHORIZATION_DETAILS}(MaxItems=1)"
        rows.append(_row(f"iam:{AUTHORIZATION_DETAILS}", where, details, principal, called))
    if first is None:
        rows += [
            Row(f"iam:{name}", name, where, "skipped", "no principal listed to try it on")
            for name in (GENERATE, GET, GET_WITH_ENTITIES)
        ]
        return rows
    generated = await probe(
        caller,
        GENERATE,
        lambda: iam.generate_service_last_accessed_details(
            Arn=first, Granularity=settings.granularity
        ),
        allowed=frozenset({"NoSuchEntity"}),
    )
    if generated.answer is not None:
        generated = replace(generated, detail=f"job {generated.answer['JobId']} for {first}")
    rows.append(_row(f"iam:{GENERATE}", where, generated, principal, GENERATE))
    # Without a job of our own, a made-up JobId still shows the permission (NoSuchEntity).
    job = str(generated.answer["JobId"]) if generated.answer else str(uuid.uuid4())
    read = await probe(
        caller,
        GET,
        lambda: iam.get_service_last_accessed_details(JobId=job, MaxItems=1),
        allowed=frozenset({"NoSuchEntity"}),
    )
    rows.append(_row(f"iam:{GET}", where, read, principal, f"{GET}(MaxItems=1)"))
    entities = await probe(
        caller,
        GET_WITH_ENTITIES,
        lambda: iam.get_service_last_accessed_details_with_entities(
            JobId=job, ServiceNamespace="iam", MaxItems=1
        ),
        allowed=frozenset({"NoSuchEntity"}),
    )
    rows.append(
        _row(f"iam:{GET_WITH_ENTITIES}", where, entities, principal,
             f"{GET_WITH_ENTITIES}(MaxItems=1)")
    )  # fmt: skip
    return rows
