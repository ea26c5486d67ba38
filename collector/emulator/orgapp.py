"""The organisation's WSGI router: the caller's account from its access key, enforcement."""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.iam.models import IAMBackend

from collector.emulator import wire
from collector.emulator.app import (
    EmulatorApp,
    WSGIApp,
    form_params,
    read_body,
    s3_denied,
    signing_service,
)
from collector.emulator.assume import Caller, Denial, check_assume_role, duration, find_role
from collector.emulator.orgaccess import ORG_OPERATIONS, OrgAccessReports
from collector.emulator.stats import SERVED

_ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]+)/")
# What a member account may call in Organizations; the rest is for the management account.
_MEMBER_ORGANIZATIONS = frozenset({"DescribeOrganization", "LeaveOrganization"})
# Organizations pages accounts by 20 at most (the model's MaxResults); moto by 100.
_PAGED_ACCOUNTS = frozenset({"ListAccounts", "ListAccountsForParent"})
_ACCOUNTS_PAGE = 20
_READS = frozenset({"GetServiceLastAccessedDetails", "GetServiceLastAccessedDetailsWithEntities"})
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")
# An `assume-hang` AssumeRole answers only when the emulator stops, or after this long.
HANG_SECONDS = 600.0
_HTML = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>"
)


class OrgApp:
    """Routes every request of an organisation to its caller's account."""

    def __init__(
        self,
        moto_app: WSGIApp,
        accounts: Mapping[str, EmulatorApp],
        management_account_id: str,
        states: Mapping[str, str],
        reports: OrgAccessReports,
        *,
        faults: Mapping[str, str] | None = None,
        session_seconds: int | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.accounts = accounts
        self.management = management_account_id
        self.states = states
        self.reports = reports
        self.backends: dict[str, IAMBackend] = {
            account_id: app.advisor.backend for account_id, app in accounts.items()
        }
        self.faults = dict(faults or {})  # account id -> its member fault
        self.session_seconds = session_seconds
        self._sessions: dict[str, Caller] = {}  # access key id of an assumed role -> caller
        self._job_owners: dict[str, str] = {}  # JobId -> access key of the session that made it
        self._assumed: Counter[str] = Counter()  # account id -> AssumeRole requests into it
        self._granted: Counter[str] = Counter()  # account id -> credentials handed out
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # The time sessions are issued and expire by (None: the wall clock); tests move it.
        self.clock: Callable[[], datetime] | None = None
        self.expired_refusals = 0  # requests refused because their session had expired

    def now(self) -> datetime:
        return datetime.now(UTC) if self.clock is None else self.clock()

    @contextmanager
    def closing(self) -> Iterator[None]:
        """While serving: on exit, hung answers (`assume-hang`) end, so the server can stop."""
        try:
            yield
        finally:
            self._stopping.set()

    def assume_role_calls(self, account_id: str) -> int:
        """AssumeRole requests received for a role in the account."""
        with self._lock:
            return self._assumed[account_id]

    def caller(self, environ: Mapping[str, Any]) -> Caller:
        """The signer: an assumed-role session we issued, else the management account."""
        found = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        if found is not None:
            with self._lock:
                session = self._sessions.get(found[1])
            if session is not None:
                return session
        return Caller(self.management, f"arn:aws:iam::{self.management}:user/collector")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        caller = self.caller(environ)
        if caller.expires is not None and self.now() >= caller.expires:
            with self._lock:
                self.expired_refusals += 1
            message = "The security token included in the request is expired"
            return _answer(start_response, 403, wire.error("ExpiredToken", message, 403))
        service = signing_service(environ)
        if service == "iam" and environ.get("REQUEST_METHOD") == "POST":
            params = form_params(environ)
            if params.get("Action") in ORG_OPERATIONS:
                return self._org_report(params, caller, start_response)
            if caller.access_key is not None:
                return self._session_iam(environ, params, caller, start_response)
            return self.accounts[caller.account_id](environ, start_response)
        if service == "sts" and environ.get("REQUEST_METHOD") == "POST":
            params = form_params(environ)
            if params.get("Action") == "AssumeRole":
                return self._assume_role(environ, params, caller, start_response)
        if service == "organizations":
            operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
            member = caller.account_id != self.management
            # --access-denied names Organizations operations too (for the management caller).
            denied = operation in self.accounts[self.management].injector.faults.access_denied
            if (member and operation not in _MEMBER_ORGANIZATIONS) or denied:
                body = json.dumps(
                    {
                        "__type": "AccessDeniedException",
                        "Message": "You don't have permissions to access this resource.",
                    }
                ).encode()
                return _answer(start_response, 400, body, "application/x-amz-json-1.1")
            if operation in _PAGED_ACCOUNTS:
                _default_page_size(environ)
            # moto keeps the organisation with the management account's backend.
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.management
            return self.moto_app(environ, start_response)
        if s3_denied(environ, self.accounts[self.management].injector.faults.access_denied):
            return _answer(start_response, 403, wire.s3_error("AccessDenied", "Access Denied"))
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = caller.account_id
        return self.moto_app(environ, start_response)

    def _org_report(
        self, params: Mapping[str, str], caller: Caller, start_response: Callable[..., Any]
    ) -> list[bytes]:
        operation = params["Action"]
        management = self.accounts[self.management]
        if caller.account_id != self.management:
            message = (
                f"User: {caller.arn} is not authorized to perform: iam:{operation}: "
                "only the management account of the organization may call it"
            )
            return _answer(start_response, 403, wire.error("AccessDenied", message, 403))
        refusal = management.injector.refusal(operation, caller.arn)
        if management.stats is not None:
            management.stats.record(operation, SERVED if refusal is None else refusal.code)
        if refusal is not None:
            body = wire.error(refusal.code, refusal.message, refusal.status)
            return _answer(start_response, refusal.status, body)
        answer = self.reports.handle(operation, params)
        return _answer(start_response, answer.status, answer.body)

    def _session_iam(
        self,
        environ: dict[str, Any],
        params: Mapping[str, str],
        caller: Caller,
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        # A JobId can be read only by the session that created it (AWS: NoSuchEntity
        # otherwise), so a collector must regenerate jobs after its credentials refresh.
        operation = params.get("Action")
        app = self.accounts[caller.account_id]
        if not caller.permitted:
            message = (
                f"User: {caller.arn} is not authorized to perform: iam:{operation} because no "
                f"identity-based policy allows the iam:{operation} action"
            )
            return _answer(start_response, 403, wire.error("AccessDenied", message, 403))
        if operation in _READS:
            job_id = params.get("JobId", "")
            with self._lock:
                owner = self._job_owners.get(job_id)
            if owner is not None and owner != caller.access_key:
                body = wire.error("NoSuchEntity", f"No report job found with the ID {job_id}.", 404)
                return _answer(start_response, 404, body)
        if operation != "GenerateServiceLastAccessedDetails":
            return app(environ, start_response)
        body = b"".join(app(environ, start_response))
        found = re.search(rb"<JobId>([^<]+)</JobId>", body)
        if found is not None and caller.access_key is not None:
            with self._lock:
                self._job_owners[found[1].decode()] = caller.access_key
        return [body]

    def _assume_role(
        self,
        environ: dict[str, Any],
        params: Mapping[str, str],
        caller: Caller,
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        role_account = params.get("RoleArn", "").split(":")[4:5]
        account_id = role_account[0] if role_account else ""
        fault = self.faults.get(account_id)
        with self._lock:
            self._assumed[account_id] += 1
        if fault == "assume-hang":
            self._stopping.wait(HANG_SECONDS)
            return _answer(start_response, 503, Denial(503, "ServiceUnavailable", "").body())
        denial: Denial | None = check_assume_role(params, caller, self.backends, self.states)
        with self._lock:
            granted = self._granted[account_id]
        if denial is None and fault == "refresh-denied" and granted:
            denial = Denial(
                403,
                "AccessDenied",
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: "
                f"{params['RoleArn']}",
            )
        if denial is not None:
            return _answer(start_response, denial.status, denial.body())
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = caller.account_id
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            captured["status"] = status
            return lambda data: None  # the body is returned, not written

        body = b"".join(self.moto_app(environ, capture))
        status = str(captured.get("status", "500 Internal Server Error"))
        if not status.startswith("200"):
            return _answer(start_response, int(status.split()[0]), body)
        # The session lives DurationSeconds (or `session_seconds`) on this app's clock, and its
        # answer says so.
        lifetime = duration(params) if self.session_seconds is None else self.session_seconds
        expires = self.now().replace(microsecond=0) + timedelta(seconds=lifetime)
        body = _expires(body, expires)
        self._remember(body.decode("utf-8", "replace"), params["RoleArn"], expires)
        with self._lock:
            self._granted[account_id] += 1
        if fault == "assume-empty":
            return _answer(start_response, 200, b"")
        if fault == "assume-html":
            return _answer(start_response, 200, _HTML, "text/html; charset=utf-8")
        if fault == "assume-bad-expiry":
            body = _EXPIRATION.sub(b"<Expiration>in an hour or so</Expiration>", body)
        if fault == "assume-expired":
            body = _expires(body, self.now() - timedelta(hours=1))
        return _answer(start_response, 200, body)

    def _remember(self, document: str, role_arn: str, expires: datetime) -> None:
        key = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", document)
        arn = re.search(r"<AssumedRoleUser>.*?<Arn>([^<]+)</Arn>", document, re.S)
        if key is None or arn is None:
            return
        account_id = role_arn.split(":")[4]
        role = find_role(self.backends[account_id], role_arn)
        # A role with no permission policy at all may do nothing in IAM (`no-permissions`).
        permitted = role is not None and bool(role.policies or role.managed_policies)
        with self._lock:
            self._sessions[key[1]] = Caller(
                account_id, arn[1], role_arn, key[1], expires, permitted
            )


def _expires(body: bytes, when: datetime) -> bytes:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return _EXPIRATION.sub(b"<Expiration>" + stamp + b"</Expiration>", body)


def _default_page_size(environ: dict[str, Any]) -> None:
    """Give a ListAccounts call without MaxResults AWS's page size instead of moto's."""
    raw = read_body(environ)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        request = None
    if isinstance(request, dict) and "MaxResults" not in request:
        request["MaxResults"] = _ACCOUNTS_PAGE
        raw = json.dumps(request).encode()
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))


def _answer(
    start_response: Callable[..., Any],
    status: int,
    body: bytes,
    content_type: str = "text/xml",
) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]
