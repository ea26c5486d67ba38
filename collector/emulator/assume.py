"""sts:AssumeRole as AWS enforces it (moto grants any ARN): role, trust, external id, state."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from moto.iam.models import IAMBackend, Role

from collector.emulator.wire import request_id

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_ROLE_ARN = re.compile(r"^arn:aws:iam::(?P<account>[0-9]{12}):role/(?P<name>[\w+=,.@/-]+)$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_MIN_DURATION, _DEFAULT_DURATION = 900, 3600


@dataclass(frozen=True, slots=True)
class Caller:
    """Who signed a request: their account and the ARN AWS would name in a denial."""

    account_id: str
    arn: str  # arn:aws:iam::…:user/… or arn:aws:sts::…:assumed-role/ROLE/SESSION
    role_arn: str | None = None  # the IAM role behind an assumed-role session
    access_key: str | None = None  # the session's access key id
    expires: datetime | None = None  # when the session's credentials stop working
    permitted: bool = True  # False: the role has no permission policy (IAM denies it all)


@dataclass(frozen=True, slots=True)
class Denial:
    """An STS error answer."""

    status: int
    code: str
    message: str

    def body(self) -> bytes:
        """The STS error document (query protocol)."""
        kind = "Receiver" if self.status >= 500 else "Sender"
        return (
            f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            f"</Error><RequestId>{request_id()}</RequestId></ErrorResponse>"
        ).encode()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _names_caller(principal: Any, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    names = {
        caller.account_id,
        f"arn:aws:iam::{caller.account_id}:root",
        caller.arn,
        *([caller.role_arn] if caller.role_arn else []),
    }
    return any(value == "*" or value in names for value in _as_list(principal.get("AWS")))


def _allows_action(statement: Mapping[str, Any]) -> bool:
    return any(
        isinstance(action, str) and fnmatch.fnmatchcase("sts:assumerole", action.lower())
        for action in _as_list(statement.get("Action"))
    )


def _conditions_hold(conditions: Any, external_id: str | None) -> bool:
    # Only sts:ExternalId is known here; any other condition is taken as unmet,
    # which is what it would be for a caller with no MFA, no source IP, and so on.
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        return False
    for operator, tests in conditions.items():
        if operator not in ("StringEquals", "StringLike") or not isinstance(tests, dict):
            return False
        for key, expected in tests.items():
            if key.lower() != "sts:externalid" or external_id is None:
                return False
            values = [str(value) for value in _as_list(expected)]
            if operator == "StringEquals" and external_id not in values:
                return False
            if operator == "StringLike" and not any(
                fnmatch.fnmatchcase(external_id, value) for value in values
            ):
                return False
    return True


def trusts(document: str, caller: Caller, external_id: str | None) -> bool:
    """Whether a trust policy lets the caller assume the role (an explicit Deny wins)."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return False
    allowed = False
    statements = _as_list(parsed.get("Statement") if isinstance(parsed, dict) else None)
    for statement in statements:
        if not isinstance(statement, dict) or not _allows_action(statement):
            continue
        if not _names_caller(statement.get("Principal"), caller):
            continue
        if not _conditions_hold(statement.get("Condition"), external_id):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def find_role(backend: IAMBackend, role_arn: str) -> Role | None:
    """The role with this ARN in the account's IAM, or None."""
    return next((role for role in backend.roles.values() if role.arn == role_arn), None)


def check_assume_role(
    params: Mapping[str, str],
    caller: Caller,
    backends: Mapping[str, IAMBackend],
    states: Mapping[str, str],
) -> Denial | None:
    """None when AWS would grant this AssumeRole; otherwise the error it would answer.

    `backends` and `states` hold the organisation's accounts (IAM, and ACTIVE/SUSPENDED/…).
    """
    role_arn = params.get("RoleArn", "")
    session = params.get("RoleSessionName", "")
    if not role_arn or not session:
        missing = "roleArn" if not role_arn else "roleSessionName"
        return Denial(
            400,
            "ValidationError",
            f"1 validation error detected: Value null at '{missing}' failed to satisfy "
            "constraint: Member must not be null",
        )
    if not _SESSION_NAME.match(session):
        return Denial(
            400,
            "ValidationError",
            f"1 validation error detected: Value '{session}' at 'roleSessionName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        )
    denied = Denial(
        403,
        "AccessDenied",
        f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
    )
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        return Denial(400, "ValidationError", f"{role_arn} is invalid")
    account_id = match["account"]
    backend = backends.get(account_id)
    # A suspended or closing account answers as if the role were not there.
    if backend is None or states.get(account_id, "ACTIVE") != "ACTIVE":
        return denied
    role = find_role(backend, role_arn)
    if role is None or not trusts(
        str(role.assume_role_policy_document), caller, params.get("ExternalId")
    ):
        return denied
    return _check_duration(params.get("DurationSeconds"), role)


def duration(params: Mapping[str, str]) -> int:
    """The lifetime, in seconds, of the credentials a granted AssumeRole issues."""
    return int(params.get("DurationSeconds") or _DEFAULT_DURATION)


def _check_duration(raw: str | None, role: Role) -> Denial | None:
    try:
        duration = int(raw) if raw is not None else _DEFAULT_DURATION
    except ValueError:
        return Denial(400, "ValidationError", f"Invalid value for DurationSeconds: {raw}")
    if duration < _MIN_DURATION:
        return Denial(
            400,
            "ValidationError",
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value greater than or equal to {_MIN_DURATION}",
        )
    maximum = int(role.max_session_duration or _DEFAULT_DURATION)
    if duration > maximum:
        return Denial(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )
    return None
